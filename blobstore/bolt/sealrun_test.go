package bolt

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
)

// workload is what clients do while a seal runs: each worker creates a
// block and reads it back at once, overwrites one of its blocks and
// reads it back, renews one and checks it, deletes one and checks it is
// gone: read-your-writes on blocks the seal may be rewriting.
type workload struct {
	t       *testing.T
	f       *fixture
	buckets [2]bucketer.Bucket

	sealing atomic.Bool
	mu      sync.Mutex
	during  []time.Duration // write latencies while a seal ran
	outside []time.Duration // and while none did
	ops     atomic.Int64
}

type wblock struct {
	b    testBlock
	data []byte
	etag blobstore.ETag
}

func (w *workload) apply(op blobstore.Op) blobstore.Result {
	sealing := w.sealing.Load()
	t0 := time.Now()
	rs, err := w.f.s.Apply(context.Background(), []blobstore.Op{op})
	d := time.Since(t0)
	if err != nil {
		w.t.Errorf("%s during the workload: %v", op.Kind, err)
		return blobstore.Result{}
	}
	w.mu.Lock()
	if sealing && w.sealing.Load() {
		w.during = append(w.during, d)
	} else {
		w.outside = append(w.outside, d)
	}
	w.mu.Unlock()
	w.ops.Add(1)
	return rs[0]
}

func (w *workload) put(b testBlock, data []byte, c blobstore.Cond) blobstore.Op {
	return blobstore.Op{Kind: blobstore.OpPut, ID: b.id, ProofHash: b.w.Hash(), Data: data, ETag: blobstore.ETagOf(data), Bucket: w.buckets[0], Cond: c}
}

func (w *workload) data() []byte {
	d := make([]byte, w.f.p.BlockSize)
	rand.Read(d)
	return d
}

func (w *workload) worker(stop <-chan struct{}, seed uint64) {
	ctx := context.Background()
	s := w.f.s
	var mine []wblock
	for i := uint64(0); ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		b, d := newTestBlock(), w.data()
		if r := w.apply(w.put(b, d, blobstore.Cond{})); r.Status != blobstore.StatusCreated {
			w.t.Errorf("create: %s", r.Status)
			return
		}
		got, e, err := s.Read(ctx, b.id, nil)
		if err != nil || string(got) != string(d) {
			w.t.Errorf("a block created a moment ago does not read back: %v", err)
			return
		}
		mine = append(mine, wblock{b, d, e})
		if len(mine) < 4 {
			continue
		}
		k := int((seed + i) % uint64(len(mine)))
		switch i % 3 {
		case 0:
			x := &mine[k]
			x.data = w.data()
			e := x.etag
			if r := w.apply(w.put(x.b, x.data, blobstore.Cond{IfMatch: &e})); r.Status != blobstore.StatusReplaced {
				w.t.Errorf("overwrite: %s", r.Status)
				return
			}
			got, e, err := s.Read(ctx, x.b.id, nil)
			if err != nil || string(got) != string(x.data) {
				w.t.Errorf("an overwrite a moment ago does not read back: %v", err)
				return
			}
			x.etag = e
		case 1:
			x := mine[k]
			if r := w.apply(renewOp(x.b, w.buckets[1])); r.Status != blobstore.StatusRenewed && r.Status != blobstore.StatusCurrent {
				w.t.Errorf("renew: %s", r.Status)
				return
			}
			if e, err := s.Stat(ctx, x.b.id); err != nil || e != x.etag {
				w.t.Errorf("a renewed block does not stat with its ETag: %v", err)
				return
			}
		case 2:
			x := mine[k]
			if r := w.apply(blobstore.Op{Kind: blobstore.OpDelete, ID: x.b.id, ProofHash: x.b.w.Hash()}); r.Status != blobstore.StatusDeleted {
				w.t.Errorf("delete: %s", r.Status)
				return
			}
			if _, _, err := s.Read(ctx, x.b.id, nil); !blobstore.IsNotFound(err) {
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

// TestWorkGoesOnDuringSeal seals 12 MB of unsealed blocks while clients
// create, overwrite, renew, delete and read back: every read sees the
// write before it, and writes keep completing while the seal runs (it
// commits in small steps, and writers' commits come between them).
func TestWorkGoesOnDuringSeal(t *testing.T) {
	f := newFixture(t, 16384)
	w := &workload{t: t, f: f, buckets: [2]bucketer.Bucket{f.bk.Bucket(1), f.bk.Bucket(2)}}
	fill := func(n int) {
		for i := 0; i < n; i += 64 {
			var ops []blobstore.Op
			for j := 0; j < 64; j++ {
				ops = append(ops, w.put(newTestBlock(), w.data(), blobstore.Cond{}))
			}
			f.apply(ops...)
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
	time.Sleep(150 * time.Millisecond)
	var during int64
	for round := 0; round < 2; round++ {
		before := w.ops.Load()
		w.sealing.Store(true)
		rep, err := f.s.Seal(context.Background())
		w.sealing.Store(false)
		if err != nil {
			t.Fatal(err)
		}
		during += w.ops.Load() - before
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
		t.Errorf("only %d writes completed during the seals: writers wait for the seal", during)
	}
	if _, err := f.s.Seal(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st, err := f.s.SealStats(context.Background()); err != nil || st.Blocks != 0 {
		t.Errorf("after a quiet seal: %+v, %v", st, err)
	}
	checkFile(t, f.s)
}
