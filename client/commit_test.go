package client

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/blindstore/blindstore/wire"

	"github.com/blindstore/blindstore/client/format"
)

// Commit applies an atomic batch whole or not at all, and tells a retry
// of a batch that landed from a lost compare-and-swap.
func TestCommitAtomic(t *testing.T) {
	s := newTestServer(t)
	r := s.remote(t)
	ctx := context.Background()
	var secret format.OwnerSecret
	secret[0] = 3
	block := func() (wire.ID, wire.WriteProof, []byte) {
		id := wire.NewID()
		return id, secret.WriteProof(id), randomBytes(testBlockSize)
	}
	headID, headProof, headData := block()
	headETag, err := r.Put(ctx, headID, headProof, headData, Cond{CreateOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	oldID, oldProof, oldData := block()
	oldETag, err := r.Put(ctx, oldID, oldProof, oldData, Cond{CreateOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	before := s.blocks(t)
	newID, newProof, newData := block()
	next := randomBytes(testBlockSize)
	commit := func(ifMatch wire.ETag) []CommitItem {
		return []CommitItem{
			{ID: newID, Proof: newProof, Data: newData, Cond: Cond{CreateOnly: true}},
			{ID: headID, Proof: headProof, Data: next, Cond: Cond{IfMatch: &ifMatch}},
			{ID: oldID, Proof: oldProof, Cond: Cond{IfMatch: &oldETag}},
		}
	}

	// A lost swap: a precondition error with the head's ETag, and
	// nothing written or deleted.
	err = r.Commit(ctx, commit(wire.ETagOf(next)))
	var pe *PreconditionError
	if !errors.As(err, &pe) || pe.Current == nil || *pe.Current != headETag {
		t.Fatalf("lost swap: %v, want a precondition error with the head's ETag", err)
	}
	if got := s.blocks(t); got != before {
		t.Fatalf("a lost swap left %d blocks, want %d", got, before)
	}
	if _, _, err := r.Get(ctx, oldID, nil); err != nil {
		t.Fatalf("a lost swap deleted a block: %v", err)
	}

	// A commit that checks a block not written yet (a data batch still
	// on its way) applies nothing and says so; once the block is there
	// it holds.
	chunkID, chunkProof, chunkData := block()
	chunkETag := wire.ETagOf(chunkData)
	checked := append(commit(headETag), CommitItem{ID: chunkID, Proof: chunkProof, Check: true, Cond: Cond{IfMatch: &chunkETag}})
	if err := r.Commit(ctx, checked); !errors.Is(err, errUnacked) {
		t.Fatalf("commit checking a missing block: %v, want errUnacked", err)
	}
	if got := s.blocks(t); got != before {
		t.Fatalf("a commit whose check failed left %d blocks, want %d", got, before)
	}
	if _, err := r.Put(ctx, chunkID, chunkProof, chunkData, Cond{CreateOnly: true}); err != nil {
		t.Fatal(err)
	}

	// A won swap, then the same batch again, as a retry after a lost
	// answer would send it: both succeed, and the batch applied once.
	for range 2 {
		if err := r.Commit(ctx, checked); err != nil {
			t.Fatalf("won swap: %v", err)
		}
	}
	got, _, err := r.Get(ctx, headID, nil)
	if err != nil || string(got) != string(next) {
		t.Fatalf("the head does not hold the new data: %v", err)
	}
	if _, _, err := r.Get(ctx, newID, nil); err != nil {
		t.Fatalf("the new block was not written: %v", err)
	}
	if _, _, err := r.Get(ctx, oldID, nil); KindOf(err) != KindNotFound {
		t.Fatalf("the replaced block: %v, want not found", err)
	}
}

// Put commits its index while its last data batches still wait in the
// server's write pool, checking them in the commit; the file is whole
// and nothing is left behind, and a server with no window gets no
// checks (its data is answered at once).
func TestPutCommitsBesideItsTail(t *testing.T) {
	for _, window := range []time.Duration{100 * time.Millisecond, 0} {
		s := newTestServerWith(t, testBlockSize, window)
		a, p, _ := countedSignup(t, s, "tail")
		// Two batches of the test server's 8 blocks: few enough blocks
		// on their way for one commit to check them all (its renew
		// batch, 16, bounds the checks).
		data := randomBytes(12 * format.PayloadCapacity(testBlockSize))
		p.Take()
		putBytes(t, a, "f", data)
		c := p.Take()
		if window > 0 && c.Checked == 0 {
			t.Errorf("window %v: the commit checked no block; the put waited for its data first", window)
		}
		if window == 0 && c.Checked != 0 {
			t.Errorf("no window: the commit checked %d blocks", c.Checked)
		}
		t.Logf("window %v: %d blocks written, %d checked, %d head writes", window, c.Batched, c.Checked, c.Puts)
		if got, err := getBytes(t, a, "f"); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("window %v: the file does not read back: %v", window, err)
		}
		checkNoLeak(t, s, a)
	}
}
