package pool

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/blindstore/blindstore/internal/wait"
	"github.com/blindstore/blindstore/wire"

	"github.com/blindstore/blindstore/blobstore"
)

// Many concurrent requests, each with outcomes that do not depend on the
// others, committed in shared shuffled batches: every request gets its
// own results, and a request's sequence of ops on one block keeps its
// meaning (put, compare-and-swap, delete in one request).
func TestPoolAnswersEachRequestWithItsOwnResults(t *testing.T) {
	for _, sk := range storeKinds {
		t.Run(sk.name, func(t *testing.T) {
			bk := testBucketer(t)
			st := sk.open(t, bk)
			p := New(st, Options{Window: 20 * time.Millisecond, Logger: quietLogger()})
			defer p.Close()
			ctx := context.Background()
			b := bk.CurrentBucket()
			other := bk.Bucket(bk.Current() - 1)

			type step struct {
				ops  []blobstore.Op
				want []blobstore.Status
			}
			script := func(t *testing.T) []step {
				x, y := newOwned(t), newOwned(t)
				x2, x3 := x.withData(t), x.withData(t)
				stranger := newOwned(t)
				stranger.id = x.id
				return []step{
					{[]blobstore.Op{x.put(b, createOnly)}, []blobstore.Status{blobstore.StatusCreated}},
					{[]blobstore.Op{x.put(b, createOnly)}, []blobstore.Status{blobstore.StatusPrecondition}},
					{[]blobstore.Op{stranger.put(b, blobstore.Cond{})}, []blobstore.Status{blobstore.StatusForbidden}},
					// One request: replace, compare-and-swap on the new
					// ETag, then renew: only correct in this order.
					{[]blobstore.Op{x2.put(b, ifMatch(x.etag())), x3.put(b, ifMatch(x2.etag())), y.put(other, blobstore.Cond{}), x3.renew(b), y.renew(b)},
						[]blobstore.Status{blobstore.StatusReplaced, blobstore.StatusReplaced, blobstore.StatusCreated, blobstore.StatusCurrent, blobstore.StatusRenewed}},
					{[]blobstore.Op{x3.del(ifMatch(x.etag()))}, []blobstore.Status{blobstore.StatusPrecondition}},
					{[]blobstore.Op{y.del(blobstore.Cond{}), y.put(b, createOnly), y.del(ifMatch(y.etag())), y.del(blobstore.Cond{})},
						[]blobstore.Status{blobstore.StatusDeleted, blobstore.StatusCreated, blobstore.StatusDeleted, blobstore.StatusNotFound}},
					{[]blobstore.Op{x3.del(ifMatch(x3.etag()))}, []blobstore.Status{blobstore.StatusDeleted}},
				}
			}
			const writers = 24
			var wg sync.WaitGroup
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i, s := range script(t) {
						rs, err := p.Commit(ctx, s.ops)
						if err != nil {
							t.Errorf("writer %d step %d: %v", w, i, err)
							return
						}
						for j := range s.want {
							if rs[j].Status != s.want[j] {
								t.Errorf("writer %d step %d op %d: %v, want %v", w, i, j, rs[j].Status, s.want[j])
							}
						}
					}
				}()
			}
			wg.Wait()
			st2, err := st.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st2.Blocks != 0 {
				t.Fatalf("every block was deleted in the end, the store holds %d", st2.Blocks)
			}
		})
	}
}

