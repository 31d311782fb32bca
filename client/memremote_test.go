package client

// Unit tests of the account's logic over MemoryRemote: no server, no
// database, no network. The tests against a real server (account_test.go
// and the others that start one) cover the same paths end to end.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/blindstore/blindstore/internal/seeded"
	"github.com/blindstore/blindstore/wire"

	"github.com/blindstore/blindstore/client/format"
)

// memBlockSize keeps the memory tests' files of many blocks small.
const memBlockSize = 4096

func newMem(t testing.TB) *MemoryRemote {
	t.Helper()
	m, err := NewMemoryRemote(memBlockSize)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func memSignup(t testing.TB, m *MemoryRemote, user string) (*Account, format.Locator, format.RecoveryCode) {
	t.Helper()
	loc := testLocator(t, user, "pw")
	a, code, err := signup(context.Background(), m, user, loc)
	if err != nil {
		t.Fatal(err)
	}
	return a, loc, code
}

func memLogin(t testing.TB, m *MemoryRemote, loc format.Locator) *Account {
	t.Helper()
	a, err := login(context.Background(), m, "", loc)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func wantGet(t testing.TB, a *Account, name string, want []byte) {
	t.Helper()
	got, err := getBytes(t, a, name)
	if err != nil {
		t.Fatalf("get %s: %v", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("get %s: %d bytes differing from the %d put", name, len(got), len(want))
	}
}

func TestMemorySignupLogin(t *testing.T) {
	m := newMem(t)
	ctx := context.Background()
	a, loc, _ := memSignup(t, m, "alice")
	// signup writes the password root, the recovery root and the head.
	if m.Len() != 3 {
		t.Fatalf("signup left %d blocks, want 3", m.Len())
	}
	_, _, err := signup(ctx, m, "alice", loc)
	wantKind(t, err, KindConflict)
	b := memLogin(t, m, loc)
	if len(b.Files()) != 0 || b.Generation() != a.Generation() {
		t.Fatalf("a new account's login: %d files, generation %d (signup's %d)", len(b.Files()), b.Generation(), a.Generation())
	}
	_, err = login(ctx, m, "", testLocator(t, "alice", "wrong"))
	wantKind(t, err, KindAuth)
	// A session resumes from its state without the password.
	c, err := Resume(ctx, m, a.State())
	if err != nil {
		t.Fatal(err)
	}
	if c.Generation() != a.Generation() {
		t.Fatalf("resumed at generation %d, want %d", c.Generation(), a.Generation())
	}
}

func TestMemoryPutGet(t *testing.T) {
	m := newMem(t)
	a, loc, _ := memSignup(t, m, "bob")
	c := format.PayloadCapacity(memBlockSize)
	sizes := []int{0, 1, InlineMax(memBlockSize), InlineMax(memBlockSize) + 1, c, c + 1, 5*c + 17}
	want := map[string][]byte{}
	for _, n := range sizes {
		name := fmt.Sprintf("d/f%d", n)
		want[name] = randomBytes(n)
		putBytes(t, a, name, want[name])
	}
	b := memLogin(t, m, loc)
	if len(b.Files()) != len(sizes) {
		t.Fatalf("index lists %d files, want %d", len(b.Files()), len(sizes))
	}
	for name, data := range want {
		wantGet(t, b, name, data)
		f, err := b.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if f.Size != uint64(len(data)) || f.Mode != 0o640 || !f.ModTime.Equal(time.Unix(1_700_000_000, 5)) {
			t.Fatalf("%s: size %d mode %o mtime %v", name, f.Size, f.Mode, f.ModTime)
		}
	}
	// A range of the multi-block file.
	var part bytes.Buffer
	big := fmt.Sprintf("d/f%d", 5*c+17)
	if _, err := b.GetRange(context.Background(), big, int64(c-3), int64(c+10), &part); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(part.Bytes(), want[big][c-3:2*c+7]) {
		t.Fatal("GetRange returned other bytes")
	}
	_, err := getBytes(t, b, "missing")
	wantKind(t, err, KindNotFound)
}

func TestMemoryRemoveRename(t *testing.T) {
	m := newMem(t)
	ctx := context.Background()
	a, loc, _ := memSignup(t, m, "dora")
	empty := m.Len()
	c := format.PayloadCapacity(memBlockSize)
	data := randomBytes(3 * c)
	putBytes(t, a, "a", data)
	if err := a.Rename(ctx, "a", "b"); err != nil {
		t.Fatal(err)
	}
	b := memLogin(t, m, loc)
	if _, err := b.Lookup("a"); KindOf(err) != KindNotFound {
		t.Fatalf("the old name is still there: %v", err)
	}
	wantGet(t, b, "b", data)
	if err := b.Remove(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	wantKind(t, b.Remove(ctx, "b"), KindNotFound)
	if len(memLogin(t, m, loc).Files()) != 0 {
		t.Fatal("a removed file is still listed")
	}
	// The file's blocks and the old index blocks are deleted: the store
	// holds what a fresh account holds, and the index of no file.
	if m.Len() > empty+1 {
		t.Fatalf("after rm the store holds %d blocks, a fresh account %d", m.Len(), empty)
	}
}

// Two sessions of one account write at once: the second's compare-and-
// swap of the head loses, and it merges its change into the winner's.
func TestMemoryLostRaceMerges(t *testing.T) {
	m := newMem(t)
	a, loc, _ := memSignup(t, m, "erin")
	b := memLogin(t, m, loc)
	putBytes(t, a, "from-a", []byte("a"))
	putBytes(t, b, "from-b", []byte("b")) // b's head is stale: its swap loses
	if b.Generation() <= a.Generation() {
		t.Fatalf("the merged head has generation %d, the one it lost to %d", b.Generation(), a.Generation())
	}
	c := memLogin(t, m, loc)
	wantGet(t, c, "from-a", []byte("a"))
	wantGet(t, c, "from-b", []byte("b"))
	// The loser's view is the merge too.
	wantGet(t, b, "from-a", []byte("a"))
}

func TestMemoryShareFetch(t *testing.T) {
	m := newMem(t)
	ctx := context.Background()
	a, _, _ := memSignup(t, m, "fay")
	data := randomBytes(3*format.PayloadCapacity(memBlockSize) + 5)
	putBytes(t, a, "docs/report.pdf", data)
	parsed := shareFetched(t, m, a, "docs/report.pdf", data)
	wrong := parsed
	wrong.Key[0] ^= 1
	_, err := Fetch(ctx, m, wrong, io.Discard, nil)
	wantKind(t, err, KindTampered)
	if err := a.Unshare(ctx, "docs/report.pdf"); err != nil {
		t.Fatal(err)
	}
	_, err = Fetch(ctx, m, parsed, io.Discard, nil)
	wantKind(t, err, KindNotFound)
}

func TestMemoryPasswordAndRecovery(t *testing.T) {
	m := newMem(t)
	ctx := context.Background()
	a, oldLoc, code := memSignup(t, m, "gus")
	putBytes(t, a, "f", []byte("data"))
	blocks := m.Len()
	newLoc := testLocator(t, "gus", "new")
	if err := a.setPassword(ctx, newLoc); err != nil {
		t.Fatal(err)
	}
	wantMovedTo(t, m, "", oldLoc, newLoc)
	if m.Len() != blocks {
		t.Fatalf("passwd changed the block count from %d to %d", blocks, m.Len())
	}
	// The recovery code opens the account (LoginRecovery without its
	// Argon2id run) and sets a new password.
	root, err := readRoot(ctx, m, code.Locator())
	if err != nil {
		t.Fatal(err)
	}
	b, err := openAccount(ctx, m, "gus", root)
	if err != nil {
		t.Fatal(err)
	}
	thirdLoc := testLocator(t, "gus", "third")
	if err := b.setPassword(ctx, thirdLoc); err != nil {
		t.Fatal(err)
	}
	wantMovedTo(t, m, "", newLoc, thirdLoc)
	var bogus format.RecoveryCode
	bogus[0] = 1
	_, err = readRoot(ctx, m, bogus.Locator())
	wantKind(t, err, KindAuth)
}

// Flipping a byte of any block the account reads is caught: the head, an
// index block, a data block. A block rolled back to an older version of
// itself is caught by its ETag.
func TestMemoryTamperDetected(t *testing.T) {
	m := newMem(t)
	ctx := context.Background()
	a, loc, _ := memSignup(t, m, "hal")
	data := randomBytes(2*format.PayloadCapacity(memBlockSize) + 1)
	putBytes(t, a, "f", data)
	f, err := a.Lookup("f")
	if err != nil {
		t.Fatal(err)
	}
	flip := func(id wire.ID, at int) (undo func()) {
		m.mu.Lock()
		defer m.mu.Unlock()
		b := m.blocks[id]
		b.data[at] ^= 0x40
		return func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			b.data[at] ^= 0x40
		}
	}
	// A data block: the get fails and writes nothing past the bad chunk.
	undo := flip(f.Chunks[1].ID, memBlockSize/2)
	_, err = getBytes(t, a, "f")
	wantKind(t, err, KindTampered)
	undo()
	wantGet(t, a, "f", data)

	// The head: login refuses it.
	undo = flip(a.headLoc.ID, 30)
	_, err = login(ctx, m, "", loc)
	wantKind(t, err, KindTampered)
	undo()

	// An index block.
	refs := a.IndexBlocks()
	if len(refs) == 0 {
		t.Fatal("no index blocks")
	}
	undo = flip(refs[0].ID, memBlockSize-1)
	_, err = login(ctx, m, "", loc)
	wantKind(t, err, KindTampered)
	undo()
	memLogin(t, m, loc)

	// The password root: it no longer opens.
	undo = flip(loc.ID, 0)
	_, err = login(ctx, m, "", loc)
	if k := KindOf(err); k != KindTampered && k != KindAuth {
		t.Fatalf("a damaged root: %v (kind %v)", err, k)
	}
	undo()
}

// The store's own rules, as the account relies on them.
func TestMemoryStoreSemantics(t *testing.T) {
	m := newMem(t)
	ctx := context.Background()
	owner := format.OwnerSecret(testKey("owner"))
	id := wire.NewID()
	w := owner.WriteProof(id)
	one, two := bytes.Repeat([]byte{1}, memBlockSize), bytes.Repeat([]byte{2}, memBlockSize)

	_, _, err := m.Get(ctx, id, nil)
	wantKind(t, err, KindNotFound)
	_, err = m.Put(ctx, id, w, one[:10], Cond{CreateOnly: true})
	if err == nil {
		t.Fatal("a block of the wrong size was taken")
	}
	e1, err := m.Put(ctx, id, w, one, Cond{CreateOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	// A retry of a create that landed succeeds; another create does not.
	if _, err := m.Put(ctx, id, w, one, Cond{CreateOnly: true}); err != nil {
		t.Fatalf("retried create: %v", err)
	}
	_, err = m.Put(ctx, id, w, two, Cond{CreateOnly: true})
	var pe *PreconditionError
	if !errors.As(err, &pe) || pe.Current == nil || *pe.Current != e1 {
		t.Fatalf("create over a block: %v", err)
	}
	// Overwrites and deletions need the write proof.
	other := format.OwnerSecret(testKey("other")).WriteProof(id)
	_, err = m.Put(ctx, id, other, two, Cond{IfMatch: &e1})
	wantKind(t, err, KindAuth)
	wantKind(t, m.Delete(ctx, id, other, nil), KindAuth)
	// Compare-and-swap: only from the current ETag.
	e2, err := m.Put(ctx, id, w, two, Cond{IfMatch: &e1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Put(ctx, id, w, one, Cond{IfMatch: &e1})
	if !errors.As(err, &pe) || pe.Current == nil || *pe.Current != e2 {
		t.Fatalf("a lost compare-and-swap: %v", err)
	}
	if got, etag, err := m.Get(ctx, id, nil); err != nil || etag != e2 || !bytes.Equal(got, two) {
		t.Fatalf("get after swap: %v", err)
	}

	// An atomic batch applies whole or not at all.
	fresh := wire.NewID()
	stale := e1
	err = m.Commit(ctx, []CommitItem{
		{ID: fresh, Proof: owner.WriteProof(fresh), Data: one, Cond: Cond{CreateOnly: true}},
		{ID: id, Proof: w, Data: one, Cond: Cond{IfMatch: &stale}},
	})
	if !errors.As(err, &pe) {
		t.Fatalf("a commit whose swap loses: %v", err)
	}
	if _, _, err := m.Get(ctx, fresh, nil); KindOf(err) != KindNotFound {
		t.Fatal("a failed atomic batch left one of its writes")
	}
	err = m.Commit(ctx, []CommitItem{
		{ID: fresh, Proof: owner.WriteProof(fresh), Data: one, Cond: Cond{CreateOnly: true}},
		{ID: id, Proof: w, Data: one, Cond: Cond{IfMatch: &e2}},
	})
	if err != nil {
		t.Fatal(err)
	}
	// A check of a block not yet written holds the batch back.
	missing := wire.NewID()
	e3 := wire.ETagOf(one)
	err = m.Commit(ctx, []CommitItem{
		{ID: missing, Proof: owner.WriteProof(missing), Check: true},
		{ID: id, Proof: w, Data: two, Cond: Cond{IfMatch: &e3}},
	})
	if !errors.Is(err, errUnacked) {
		t.Fatalf("a commit checking a missing block: %v", err)
	}

	// Renewal: by renew proof only, once per period; unrenewed blocks
	// are purged when their period leaves the window.
	res, err := m.Renew(ctx, []RenewItem{{ID: id, Proof: owner.RenewProof(id)}, {ID: missing, Proof: owner.RenewProof(missing)}, {ID: fresh, Proof: format.OwnerSecret(testKey("other")).RenewProof(fresh)}})
	if err != nil || res.Current != 1 || len(res.Missing) != 1 || len(res.Refused) != 1 {
		t.Fatalf("renew in the period of the write: %+v, %v", res, err)
	}
	m.Advance(1)
	if res, err := m.Renew(ctx, []RenewItem{{ID: id, Proof: owner.RenewProof(id)}}); err != nil || res.Renewed != 1 {
		t.Fatalf("renew a period on: %+v, %v", res, err)
	}
	m.Advance(uint64(m.cfg.RetentionPeriods) - 1)
	if _, _, err := m.Get(ctx, fresh, nil); KindOf(err) != KindNotFound {
		t.Fatal("a block not renewed outlived the retention window")
	}
	if _, _, err := m.Get(ctx, id, nil); err != nil {
		t.Fatalf("a renewed block was purged: %v", err)
	}
	// Deleting: by proof and ETag; a block already gone is deleted.
	wantKind(t, m.Delete(ctx, id, w, &e2), KindConflict) // it holds one again, e1
	if err := m.Delete(ctx, id, w, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete(ctx, id, w, nil); err != nil {
		t.Fatalf("deleting a deleted block: %v", err)
	}
}

// An account that renews each period keeps its files; one abandoned is
// purged whole.
func TestMemoryRenewal(t *testing.T) {
	m := newMem(t)
	ctx := context.Background()
	a, loc, _ := memSignup(t, m, "ivy")
	putBytes(t, a, "kept", randomBytes(2*format.PayloadCapacity(memBlockSize)))
	for range m.cfg.RetentionPeriods + 1 {
		m.Advance(1)
		b := memLogin(t, m, loc)
		if _, err := b.Renew(ctx); err != nil {
			t.Fatal(err)
		}
	}
	b := memLogin(t, m, loc)
	if _, err := getBytes(t, b, "kept"); err != nil {
		t.Fatalf("a renewed account lost its file: %v", err)
	}
	m.Advance(uint64(m.cfg.RetentionPeriods))
	if m.Len() != 0 {
		t.Fatalf("an abandoned account left %d blocks", m.Len())
	}
	_, err := login(ctx, m, "", loc)
	wantKind(t, err, KindAuth)
}

// At 4 MiB blocks a 32nd of a block's payload is more than the index
// keeps inline: a file of 100 KiB must go to a data block, not into the
// index (which would refuse it and fail the put).
func TestMemoryPutBetweenInlineBounds(t *testing.T) {
	m, err := NewMemoryRemote(4 << 20)
	if err != nil {
		t.Fatal(err)
	}
	a, _, _ := memSignup(t, m, "bigblocks")
	data := seeded.Bytes(9, 100<<10)
	if _, err := a.Put(context.Background(), bytes.NewReader(data), PutInfo{Name: "mid.bin"}, nil); err != nil {
		t.Fatalf("put of a 100 KiB file at 4 MiB blocks: %v", err)
	}
	wantGet(t, a, "mid.bin", data)
}
