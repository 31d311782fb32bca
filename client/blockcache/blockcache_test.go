package blockcache

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/blindstore/blindstore/wire"
)

func entry(i byte) (wire.ID, wire.ETag, []byte) {
	id := wire.NewID()
	data := bytes.Repeat([]byte{i}, 1000)
	return id, wire.ETagOf(data), data
}

func TestKeepBlockForget(t *testing.T) {
	c, err := Open(filepath.Join(t.TempDir(), "c"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	id, etag, data := entry(1)
	if c.Block(id, etag, nil) != nil {
		t.Fatal("an empty cache returned a block")
	}
	if err := c.Keep(id, etag, data); err != nil {
		t.Fatal(err)
	}
	if got := c.Block(id, etag, nil); !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes back, want the %d kept", len(got), len(data))
	}
	other := wire.ETagOf([]byte("other"))
	if c.Block(id, other, nil) != nil {
		t.Fatal("a block came back under another ETag")
	}
	c.Forget(id, etag)
	if c.Block(id, etag, nil) != nil {
		t.Fatal("a forgotten block came back")
	}
	fi, err := os.Stat(c.Dir())
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("cache directory: %v, %v; want mode 0700", fi, err)
	}
}

func TestBoundEvictsLeastRecentlyUsed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c")
	c, err := Open(dir, 3500)
	if err != nil {
		t.Fatal(err)
	}
	type kept struct {
		id   wire.ID
		etag wire.ETag
	}
	var all []kept
	for i := range 3 {
		id, etag, data := entry(byte(i))
		if err := c.Keep(id, etag, data); err != nil {
			t.Fatal(err)
		}
		// Oldest first, as far apart as a hit's refresh needs.
		old := time.Now().Add(-time.Duration(10-i) * touchAfter)
		if err := os.Chtimes(c.path(id, etag), old, old); err != nil {
			t.Fatal(err)
		}
		all = append(all, kept{id, etag})
	}
	// A hit on the oldest makes it the most recent.
	if c.Block(all[0].id, all[0].etag, nil) == nil {
		t.Fatal("a kept block is missing")
	}
	// A new process (the size not counted yet) adds a fourth: 4,000
	// bytes exceed the bound, and the least recently used goes.
	c2, err := Open(dir, 3500)
	if err != nil {
		t.Fatal(err)
	}
	id, etag, data := entry(9)
	if err := c2.Keep(id, etag, data); err != nil {
		t.Fatal(err)
	}
	if c2.Block(all[1].id, all[1].etag, nil) != nil {
		t.Error("the least recently used entry was kept")
	}
	for _, k := range []kept{all[0], all[2], {id, etag}} {
		if c2.Block(k.id, k.etag, nil) == nil {
			t.Error("an entry used more recently was evicted")
		}
	}
	if n, err := c2.Size(); err != nil || n != 3000 {
		t.Errorf("size %d, %v; want 3000", n, err)
	}
	// Within one process, the count kept up to date enforces the bound too.
	for i := range 5 {
		id, etag, data := entry(byte(20 + i))
		if err := c2.Keep(id, etag, data); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := c2.Size(); err != nil || n > 3500 {
		t.Errorf("size %d, %v; want at most the bound", n, err)
	}
}

func TestRemove(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c")
	c, err := Open(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	id, etag, data := entry(1)
	if err := c.Keep(id, etag, data); err != nil {
		t.Fatal(err)
	}
	if err := Remove(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the cache directory is still there: %v", err)
	}
	if err := Remove(dir); err != nil {
		t.Fatalf("removing a cache that is gone: %v", err)
	}
	if _, err := Open(dir, 0); err == nil {
		t.Fatal("a cache bounded to 0 bytes opened")
	}
}

func TestRetain(t *testing.T) {
	c, err := Open(filepath.Join(t.TempDir(), "c"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	id1, etag1, data1 := entry(1)
	id2, etag2, data2 := entry(2)
	for _, e := range []struct {
		id   wire.ID
		etag wire.ETag
		data []byte
	}{{id1, etag1, data1}, {id2, etag2, data2}} {
		if err := c.Keep(e.id, e.etag, e.data); err != nil {
			t.Fatal(err)
		}
	}
	// A file that is no entry stays: Retain removes only blocks.
	other := filepath.Join(c.Dir(), "notes.txt")
	if err := os.WriteFile(other, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.Retain(func(id wire.ID, etag wire.ETag) bool { return id == id1 && etag == etag1 }); err != nil {
		t.Fatal(err)
	}
	if c.Block(id1, etag1, nil) == nil || c.Block(id2, etag2, nil) != nil {
		t.Fatal("Retain kept the wrong entries")
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("Retain removed a file that is not an entry: %v", err)
	}
	if n, err := c.Size(); err != nil || n != int64(len(data1)) {
		t.Fatalf("size %d, %v; want the one entry's %d", n, err, len(data1))
	}
}

// The listing and its log: records come back in order, a torn last one
// is left out, keeping a listing empties the log, and a log past its
// bound goes with the listing. Neither counts as a block entry.
func TestListingAndLog(t *testing.T) {
	c, err := Open(filepath.Join(t.TempDir(), "c"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listing() != nil || c.ListingLog() != nil {
		t.Fatal("an empty cache has a listing")
	}
	if err := c.KeepListing([]byte("sealed listing")); err != nil {
		t.Fatal(err)
	}
	recs := [][]byte{[]byte("one"), bytes.Repeat([]byte("b"), 300), []byte("three")}
	for _, r := range recs {
		if err := c.AppendListingLog(r); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.ListingLog(); len(got) != 3 || !bytes.Equal(got[1], recs[1]) || !bytes.Equal(got[2], recs[2]) {
		t.Fatalf("the log reads back as %q", got)
	}
	log := filepath.Join(c.Dir(), listingLog)
	fi, err := os.Stat(log)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(log, fi.Size()-2); err != nil {
		t.Fatal(err)
	}
	if got := c.ListingLog(); len(got) != 2 {
		t.Fatalf("a torn last record: %d records read", len(got))
	}
	if n, err := c.Size(); err != nil || n != 0 {
		t.Fatalf("the listing counts as %d bytes of blocks (%v)", n, err)
	}
	if err := c.KeepListing([]byte("sealed listing 2")); err != nil {
		t.Fatal(err)
	}
	if c.ListingLog() != nil || string(c.Listing()) != "sealed listing 2" {
		t.Fatal("keeping a listing did not empty the log")
	}
	big := bytes.Repeat([]byte("x"), 1<<20)
	for range maxListingLog>>20 + 1 {
		if err := c.AppendListingLog(big); err != nil {
			t.Fatal(err)
		}
	}
	if c.Listing() != nil {
		t.Fatal("a log past its bound left the listing")
	}
	if fi, err := os.Stat(log); err == nil && fi.Size() > maxListingLog {
		t.Fatalf("the log grew to %d bytes", fi.Size())
	}
}