// A request returns only once the commit that holds it has returned, and
// what it wrote is then readable from the store.
func TestPoolAnswersOnlyAfterCommit(t *testing.T) {
	for _, sk := range storeKinds {
		t.Run(sk.name, func(t *testing.T) {
			bk := testBucketer(t)
			st := sk.open(t, bk)
			obs := &observer{Applier: st}
			p := New(obs, Options{Window: 10 * time.Millisecond, Logger: quietLogger()})
			defer p.Close()
			ctx := context.Background()
			var wg sync.WaitGroup
			for range 40 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					o := newOwned(t)
					if _, err := p.Commit(ctx, []blobstore.Op{o.put(bk.CurrentBucket(), blobstore.Cond{})}); err != nil {
						t.Error(err)
						return
					}
					answered := time.Now()
					// Read before looking at the observer: the block must
					// already be there, with no help from anyone.
					_, etag, err := st.Read(ctx, o.id, nil)
					if err != nil || etag != o.etag() {
						t.Errorf("read after the answer: %v (etag ok %v)", err, etag == o.etag())
						return
					}
					obsv := obs.snapshot()
					i := applyOf(obsv, o.id)
					if i < 0 {
						t.Errorf("answered, but no commit holds the block")
						return
					}
					if answered.Before(obsv[i].end) {
						t.Errorf("answered %v before its commit returned", obsv[i].end.Sub(answered))
					}
				}()
			}
			wg.Wait()
			if n := len(obs.snapshot()); n >= 40 {
				t.Errorf("40 concurrent requests took %d commits: nothing was grouped", n)
			}
		})
	}
}

// The window: a lone request waits for it; requests arriving within it
// share one commit; with no window a lone request is committed at once.
func TestPoolWindow(t *testing.T) {
	bk := testBucketer(t)
	st := openBolt(t, bk)
	ctx := context.Background()
	put := func(p *Pool) time.Duration {
		o := newOwned(t)
		start := time.Now()
		if _, err := p.Commit(ctx, []blobstore.Op{o.put(bk.CurrentBucket(), blobstore.Cond{})}); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}

	const window = 150 * time.Millisecond
	obs := &observer{Applier: st}
	p := New(obs, Options{Window: window, Logger: quietLogger()})
	defer p.Close()
	if d := put(p); d < window || d > window+time.Second {
		t.Errorf("a lone request took %v with a %v window", d, window)
	}
	before := len(obs.snapshot())
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 5 * time.Millisecond) // all within the window
			put(p)
		}()
	}
	wg.Wait()
	if n := len(obs.snapshot()) - before; n != 1 {
		t.Errorf("10 requests within one window took %d commits, want 1", n)
	}

	p0 := New(st, Options{Window: NoWindow, Logger: quietLogger()})
	defer p0.Close()
	if d := put(p0); d > 100*time.Millisecond {
		t.Errorf("with no window a lone request took %v", d)
	}
}

// Caps: a batch reaching MaxOps or MaxBytes is committed without waiting
// for the window, and no commit holds more than the cap.
func TestPoolCaps(t *testing.T) {
	bk := testBucketer(t)
	st := openBolt(t, bk)
	ctx := context.Background()
	for _, c := range []struct {
		name          string
		maxOps, maxBy int
		perCommit     int
	}{
		{"ops", 10, 0, 10},
		{"bytes", 0, 4 * testBlockSize, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			obs := &observer{Applier: st}
			p := New(obs, Options{Window: time.Minute, MaxOps: c.maxOps, MaxBytes: c.maxBy, Logger: quietLogger()})
			start := time.Now()
			var wg sync.WaitGroup
			for range 3 * c.perCommit {
				wg.Add(1)
				go func() {
					defer wg.Done()
					o := newOwned(t)
					if _, err := p.Commit(ctx, []blobstore.Op{o.put(bk.CurrentBucket(), blobstore.Cond{})}); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("full batches waited %v for a one-minute window", d)
			}
			p.Close()
			for i, ob := range obs.snapshot() {
				if len(ob.ids) > c.perCommit {
					t.Errorf("commit %d holds %d ops, over the cap of %d", i, len(ob.ids), c.perCommit)
				}
			}
			if n := len(obs.snapshot()); n != 3 {
				t.Errorf("%d requests at a cap of %d took %d commits, want 3", 3*c.perCommit, c.perCommit, n)
			}
		})
	}
	// One request over the cap is committed whole, alone.
	obs := &observer{Applier: st}
	p := New(obs, Options{Window: NoWindow, MaxOps: 2, Logger: quietLogger()})
	defer p.Close()
	ops := []blobstore.Op{newOwned(t).put(bk.CurrentBucket(), blobstore.Cond{}), newOwned(t).put(bk.CurrentBucket(), blobstore.Cond{}), newOwned(t).put(bk.CurrentBucket(), blobstore.Cond{})}
	if rs, err := p.Commit(ctx, ops); err != nil || len(rs) != 3 {
		t.Fatalf("a request over the cap: %v, %v", rs, err)
	}
	if obsv := obs.snapshot(); len(obsv) != 1 || len(obsv[0].ids) != 3 {
		t.Fatalf("a request over the cap was split: %d commits", len(obsv))
	}
}

