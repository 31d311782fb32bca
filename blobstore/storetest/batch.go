package storetest

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/wire"
)

// paramsReader is how the purge scheduler reads what a store was created
// with; every store offers it.
type paramsReader interface {
	Params(ctx context.Context) (blobstore.Params, error)
}

// testParams checks that a store reads back, from what it keeps, exactly
// the params it was created with, also after a reopen.
func testParams(t *testing.T, h *harness) {
	for round := range 2 {
		pr, ok := h.s.(paramsReader)
		if !ok {
			t.Fatalf("%T has no Params method: the purge scheduler reads a store's params through it", h.s)
		}
		got, err := pr.Params(context.Background())
		if err != nil {
			t.Fatalf("round %d: Params: %v", round, err)
		}
		if got != h.params {
			t.Errorf("round %d: Params returned other params than the store was opened with (block size %d, want %d)", round, got.BlockSize, h.params.BlockSize)
		}
		h.reopen()
	}
}

// testWrongSize guards the store itself against data of the wrong size,
// whatever its caller checked: the whole Apply is refused with an error
// of KindInvalid, and no op of it is applied.
func testWrongSize(t *testing.T, h *harness) {
	r := newRand()
	a := newBlock("block A")
	dA := h.put(a, r, h.bucket(1))
	for _, c := range []struct {
		what string
		size int
	}{{"a short block", blockSize - 1}, {"a long block", blockSize + 1}, {"an empty block", 0}} {
		b, fresh := newBlock("block B"), newBlock("block C")
		bad := make([]byte, c.size)
		ops := []blobstore.Op{
			putOp(fresh, randData(r), h.bucket(1), blobstore.Cond{}),
			putOp(b, bad, h.bucket(1), blobstore.Cond{}),
			putOp(a, bad, h.bucket(1), ifMatch(wire.ETagOf(dA))),
		}
		_, err := h.s.Apply(context.Background(), ops)
		if wire.KindOf(err) != wire.KindInvalid {
			t.Fatalf("Apply of %s: got %v, want an error of KindInvalid", c.what, err)
		}
		h.expectMissing(b)
		h.expectMissing(fresh)
		h.expectBlock(a, dA)
	}
	h.expectStats("after refused batches", 1, map[uint64]int64{1: 1})
}

// testBatchMatchesOneAtATime checks that a large batch, which a store may
// look up and write in its own order, decides and leaves exactly what the
// same ops committed one at a time in their own order do: renewals into
// a fresh time bucket and across buckets, wrong proofs, overwrites (some
// keeping the block's bucket), deletes, creations and several ops on one
// block, shuffled. One at a time is blobstore.Plan of each op alone over
// what the ops before it left, the decision every store makes, kept in
// memory: thousands of single-op commits would take most of a minute on
// each store and mode. What the store keeps of each block beyond its data
// (bucket and proof hash) is checked through what it answers: a purge of
// one bucket, then the owners' renewals into another.
func testBatchMatchesOneAtATime(t *testing.T, h *harness) {
	ctx := context.Background()
	r := mrand.New(mrand.NewPCG(1, 2))
	one := oneAtATime{}

	const nBlocks, nFilled, nOps = 600, 450, 3000 // the rest are created by the batch
	blocks := make([]block, nBlocks)
	var fill []blobstore.Op
	for i := range blocks {
		blocks[i] = newBlock(fmt.Sprintf("block %d", i))
		if i < nFilled {
			op := putOp(blocks[i], randData(r), h.bucket(uint64(i%2)), blobstore.Cond{})
			fill = append(fill, op)
			one.apply(op)
		}
	}
	if _, err := h.s.Apply(ctx, fill); err != nil {
		t.Fatalf("Apply of the %d blocks the batch starts from: %v", len(fill), err)
	}

	// Bucket 2 is fresh: no block is in it before the batch.
	var ops []blobstore.Op
	for range nOps {
		b := blocks[r.IntN(len(blocks))]
		switch k := r.IntN(10); {
		case k < 6:
			op := renewOp(b, h.bucket(uint64(r.IntN(3))))
			if k == 0 {
				op.ProofHash[0] ^= 1
			}
			ops = append(ops, op)
		case k < 8:
			op := putOp(b, randData(r), h.bucket(uint64(r.IntN(3))), blobstore.Cond{})
			if k == 7 {
				op.Bucket = bucketer.Bucket{} // an overwrite that keeps the bucket
			}
			ops = append(ops, op)
		default:
			ops = append(ops, deleteOp(b, blobstore.Cond{}))
		}
	}

	got, err := h.s.Apply(ctx, ops)
	if err != nil {
		t.Fatalf("Apply of a batch of %d ops: %v", len(ops), err)
	}
	if len(got) != len(ops) {
		t.Fatalf("Apply of a batch of %d ops returned %d results", len(ops), len(got))
	}
	for i, op := range ops {
		if want := one.apply(op); got[i] != want {
			t.Fatalf("op %d (%s): the batch answered %s, one at a time %s (or another ETag)", i+1, op.Kind, got[i].Status, want.Status)
		}
	}

	perBucket := map[uint64]int64{}
	for _, b := range blocks {
		m, ok := one[b.id]
		if !ok {
			h.expectMissing(b)
			continue
		}
		h.expectBlock(b, m.data)
		for p := range uint64(3) {
			if m.meta.Bucket == h.bucket(p) {
				perBucket[p]++
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	h.expectStats("after the batch", int64(len(one)), perBucket)

	// Bucket: a purge keeping buckets 0 and 1 deletes the blocks of bucket
	// 2, then the owners' renewals into bucket 0 find the blocks of bucket
	// 0 current and renew those of bucket 1. Proof hash: a renewal refused
	// is a block that kept another.
	h.purge(h.liveSet(0, 1), false, perBucket[2], "of bucket 2 after the batch")
	var steps []step
	for _, b := range blocks {
		m, ok := one[b.id]
		st := step{op: renewOp(b, h.bucket(0)), name: b.name, etag: ptr(m.meta.ETag)}
		switch {
		case !ok || m.meta.Bucket == h.bucket(2):
			st.status, st.etag = blobstore.StatusNotFound, nil
		case m.meta.Bucket == h.bucket(0):
			st.status = blobstore.StatusCurrent
		default:
			st.status = blobstore.StatusRenewed
		}
		steps = append(steps, st)
	}
	h.applySteps(ctx, steps...)
	h.expectStats("after the purge and the renewals", perBucket[0]+perBucket[1], map[uint64]int64{0: perBucket[0] + perBucket[1]})
}

// oneAtATime holds blocks as ops committed one at a time leave them.
type oneAtATime map[wire.ID]struct {
	meta blobstore.Meta
	data []byte
}

// apply decides op alone, as a store does, and keeps its change.
func (one oneAtATime) apply(op blobstore.Op) blobstore.Result {
	current := map[wire.ID]blobstore.Meta{}
	if b, ok := one[op.ID]; ok {
		current[op.ID] = b.meta
	}
	rs, changes := blobstore.Plan([]blobstore.Op{op}, current)
	for _, ch := range changes {
		if ch.New == nil {
			delete(one, ch.ID)
			continue
		}
		b := one[ch.ID]
		b.meta = *ch.New
		if ch.Data != nil {
			b.data = ch.Data
		}
		one[ch.ID] = b
	}
	return rs[0]
}
