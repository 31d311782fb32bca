package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blindstore/blindstore/wire"

	"github.com/blindstore/blindstore/client/format"
	"github.com/blindstore/blindstore/indexfile"
	"github.com/blindstore/blindstore/internal/tamperproxy"
)

func wantKind(t *testing.T, err error, k Kind) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one of kind %v", k)
	}
	if got := KindOf(err); got != k {
		t.Fatalf("error %q is of kind %v, want %v", err, got, k)
	}
}

// Files of the sizes at a block's edges come back byte for byte.
func TestPutGetSizes(t *testing.T) {
	s := newTestServer(t)
	a, loc := newTestAccount(t, s)
	c := format.PayloadCapacity(testBlockSize)
	sizes := []int{0, 1, c - 1, c, c + 1, 3*c + 17, 20 * c}
	want := map[string][]byte{}
	for _, n := range sizes {
		name := fmt.Sprintf("dir/f%d.bin", n)
		want[name] = randomBytes(n)
		putBytes(t, a, name, want[name])
	}
	// A fresh login sees them all, with their metadata.
	b, err := login(context.Background(), s.remote(t), "", loc)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(b.Files()); got != len(sizes) {
		t.Fatalf("index lists %d files, want %d", got, len(sizes))
	}
	for name, data := range want {
		got, err := getBytes(t, b, name)
		if err != nil {
			t.Fatalf("get %s: %v", name, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("%s: got %d bytes, differing from the %d put", name, len(got), len(data))
		}
		f, _ := b.Lookup(name)
		if f.Mode != 0o640 || !f.ModTime.Equal(time.Unix(1_700_000_000, 5)) || f.Size != uint64(len(data)) {
			t.Fatalf("%s: metadata %v %v %d", name, f.Mode, f.ModTime, f.Size)
		}
		switch lo, hi := (len(data)+c-1)/c, (len(data)+format.ChunkMin(c)-1)/format.ChunkMin(c); {
		case len(data) <= InlineMax(testBlockSize):
			if len(f.Chunks) != 0 || !bytes.Equal(f.Inline, data) {
				t.Fatalf("%s: a small file is not inline", name)
			}
		case len(f.Chunks) < lo || len(f.Chunks) > hi:
			t.Fatalf("%s: %d chunks, want %d to %d", name, len(f.Chunks), lo, hi)
		}
	}
	if _, err := getBytes(t, b, "nope"); KindOf(err) != KindNotFound {
		t.Fatalf("get of a missing file: %v", err)
	}
}

// Replacing, renaming and removing files leave no block behind that the
// index does not refer to.
func TestReplaceRenameRemoveDeleteBlocks(t *testing.T) {
	s := newTestServer(t)
	a, _ := newTestAccount(t, s)
	empty := s.blocks(t) // roots, head
	c := format.PayloadCapacity(testBlockSize)
	putBytes(t, a, "a", randomBytes(5*c))
	putBytes(t, a, "a", randomBytes(2*c)) // replaces: the 5 old blocks go
	idx := len(a.indexBlocks())
	cur, _ := a.Lookup("a")
	if got, want := s.blocks(t), empty+int64(len(cur.Chunks))+int64(idx); got != want {
		t.Fatalf("after replacing: %d blocks, want %d", got, want)
	}
	if err := a.Rename(context.Background(), "a", "b/c"); err != nil {
		t.Fatal(err)
	}
	wantKind(t, a.Rename(context.Background(), "a", "x"), KindNotFound)
	putBytes(t, a, "x", []byte("x"))
	wantKind(t, a.Rename(context.Background(), "x", "b/c"), KindConflict)
	wantKind(t, a.Rename(context.Background(), "x", "../up"), KindInvalid)
	if err := a.Remove(context.Background(), "b/c"); err != nil {
		t.Fatal(err)
	}
	if err := a.Remove(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	wantKind(t, a.Remove(context.Background(), "x"), KindNotFound)
	if got, want := s.blocks(t), empty+int64(len(a.indexBlocks())); got != want {
		t.Fatalf("after removing everything: %d blocks, want %d", got, want)
	}
}

// Two devices adding files at once both land: the loser of the
// compare-and-swap merges and retries.
func TestTwoDevicesWriteAtOnce(t *testing.T) {
	s := newTestServer(t)
	a, loc := newTestAccount(t, s)
	b, err := login(context.Background(), s.remote(t), "", loc)
	if err != nil {
		t.Fatal(err)
	}
	const each = 6
	var wg sync.WaitGroup
	errs := make(chan error, 2*each)
	for d, dev := range []*Account{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				name := fmt.Sprintf("dev%d/file%d", d, i)
				if _, err := dev.Put(context.Background(), strings.NewReader(name), PutInfo{Name: name, ModTime: time.Now()}, nil); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c, err := login(context.Background(), s.remote(t), "", loc)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(c.Files()); got != 2*each {
		t.Fatalf("%d files landed, want %d", got, 2*each)
	}
	for _, f := range c.Files() {
		got, err := getBytes(t, c, f.Name)
		if err != nil || string(got) != f.Name {
			t.Fatalf("%s: %q, %v", f.Name, got, err)
		}
	}
	// Only what the index refers to is left: the losers' index blocks
	// were deleted.
	want := int64(3 + len(c.indexBlocks())) // the files are small: inline
	if got := s.blocks(t); got != want {
		t.Fatalf("%d blocks on the server, want %d", got, want)
	}

	// The same name written on both: one keeps it, the other becomes a
	// conflict copy; nothing is lost.
	if _, err := a.Put(context.Background(), strings.NewReader("from a"), PutInfo{Name: "same.txt", ModTime: time.Unix(100, 0)}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(context.Background(), strings.NewReader("from b"), PutInfo{Name: "same.txt", ModTime: time.Unix(200, 0)}, nil); err != nil {
		t.Fatal(err)
	}
	got, err := getBytes(t, b, "same.txt")
	if err != nil || string(got) != "from b" {
		t.Fatalf("same.txt: %q, %v", got, err)
	}
	var copies int
	for _, f := range b.Files() {
		if strings.HasPrefix(f.Name, "same.conflict-") {
			copies++
			if got, _ := getBytes(t, b, f.Name); string(got) != "from a" {
				t.Fatalf("conflict copy holds %q", got)
			}
		}
	}
	if copies != 1 {
		t.Fatalf("%d conflict copies, want 1", copies)
	}
}

// tamperProxy stands between the client and a real server and lies.
type tamperProxy struct {
	url      string
	mu       sync.Mutex
	redirect map[string]string // block id → id whose data to answer instead
	fixed    map[string][]byte // block id → body to answer
	flip     map[string]bool   // block id → flip a byte of the body
}

func newTamperProxy(t testing.TB, upstream string) *tamperProxy {
	t.Helper()
	tp, err := tamperproxy.Start(upstream)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tp.Close() })
	p := &tamperProxy{url: tp.URL, redirect: map[string]string{}, fixed: map[string][]byte{}, flip: map[string]bool{}}
	// The proxy asks under its own lock; the maps are the test's, under p.mu.
	tp.SetPolicy(func(id string) tamperproxy.Lie {
		p.mu.Lock()
		defer p.mu.Unlock()
		return tamperproxy.Lie{Other: p.redirect[id], Fixed: p.fixed[id], Flip: p.flip[id]}
	})
	return p
}

func (p *tamperProxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.redirect)
	clear(p.fixed)
	clear(p.flip)
}

// A server that answers with another block's data, swaps two blocks of
// a file, alters a block or rolls the head back is caught, and nothing
// of the file is written out.
func TestTamperingIsDetected(t *testing.T) {
	s := newTestServer(t)
	p := newTamperProxy(t, s.url)
	owner, loc := newTestAccount(t, s)
	c := format.PayloadCapacity(testBlockSize)
	data := randomBytes(4 * c)
	putBytes(t, owner, "f", data)
	putBytes(t, owner, "g", randomBytes(c))
	a, err := login(context.Background(), s.remoteAt(t, p.url), "", loc)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := a.Lookup("f")
	g, _ := a.Lookup("g")
	id := func(r indexfile.Ref) string { return r.ID.String() }
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		set  func()
	}{
		{"another block's data", func() { p.redirect[id(f.Chunks[1].Ref)] = id(g.Chunks[0].Ref) }},
		{"two blocks of the file swapped", func() {
			p.redirect[id(f.Chunks[1].Ref)] = id(f.Chunks[2].Ref)
			p.redirect[id(f.Chunks[2].Ref)] = id(f.Chunks[1].Ref)
		}},
		{"a flipped bit", func() { p.flip[id(f.Chunks[3].Ref)] = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.reset()
			// Prefetches abandoned by the previous case may still be
			// reading the maps.
			p.mu.Lock()
			tc.set()
			p.mu.Unlock()
			out := filepath.Join(dir, "out")
			err := WriteFileAtomic(out, false, 0o600, time.Time{}, func(w io.Writer) error {
				_, err := a.Get(context.Background(), "f", w, nil)
				return err
			})
			wantKind(t, err, KindTampered)
			entries, _ := os.ReadDir(dir)
			if len(entries) != 0 {
				t.Fatalf("tampered get left %d files behind", len(entries))
			}
		})
	}

	t.Run("an older version of the head", func(t *testing.T) {
		p.reset()
		old, _, err := s.remote(t).Get(context.Background(), owner.headLoc.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		putBytes(t, owner, "h", []byte("newer"))
		b, err := Resume(context.Background(), s.remoteAt(t, p.url), owner.State())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Lookup("h"); err != nil || b.Generation() != owner.Generation() {
			t.Fatalf("resumed at generation %d, want %d", b.Generation(), owner.Generation())
		}
		p.mu.Lock()
		p.fixed[owner.headLoc.ID.String()] = old
		p.mu.Unlock()
		_, err = Resume(context.Background(), s.remoteAt(t, p.url), owner.State())
		wantKind(t, err, KindTampered)
	})

	t.Run("another account's head", func(t *testing.T) {
		p.reset()
		other, _ := newTestAccount(t, s)
		od, _, err := s.remote(t).Get(context.Background(), other.headLoc.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		p.mu.Lock()
		p.fixed[owner.headLoc.ID.String()] = od
		p.mu.Unlock()
		_, err = Resume(context.Background(), s.remoteAt(t, p.url), owner.State())
		wantKind(t, err, KindTampered)
	})
}

// Renewal after a period boundary renews exactly the stale blocks, and
// records it so that the next login renews nothing.
func TestRenewAcrossPeriods(t *testing.T) {
	s := newTestServer(t)
	a, loc := newTestAccount(t, s)
	c := format.PayloadCapacity(testBlockSize)
	putBytes(t, a, "old", randomBytes(5*c))
	ctx := context.Background()

	rep, err := a.Renew(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Renewed != 0 || rep.Stale != 0 {
		t.Fatalf("renewal in the period of writing: %+v", rep)
	}

	s.advance()
	putBytes(t, a, "new", randomBytes(3*c)) // written in the new period
	idx := len(a.indexBlocks())
	b, err := login(ctx, s.remote(t), "", loc)
	if err != nil {
		t.Fatal(err)
	}
	rep, err = b.Renew(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Stale: the old file's 5 blocks and the two roots. Current: the head
	// and the index, rewritten by the put; the new file is not sent.
	old, _ := b.Lookup("old")
	n := len(old.Chunks)
	if rep.Stale != 1 || rep.Renewed != n+2 || rep.Current != 1+idx || rep.Sent != n+2+1+idx {
		t.Fatalf("renewal after a period boundary: %+v (index blocks %d)", rep, idx)
	}
	cfg := b.Config()
	if want := cfg.SafeUntil(rep.Period); rep.Period != cfg.CurrentPeriod || !rep.Safe.Equal(want) {
		t.Fatalf("safe until %v, want %v", rep.Safe, want)
	}
	rep, err = b.Renew(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Renewed != 0 || rep.Stale != 0 {
		t.Fatalf("second renewal in the same period: %+v", rep)
	}
}

// An account nobody renews is purged after R periods; one that logs in
// every period keeps everything.
func TestAbandonedAccountIsPurged(t *testing.T) {
	s := newTestServer(t)
	active, aloc := newTestAccount(t, s)
	abandoned, bloc := newTestAccount(t, s)
	c := format.PayloadCapacity(testBlockSize)
	data := randomBytes(3 * c)
	putBytes(t, active, "keep", data)
	putBytes(t, abandoned, "lose", data)
	ctx := context.Background()
	for range testRetention {
		s.advance()
		a, err := login(ctx, s.remote(t), "", aloc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Renew(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := s.svc.Purge(ctx, false); err != nil {
			t.Fatal(err)
		}
	}
	_, err := login(ctx, s.remote(t), "", bloc)
	wantKind(t, err, KindAuth)
	a, err := login(ctx, s.remote(t), "", aloc)
	if err != nil {
		t.Fatal(err)
	}
	got, err := getBytes(t, a, "keep")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("active account's file: %v", err)
	}
	keep, _ := a.Lookup("keep")
	if want := int64(3 + len(a.indexBlocks()) + len(keep.Chunks)); s.blocks(t) != want {
		t.Fatalf("%d blocks left, want the active account's %d", s.blocks(t), want)
	}
	_ = abandoned
}

// shareFetched shares the file name of a, which holds data, twice
// (the same capability both times), parses the capability back
// and fetches the file with it from remote alone, and returns it.
func shareFetched(t *testing.T, remote Store, a *Account, name string, data []byte) format.Capability {
	t.Helper()
	ctx := context.Background()
	cp, err := a.Share(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	again, err := a.Share(ctx, name)
	if err != nil || again.String() != cp.String() {
		t.Fatalf("sharing again gave another capability (%v)", err)
	}
	parsed, err := ParseCapability(cp.String())
	if err != nil || parsed != cp {
		t.Fatalf("capability does not parse back: %v", err)
	}
	var buf bytes.Buffer
	f, err := Fetch(ctx, remote, parsed, &buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != path.Base(name) || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("fetched %q, %d bytes", f.Name, buf.Len())
	}
	return parsed
}

// Sharing prints a capability that reads the file without an account;
// unsharing or removing the file makes it find nothing.
func TestShareFetch(t *testing.T) {
	s := newTestServer(t)
	a, _ := newTestAccount(t, s)
	c := format.PayloadCapacity(testBlockSize)
	data := randomBytes(7*c + 3)
	putBytes(t, a, "docs/report.pdf", data)
	ctx := context.Background()
	cp := shareFetched(t, s.remote(t), a, "docs/report.pdf", data)
	if fmt.Sprint(cp) == cp.String() {
		t.Fatal("a capability prints itself under fmt.Sprint")
	}

	for _, bad := range []string{"", "blind1:", "blind2:" + strings.TrimPrefix(cp.String(), "blind1:"),
		cp.String() + "x", cp.String()[:len(cp.String())-1], strings.ToUpper(cp.String()),
		"blind1:" + wire.NewID().String() + ":" + strings.Repeat("A", 44)} {
		if _, err := ParseCapability(bad); KindOf(err) != KindInvalid {
			t.Fatalf("ParseCapability(%q): %v", bad, err)
		}
	}
	// A wrong key for a real manifest: tampering (or a forged capability).
	wrong := cp
	wrong.Key[0] ^= 1
	_, err := Fetch(ctx, s.remote(t), wrong, io.Discard, nil)
	wantKind(t, err, KindTampered)

	if err := a.Unshare(ctx, "docs/report.pdf"); err != nil {
		t.Fatal(err)
	}
	_, err = Fetch(ctx, s.remote(t), cp, io.Discard, nil)
	wantKind(t, err, KindNotFound)
	// Shared anew: a new capability, gone when the file is replaced.
	cp2, err := a.Share(ctx, "docs/report.pdf")
	if err != nil || cp2 == cp {
		t.Fatalf("share after unshare: %v", err)
	}
	putBytes(t, a, "docs/report.pdf", []byte("v2"))
	_, err = Fetch(ctx, s.remote(t), cp2, io.Discard, nil)
	wantKind(t, err, KindNotFound)
}

// wantMovedTo checks that user's account, which holds the file f with
// "data", opens at the locator to and no longer at from.
func wantMovedTo(t *testing.T, remote Store, user string, from, to format.Locator) {
	t.Helper()
	ctx := context.Background()
	_, err := login(ctx, remote, user, from)
	wantKind(t, err, KindAuth)
	a, err := login(ctx, remote, user, to)
	if err != nil {
		t.Fatal(err)
	}
	wantGet(t, a, "f", []byte("data"))
}

// passwd and recovery: the old credentials stop working, the new ones
// open the same account, and no data is rewritten.
func TestPasswordAndRecovery(t *testing.T) {
	s := newTestServer(t)
	ctx := context.Background()
	user := "carol"
	oldLoc := testLocator(t, user, "old")
	a, code, err := signup(ctx, s.remote(t), user, oldLoc)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = signup(ctx, s.remote(t), user, oldLoc)
	wantKind(t, err, KindConflict)
	putBytes(t, a, "f", []byte("data"))
	blocks := s.blocks(t)

	newLoc := testLocator(t, user, "new")
	if err := a.setPassword(ctx, newLoc); err != nil {
		t.Fatal(err)
	}
	wantMovedTo(t, s.remote(t), user, oldLoc, newLoc)
	if s.blocks(t) != blocks {
		t.Fatalf("passwd changed the block count from %d to %d", blocks, s.blocks(t))
	}

	// The recovery code opens the account and replaces the password.
	code2, err := format.ParseRecoveryCode(strings.ToLower(code.String()))
	if err != nil || code2 != code {
		t.Fatal("recovery code does not parse back")
	}
	root, err := readRoot(ctx, s.remote(t), code.Locator())
	if err != nil {
		t.Fatal(err)
	}
	c, err := openAccount(ctx, s.remote(t), user, root)
	if err != nil {
		t.Fatal(err)
	}
	thirdLoc := testLocator(t, user, "third")
	if err := c.setPassword(ctx, thirdLoc); err != nil {
		t.Fatal(err)
	}
	wantMovedTo(t, s.remote(t), user, newLoc, thirdLoc)
	var bogus format.RecoveryCode
	bogus[0] = 1
	_, err = LoginRecovery(ctx, s.remote(t), bogus, user, "x", nil)
	wantKind(t, err, KindAuth)
}

// Deleting the account leaves no block of it on the server.
func TestDeleteAccount(t *testing.T) {
	s := newTestServer(t)
	a, loc := newTestAccount(t, s)
	c := format.PayloadCapacity(testBlockSize)
	putBytes(t, a, "a", randomBytes(4*c))
	putBytes(t, a, "b", randomBytes(c))
	if _, err := a.Share(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := s.blocks(t); n != 0 {
		t.Fatalf("%d blocks left after deleting the only account", n)
	}
	_, err := login(context.Background(), s.remote(t), "", loc)
	wantKind(t, err, KindAuth)
	_, err = Resume(context.Background(), s.remote(t), a.State())
	wantKind(t, err, KindAuth)
}

// Bad input fails with the right kind and leaves the index as it was.
func TestBadInput(t *testing.T) {
	s := newTestServer(t)
	a, _ := newTestAccount(t, s)
	putBytes(t, a, "kept", []byte("kept"))
	gen, blocks := a.Generation(), s.blocks(t)
	ctx := context.Background()

	// A file that changes while it is read: it grows when the first
	// batch is answered, which for a file of many more blocks than the
	// upload keeps in flight is before its end has been read.
	path := filepath.Join(t.TempDir(), "growing")
	if err := os.WriteFile(path, randomBytes(200*format.PayloadCapacity(testBlockSize)), 0o600); err != nil {
		t.Fatal(err)
	}
	grow := func(done int64) {
		if f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0); err == nil {
			_, _ = f.Write([]byte("more"))
			f.Close()
		}
	}
	_, err := a.PutFile(ctx, path, "growing", grow)
	wantKind(t, err, KindConflict)
	_, err = a.PutFile(ctx, filepath.Join(t.TempDir(), "missing"), "m", nil)
	wantKind(t, err, KindLocalIO)
	_, err = a.Put(ctx, strings.NewReader("x"), PutInfo{Name: "../escape"}, nil)
	wantKind(t, err, KindInvalid)
	_, err = a.Put(ctx, strings.NewReader("x"), PutInfo{Name: "kept/under"}, nil)
	wantKind(t, err, KindConflict)

	// A full disk on get: nothing is left behind.
	if _, err := os.Stat("/dev/full"); err == nil {
		err := WriteFileAtomic("/dev/full/x", true, 0, time.Time{}, func(w io.Writer) error { return nil })
		wantKind(t, err, KindLocalIO)
		full, _ := os.OpenFile("/dev/full", os.O_WRONLY, 0)
		_, err = a.Get(ctx, "kept", full, nil)
		full.Close()
		wantKind(t, err, KindLocalIO)
		if !strings.Contains(err.Error(), "disk is full") {
			t.Fatalf("full disk reported as %q", err)
		}
	}

	if b, err := Resume(ctx, s.remote(t), a.State()); err != nil || b.Generation() != gen || len(b.Files()) != 1 {
		t.Fatalf("the index changed: %v", err)
	}
	if got := s.blocks(t); got != blocks {
		t.Fatalf("failed puts left blocks: %d, want %d", got, blocks)
	}

	// A server that is down, or not a blindstore server.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	down := "http://" + ln.Addr().String()
	ln.Close()
	_, err = Resume(ctx, s.remoteAt(t, down), a.State())
	wantKind(t, err, KindNetwork)
	_, err = Resume(ctx, s.remoteAt(t, garbageServer(t)), a.State())
	wantKind(t, err, KindNetwork)
	_, err = NewRemote("ftp://x", nil)
	wantKind(t, err, KindInvalid)
	st := a.State()
	st.OwnerSecret = "short"
	_, err = Resume(ctx, s.remote(t), st)
	wantKind(t, err, KindAuth)
}

// A 503 is retried; a server that keeps failing gives up within bounds.
func TestRetries(t *testing.T) {
	s := newTestServer(t)
	var fails atomicInt
	u, _ := url.Parse(s.url)
	rp := httputil.NewSingleHostReverseProxy(u)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fails.dec() {
			w.Header().Set("Retry-After", "0")
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"code":"unavailable"}`)
			return
		}
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	r := s.remoteAt(t, "http://"+ln.Addr().String())
	fails.set(2)
	if _, err := r.Config(context.Background()); err != nil {
		t.Fatalf("two 503s then success: %v", err)
	}
	fails.set(100)
	start := time.Now()
	_, _, err := r.Get(context.Background(), wire.NewID(), nil)
	wantKind(t, err, KindNetwork)
	if time.Since(start) > 5*time.Second {
		t.Fatalf("gave up after %v", time.Since(start))
	}
}

type atomicInt struct {
	mu sync.Mutex
	n  int
}

func (a *atomicInt) set(n int) { a.mu.Lock(); a.n = n; a.mu.Unlock() }
func (a *atomicInt) dec() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n > 0 {
		a.n--
		return true
	}
	return false
}

// methodCounter is a proxy that counts the requests of each method and
// path (block paths as "/v1/blocks/ID"), for tests that care which round
// trips a step makes.
type methodCounter struct {
	url string
	mu  sync.Mutex
	n   map[string]int
}

func newMethodCounter(t testing.TB, upstream string) *methodCounter {
	t.Helper()
	u, _ := url.Parse(upstream)
	p := &methodCounter{n: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		if strings.HasPrefix(path, "/v1/blocks/") {
			path = "/v1/blocks/ID"
		}
		p.mu.Lock()
		p.n[r.Method+" "+path]++
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	p.url = "http://" + ln.Addr().String()
	return p
}

// take returns the counts since the last take, writes (anything that
// goes through the server's write pool) apart.
func (p *methodCounter) take() (writes int, all map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	all, p.n = p.n, map[string]int{}
	for k, v := range all {
		if !strings.HasPrefix(k, "GET ") {
			writes += v
		}
	}
	return writes, all
}

// The first login of a period renews and records it in the index; every
// later login in that period, on any device, sends nothing to the write
// pool at all, and the next period renews again. An index that records
// nothing (as every format 2 index did before the record existed) is
// renewed.
func TestLoginRenewsOncePerPeriod(t *testing.T) {
	s := newTestServer(t)
	a, loc := newTestAccount(t, s)
	c := format.PayloadCapacity(testBlockSize)
	putBytes(t, a, "big", randomBytes(3*c))
	putBytes(t, a, "small", []byte("a note"))
	p := newMethodCounter(t, s.url)
	ctx := context.Background()
	loginAndRenew := func() (*Account, *RenewReport, int, map[string]int) {
		t.Helper()
		b, err := login(ctx, s.remoteAt(t, p.url), "", loc)
		if err != nil {
			t.Fatal(err)
		}
		p.take()
		rep, err := b.Renew(ctx)
		if err != nil {
			t.Fatal(err)
		}
		w, all := p.take()
		return b, rep, w, all
	}

	// Signed up and written in this period: nothing to renew.
	b, rep, w, all := loginAndRenew()
	if rep.Sent != 0 || w != 0 {
		t.Fatalf("login in the period of signup: %+v, requests %v", rep, all)
	}
	if b.Stale(b.Config().CurrentPeriod) {
		t.Fatal("an account written this period says it is stale")
	}

	for range 2 {
		s.advance()
		before := refIDs(a.IndexBlocks())
		b, rep, w, all = loginAndRenew()
		// Recording the renewal rewrote the first dir alone, not the
		// leaves of the files it renewed.
		if n := len(b.IndexBlocks()); len(before) != n || countNew(before, b.IndexBlocks()) != 1 {
			t.Fatalf("recording the renewal changed %d of %d index blocks, want 1", countNew(before, b.IndexBlocks()), n)
		}
		a = b
		big, _ := b.Lookup("big")
		if rep.Stale != 2 || rep.Renewed != len(big.Chunks)+2+1+len(b.indexBlocks()) || all["POST /v1/renew"] == 0 {
			t.Fatalf("first login of a period: %+v, requests %v", rep, all)
		}
		cur := b.Config().CurrentPeriod
		if b.index.Renewed != cur || b.tree.Renewed != cur {
			t.Fatalf("the renewal is not recorded in the index: %d, tree %d, period %d", b.index.Renewed, b.tree.Renewed, cur)
		}
		for range 2 {
			d, rep, w, all := loginAndRenew()
			if rep.Sent != 0 || w != 0 || rep.Period != cur {
				t.Fatalf("second login of a period: %+v, requests %v", rep, all)
			}
			if want := d.Config().SafeUntil(cur); !rep.Safe.Equal(want) || !d.SafeUntil().Equal(want) {
				t.Fatalf("safe until %v, want %v", rep.Safe, want)
			}
		}
		// A session resumed on the renewing device knows it too.
		r, err := Resume(ctx, s.remoteAt(t, p.url), b.State())
		if err != nil {
			t.Fatal(err)
		}
		p.take()
		if rep, err := r.Renew(ctx); err != nil || rep.Sent != 0 {
			t.Fatalf("renewal of a resumed session: %+v, %v", rep, err)
		}
		if w, all := p.take(); w != 0 {
			t.Fatalf("a resumed session renewed: %v", all)
		}
	}

	// Forget the record, as an index written before it existed has none:
	// the next login renews although every block is current (the files'
	// own records are those of their writes).
	if _, err := b.update(ctx, func(x *indexfile.Index) error { x.Renewed = 0; return nil }); err != nil {
		t.Fatal(err)
	}
	_, rep, _, all = loginAndRenew()
	if rep.Stale != 2 || rep.Sent == 0 || rep.Current != rep.Sent || all["POST /v1/renew"] == 0 {
		t.Fatalf("login of an index without the record: %+v, requests %v", rep, all)
	}
	if _, rep, w, all := loginAndRenew(); rep.Sent != 0 || w != 0 {
		t.Fatalf("the renewal of the account's blocks alone was not recorded: %+v, %v", rep, all)
	}
}

func refIDs(refs []indexfile.Ref) map[wire.ID]bool {
	m := map[wire.ID]bool{}
	for _, r := range refs {
		m[r.ID] = true
	}
	return m
}

func countNew(old map[wire.ID]bool, refs []indexfile.Ref) int {
	n := 0
	for _, r := range refs {
		if !old[r.ID] {
			n++
		}
	}
	return n
}

// A file whose blocks are gone is reported at every login, and the
// others' renewal is recorded file by file: the account as a whole is
// not renewed.
func TestRenewDamagedFileStaysStale(t *testing.T) {
	s := newTestServer(t)
	a, loc := newTestAccount(t, s)
	c := format.PayloadCapacity(testBlockSize)
	putBytes(t, a, "lost", randomBytes(2*c))
	putBytes(t, a, "kept", randomBytes(2*c))
	ctx := context.Background()
	lost, _ := a.Lookup("lost")
	r := lost.Chunks[0].Ref
	if err := a.remote.Delete(ctx, r.ID, a.root.OwnerSecret.WriteProof(r.ID), &r.ETag); err != nil {
		t.Fatal(err)
	}
	s.advance()
	for range 2 {
		b, err := login(ctx, s.remote(t), "", loc)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := b.Renew(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Damaged) != 1 || rep.Damaged[0] != "lost" || rep.Missing != 1 {
			t.Fatalf("renewal with a block gone: %+v", rep)
		}
		cur := b.Config().CurrentPeriod
		kept, _ := b.Lookup("kept")
		lost, _ := b.Lookup("lost")
		if b.index.Renewed == cur || kept.Renewed != cur || lost.Renewed == cur {
			t.Fatalf("recorded: index %d, kept %d, lost %d, period %d", b.index.Renewed, kept.Renewed, lost.Renewed, cur)
		}
		if !b.Stale(cur) {
			t.Fatal("an account with a damaged file says nothing is stale")
		}
		// The record staged beside the renewal was deleted again.
		k, l := len(kept.Chunks), len(lost.Chunks)-1
		if got, want := s.blocks(t), int64(3+len(b.IndexBlocks())+k+l); got != want {
			t.Fatalf("%d blocks on the server, want the account's %d", got, want)
		}
	}
}

// A renewal whose record was staged while another device committed
// loses the compare-and-swap of the head, merges, and leaves nothing
// behind: the staged blocks are gone, and the merge keeps the earlier
// record (the other device's), so the next login renews again rather
// than trust it.
func TestRenewRecordLosesRace(t *testing.T) {
	s := newTestServer(t)
	a, loc := newTestAccount(t, s)
	putBytes(t, a, "one", []byte("first file"))
	ctx := context.Background()
	s.advance()
	b, err := login(ctx, s.remote(t), "", loc)
	if err != nil {
		t.Fatal(err)
	}
	// A commit that changes no index block, only the head: b's
	// renewal finds every block, and its record then loses the race.
	if _, err := a.update(ctx, func(*indexfile.Index) error { return nil }); err != nil {
		t.Fatal(err)
	}
	rep, err := b.Renew(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Stale != 1 || rep.Missing != 0 || rep.Renewed == 0 {
		t.Fatalf("renewal: %+v", rep)
	}
	if b.index.Renewed == b.Config().CurrentPeriod || b.head.Generation <= a.head.Generation {
		t.Fatalf("after the race: record %d, generation %d (other device %d)", b.index.Renewed, b.head.Generation, a.head.Generation)
	}
	if got, want := s.blocks(t), int64(3+len(b.IndexBlocks())); got != want {
		t.Fatalf("%d blocks on the server, want the account's %d", got, want)
	}
	c, err := login(ctx, s.remote(t), "", loc)
	if err != nil || len(c.Files()) != 1 || !c.Stale(c.Config().CurrentPeriod) {
		t.Fatalf("login after the race: %v", err)
	}
}

// PutMany returns no name for a file whose name another device put at
// the same time with a newer version: the merge keeps that one under the
// name, and a caller recording what it stored (sync) must not take the
// name for its own.
func TestPutManyLosesMergeToNewerVersion(t *testing.T) {
	s := newTestServer(t)
	a, loc := newTestAccount(t, s)
	ctx := context.Background()
	b, err := login(ctx, s.remote(t), "", loc)
	if err != nil {
		t.Fatal(err)
	}
	// b stores "x" first, newer; a, which has not seen it, stores "x"
	// older, and "y".
	newer := time.Unix(1_800_000_000, 0)
	if _, err := b.Put(ctx, strings.NewReader("theirs"), PutInfo{Name: "x", Mode: 0o644, ModTime: newer}, nil); err != nil {
		t.Fatal(err)
	}
	files, err := a.PutMany(ctx, []PutSource{
		{Name: "x", R: strings.NewReader("ours"), Mode: 0o644, ModTime: newer.Add(-time.Hour), Size: 4},
		{Name: "y", R: strings.NewReader("why"), Mode: 0o644, ModTime: newer, Size: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	if files[0].Name != "" {
		t.Errorf("the file that lost the merge came back as %q", files[0].Name)
	}
	if files[1].Name != "y" {
		t.Errorf("the file without a rival came back as %q", files[1].Name)
	}
	if got, err := getBytes(t, a, "x"); err != nil || string(got) != "theirs" {
		t.Fatalf("x holds %q (%v), want the newer version", got, err)
	}
	kept := false
	for _, f := range a.Files() {
		if strings.HasPrefix(f.Name, "x.conflict-") || strings.HasPrefix(f.Name, "x (conflict") {
			got, err := getBytes(t, a, f.Name)
			kept = err == nil && string(got) == "ours"
		}
	}
	if !kept {
		t.Fatal("the older version was not kept under a conflict name")
	}
}