// Group commit: requests that arrive while a commit is in flight are
// gathered and committed together in the next one.
func TestPoolGathersWhileCommitting(t *testing.T) {
	bk := testBucketer(t)
	st := openPostgres(t, bk)
	obs := &observer{Applier: st, gate: make(chan struct{}), started: make(chan struct{}, 16)}
	p := New(obs, Options{Window: NoWindow, Logger: quietLogger()})
	defer p.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	commit := func() {
		defer wg.Done()
		if _, err := p.Commit(ctx, []blobstore.Op{newOwned(t).put(bk.CurrentBucket(), blobstore.Cond{})}); err != nil {
			t.Error(err)
		}
	}
	wg.Add(1)
	go commit()
	<-obs.started // the first commit is in flight, held at the gate
	for range 20 {
		wg.Add(1)
		go commit()
	}
	waitFor(t, func() bool { p.mu.Lock(); defer p.mu.Unlock(); return len(p.queue) == 20 })
	obs.gate <- struct{}{}
	<-obs.started
	obs.gate <- struct{}{}
	wg.Wait()
	obsv := obs.snapshot()
	if len(obsv) != 2 || len(obsv[0].ids) != 1 || len(obsv[1].ids) != 20 {
		sizes := []int{}
		for _, o := range obsv {
			sizes = append(sizes, len(o.ids))
		}
		t.Fatalf("commit sizes %v, want [1 20]", sizes)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	if wait.For(5*time.Second, 2*time.Millisecond, cond) != nil {
		t.Fatal("condition not reached in 5 s")
	}
}

// A request whose context ends while it waits is dropped and never
// written; one whose context ends after it was taken is committed and
// its caller gets the outcome.
func TestPoolContextEnds(t *testing.T) {
	bk := testBucketer(t)
	st := openBolt(t, bk)
	obs := &observer{Applier: st, gate: make(chan struct{}), started: make(chan struct{}, 4)}
	p := New(obs, Options{Window: 200 * time.Millisecond, Logger: quietLogger()})
	defer p.Close()

	dropped := newOwned(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := p.Commit(ctx, []blobstore.Op{dropped.put(bk.CurrentBucket(), blobstore.Cond{})})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a request whose context ended while queued: %v", err)
	}

	taken := newOwned(t)
	ctx2, cancel2 := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var rs []blobstore.Result
	go func() {
		var err error
		rs, err = p.Commit(ctx2, []blobstore.Op{taken.put(bk.CurrentBucket(), blobstore.Cond{})})
		done <- err
	}()
	<-obs.started // taken, its commit held at the gate
	cancel2()
	select {
	case err := <-done:
		t.Fatalf("a taken request returned before its commit: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	obs.gate <- struct{}{}
	if err := <-done; err != nil || rs[0].Status != blobstore.StatusCreated {
		t.Fatalf("a taken request whose context ended: %v, %v; want its result", rs, err)
	}
	if applyOf(obs.snapshot(), dropped.id) >= 0 {
		t.Fatalf("a dropped request reached the store")
	}
	if _, err := st.Stat(context.Background(), dropped.id); !blobstore.IsNotFound(err) {
		t.Fatalf("a dropped request was written: %v", err)
	}
}

// A store failure fails every request of the batch with the store's
// error; Close commits what waits and refuses what comes after.
func TestPoolStoreErrorAndClose(t *testing.T) {
	bk := testBucketer(t)
	st := openBolt(t, bk)
	p := New(st, Options{Window: time.Minute, Logger: quietLogger()})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := p.Commit(ctx, []blobstore.Op{newOwned(t).put(bk.CurrentBucket(), blobstore.Cond{})})
			errs <- err
		}()
	}
	waitFor(t, func() bool { p.mu.Lock(); defer p.mu.Unlock(); return len(p.queue) == 8 })
	start := time.Now()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a request waiting at Close: %v", err)
		}
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Close waited %v for the window", d)
	}
	if _, err := p.Commit(ctx, []blobstore.Op{newOwned(t).put(bk.CurrentBucket(), blobstore.Cond{})}); !errors.Is(err, ErrClosed) {
		t.Errorf("Commit after Close: %v", err)
	}

	// A closed store: the batch fails as a whole, for each request.
	p2 := New(st, Options{Window: 30 * time.Millisecond, Logger: quietLogger()})
	defer p2.Close()
	st.Close()
	var failed sync.WaitGroup
	for i := range 5 {
		failed.Add(1)
		go func() {
			defer failed.Done()
			rs, err := p2.Commit(ctx, []blobstore.Op{newOwned(t).put(bk.CurrentBucket(), blobstore.Cond{})})
			if err == nil {
				t.Errorf("request %d on a closed store: %v, no error", i, rs)
			}
		}()
	}
	failed.Wait()
}

