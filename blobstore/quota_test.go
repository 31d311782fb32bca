package blobstore_test

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/bolt"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/wire"
)

const qbs = 1024

func newQuotaService(t *testing.T, maxBlocks int64) (*blobstore.Service, *bucketer.FakeClock) {
	t.Helper()
	key := make([]byte, bucketer.KeySize)
	rand.Read(key)
	clock := bucketer.NewFakeClock(time.Unix(1_700_000_000, 0).Truncate(time.Hour).Add(time.Minute))
	bk, err := bucketer.New(bucketer.Config{Key: key, Period: time.Hour, Retention: 3, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	st, err := bolt.Open(filepath.Join(t.TempDir(), "b.db"), blobstore.Params{BlockSize: qbs, Fingerprint: bk.Fingerprint()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := blobstore.NewService(blobstore.ServiceConfig{Store: st, Bucketer: bk, BlockSize: qbs, MaxBlocks: maxBlocks})
	if err != nil {
		t.Fatal(err)
	}
	return svc, clock
}

func item() blobstore.PutItem {
	var w wire.WriteProof
	rand.Read(w[:])
	d := make([]byte, qbs)
	rand.Read(d)
	return blobstore.PutItem{ID: wire.NewID(), Proof: w, Data: d, Cond: blobstore.Cond{IfNoneMatchAny: true}}
}

// An overwrite that keeps its bucket changes the data and not the
// bucket, so it renews nothing; it never creates a block.
func TestKeepBucketOverwriteNeverRenewsOrCreates(t *testing.T) {
	svc, clock := newQuotaService(t, 0)
	ctx := context.Background()
	it := item()
	res, err := svc.Put(ctx, it)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour) // the block's bucket is now the previous one
	stats := func() map[bucketer.Bucket]int64 {
		st, err := svc.Store().Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.Buckets
	}
	before := stats()

	over := it
	over.Data = make([]byte, qbs)
	over.Cond = blobstore.Cond{IfMatch: &res.ETag}
	over.KeepBucket = true
	r2, err := svc.Put(ctx, over)
	if err != nil || r2.Status != blobstore.StatusReplaced {
		t.Fatalf("keep-bucket overwrite: %v, %v", r2.Status, err)
	}
	after := stats()
	if len(after) != 1 || after[svc.Bucketer().CurrentBucket()] != 0 {
		t.Fatalf("buckets before %v, after %v: the overwrite moved the block", before, after)
	}
	for b, n := range before {
		if after[b] != n {
			t.Fatalf("bucket counts changed: before %v, after %v", before, after)
		}
	}
	got, etag, err := svc.Get(ctx, it.ID, nil)
	if err != nil || etag != wire.ETagOf(over.Data) || len(got) != qbs {
		t.Fatalf("read after overwrite: %v", err)
	}

	// A renewal moves it; that is what a quota charges for.
	rr, err := svc.Renew(ctx, []blobstore.RenewItem{{ID: it.ID, Proof: it.Proof.Renew()}})
	if err != nil || rr[0].Status != blobstore.StatusRenewed {
		t.Fatalf("renew: %v, %v", rr, err)
	}

	// Without a block there is nothing to keep: no creation.
	ghost := item()
	e := wire.ETagOf(ghost.Data)
	ghost.Cond = blobstore.Cond{IfMatch: &e}
	ghost.KeepBucket = true
	if _, err := svc.Put(ctx, ghost); wire.KindOf(err) != wire.KindPrecondition {
		t.Fatalf("keep-bucket put of a missing block: %v", err)
	}
	// And without If-Match it is refused outright.
	ghost.Cond = blobstore.Cond{}
	if _, err := svc.Put(ctx, ghost); wire.KindOf(err) != wire.KindInvalid {
		t.Fatalf("keep-bucket put without If-Match: %v", err)
	}
	// Plan itself, for every store: a zero bucket never creates.
	rs, ch := blobstore.Plan([]blobstore.Op{{Kind: blobstore.OpPut, ID: ghost.ID, Data: ghost.Data, ETag: e}}, nil)
	if rs[0].Status != blobstore.StatusPrecondition || len(ch) != 0 {
		t.Fatalf("Plan of a zero-bucket put of a missing block: %v, %d changes", rs[0].Status, len(ch))
	}
}

func TestCapacityCap(t *testing.T) {
	svc, _ := newQuotaService(t, 5)
	ctx := context.Background()
	var items []blobstore.PutItem
	for range 3 {
		it := item()
		if _, err := svc.Put(ctx, it); err != nil {
			t.Fatal(err)
		}
		items = append(items, it)
	}
	// A create that fails gives its room back.
	for range 3 {
		if _, err := svc.Put(ctx, items[1]); wire.KindOf(err) != wire.KindPrecondition {
			t.Fatalf("create-only put of an existing block: %v", err)
		}
	}
	// A batch that would pass the cap is refused whole.
	batch := []blobstore.PutItem{item(), item(), item()}
	if _, err := svc.PutBatch(ctx, batch); wire.KindOf(err) != wire.KindFull {
		t.Fatalf("batch past the cap: %v", err)
	}
	if _, err := svc.PutBatch(ctx, batch[:2]); err != nil {
		t.Fatalf("batch up to the cap: %v", err)
	}
	_, err := svc.Put(ctx, item())
	var be *wire.Error
	if wire.KindOf(err) != wire.KindFull || !asErr(err, &be) || be.Code != wire.CodeFull || wire.KindFull.HTTPStatus() != 507 {
		t.Fatalf("put into a full store: %v", err)
	}
	// Full, a store still takes overwrites of what it holds.
	e := wire.ETagOf(items[0].Data)
	over := items[0]
	over.Cond = blobstore.Cond{IfMatch: &e}
	if _, err := svc.Put(ctx, over); err != nil {
		t.Fatalf("overwrite in a full store: %v", err)
	}
	// Deleting makes room.
	if _, err := svc.Delete(ctx, items[2].ID, items[2].Proof, blobstore.Cond{}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Put(ctx, item()); err != nil {
		t.Fatalf("put after a delete: %v", err)
	}
	if _, err := svc.Put(ctx, item()); wire.KindOf(err) != wire.KindFull {
		t.Fatalf("put past the cap again: %v", err)
	}
	if st, _ := svc.Store().Stats(ctx); st.Blocks != 5 {
		t.Fatalf("store holds %d blocks, the cap is 5", st.Blocks)
	}
}

// Concurrent writers cannot overshoot the cap together.
func TestCapacityCapUnderConcurrency(t *testing.T) {
	svc, _ := newQuotaService(t, 20)
	ctx := context.Background()
	var ok, full atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				_, err := svc.Put(ctx, item())
				switch wire.KindOf(err) {
				case wire.KindFull:
					full.Add(1)
				default:
					if err != nil {
						t.Error(err)
						return
					}
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	st, _ := svc.Store().Stats(ctx)
	if ok.Load() != 20 || full.Load() != 20 || st.Blocks != 20 {
		t.Fatalf("%d written, %d refused, %d in the store; want 20, 20, 20", ok.Load(), full.Load(), st.Blocks)
	}
}

func asErr(err error, target **wire.Error) bool {
	for err != nil {
		if e, ok := err.(*wire.Error); ok {
			*target = e
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}
