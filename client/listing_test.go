package client

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/blindstore/blindstore/client/blockcache"
	"github.com/blindstore/blindstore/internal/seeded"
)

// wantListing checks that l shows what Files shows of b's index.
func wantListing(t *testing.T, l []Listed, b *Account) {
	t.Helper()
	files := b.Files()
	if len(l) != len(files) {
		t.Fatalf("the listing has %d files, the index %d", len(l), len(files))
	}
	for i := range files {
		f := &files[i]
		want := Listed{Name: f.Name, Size: f.Size, Mode: f.Mode, ModTime: f.ModTime, Hash: f.Hash, Blocks: len(f.Chunks), Shared: len(f.Manifest) > 0, Renewed: f.Renewed}
		got := l[i]
		if !got.ModTime.Equal(want.ModTime) {
			t.Fatalf("listing entry %d has the time %v, want %v", i, got.ModTime, want.ModTime)
		}
		got.ModTime = want.ModTime
		if got != want {
			t.Fatalf("listing entry %d is %+v, want %+v", i, got, want)
		}
	}
}

// listReads opens st lazily with cache through p and lists it, and
// returns the listing and the blocks read from the server.
func listReads(t *testing.T, s *testServer, p countingProxy, st State, cache BlockCache) ([]Listed, int) {
	t.Helper()
	p.Take()
	b, err := Resume(context.Background(), s.remoteAt(t, p.url), st, WithBlockCache(cache), WithLazyIndex())
	if err != nil {
		t.Fatal(err)
	}
	l, err := b.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, reads := p.counts()
	return l, reads
}

// The listing cache: a second ls reads neither the server's index nor
// the cached blocks, a lazy put keeps it current, a change by another
// device makes it stale (then built again), and it holds no plaintext.
func TestListingCache(t *testing.T) {
	a, s, p, cache := cachedAccount(t)
	ctx := context.Background()
	st := a.State()
	l, reads := listReads(t, s, p, st, cache)
	if reads != 1+len(a.IndexBlocks()) {
		t.Fatalf("the first listing read %d blocks", reads)
	}
	wantListing(t, l, a)
	sealed := cache.Listing()
	if sealed == nil {
		t.Fatal("no listing kept")
	}
	for _, f := range a.Files() {
		if len(f.Name) > 4 && containsBytes(sealed, f.Name) {
			t.Fatalf("the kept listing holds the name %q in clear", f.Name)
		}
	}
	// Without the cached blocks, the listing still comes whole from its
	// own cache: only the head and the dirs are read, from the server.
	blk, _ := filepath.Glob(filepath.Join(cache.Dir(), "*.blk"))
	for _, e := range blk {
		if err := os.Remove(e); err != nil {
			t.Fatal(err)
		}
	}
	l, reads = listReads(t, s, p, st, cache)
	if reads != 1+len(a.head.Index) {
		t.Fatalf("a listing from the listing cache read %d blocks, want the head and the dirs", reads)
	}
	wantListing(t, l, a)

	// Lazy puts log the leaves they wrote, sealed, a few kilobytes each;
	// the next listing takes them and keeps the result.
	b, err := Resume(ctx, s.remoteAt(t, p.url), st, WithBlockCache(cache), WithLazyIndex())
	if err != nil {
		t.Fatal(err)
	}
	kept := cache.Listing()
	putBytes(t, b, "d2/new", seeded.Bytes(5, 40))
	putBytes(t, b, "d3/f0003", seeded.Bytes(6, 50))
	log := cache.ListingLog()
	if len(log) != 2 || !bytes.Equal(cache.Listing(), kept) {
		t.Fatalf("two puts logged %d records (and the listing changed: %v)", len(log), !bytes.Equal(cache.Listing(), kept))
	}
	for _, rec := range log {
		if len(rec) > 8<<10 || containsBytes(rec, "d2/new") {
			t.Fatalf("a record of %d bytes, or with a name in clear", len(rec))
		}
	}
	l, reads = listReads(t, s, p, b.State(), cache)
	if reads != 1 { // the dirs the puts wrote are in the block cache
		t.Fatalf("a listing through the log read %d blocks, want the head alone", reads)
	}
	fresh := memLoginRemote(t, s.remote(t), b)
	wantListing(t, l, fresh)
	if len(cache.ListingLog()) != 0 || bytes.Equal(cache.Listing(), kept) {
		t.Fatal("the listing did not keep the log's changes")
	}
	// A damaged record is ignored: the leaf it stood for is read again.
	putBytes(t, b, "d2/new", seeded.Bytes(8, 40))
	putBytes(t, b, "d1/f0001", seeded.Bytes(9, 40))
	log = cache.ListingLog()
	log[0][len(log[0])/2] ^= 1
	if err := cache.KeepListing(cache.Listing()); err != nil {
		t.Fatal(err)
	}
	for _, rec := range log {
		if err := cache.AppendListingLog(rec); err != nil {
			t.Fatal(err)
		}
	}
	l, _ = listReads(t, s, p, b.State(), cache)
	fresh = memLoginRemote(t, s.remote(t), b)
	wantListing(t, l, fresh)
	if len(cache.ListingLog()) != 0 {
		t.Fatal("the listing did not fold the log in")
	}

	// Another device's change: the listing reads the blocks it wrote (the
	// head, a leaf and a dir, and whatever padding it added), not the rest.
	before := fresh.IndexBlocks()
	putBytes(t, fresh, "d5/other", seeded.Bytes(7, 30))
	l, reads = listReads(t, s, p, b.State(), cache)
	if changed := newBlocks(before, fresh.IndexBlocks()); reads < 2 || reads > 1+changed {
		t.Fatalf("after another device's change the listing read %d blocks; %d changed", reads, changed)
	}
	wantListing(t, l, fresh)

	// A damaged listing, and another account's, are built again.
	damaged := cache.Listing()
	damaged[len(damaged)/2] ^= 1
	if err := cache.KeepListing(damaged); err != nil {
		t.Fatal(err)
	}
	l, _ = listReads(t, s, p, b.State(), cache)
	wantListing(t, l, fresh)
	otherAcc, _, _ := countedSignup(t, s, "other")
	putBytes(t, otherAcc, "x", []byte("another account's file"))
	other, err := blockcache.Open(filepath.Join(t.TempDir(), "other"), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	if listReads(t, s, p, otherAcc.State(), other); other.Listing() == nil {
		t.Fatal("no listing kept for the other account")
	}
	if err := cache.KeepListing(other.Listing()); err != nil {
		t.Fatal(err)
	}
	l, _ = listReads(t, s, p, b.State(), cache)
	wantListing(t, l, fresh)
}

func containsBytes(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		if string(b[i:i+len(s)]) == s {
			return true
		}
	}
	return false
}

