package sealtest

import (
	"context"
	"crypto/rand"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/wire"
)

// WorkBlockSize is the block size WorkDuringSeal needs its store opened
// with.
const WorkBlockSize = 16384

// WorkDuringSeal seals 12 MB of unsealed blocks, twice, while clients
// create, overwrite, renew, delete and read back: every read sees the
// write before it, on blocks the seal may be rewriting, and writes keep
// completing while the seal runs. A last seal with no writer about
// leaves nothing unsealed; the store's test checks its own state after.
// The latencies are logged; BenchWritesDuringSeal measures them properly.
func WorkDuringSeal(t *testing.T, s Store) {
	w := &workload{t: t, s: s, buckets: [2]bucketer.Bucket{randBucket(), randBucket()}}
	fill := func(n int) {
		for i := 0; i < n; i += 64 {
			var ops []blobstore.Op
			for j := 0; j < 64; j++ {
				ops = append(ops, w.put(newOwned(), blobstore.Cond{}))
			}
			if _, err := s.Apply(context.Background(), ops); err != nil {
				t.Fatalf("Apply of %d ops: %v", len(ops), err)
			}
		}
	}
	fill(768)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Go(func() {
			var seed [1]byte
			rand.Read(seed[:])
			w.worker(stop, uint64(seed[0]))
		})
	}
	time.Sleep(150 * time.Millisecond) // writes without a seal
	var seals []time.Duration
	var during int64
	for round := 0; round < 2; round++ {
		before := w.ops.Load()
		w.sealing.Store(true)
		rep := mustSeal(t, s)
		w.sealing.Store(false)
		during += w.ops.Load() - before
		seals = append(seals, rep.Duration)
		t.Logf("seal %d: %d blocks, %d bytes in %v; %d writes completed meanwhile", round, rep.Blocks, rep.Bytes, rep.Duration, w.ops.Load()-before)
		time.Sleep(150 * time.Millisecond)
		fill(768)
	}
	close(stop)
	wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	t.Logf("write latency: median %v during seals (%d writes), %v otherwise (%d writes)",
		median(w.during), len(w.during), median(w.outside), len(w.outside))
	if during < 10 {
		t.Errorf("only %d writes completed during %v of seals: writers wait for the seal", during, seals)
	}
	mustSeal(t, s)
	checkAllSealed(t, s, "after a quiet seal")
}

// workload is what clients do while a seal runs: each worker creates a
// block and reads it back at once, overwrites one of its blocks and
// reads it back, renews one and checks it, deletes one and checks it is
// gone.
type workload struct {
	t       *testing.T
	s       Store
	buckets [2]bucketer.Bucket

	sealing atomic.Bool
	mu      sync.Mutex
	during  []time.Duration // write latencies while a seal ran
	outside []time.Duration // and while none did
	ops     atomic.Int64
}

// owned is a block a worker wrote, with what it takes to change it.
type owned struct {
	id   wire.ID
	w    wire.WriteProof
	data []byte
	etag wire.ETag
}

func newOwned() owned {
	return owned{id: wire.NewID(), w: randProof(), data: randBytes(WorkBlockSize)}
}

func (w *workload) put(o owned, c blobstore.Cond) blobstore.Op {
	return blobstore.Op{Kind: blobstore.OpPut, ID: o.id, ProofHash: o.w.Hash(), Data: o.data, ETag: wire.ETagOf(o.data), Bucket: w.buckets[0], Cond: c}
}

// apply applies one op, timing it, and returns its result.
func (w *workload) apply(op blobstore.Op) blobstore.Result {
	sealing := w.sealing.Load()
	t0 := time.Now()
	rs, err := w.s.Apply(context.Background(), []blobstore.Op{op})
	d := time.Since(t0)
	if err != nil {
		w.t.Errorf("%s during the workload: %v", op.Kind, err)
		return blobstore.Result{}
	}
	w.mu.Lock()
	// A write counts as during a seal only if a seal ran from its start
	// to its end.
	if sealing && w.sealing.Load() {
		w.during = append(w.during, d)
	} else {
		w.outside = append(w.outside, d)
	}
	w.mu.Unlock()
	w.ops.Add(1)
	return rs[0]
}

func (w *workload) worker(stop <-chan struct{}, seed uint64) {
	ctx := context.Background()
	var mine []owned
	for i := uint64(0); ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		o := newOwned()
		if r := w.apply(w.put(o, blobstore.Cond{})); r.Status != blobstore.StatusCreated {
			w.t.Errorf("create: %s", r.Status)
			return
		}
		got, e, err := w.s.Read(ctx, o.id, nil)
		if err != nil || string(got) != string(o.data) {
			w.t.Errorf("a block created a moment ago does not read back: %v", err)
			return
		}
		o.etag = e
		mine = append(mine, o)
		if len(mine) < 4 {
			continue
		}
		k := int((seed + i) % uint64(len(mine)))
		switch i % 3 {
		case 0: // overwrite
			x := &mine[k]
			x.data = randBytes(WorkBlockSize)
			e := x.etag
			if r := w.apply(w.put(*x, blobstore.Cond{IfMatch: &e})); r.Status != blobstore.StatusReplaced {
				w.t.Errorf("overwrite: %s", r.Status)
				return
			}
			got, e, err := w.s.Read(ctx, x.id, nil)
			if err != nil || string(got) != string(x.data) {
				w.t.Errorf("an overwrite a moment ago does not read back: %v", err)
				return
			}
			x.etag = e
		case 1: // renew into the other bucket
			x := mine[k]
			op := blobstore.Op{Kind: blobstore.OpRenew, ID: x.id, ProofHash: x.w.Renew().Hash(), Bucket: w.buckets[1]}
			if r := w.apply(op); r.Status != blobstore.StatusRenewed && r.Status != blobstore.StatusCurrent {
				w.t.Errorf("renew: %s", r.Status)
				return
			}
			if e, err := w.s.Stat(ctx, x.id); err != nil || e != x.etag {
				w.t.Errorf("a renewed block does not stat with its ETag: %v", err)
				return
			}
		case 2: // delete
			x := mine[k]
			if r := w.apply(blobstore.Op{Kind: blobstore.OpDelete, ID: x.id, ProofHash: x.w.Hash()}); r.Status != blobstore.StatusDeleted {
				w.t.Errorf("delete: %s", r.Status)
				return
			}
			if _, _, err := w.s.Read(ctx, x.id, nil); !blobstore.IsNotFound(err) {
				w.t.Errorf("a block deleted a moment ago reads: %v", err)
				return
			}
			mine = slices.Delete(mine, k, k+1)
		}
	}
}
