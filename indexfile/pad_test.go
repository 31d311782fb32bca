package indexfile

import (
	"bytes"
	"errors"
	"math/bits"
	"math/rand/v2"
	"testing"
)

// Values worked by hand from E = ⌊log2 L⌋, S = ⌊log2 E⌋+1, mask = 2^(E−S)−1.
func TestPadmeByHand(t *testing.T) {
	for _, c := range []struct{ in, want uint64 }{
		{0, 0}, {1, 1}, {2, 2}, {3, 3}, {7, 7}, {8, 8},
		{9, 10},              // E=3, S=2, mask=1
		{100, 104},           // E=6, S=3, mask=7
		{1000, 1024},         // E=9, S=4, mask=31
		{1025, 1088},         // E=10, S=4, mask=63
		{65536, 65536},       // a power of two is its own padding
		{65537, 67584},       // E=16, S=5, mask=2047
		{1<<20 + 1, 1081344}, // E=20, S=5, mask=32767
	} {
		if got := Padme(c.in); got != c.want {
			t.Errorf("Padme(%d) = %d, want %d", c.in, got, c.want)
		}
	}
}

func checkPadme(t *testing.T, l uint64) {
	t.Helper()
	p := Padme(l)
	if p < l {
		t.Fatalf("Padme(%d) = %d shrinks", l, p)
	}
	// Overhead below 12%: 25(p−l) < 3l, in 128-bit integers.
	oh, ol := bits.Mul64(p-l, 25)
	lh, ll := bits.Mul64(l, 3)
	if l > 0 && (oh > lh || oh == lh && ol >= ll) {
		t.Fatalf("Padme(%d) = %d: overhead %.2f%%", l, p, float64(p-l)*100/float64(l))
	}
	if Padme(p) != p {
		t.Fatalf("Padme(Padme(%d)) = %d, not %d", l, Padme(p), p)
	}
	if l+1 < 1<<63 && Padme(l+1) < p {
		t.Fatalf("Padme not monotone at %d", l)
	}
}

func TestPadmeProperties(t *testing.T) {
	for l := uint64(0); l <= 1<<20; l++ {
		checkPadme(t, l)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		checkPadme(t, r.Uint64N(1<<62))
	}
	for e := range 62 {
		for _, d := range []int64{-1, 0, 1} {
			checkPadme(t, uint64(int64(1)<<e+d))
		}
	}
}

// TestPadmeLeak counts the padded lengths of each power-of-two range:
// 2^S of them (S = ⌊log2 E⌋+1), which is what leaves O(log log L) bits.
func TestPadmeLeak(t *testing.T) {
	for _, e := range []int{10, 16, 20} {
		seen := map[uint64]bool{}
		for l := uint64(1) << e; l < 1<<(e+1); l++ {
			seen[Padme(l)] = true
		}
		s := bits.Len(uint(e))
		if len(seen) > 1<<s+1 {
			t.Errorf("lengths in [2^%d, 2^%d) pad to %d values, want at most %d", e, e+1, len(seen), 1<<s+1)
		}
	}
}

func TestPaddedBlocks(t *testing.T) {
	const payload = 65536 - 44
	for _, c := range []struct{ n, want int }{
		{1, 1},
		{payload, 2},         // Padmé(65492) = 65536, one byte over a payload
		{9 * payload, 10},    // 589428 → 589824 bytes → 10 blocks → Padmé(10) = 10
		{40*payload + 1, 44}, // → 2621440 bytes → 41 blocks → Padmé(41) = 44
		{100 * payload, 104}, // → 101 blocks → Padmé(101) = 104
	} {
		got, err := PaddedBlocks(c.n, payload)
		if err != nil || got != c.want {
			t.Errorf("PaddedBlocks(%d) = %d, %v; want %d", c.n, got, err, c.want)
		}
	}
	// Always enough room; two roundings of under 12% each, plus at most
	// one block for the first one's spill, stay under 26% and a block.
	for n := 1; n < 300*payload; n += 9973 {
		got, _ := PaddedBlocks(n, payload)
		need := (n + payload - 1) / payload
		if got < need {
			t.Fatalf("PaddedBlocks(%d) = %d < %d needed", n, got, need)
		}
		if (got-need-1)*100 >= 26*need {
			t.Fatalf("PaddedBlocks(%d) = %d for %d needed", n, got, need)
		}
	}
	for _, bad := range [][2]int{{1, 0}, {-1, 10}, {3 << 30, 10}} {
		if _, err := PaddedBlocks(bad[0], bad[1]); err == nil {
			t.Errorf("PaddedBlocks(%d, %d) accepted", bad[0], bad[1])
		}
	}
}

func TestSplitJoin(t *testing.T) {
	const payload = 1000
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 999, 1000, 1001, 9000, 123457} {
		enc := make([]byte, n)
		for i := range enc {
			enc[i] = byte(r.IntN(255) + 1)
		}
		parts, err := Split(enc, payload)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := PaddedBlocks(n, payload)
		if len(parts) != want {
			t.Fatalf("Split(%d bytes) = %d payloads, want %d", n, len(parts), want)
		}
		for _, p := range parts {
			if len(p) != payload {
				t.Fatalf("payload of %d bytes, want %d", len(p), payload)
			}
		}
		got, err := Join(parts, n)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, enc) {
			t.Fatalf("Join(Split(%d bytes)) differs", n)
		}
	}
}

func TestJoinRefuses(t *testing.T) {
	parts, err := Split([]byte("hello"), 8)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Join(parts, 9); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Join beyond the payloads: %v", err)
	}
	if _, err := Join(parts, -1); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Join of a negative length: %v", err)
	}
	parts[0][7] = 1
	if _, err := Join(parts, 5); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Join with non-zero padding: %v", err)
	}
	if got, err := Join(parts, 8); err != nil || string(got) != "hello\x00\x00\x01" {
		t.Fatalf("Join(8) = %q, %v", got, err)
	}
}
