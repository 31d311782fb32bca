package client

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/blindstore/blindstore/client/blockcache"
	"github.com/blindstore/blindstore/indexfile"
	"github.com/blindstore/blindstore/internal/seeded"
)

// cachedAccount is an account of many index blocks (small blocks, files
// kept inline) on s, made through a counting proxy, and a block cache.
func cachedAccount(t *testing.T) (a *Account, s *testServer, p countingProxy, cache *blockcache.Cache) {
	t.Helper()
	s = newTestServerSize(t, 4096)
	a, p, _ = countedSignup(t, s, "cache")
	srcs := make([]PutSource, 600)
	for i := range srcs {
		srcs[i] = PutSource{Name: fmt.Sprintf("d%d/f%04d", i%7, i), R: bytes.NewReader(seeded.Bytes(uint64(i), 64)), ModTime: time.Unix(1_700_000_000, 0)}
	}
	if _, err := a.PutMany(context.Background(), srcs); err != nil {
		t.Fatal(err)
	}
	if n := len(a.IndexBlocks()); n < 10 {
		t.Fatalf("the test account has %d index blocks; the test needs many", n)
	}
	cache, err := blockcache.Open(filepath.Join(t.TempDir(), "cache"), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	return a, s, p, cache
}

// resumeReads resumes st with cache through p and returns the account
// and the blocks it read from the server.
func resumeReads(t *testing.T, s *testServer, p countingProxy, st State, cache BlockCache) (*Account, int) {
	t.Helper()
	p.Take()
	b, err := Resume(context.Background(), s.remoteAt(t, p.url), st, WithBlockCache(cache))
	if err != nil {
		t.Fatal(err)
	}
	_, reads := p.counts()
	return b, reads
}

func sameFiles(t *testing.T, got, want *Account) {
	t.Helper()
	g, w := got.Files(), want.Files()
	if len(g) != len(w) {
		t.Fatalf("%d files, want %d", len(g), len(w))
	}
	for i := range g {
		if g[i].Name != w[i].Name || g[i].Hash != w[i].Hash || !bytes.Equal(g[i].Inline, w[i].Inline) {
			t.Fatalf("file %d is %q, want %q", i, g[i].Name, w[i].Name)
		}
	}
}

// newBlocks returns how many of after's blocks before did not have.
func newBlocks(before, after []indexfile.Ref) int {
	had := map[indexfile.Ref]bool{}
	for _, r := range before {
		had[r] = true
	}
	n := 0
	for _, r := range after {
		if !had[r] {
			n++
		}
	}
	return n
}

func TestBlockCacheReadsOnlyChangedBlocks(t *testing.T) {
	a, s, p, cache := cachedAccount(t)
	st := a.State()
	total := len(a.IndexBlocks())

	b, reads := resumeReads(t, s, p, st, cache)
	if reads != 1+total {
		t.Fatalf("the first open read %d blocks, want the head and the %d index blocks", reads, total)
	}
	sameFiles(t, b, a)

	b, reads = resumeReads(t, s, p, b.State(), cache)
	if reads != 1 {
		t.Fatalf("an open with nothing changed read %d blocks, want the head alone", reads)
	}
	sameFiles(t, b, a)

	// Another device (a, without the cache) changes one file.
	before := a.IndexBlocks()
	putBytes(t, a, "d3/f0300", seeded.Bytes(99, 64))
	changed := newBlocks(before, a.IndexBlocks())
	if changed == 0 || changed > 8 {
		t.Fatalf("a one-file change made %d new index blocks", changed)
	}
	b, reads = resumeReads(t, s, p, b.State(), cache)
	if reads != 1+changed {
		t.Fatalf("after another device changed one file, an open read %d blocks, want the head and the %d that changed", reads, changed)
	}
	sameFiles(t, b, a)

	// This device's own change: what it wrote is cached as it commits,
	// and what it replaced is dropped.
	putBytes(t, b, "d4/f0400", seeded.Bytes(98, 64))
	c, reads := resumeReads(t, s, p, b.State(), cache)
	if reads != 1 {
		t.Fatalf("after this device's own change, an open read %d blocks, want the head alone", reads)
	}
	sameFiles(t, c, b)
	// Neither the blocks the other device replaced nor those this one
	// replaced are left: the cache holds the index as it is.
	if kept := cachedBlocks(t, cache); kept != len(c.IndexBlocks()) {
		t.Errorf("the cache holds %d blocks; the index has %d", kept, len(c.IndexBlocks()))
	}
}

func cachedBlocks(t *testing.T, c *blockcache.Cache) int {
	t.Helper()
	entries, err := filepath.Glob(filepath.Join(c.Dir(), "*.blk"))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func TestBlockCacheRefusesDamagedAndForeignEntries(t *testing.T) {
	a, s, p, cache := cachedAccount(t)
	b, _ := resumeReads(t, s, p, a.State(), cache)
	dir := cache.Dir()
	entries, err := filepath.Glob(filepath.Join(dir, "*.blk"))
	if err != nil || len(entries) < 3 {
		t.Fatalf("%d cache entries, %v", len(entries), err)
	}
	other, err := os.ReadFile(entries[2])
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		damage func(path string) error
	}{
		{"a flipped byte", func(path string) error {
			d, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			d[len(d)/2] ^= 1
			return os.WriteFile(path, d, 0o600)
		}},
		{"a torn entry", func(path string) error { return os.Truncate(path, 100) }},
		{"another block's ciphertext", func(path string) error { return os.WriteFile(path, other, 0o600) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.damage(entries[0]); err != nil {
				t.Fatal(err)
			}
			c, reads := resumeReads(t, s, p, b.State(), cache)
			if reads != 2 {
				t.Fatalf("with one damaged entry, an open read %d blocks, want the head and that block", reads)
			}
			sameFiles(t, c, a)
			// The entry was fetched again and replaced.
			if _, reads := resumeReads(t, s, p, b.State(), cache); reads != 1 {
				t.Fatalf("after the damaged entry was refetched, an open read %d blocks, want the head alone", reads)
			}
		})
	}
}
