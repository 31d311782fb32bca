package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/blindstore/blindstore/internal/countproxy"
	"github.com/blindstore/blindstore/internal/seeded"
	"github.com/blindstore/blindstore/wire"
)

// TestBlockCache runs blind through a counting proxy: with the cache, a
// command after the first reads the head and only the index blocks that
// changed; logout removes the cache.
func TestBlockCache(t *testing.T) {
	srv := startServer(t, "--block-size", "4096")
	p, err := countproxy.Start(srv.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	u := newUser(t, p.URL, "cached")
	u.signup()
	dir := filepath.Join(t.TempDir(), "notes")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for i := range 400 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("n%04d.txt", i)), seeded.Bytes(uint64(i), 64), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	u.must("put", dir)
	cache := filepath.Join(u.cfg, cacheDir)
	entries, err := filepath.Glob(filepath.Join(cache, "*.blk"))
	if err != nil || len(entries) < 10 {
		t.Fatalf("after a put of 400 files, the cache holds %d blocks (%v)", len(entries), err)
	}

	p.Take()
	u.must("ls")
	if got := p.Take().Reads; got != 1 {
		t.Fatalf("ls after this device's put read %d blocks, want the head alone", got)
	}

	// Another device changes one file: the next command here reads the
	// head and the few index blocks that changed.
	other := newUser(t, p.URL, "cached")
	other.pass = u.pass
	other.must("login", "--user", "cached")
	one := filepath.Join(t.TempDir(), "n0200.txt")
	if err := os.WriteFile(one, seeded.Bytes(9999, 64), 0o600); err != nil {
		t.Fatal(err)
	}
	other.must("put", one, "--as", "notes/n0200.txt")
	p.Take()
	u.must("ls")
	if got := p.Take().Reads; got < 2 || got > 1+8 {
		t.Fatalf("ls after another device changed one file read %d blocks, want the head and at most 8 index blocks", got)
	}

	// A put of one file reads the head alone: its leaves and dir come
	// from the cache, and the rest of the index is not read at all. The
	// listing ls then shows is the one the put updated.
	mine := filepath.Join(t.TempDir(), "n0300.txt")
	if err := os.WriteFile(mine, seeded.Bytes(8888, 64), 0o600); err != nil {
		t.Fatal(err)
	}
	p.Take()
	u.must("put", mine, "--as", "notes/n0300.txt")
	if got := p.Take().Reads; got != 1 {
		t.Fatalf("a put of one file read %d blocks, want the head alone", got)
	}
	listed := u.must("ls").stdout
	if got := p.Take().Reads; got != 1 {
		t.Fatalf("ls after this device's put of one file read %d blocks, want the head alone", got)
	}
	if full := u.must("--cache-mib", "0", "ls").stdout; full != listed {
		t.Fatalf("ls from the listing cache differs from ls of the index:\n%s\nvs\n%s", listed, full)
	}
	p.Take()

	// Without the cache, every index block that holds files is read (the
	// padding leaves, whose length says they hold none, are not).
	u.must("--cache-mib", "0", "ls")
	if got := p.Take().Reads; got < len(entries)/2 || got > 1+len(entries) {
		t.Fatalf("ls without the cache read %d blocks, want the head and the index's blocks of files (of %d)", got, len(entries))
	}

	u.expect(wire.ExitUsage, nil, "--cache-mib", "-1", "ls")

	u.must("logout")
	if _, err := os.Stat(cache); !os.IsNotExist(err) {
		t.Fatalf("logout left the cache: %v", err)
	}
}