// An account of many leaves: the first listing reads every block that
// holds files (not the padding), the next none of them.
func TestListingManyLeaves(t *testing.T) {
	s := newTestServerSize(t, 4096)
	a, p, _ := countedSignup(t, s, "many")
	manyLeaves(t, a, 1500, func(i int) string { return fmt.Sprintf("d%d/f%04d", i%7, i) })
	want := 1 + len(a.head.Index)
	for _, at := range a.tree.DataLeaves() {
		want += len(a.leafAt(at).Blocks)
	}
	cache, err := blockcache.Open(filepath.Join(t.TempDir(), "cache"), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	l, reads := listReads(t, s, p, a.State(), cache)
	wantListing(t, l, a)
	if reads != want {
		t.Fatalf("the first listing read %d blocks, want the head, the dirs and the leaves' %d", reads, want)
	}
	l, reads = listReads(t, s, p, a.State(), cache)
	wantListing(t, l, a)
	if reads != 1 {
		t.Fatalf("the second listing read %d blocks, want the head alone", reads)
	}
}

// A login reads the whole index: KeepListing writes the listing from it,
// and the first listing after takes every leaf from there.
func TestKeepListingAfterLogin(t *testing.T) {
	a, s, p, cache := cachedAccount(t)
	b, err := Resume(context.Background(), s.remoteAt(t, p.url), a.State(), WithBlockCache(cache))
	if err != nil {
		t.Fatal(err)
	}
	b.KeepListing()
	if cache.Listing() == nil {
		t.Fatal("no listing kept")
	}
	// Without the cached blocks: a leaf read would have to come from
	// the server.
	blk, _ := filepath.Glob(filepath.Join(cache.Dir(), "*.blk"))
	for _, e := range blk {
		if err := os.Remove(e); err != nil {
			t.Fatal(err)
		}
	}
	l, reads := listReads(t, s, p, b.State(), cache)
	wantListing(t, l, a)
	if reads != 1+len(b.head.Index) {
		t.Fatalf("the first listing after KeepListing read %d blocks, want the head and the dirs", reads)
	}
}
