package client

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/blindstore/blindstore/client/format"
	"github.com/blindstore/blindstore/indexfile"
	"github.com/blindstore/blindstore/internal/countproxy"
	"github.com/blindstore/blindstore/internal/seeded"
)

// countingProxy is a countproxy.Proxy that lasts the test.
type countingProxy struct {
	*countproxy.Proxy
	url string
}

func newCountingProxy(t testing.TB, upstream string) countingProxy {
	t.Helper()
	p, err := countproxy.Start(upstream)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return countingProxy{p, p.URL}
}

// countedSignup signs user up (password "pw") through a new counting
// proxy to s, and returns the account, the proxy and the locator.
func countedSignup(t testing.TB, s *testServer, user string) (*Account, countingProxy, format.Locator) {
	t.Helper()
	p := newCountingProxy(t, s.url)
	loc := testLocator(t, user, "pw")
	a, _, err := signup(context.Background(), s.remoteAt(t, p.url), user, loc)
	if err != nil {
		t.Fatal(err)
	}
	return a, p, loc
}

// counts returns the blocks written in batches and read (by GET or in
// a POST /v1/read) since the last call.
func (p countingProxy) counts() (written, read int) {
	c := p.Take()
	return c.Batched, c.Reads + c.ReadMany
}

// newDataBlocks counts the chunks of f whose blocks prev did not have.
var newDataBlocks = countproxy.NewChunks

// checkNoLeak checks that the server holds exactly what the account
// refers to.
func checkNoLeak(t *testing.T, s *testServer, a *Account) {
	t.Helper()
	want := int64(3 + len(a.indexBlocks()))
	for _, f := range a.Files() {
		want += int64(len(f.Refs()))
	}
	if got := s.blocks(t); got != want {
		t.Fatalf("%d blocks on the server, the account refers to %d", got, want)
	}
}

