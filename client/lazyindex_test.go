package client

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/blindstore/blindstore/client/format"
	"github.com/blindstore/blindstore/internal/seeded"
)

// manyLeaves puts n small files (inline) named by name(i) into a, in one
// update: with the memory remote's 4 KiB blocks, an index of many leaves.
func manyLeaves(t *testing.T, a *Account, n int, name func(i int) string) {
	t.Helper()
	srcs := make([]PutSource, n)
	for i := range srcs {
		srcs[i] = PutSource{Name: name(i), R: bytes.NewReader(seeded.Bytes(uint64(i), 64)), ModTime: time.Unix(1_700_000_000, 0)}
	}
	if _, err := a.PutMany(context.Background(), srcs); err != nil {
		t.Fatal(err)
	}
}

func lazyResume(t *testing.T, r Store, a *Account, opts ...Option) *Account {
	t.Helper()
	b, err := Resume(context.Background(), r, a.State(), append(opts, WithLazyIndex())...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A lazy account's put of one file, new or replacing one, reads the
// head, the dirs and a few leaves of an index of dozens of leaves, and
// writes what a full one writes; the index then reads back whole with
// every file in place.
func TestLazyPutReadsItsLeaves(t *testing.T) {
	s := newTestServerSize(t, 4096)
	a, p, loc := countedSignup(t, s, "lazy")
	manyLeaves(t, a, 1500, func(i int) string { return fmt.Sprintf("d%d/f%04d", i%7, i) })
	leaves := len(a.tree.DataLeaves())
	if leaves < 40 {
		t.Fatalf("the test account has %d leaves; the test needs many", leaves)
	}
	ctx := context.Background()
	want := map[string][]byte{}
	for _, f := range a.Files() {
		want[f.Name] = f.Inline
	}
	for i, name := range []string{"d3/f0003", "d0/new", "d6/f1499", "a-first", "zz-last", "d3/f0003"} {
		b := lazyResume(t, s.remoteAt(t, p.url), a)
		p.Take()
		data := seeded.Bytes(uint64(1000+i), 100)
		if _, err := b.Put(ctx, bytes.NewReader(data), PutInfo{Name: name, Mode: 0o600, ModTime: time.Unix(1_700_000_100, 0)}, nil); err != nil {
			t.Fatalf("put %s: %v", name, err)
		}
		written, reads := p.counts()
		t.Logf("put %s: %d blocks read, %d written (%d leaves)", name, reads, written, leaves)
		if reads > 20 || written > 8 {
			t.Errorf("a lazy put of %s read %d blocks and wrote %d", name, reads, written)
		}
		if b.index != nil {
			t.Errorf("the put of %s read the whole index", name)
		}
		want[name] = data
		a = b
	}
	c, err := login(ctx, s.remote(t), "", loc)
	if err != nil {
		t.Fatal(err)
	}
	files := c.Files()
	if len(files) != len(want) {
		t.Fatalf("%d files, want %d", len(files), len(want))
	}
	for _, f := range files {
		if !bytes.Equal(f.Inline, want[f.Name]) {
			t.Fatalf("%s reads back other content", f.Name)
		}
	}
	checkNoLeak(t, s, c)
}

// With the block cache warm, a lazy put reads the head alone.
func TestLazyPutWarmCache(t *testing.T) {
	a, s, p, cache := cachedAccount(t)
	ctx := context.Background()
	b := lazyResume(t, s.remoteAt(t, p.url), a, WithBlockCache(cache))
	if err := b.LoadIndex(ctx); err != nil { // warms the cache
		t.Fatal(err)
	}
	for i := range 3 {
		p.Take()
		b = lazyResume(t, s.remoteAt(t, p.url), b, WithBlockCache(cache))
		putBytes(t, b, fmt.Sprintf("d%d/f%04d", i, i*97), []byte("changed"))
		if _, reads := p.counts(); reads != 1 {
			t.Errorf("a lazy put with a warm cache read %d blocks, want the head alone", reads)
		}
	}
	c := memLoginRemote(t, s.remote(t), b)
	wantGet(t, c, "d1/f0097", []byte("changed"))
}

func memLoginRemote(t *testing.T, r Store, a *Account) *Account {
	t.Helper()
	c, err := Resume(context.Background(), r, a.State())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A lazy put whose compare-and-swap loses to another device merges: both
// changes land, and two versions of one name keep both.
func TestLazyPutMergesLostRace(t *testing.T) {
	m := newMem(t)
	a, loc, _ := memSignup(t, m, "lazy-race")
	manyLeaves(t, a, 800, func(i int) string { return fmt.Sprintf("f%04d", i) })
	other := memLogin(t, m, loc)
	b := lazyResume(t, m, a)
	// b's range is read before the other device commits: its head is
	// stale when it swaps.
	if _, err := b.lookupCtx(context.Background(), "f0400"); err != nil {
		t.Fatal(err)
	}
	putBytes(t, other, "f0401", []byte("theirs"))
	putBytes(t, other, "f0100", []byte("theirs far"))
	putBytes(t, b, "f0401", []byte("ours"))
	putBytes(t, b, "f0402", []byte("ours too"))
	c := memLogin(t, m, loc)
	wantGet(t, c, "f0100", []byte("theirs far"))
	wantGet(t, c, "f0402", []byte("ours too"))
	got, err := getBytes(t, c, "f0401")
	if err != nil {
		t.Fatal(err)
	}
	copies := 0
	for _, f := range c.Files() {
		if strings.HasPrefix(f.Name, "f0401") {
			copies++
		}
	}
	if copies != 2 || (string(got) != "ours" && string(got) != "theirs") {
		t.Fatalf("two versions of f0401: %d files under its name, it reads %q", copies, got)
	}
	if len(c.Files()) != 801 { // 800, and the conflict copy
		t.Fatalf("%d files after the merge, want 801", len(c.Files()))
	}
}

// Folders are checked beyond the leaves a lazy put reads: a parent
// folder that is a file, and a name that is a folder of files in another
// leaf, are refused as a full put refuses them.
func TestLazyPutChecksFolders(t *testing.T) {
	m := newMem(t)
	a, _, _ := memSignup(t, m, "lazy-dirs")
	putBytes(t, a, "p", []byte("a file"))
	putBytes(t, a, "q/z", []byte("in a folder"))
	// Names that sort between "p" and "p/…", and "q" and "q/…", fill
	// leaves in between.
	manyLeaves(t, a, 600, func(i int) string {
		if i%2 == 0 {
			return fmt.Sprintf("p.%04d", i)
		}
		return fmt.Sprintf("q.%04d", i)
	})
	for _, name := range []string{"p/x", "q"} {
		b := lazyResume(t, m, a)
		_, err := b.Put(context.Background(), bytes.NewReader([]byte("x")), PutInfo{Name: name, ModTime: time.Now()}, nil)
		wantKind(t, err, KindConflict)
		if _, full := a.Put(context.Background(), bytes.NewReader([]byte("x")), PutInfo{Name: name, ModTime: time.Now()}, nil); KindOf(full) != KindConflict {
			t.Fatalf("the full put of %s: %v", name, full)
		}
	}
}

// A damaged leaf is refused by a lazy put as by a login.
func TestLazyPutTamperedLeaf(t *testing.T) {
	m := newMem(t)
	a, _, _ := memSignup(t, m, "lazy-tamper")
	manyLeaves(t, a, 300, func(i int) string { return fmt.Sprintf("f%04d", i) })
	b := lazyResume(t, m, a)
	at := b.tree.DataLeaves()
	l := b.leafAt(at[len(at)/2])
	m.mu.Lock()
	m.blocks[l.Blocks[0].ID].data[memBlockSize/2] ^= 1
	m.mu.Unlock()
	_, err := b.Put(context.Background(), bytes.NewReader([]byte("x")), PutInfo{Name: "f0150", ModTime: time.Now()}, nil)
	wantKind(t, err, KindTampered)
}

// In a period whose renewal deferred files to the next (spread), the
// index does not record that nothing is left to renew; the session does
// (State.Quiet), so that a lazy command reads no leaf to know, until the
// index changes otherwise than by this device's lazy puts.
func TestLazyQuietPeriod(t *testing.T) {
	s := newTestServer(t)
	a, loc := newTestAccount(t, s)
	for i := range 24 { // files of a block each: a renewal may defer them
		putBytes(t, a, fmt.Sprintf("f%02d", i), randomBytes(format.PayloadCapacity(testBlockSize)))
	}
	ctx := context.Background()
	var st State
	for round := 0; ; round++ {
		if round == 8 {
			t.Fatal("no renewal deferred a file in 8 periods")
		}
		s.advance()
		b, err := login(ctx, s.remote(t), "", loc)
		if err != nil {
			t.Fatal(err)
		}
		b.cfg.RetentionPeriods = 13 // room to spread
		if _, err := b.Renew(ctx); err != nil {
			t.Fatal(err)
		}
		if b.index.Renewed < b.cfg.CurrentPeriod {
			st = b.State()
			break // some files deferred: the index records no renewal
		}
	}
	if st.Quiet == nil {
		t.Fatal("the renewal kept no quiet record")
	}
	open := func(st State) *Account {
		c, err := Resume(ctx, s.remote(t), st, WithLazyIndex())
		if err != nil {
			t.Fatal(err)
		}
		c.cfg.RetentionPeriods = 13
		return c
	}
	c := open(st)
	if c.Stale(c.cfg.CurrentPeriod) || c.index != nil {
		t.Fatal("with the quiet record, a lazy account reads its leaves to know it has nothing to renew")
	}
	// This device's puts: a new file (a range update) and a replaced one
	// (its block dropped: the whole index).
	for _, name := range []string{"g-new", "f03"} {
		putBytes(t, c, name, []byte("changed"))
		st = c.State()
		c = open(st)
		if c.Stale(c.cfg.CurrentPeriod) {
			t.Fatalf("after this device's put of %s, the quiet record was lost", name)
		}
	}
	// Another device's change: the record no longer names the index.
	other, err := login(ctx, s.remote(t), "", loc)
	if err != nil {
		t.Fatal(err)
	}
	putBytes(t, other, "f04", []byte("theirs"))
	c = open(st)
	if !c.Stale(c.cfg.CurrentPeriod) {
		t.Fatal("a quiet record of another index was taken")
	}
	if rep, err := c.Renew(ctx); err != nil || rep.Sent != 0 {
		t.Fatalf("the renewal after another device's change: %+v, %v; want nothing sent", rep, err)
	}
	if c = open(c.State()); c.Stale(c.cfg.CurrentPeriod) {
		t.Fatal("the reading of the index kept no quiet record")
	}
}