// The Service through the pool: the HTTP-facing errors stay what they
// are without a pool.
func TestPoolUnderService(t *testing.T) {
	bk := testBucketer(t)
	st := openPostgres(t, bk)
	p := New(st, Options{Window: 5 * time.Millisecond, Logger: quietLogger()})
	defer p.Close()
	svc, err := blobstore.NewService(blobstore.ServiceConfig{Store: st, Bucketer: bk, BlockSize: testBlockSize, Committer: p})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	o := newOwned(t)
	res, err := svc.Put(ctx, blobstore.PutItem{ID: o.id, Proof: o.w, Data: o.data, Cond: createOnly})
	if err != nil || res.Status != blobstore.StatusCreated {
		t.Fatalf("put: %v, %v", res, err)
	}
	_, err = svc.Put(ctx, blobstore.PutItem{ID: o.id, Proof: o.w, Data: o.data, Cond: createOnly})
	if wire.KindOf(err) != wire.KindPrecondition {
		t.Fatalf("second create-only put: %v", err)
	}
	rs, err := svc.Renew(ctx, []blobstore.RenewItem{{ID: o.id, Proof: o.w.Renew()}, {ID: wire.NewID(), Proof: o.w.Renew()}})
	if err != nil || rs[0].Status != blobstore.StatusCurrent || rs[1].Status != blobstore.StatusNotFound {
		t.Fatalf("renew: %v, %v", rs, err)
	}
	if _, err := svc.Delete(ctx, o.id, o.w, blobstore.Cond{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, _, err := svc.Get(ctx, o.id, nil); !blobstore.IsNotFound(err) {
		t.Fatalf("get after delete: %v", err)
	}
}

// Quorum: once that many requests wait, the batch is committed without
// waiting for the window; fewer wait the window.
func TestPoolQuorum(t *testing.T) {
	bk := testBucketer(t)
	st := openBolt(t, bk)
	ctx := context.Background()
	obs := &observer{Applier: st}
	p := New(obs, Options{Window: time.Minute, Quorum: 5, Logger: quietLogger()})
	defer p.Close()
	commit := func(done chan<- error) {
		o := newOwned(t)
		_, err := p.Commit(ctx, []blobstore.Op{o.put(bk.CurrentBucket(), blobstore.Cond{})})
		done <- err
	}
	done := make(chan error, 5)
	for range 4 {
		go commit(done)
	}
	select {
	case err := <-done:
		t.Fatalf("a request below the quorum was committed before its one-minute window: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	go commit(done)
	awaitQuorum(t, done, 5, 10*time.Second)
	if n := len(obs.snapshot()); n != 1 {
		t.Fatalf("a quorum of 5 took %d commits, want 1", n)
	}
}