// Edits at the start, middle and end of a 24 MiB file, truncation and
// growth, re-send only the blocks of the chunks that changed, and the
// blocks no longer referenced are deleted. With 64 KiB blocks, as
// deployed.
func TestEditsSendOnlyWhatChanged(t *testing.T) {
	s := newTestServerSize(t, 65536)
	a, p, _ := countedSignup(t, s, "editor")
	ctx := context.Background()
	data := seeded.Bytes(42, 24<<20)
	put := func(b []byte) (indexfile.File, int) {
		t.Helper()
		prev, _ := a.Lookup("big")
		p.counts()
		f, err := a.Put(ctx, bytes.NewReader(b), PutInfo{Name: "big", Mode: 0o600, ModTime: time.Unix(1_700_000_000, 0)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		written, _ := p.counts()
		n := newDataBlocks(prev, f)
		if index := written - n; index < 0 || index > 8 {
			t.Fatalf("the put wrote %d blocks: %d data, %d index", written, n, index)
		}
		got, err := getBytes(t, a, "big")
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("the file does not read back: %v", err)
		}
		checkNoLeak(t, s, a)
		return f, n
	}
	first, n := put(data)
	if n != len(first.Chunks) {
		t.Fatalf("first put wrote %d of %d chunks", n, len(first.Chunks))
	}
	insert := func(b []byte, at int, what []byte) []byte {
		return append(append(append([]byte(nil), b[:at]...), what...), b[at:]...)
	}
	mid := len(data) / 2
	for _, tc := range []struct {
		name  string
		edit  func([]byte) []byte
		limit int
	}{
		{"insert 100 bytes in the middle", func(b []byte) []byte { return insert(b, mid, seeded.Bytes(1, 100)) }, 4},
		{"overwrite one byte in the middle", func(b []byte) []byte { b = bytes.Clone(b); b[mid+12345] ^= 1; return b }, 2},
		{"insert 100 bytes at the start", func(b []byte) []byte { return insert(b, 0, seeded.Bytes(2, 100)) }, 4},
		{"overwrite the first byte", func(b []byte) []byte { b = bytes.Clone(b); b[0] ^= 1; return b }, 2},
		{"append 100 bytes", func(b []byte) []byte { return insert(b, len(b), seeded.Bytes(3, 100)) }, 2},
		{"delete 100 bytes in the middle", func(b []byte) []byte { return append(bytes.Clone(b[:mid-50]), b[mid+50:]...) }, 4},
		{"truncate by 1 MiB", func(b []byte) []byte { return bytes.Clone(b[:len(b)-1<<20]) }, 2},
		{"grow by 1 MiB", func(b []byte) []byte { return append(bytes.Clone(b), seeded.Bytes(4, 1<<20)...) }, 2 + (1<<20)/format.ChunkMin(format.PayloadCapacity(65536))},
		{"nothing changed", func(b []byte) []byte { return b }, 0},
	} {
		next := tc.edit(data)
		_, n := put(next)
		t.Logf("%s: %d data blocks sent", tc.name, n)
		if n > tc.limit {
			t.Errorf("%s: %d data blocks sent, want at most %d", tc.name, n, tc.limit)
		}
		data = next
	}
	// A range reads only the blocks that hold it.
	f, _ := a.Lookup("big")
	p.counts()
	var buf bytes.Buffer
	if _, err := a.GetRange(ctx, "big", int64(mid), 1000, &buf); err != nil || !bytes.Equal(buf.Bytes(), data[mid:mid+1000]) {
		t.Fatalf("range: %v", err)
	}
	if _, read := p.counts(); read > 2 {
		t.Fatalf("reading 1000 bytes of %d chunks read %d blocks", len(f.Chunks), read)
	}
	buf.Reset()
	if _, err := a.GetRange(ctx, "big", int64(len(data)-10), 100, &buf); err != nil || !bytes.Equal(buf.Bytes(), data[len(data)-10:]) {
		t.Fatalf("range past the end: %v", err)
	}
}

// A shared file's next version gets a new key: the capability's holder
// cannot read it.
func TestSharedKeyIsNotReused(t *testing.T) {
	s := newTestServer(t)
	a, _ := newTestAccount(t, s)
	c := format.PayloadCapacity(testBlockSize)
	data := randomBytes(10 * c)
	putBytes(t, a, "f", data)
	if _, err := a.Share(context.Background(), "f"); err != nil {
		t.Fatal(err)
	}
	shared, _ := a.Lookup("f")
	data[5] ^= 1
	putBytes(t, a, "f", data)
	next, _ := a.Lookup("f")
	if next.Key == shared.Key || newDataBlocks(shared, next) != len(next.Chunks) || next.KeyShared {
		t.Fatal("a new version of a shared file reuses its key or blocks")
	}
	data[6] ^= 1
	putBytes(t, a, "f", data)
	third, _ := a.Lookup("f")
	if third.Key != next.Key || newDataBlocks(next, third) > 2 {
		t.Fatal("once no longer shared, a file's edits are deltas again")
	}
	checkNoLeak(t, s, a)
}

// Many small files cost index space, not blocks; removing them gives the
// space back; an inline file is shared like any other.
func TestSmallFilesInline(t *testing.T) {
	s := newTestServerSize(t, 65536)
	ctx := context.Background()
	a, _, err := signup(ctx, s.remote(t), "small", testLocator(t, "small", "pw"))
	if err != nil {
		t.Fatal(err)
	}
	var srcs []PutSource
	for i := range 2000 {
		name := fmt.Sprintf("notes/%05d.txt", i)
		srcs = append(srcs, PutSource{Name: name, R: bytes.NewReader(seeded.Bytes(uint64(i), 1024)), ModTime: time.Unix(1_700_000_000, 0)})
	}
	if _, err := a.PutMany(ctx, srcs); err != nil {
		t.Fatal(err)
	}
	total := s.blocks(t)
	t.Logf("2000 files of 1 KiB: %d blocks in all", total)
	if total > 2000*400/10000+8 {
		t.Fatalf("2000 files of 1 KiB take %d blocks", total)
	}
	checkNoLeak(t, s, a)
	b, err := login(ctx, s.remote(t), "", testLocator(t, "small", "pw"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := getBytes(t, b, "notes/01234.txt")
	if err != nil || !bytes.Equal(got, seeded.Bytes(1234, 1024)) {
		t.Fatalf("small file: %v", err)
	}
	for i := range 20 {
		if err := b.Remove(ctx, fmt.Sprintf("notes/%05d.txt", i)); err != nil {
			t.Fatal(err)
		}
	}
	checkNoLeak(t, s, b)
	b.mu.Lock()
	_, err = b.update(ctx, func(x *indexfile.Index) error {
		for i := 20; i < 1500; i++ {
			x.Remove(fmt.Sprintf("notes/%05d.txt", i))
		}
		return nil
	})
	b.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	checkNoLeak(t, s, b)
	if after := s.blocks(t); after >= total {
		t.Fatalf("removing 1500 of 2000 small files left %d blocks of %d", after, total)
	}
	cp, err := b.Share(ctx, "notes/01999.txt")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := Fetch(ctx, s.remote(t), cp, &buf, nil); err != nil || !bytes.Equal(buf.Bytes(), seeded.Bytes(1999, 1024)) {
		t.Fatalf("fetch of a shared inline file: %v", err)
	}
}

// An account written in format 1 (one index blob under a version 1 head)
// is upgraded when opened, losing nothing, and its old index blocks go.
func TestUpgradeFromFormat1(t *testing.T) {
	s := newTestServer(t)
	ctx := context.Background()
	a, loc := newTestAccount(t, s)
	c := format.PayloadCapacity(testBlockSize)
	want := map[string][]byte{"a/one": randomBytes(3 * c), "b": randomBytes(c + 7), "c/d/e": randomBytes(500)}
	for name, d := range want {
		putBytes(t, a, name, d)
	}
	if _, err := a.Share(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	// Rewrite the account as the first clients left it: a format 1
	// index (no marks, no KeyShared), one blob, under a version 1 head.
	v1 := a.index.Clone()
	for i := range v1.Files {
		v1.Files[i].KeyShared = false
		for j := range v1.Files[i].Chunks {
			v1.Files[i].Chunks[j].Mark = 0
		}
	}
	blocks, nr, err := a.root.EncryptIndex(v1, testBlockSize)
	if err != nil {
		t.Fatal(err)
	}
	var items []BatchItem
	for _, b := range blocks {
		items = append(items, BatchItem{ID: b.ID, Proof: a.root.OwnerSecret.WriteProof(b.ID), Data: b.Data})
	}
	if err := a.remote.PutBatch(ctx, items); err != nil {
		t.Fatal(err)
	}
	h := a.head.Clone()
	h.Version, h.Generation, h.IndexLen, h.Index = format.HeadV1, h.Generation+1, nr.IndexLen, nr.Index
	data, err := a.encryptHead(h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.remote.Put(ctx, a.headLoc.ID, a.headLoc.Proof, data, Cond{IfMatch: &a.etag}); err != nil {
		t.Fatal(err)
	}
	a.deleteRefs(ctx, a.tree.Blocks())

	b, err := login(ctx, s.remote(t), "", loc)
	if err != nil {
		t.Fatal(err)
	}
	if b.head.FormatVersion() != format.HeadVersion || b.tree == nil {
		t.Fatal("the account was not upgraded")
	}
	for name, d := range want {
		got, err := getBytes(t, b, name)
		if err != nil || !bytes.Equal(got, d) {
			t.Fatalf("%s after the upgrade: %v", name, err)
		}
	}
	if f, _ := b.Lookup("b"); len(f.Manifest) == 0 {
		t.Fatal("the upgrade lost a share")
	}
	checkNoLeak(t, s, b) // the format 1 index blocks are gone
	// A second device still at the old head merges into the upgrade.
	c2, err := login(ctx, s.remote(t), "", loc)
	if err != nil || len(c2.Files()) != len(want) {
		t.Fatalf("after the upgrade: %v", err)
	}
}

// A crash between writing a file's chunks and updating the index loses
// nothing: the index still holds the old version, and the chunks written
// for the new one, which nothing refers to, expire.
func TestCrashBetweenChunksAndIndex(t *testing.T) {
	s := newTestServer(t)
	a, p, loc := countedSignup(t, s, "crash")
	ctx := context.Background()
	c := format.PayloadCapacity(testBlockSize)
	old := randomBytes(20 * c)
	putBytes(t, a, "f", old)
	before := s.blocks(t)
	// Writes of the head fail (alone, or in the atomic batch that
	// commits the index): a crash before the head is written.
	head := a.headLoc.ID.String()
	p.Refuse(func(r *http.Request, m *countproxy.Manifest) bool {
		return r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, head) || m != nil && slices.Contains(m.Writes, head)
	})
	next := append(bytes.Clone(old), randomBytes(5*c)...)
	if _, err := a.Put(ctx, bytes.NewReader(next), PutInfo{Name: "f", ModTime: time.Now()}, nil); KindOf(err) != KindNetwork {
		t.Fatalf("put with the head unwritable: %v", err)
	}
	orphans := s.blocks(t) - before
	if orphans == 0 {
		t.Fatal("the crashed put wrote nothing")
	}
	b, err := login(ctx, s.remote(t), "", loc)
	if err != nil {
		t.Fatal(err)
	}
	got, err := getBytes(t, b, "f")
	if err != nil || !bytes.Equal(got, old) {
		t.Fatalf("after the crash the old version is lost: %v", err)
	}
	// The orphans are never renewed: after R periods of logins they are
	// purged, and what the account refers to is all that is left.
	for range testRetention {
		s.advance()
		b, err = login(ctx, s.remote(t), "", loc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Renew(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := s.svc.Purge(ctx, false); err != nil {
			t.Fatal(err)
		}
	}
	checkNoLeak(t, s, b)
	if got, err := getBytes(t, b, "f"); err != nil || !bytes.Equal(got, old) {
		t.Fatalf("after the orphans expired: %v", err)
	}
}
