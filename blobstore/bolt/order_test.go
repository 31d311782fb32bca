package bolt

import (
	"bytes"
	"context"
	"errors"
	mrand "math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"go.etcd.io/bbolt"
)

// TestBatchMatchesOneAtATime checks that a large batch, which applyOps
// looks up and writes in id order, decides and leaves exactly what the
// same ops committed one at a time in their own order do: renewals into
// a fresh time bucket and across buckets, wrong proofs, overwrites,
// deletes, creations and several ops on one block, shuffled.
func TestBatchMatchesOneAtATime(t *testing.T) {
	f := newFixture(t, 1024)
	f.r = mrand.New(mrand.NewPCG(1, 2))
	one, err := Open(filepath.Join(t.TempDir(), "one.db"), f.p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = one.Close() })
	ctx := context.Background()

	buckets := []bucketer.Bucket{f.bk.Bucket(0), f.bk.Bucket(1), f.bk.Bucket(2)}
	blocks := make([]testBlock, 600)
	var fill []blobstore.Op
	for i := range blocks {
		blocks[i] = newTestBlock()
		if i < 450 { // the rest are created by the batch
			op := f.putOp(blocks[i], uint64(i%2))
			fill = append(fill, op)
		}
	}
	for _, s := range []*Store{f.s, one} {
		if _, err := s.Apply(ctx, fill); err != nil {
			t.Fatal(err)
		}
	}

	var ops []blobstore.Op
	for range 3000 {
		b := blocks[f.r.IntN(len(blocks))]
		switch k := f.r.IntN(10); {
		case k < 6:
			op := renewOp(b, buckets[f.r.IntN(len(buckets))])
			if k == 0 {
				op.ProofHash[0] ^= 1
			}
			ops = append(ops, op)
		case k < 8:
			op := f.putOp(b, uint64(f.r.IntN(3)))
			if k == 7 {
				op.Bucket = bucketer.Bucket{} // an overwrite that keeps the bucket
			}
			ops = append(ops, op)
		default:
			ops = append(ops, blobstore.Op{Kind: blobstore.OpDelete, ID: b.id, ProofHash: b.w.Hash()})
		}
	}

	got := f.apply(ops...)
	for i := range ops {
		rs, err := one.Apply(ctx, ops[i:i+1])
		if err != nil {
			t.Fatal(err)
		}
		if got[i] != rs[0] {
			t.Fatalf("op %d (%v): the batch answered %v, one at a time %v", i, ops[i].Kind, got[i].Status, rs[0].Status)
		}
	}

	for _, b := range blocks {
		d1, e1, err1 := f.s.Read(ctx, b.id, nil)
		d2, e2, err2 := one.Read(ctx, b.id, nil)
		if !errors.Is(err1, err2) && (err1 == nil || err2 == nil || err1.Error() != err2.Error()) {
			t.Fatalf("a block reads with %v after the batch, %v one at a time", err1, err2)
		}
		if e1 != e2 || !bytes.Equal(d1, d2) {
			t.Fatal("a block has other data or ETag after the batch than one at a time")
		}
		m1, m2 := metaOf(t, f.s, b.id), metaOf(t, one, b.id)
		if m1 != m2 {
			t.Fatal("a block has another proof hash, ETag or bucket after the batch than one at a time")
		}
	}
	s1, err := f.s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := one.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s1.Blocks != s2.Blocks || len(s1.Buckets) != len(s2.Buckets) {
		t.Fatalf("stats after the batch %+v, one at a time %+v", s1, s2)
	}
	for k, n := range s1.Buckets {
		if s2.Buckets[k] != n {
			t.Fatalf("stats after the batch %+v, one at a time %+v", s1, s2)
		}
	}
}

// metaOf reads a block's record as the store holds it (zero if none).
func metaOf(t *testing.T, s *Store, id blobstore.ID) blobstore.Meta {
	t.Helper()
	var m blobstore.Meta
	err := s.view(func(tx *bbolt.Tx) error {
		bucket, rec := find(tx, id[:])
		if rec == nil {
			return nil
		}
		var err error
		m, err = decodeRecord(rec, bucket)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}
