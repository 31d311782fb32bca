package postgres

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
	"github.com/blindstore/blindstore/internal/pgtest"
)

// workload is what clients do while a seal runs: each worker creates a
// block and reads it back at once, overwrites one of its blocks and
// reads it back, renews one and checks it, deletes one and checks it is
// gone. Every check is read-your-writes on blocks that may lie on either
// hot side or in the sealed part, or be on their way between them.
type workload struct {
	t       *testing.T
	s       blobstore.Store
	size    int
	buckets [2]bucketer.Bucket

	sealing atomic.Bool
	mu      sync.Mutex
	during  []time.Duration // write latencies while a seal ran
	outside []time.Duration // and while none did
	ops     atomic.Int64
}

type wblock struct {
	o    owned
	etag blobstore.ETag
}

func (w *workload) record(d time.Duration, during bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if during {
		w.during = append(w.during, d)
	} else {
		w.outside = append(w.outside, d)
	}
}

// apply applies one op, timing it, and returns its result.
func (w *workload) apply(op blobstore.Op) blobstore.Result {
	w.t.Helper()
	sealing := w.sealing.Load()
	t0 := time.Now()
	rs, err := w.s.Apply(context.Background(), []blobstore.Op{op})
	d := time.Since(t0)
	if err != nil {
		w.t.Errorf("%s during the workload: %v", op.Kind, err)
		return blobstore.Result{}
	}
	w.record(d, sealing && w.sealing.Load())
	w.ops.Add(1)
	return rs[0]
}

func (w *workload) worker(stop <-chan struct{}, seed uint64) {
	ctx := context.Background()
	var mine []wblock
	for i := uint64(0); ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		o := newOwned(w.t, w.size)
		if r := w.apply(o.put(w.buckets[0])); r.Status != blobstore.StatusCreated {
			w.t.Errorf("create: %s", r.Status)
			return
		}
		got, e, err := w.s.Read(ctx, o.id, nil)
		if err != nil || string(got) != string(o.data) {
			w.t.Errorf("a block created a moment ago does not read back: %v", err)
			return
		}
		mine = append(mine, wblock{o, e})
		if len(mine) < 4 {
			continue
		}
		k := int((seed + i) % uint64(len(mine)))
		switch i % 3 {
		case 0: // overwrite
			b := &mine[k]
			b.o.data = randBlock(w.t, w.size)
			e := b.etag
			op := b.o.put(w.buckets[0])
			op.Cond.IfMatch = &e
			if r := w.apply(op); r.Status != blobstore.StatusReplaced {
				w.t.Errorf("overwrite: %s", r.Status)
				return
			}
			got, e, err := w.s.Read(ctx, b.o.id, nil)
			if err != nil || string(got) != string(b.o.data) {
				w.t.Errorf("an overwrite a moment ago does not read back: %v", err)
				return
			}
			b.etag = e
		case 1: // renew into the other bucket
			b := mine[k]
			if r := w.apply(b.o.renew(w.buckets[1])); r.Status != blobstore.StatusRenewed && r.Status != blobstore.StatusCurrent {
				w.t.Errorf("renew: %s", r.Status)
				return
			}
			if e, err := w.s.Stat(ctx, b.o.id); err != nil || e != b.etag {
				w.t.Errorf("a renewed block does not stat with its ETag: %v", err)
				return
			}
		case 2: // delete
			b := mine[k]
			if r := w.apply(b.o.del()); r.Status != blobstore.StatusDeleted {
				w.t.Errorf("delete: %s", r.Status)
				return
			}
			if _, _, err := w.s.Read(ctx, b.o.id, nil); !blobstore.IsNotFound(err) {
				w.t.Errorf("a block deleted a moment ago reads: %v", err)
				return
			}
			mine = slices.Delete(mine, k, k+1)
		}
	}
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestWorkGoesOnDuringSeal seals a hot side of 12 MB while clients
// create, overwrite, renew, delete and read back: every read sees the
// write before it, and writes keep completing while the seal runs (the
// seal holds writers back only for its switch and its TRUNCATE). The
// medians are logged; BenchmarkWritesDuringSeal measures them properly.
func TestWorkGoesOnDuringSeal(t *testing.T) {
	url := pgtest.URL(t)
	const size = 16384
	p := testParams()
	p.BlockSize = size
	s, err := Open(context.Background(), url, p, Options{Logger: quietLogger(), MaxConns: 12})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := &workload{t: t, s: s, size: size, buckets: [2]bucketer.Bucket{randBucket(t), randBucket(t)}}
	fill := func(n int) {
		for i := 0; i < n; i += 64 {
			var ops []blobstore.Op
			for j := 0; j < 64; j++ {
				ops = append(ops, newOwned(t, size).put(w.buckets[0]))
			}
			mustApply(t, s, ops...)
		}
	}
	fill(768)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var seed [1]byte
			rand.Read(seed[:])
			w.worker(stop, uint64(seed[0]))
		}()
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
	checkSealed(t, connect(t, url))
}
