package client

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/blindstore/blindstore/internal/seeded"
)

// The targets at full size, gated because they take minutes:
// BLIND_TEST_SCALE=1 go test -run TestScale -v ./client
//
// A 100,000-file account (files of 1 KiB, inline): one file changed
// writes a few index blocks, and opening the account (everything but the
// password's Argon2id) stays within a second. A 256 MiB file: a 100-byte
// insertion in the middle and a one-byte overwrite re-send a few blocks.
func TestScale(t *testing.T) {
	if os.Getenv("BLIND_TEST_SCALE") == "" {
		t.Skip("set BLIND_TEST_SCALE=1 for the 100,000-file account and the 256 MiB file")
	}
	s := newTestServerSize(t, 65536)
	a, p, loc := countedSignup(t, s, "scale")
	ctx := context.Background()
	for batch := range 10 {
		var srcs []PutSource
		for i := range 10000 {
			n := batch*10000 + i
			srcs = append(srcs, PutSource{Name: fmt.Sprintf("d%02d/f%06d.txt", n%50, n), R: bytes.NewReader(seeded.Bytes(uint64(n), 1024)), ModTime: time.Unix(1_700_000_000, 0)})
		}
		if _, err := a.PutMany(ctx, srcs); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("100,000 files of 1 KiB: %d blocks on the server, %d index blocks", s.blocks(t), len(a.indexBlocks()))
	worst := 0
	for i := range 20 {
		p.counts()
		name := fmt.Sprintf("d%02d/f%06d.txt", (i*4999)%50, i*4999)
		putBytes(t, a, name, seeded.Bytes(uint64(1e6+i), 1024))
		w, _ := p.counts()
		worst = max(worst, w)
	}
	t.Logf("one file changed: at most %d index blocks written (besides the head)", worst)
	if worst > 8 {
		t.Errorf("changing one file wrote %d index blocks", worst)
	}
	start := time.Now()
	b, err := login(ctx, s.remote(t), "", loc)
	took := time.Since(start)
	if err != nil || len(b.Files()) != 100000 {
		t.Fatalf("login: %v", err)
	}
	t.Logf("login of the 100,000-file account, beyond Argon2id: %v", took)
	if took > time.Second {
		t.Errorf("login took %v", took)
	}

	data := seeded.Bytes(7, 256<<20)
	putBytes(t, a, "big", data)
	for _, tc := range []struct {
		name  string
		edit  []byte
		limit int
	}{
		{"100-byte insertion in the middle", append(append(bytes.Clone(data[:128<<20]), seeded.Bytes(9, 100)...), data[128<<20:]...), 4},
		{"one-byte overwrite", func() []byte { b := bytes.Clone(data); b[100<<20] ^= 1; return b }(), 2},
	} {
		prev, _ := a.Lookup("big")
		putBytes(t, a, "big", tc.edit)
		f, _ := a.Lookup("big")
		n := newDataBlocks(prev, f)
		t.Logf("256 MiB, %s: %d data blocks re-sent", tc.name, n)
		if n > tc.limit {
			t.Errorf("%s re-sent %d data blocks", tc.name, n)
		}
	}
}

// BenchmarkScaleLogin opens a 100,000-file account (the password's
// Argon2id left out), for profiles of what a large login costs:
// BLIND_TEST_SCALE=1 go test -run '^$' -bench ScaleLogin -cpuprofile cpu.out ./client
func BenchmarkScaleLogin(b *testing.B) {
	if os.Getenv("BLIND_TEST_SCALE") == "" {
		b.Skip("set BLIND_TEST_SCALE=1 to build the 100,000-file account")
	}
	s := newTestServerSize(b, 65536)
	ctx := context.Background()
	loc := testLocator(b, "scale", "pw")
	a, _, err := signup(ctx, s.remote(b), "scale", loc)
	if err != nil {
		b.Fatal(err)
	}
	for batch := range 10 {
		srcs := make([]PutSource, 0, 10000)
		for i := range 10000 {
			n := batch*10000 + i
			srcs = append(srcs, PutSource{Name: fmt.Sprintf("d%02d/f%06d.txt", n%50, n), R: bytes.NewReader(seeded.Bytes(uint64(n), 1024)), ModTime: time.Unix(1_700_000_000, 0)})
		}
		if _, err := a.PutMany(ctx, srcs); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		l, err := login(ctx, s.remote(b), "", loc)
		if err != nil || len(l.Files()) != 100000 {
			b.Fatalf("login: %v", err)
		}
	}
}
