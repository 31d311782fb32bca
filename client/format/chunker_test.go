package format

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"testing"

	"github.com/blindstore/blindstore/indexfile"
	"github.com/blindstore/blindstore/internal/seeded"
)

// chunkAll cuts data with the account key's chunker and returns the chunks.
func chunkAll(t testing.TB, key Key, capacity int, data []byte) [][]byte {
	return rechunk(t, key, capacity, data, nil)
}

// rechunk cuts data as a put over a file of chunks old does: with the old
// marks, and told which chunks are old ones.
func rechunk(t testing.TB, key Key, capacity int, data []byte, old [][]byte) [][]byte {
	t.Helper()
	table := ChunkerTable(key)
	c := NewChunker(bytes.NewReader(data), table, capacity)
	have := map[[32]byte]bool{}
	if old != nil {
		c.marks = map[uint64]struct{}{}
		for _, o := range old {
			c.marks[markOf(o, table)] = struct{}{}
			have[sha256.Sum256(o)] = true
		}
	}
	buf := make([]byte, capacity)
	var out [][]byte
	for {
		ch, mark, err := c.Next(buf)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if mark != markOf(ch, table) {
			t.Fatal("next returned a wrong mark")
		}
		c.Matched(have[sha256.Sum256(ch)])
		out = append(out, bytes.Clone(ch))
	}
}

// changed counts the chunks of b that are not chunks of a (as a multiset).
func changed(a, b [][]byte) int {
	have := map[[32]byte]int{}
	for _, c := range a {
		have[sha256.Sum256(c)]++
	}
	n := 0
	for _, c := range b {
		h := sha256.Sum256(c)
		if have[h] > 0 {
			have[h]--
			continue
		}
		n++
	}
	return n
}

// Chunks are between min and the capacity, the last one excepted, and
// put back together they are the stream.
func TestChunkerBounds(t *testing.T) {
	const capacity = 65536 - BlockOverhead
	key := testKey("chunker")
	for _, n := range []int{0, 1, capacity - 1, capacity, capacity + 1, 2*capacity + 3, 40 * capacity} {
		data := seeded.Bytes(uint64(n), n)
		chunks := chunkAll(t, key, capacity, data)
		if got := bytes.Join(chunks, nil); !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: chunks do not join back to the stream", n)
		}
		for i, c := range chunks {
			if len(c) == 0 || len(c) > capacity || (i < len(chunks)-1 && len(c) < ChunkMin(capacity)) {
				t.Fatalf("%d bytes: chunk %d of %d has %d bytes", n, i, len(chunks), len(c))
			}
		}
	}
	// Runs of one byte (no landmark at all) fill whole blocks.
	zeros := chunkAll(t, key, capacity, make([]byte, 10*capacity))
	if len(zeros) != 10 {
		t.Fatalf("10 blocks' worth of zeros took %d chunks", len(zeros))
	}
}

// Two accounts cut the same content at different places.
func TestChunkerPerAccount(t *testing.T) {
	const capacity = 4096 - BlockOverhead
	data := seeded.Bytes(7, 64*capacity)
	a := chunkAll(t, testKey("account a"), capacity, data)
	b := chunkAll(t, testKey("account b"), capacity, data)
	if n := changed(a, b); n < len(b)*9/10 {
		t.Fatalf("two accounts share %d of %d chunks of the same content", len(b)-n, len(b))
	}
}

// The figures the design promises, on random data: at most 15% more
// blocks than packing blocks full; an insertion of 100 bytes or an
// overwrite of one byte anywhere changes 1 chunk in most cases and never
// more than a few.
func TestChunkerEditLocality(t *testing.T) {
	const capacity = 65536 - BlockOverhead
	const size = 32 << 20
	key := testKey("locality")
	data := seeded.Bytes(1, size)
	base := chunkAll(t, key, capacity, data)
	fixed := (size + capacity - 1) / capacity
	overhead := float64(len(base))/float64(fixed) - 1
	t.Logf("32 MiB of random data: %d chunks, %d blocks packed full: %.1f%% more", len(base), fixed, 100*overhead)
	if overhead > 0.15 {
		t.Fatalf("chunking takes %.1f%% more blocks than packing them full", 100*overhead)
	}
	// Chunks before the edit keep their cuts, so each trial re-cuts only
	// from two chunks before it to a few blocks after.
	starts := make([]int, len(base)+1)
	for i, c := range base {
		starts[i+1] = starts[i] + len(c)
	}
	r := rand.New(rand.NewPCG(1, 2))
	hist := map[string][5]int{}
	trials := 300
	if n, err := strconv.Atoi(os.Getenv("BLIND_CHUNKER_TRIALS")); err == nil {
		trials = n
	}
	for trial := range trials {
		at := r.IntN(size)
		k := max(0, sort.SearchInts(starts, at+1)-3)
		from, to := starts[k], min(size, at+12*capacity)
		old := data[from:to]
		rel := at - from
		ins := append(append(append([]byte(nil), old[:rel]...), seeded.Bytes(uint64(100+trial), 100)...), old[rel:]...)
		over := bytes.Clone(old)
		over[rel] ^= 0xff
		oldChunks := chunkAll(t, key, capacity, old)
		for _, tc := range []struct {
			name  string
			data  []byte
			limit int
		}{{"insert 100 bytes", ins, 3}, {"overwrite 1 byte", over, 2}} {
			n := changed(oldChunks, rechunk(t, key, capacity, tc.data, oldChunks))
			if n > tc.limit {
				t.Errorf("%s at %d: %d chunks changed, want at most %d", tc.name, at, n, tc.limit)
			}
			h := hist[tc.name]
			h[min(n, 4)]++
			hist[tc.name] = h
		}
	}
	t.Logf("chunks changed (0,1,2,3,4+): %v", hist)
}

func BenchmarkChunker(b *testing.B) {
	const capacity = 65536 - BlockOverhead
	data := seeded.Bytes(3, 64<<20)
	table := ChunkerTable(testKey("bench"))
	buf := make([]byte, capacity)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		c := NewChunker(bytes.NewReader(data), table, capacity)
		for {
			if _, _, err := c.Next(buf); err == io.EOF {
				break
			}
		}
	}
}

// A file inline in the index fits the index's own bound at every block
// size: at 4 MiB a 32nd of the payload is 128 KiB, which the index
// refuses.
func TestInlineMaxWithinIndex(t *testing.T) {
	for _, bs := range []int{1024, 65536, 1 << 20, 4 << 20, 16 << 20} {
		if m := InlineMax(bs); m > indexfile.MaxInline || m <= 0 {
			t.Errorf("block size %d: InlineMax %d, want 1..%d", bs, m, indexfile.MaxInline)
		}
	}
}
