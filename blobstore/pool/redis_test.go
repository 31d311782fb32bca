package pool

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/postgres"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/internal/pgtest"
	"github.com/blindstore/blindstore/internal/redistest"
	"github.com/blindstore/blindstore/wire"
	"github.com/redis/go-redis/v9"
)

// fencedCall is one ApplyFenced as the observer saw it.
type fencedCall struct {
	token [16]byte
	ids   []wire.ID
	err   error
}

// fencedObserver passes every call to a real PostgreSQL store and
// records the fenced commits.
type fencedObserver struct {
	*postgres.Store
	mu    sync.Mutex
	calls []fencedCall
}

func (o *fencedObserver) ApplyFenced(ctx context.Context, token, prev, batch [16]byte, ops []blobstore.Op) ([]blobstore.Result, error) {
	rs, err := o.Store.ApplyFenced(ctx, token, prev, batch, ops)
	c := fencedCall{token: token, err: err}
	for i := range ops {
		c.ids = append(c.ids, ops[i].ID)
	}
	o.mu.Lock()
	o.calls = append(o.calls, c)
	o.mu.Unlock()
	return rs, err
}

func (o *fencedObserver) snapshot() []fencedCall {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]fencedCall(nil), o.calls...)
}

// redisEnv is one deployment: a PostgreSQL database and a key prefix in
// the test Redis, shared by the pools a test starts.
type redisEnv struct {
	t      *testing.T
	rc     *redis.Client
	prefix string
	url    string
	bk     *bucketer.Bucketer
	store  *postgres.Store
}

func newRedisEnv(t *testing.T) *redisEnv {
	rc := redistest.Client(t)
	e := &redisEnv{t: t, rc: rc, prefix: redistest.Prefix(t, rc), url: pgtest.URL(t), bk: testBucketer(t)}
	e.store = openPostgresAt(t, e.url, e.bk)
	return e
}

// pool starts one instance's pool, with its own connection pool to the
// database as a separate instance would have.
func (e *redisEnv) pool(opt RedisOptions, h hooks) (*RedisPool, *fencedObserver) {
	obs := &fencedObserver{Store: openPostgresAt(e.t, e.url, e.bk)}
	opt.Prefix = e.prefix
	if opt.Logger == nil {
		opt.Logger = quietLogger()
	}
	p, err := newRedis(context.Background(), e.rc, obs, opt, h)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { p.Close() })
	return p, obs
}

func (e *redisEnv) put(ctx context.Context, p *RedisPool, o owned) (blobstore.Result, error) {
	rs, err := p.Commit(ctx, []blobstore.Op{o.put(e.bk.CurrentBucket(), blobstore.Cond{})})
	if err != nil {
		return blobstore.Result{}, err
	}
	return rs[0], nil
}

func waitLeading(t *testing.T, p *RedisPool) {
	t.Helper()
	waitFor(t, p.leading.Load)
}

// keysLeft lists the keys under the env's prefix, except the lock and the
// answer lists (which expire by themselves).
func (e *redisEnv) pendingKeys(t *testing.T) []string {
	keys, err := e.rc.Keys(context.Background(), e.prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range keys {
		switch k[len(e.prefix):] {
		case "lock", "qops", "qbytes", "bell":
			continue
		}
		if len(k) > len(e.prefix)+4 && k[len(e.prefix):len(e.prefix)+4] == "res:" {
			continue
		}
		out = append(out, k[len(e.prefix):])
	}
	return out
}

// Three instances' pools share one queue: a batch holds requests of all
// three, every request gets its own results, and the pool keeps nothing
// once they are answered.
func TestRedisPoolMixesInstances(t *testing.T) {
	e := newRedisEnv(t)
	var pools []*RedisPool
	var obs []*fencedObserver
	for range 3 {
		p, o := e.pool(RedisOptions{Options: Options{Window: 150 * time.Millisecond}}, hooks{})
		pools = append(pools, p)
		obs = append(obs, o)
	}
	ctx := context.Background()
	from := map[wire.ID]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, p := range pools {
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				o := newOwned(t)
				mu.Lock()
				from[o.id] = i
				mu.Unlock()
				r, err := e.put(ctx, p, o)
				if err != nil || r.Status != blobstore.StatusCreated || r.ETag != o.etag() {
					t.Errorf("pool %d: %v, %v", i, r, err)
				}
				// A second request on the same block, through another
				// instance: its result depends on the first's commit.
				rs, err := pools[(i+1)%3].Commit(ctx, []blobstore.Op{o.del(ifMatch(o.etag()))})
				if err != nil || rs[0].Status != blobstore.StatusDeleted {
					t.Errorf("delete through pool %d: %v, %v", (i+1)%3, rs, err)
				}
			}()
		}
	}
	wg.Wait()
	mixed := 0
	for _, o := range obs {
		for _, c := range o.snapshot() {
			seen := map[int]bool{}
			for _, id := range c.ids {
				seen[from[id]] = true
			}
			if len(seen) == 3 {
				mixed++
			}
		}
	}
	if mixed == 0 {
		t.Fatalf("no commit mixed the requests of the three instances")
	}
	if left := e.pendingKeys(t); len(left) != 0 {
		t.Fatalf("keys left in Redis after every request was answered: %v", left)
	}
}

// A flusher that dies after taking a batch, before committing it: the
// next flusher commits the batch and answers its requests.
func TestRedisPoolDeadFlusherBeforeCommit(t *testing.T) {
	e := newRedisEnv(t)
	taken := make(chan struct{})
	var once sync.Once
	a, _ := e.pool(RedisOptions{Options: Options{Window: 50 * time.Millisecond}, LockTTL: 300 * time.Millisecond}, hooks{
		beforeCommit: func(ctx context.Context) {
			once.Do(func() { close(taken) })
			<-ctx.Done()
		},
	})
	waitLeading(t, a)
	b, obsB := e.pool(RedisOptions{Options: Options{Window: 50 * time.Millisecond}, LockTTL: 300 * time.Millisecond}, hooks{})

	blocks := []owned{newOwned(t), newOwned(t), newOwned(t)}
	type answer struct {
		r   blobstore.Result
		err error
	}
	answers := make(chan answer, len(blocks))
	for _, o := range blocks {
		go func() {
			r, err := e.put(context.Background(), b, o)
			answers <- answer{r, err}
		}()
	}
	<-taken
	a.kill()
	for range blocks {
		an := <-answers
		if an.err != nil || an.r.Status != blobstore.StatusCreated {
			t.Fatalf("a request of the dead flusher's batch: %v, %v", an.r, an.err)
		}
	}
	for _, o := range blocks {
		if _, etag, err := e.store.Read(context.Background(), o.id, nil); err != nil || etag != o.etag() {
			t.Fatalf("block of the finished batch: %v", err)
		}
	}
	if len(obsB.snapshot()) == 0 {
		t.Fatalf("the next flusher committed nothing")
	}
}

// A flusher that dies after committing, before answering: the next one
// finds the batch committed, applies nothing again, and answers 503.
func TestRedisPoolDeadFlusherAfterCommit(t *testing.T) {
	e := newRedisEnv(t)
	committed := make(chan struct{})
	var once sync.Once
	var armed atomic.Bool
	a, obsA := e.pool(RedisOptions{Options: Options{Window: 300 * time.Millisecond}, LockTTL: 300 * time.Millisecond}, hooks{
		afterCommit: func(ctx context.Context) {
			if !armed.Load() {
				return
			}
			once.Do(func() { close(committed) })
			<-ctx.Done()
		},
	})
	waitLeading(t, a)
	b, obsB := e.pool(RedisOptions{Options: Options{Window: 50 * time.Millisecond}, LockTTL: 300 * time.Millisecond}, hooks{})

	// Two devices race compare-and-swaps on block x: x→xa and xa→xb,
	// in one batch. Applied once the pair leaves xb or xa, depending on
	// the batch's order; replayed on xa, it can go on to xb. The state
	// right after the commit must be the state after the takeover.
	x := newOwned(t)
	if _, err := e.put(context.Background(), b, x); err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	xa, xb := x.withData(t), x.withData(t)
	errs := make(chan error, 2)
	go func() {
		_, err := b.Commit(context.Background(), []blobstore.Op{xa.put(e.bk.CurrentBucket(), ifMatch(x.etag()))})
		errs <- err
	}()
	go func() {
		_, err := b.Commit(context.Background(), []blobstore.Op{xb.put(e.bk.CurrentBucket(), ifMatch(xa.etag()))})
		errs <- err
	}()
	<-committed
	_, state, err := e.store.Read(context.Background(), x.id, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.kill()
	for range 2 {
		err := <-errs
		if wire.KindOf(err) != wire.KindUnavailable {
			t.Fatalf("a request of a committed but unanswered batch: %v, want 503", err)
		}
	}
	_, after, err := e.store.Read(context.Background(), x.id, nil)
	if err != nil || after != state {
		t.Fatalf("the batch was applied again: state changed after the takeover (%v)", err)
	}
	var committedAgain bool
	for _, c := range obsB.snapshot() {
		var fe *postgres.FenceError
		if errors.As(c.err, &fe) && fe.BatchCommitted() {
			committedAgain = true
		}
	}
	if !committedAgain {
		t.Fatalf("the next flusher did not find the batch committed")
	}
	if len(obsA.snapshot()) == 0 {
		t.Fatalf("the dead flusher committed nothing: the test tested nothing")
	}
}

// A flusher that is paused (no renewals, no progress) after taking a
// batch, and resumes after another took over: its commit is fenced, and
// the batch is committed once, by the other.
func TestRedisPoolPausedFlusherIsFenced(t *testing.T) {
	e := newRedisEnv(t)
	paused := make(chan struct{})
	resume := make(chan struct{})
	var once sync.Once
	a, obsA := e.pool(RedisOptions{Options: Options{Window: 50 * time.Millisecond}, LockTTL: 300 * time.Millisecond}, hooks{
		noRenew: true,
		beforeCommit: func(ctx context.Context) {
			once.Do(func() {
				close(paused)
				<-resume
			})
		},
	})
	waitLeading(t, a)
	b, obsB := e.pool(RedisOptions{Options: Options{Window: 50 * time.Millisecond}, LockTTL: 300 * time.Millisecond}, hooks{})

	o := newOwned(t)
	res := make(chan error, 1)
	go func() {
		r, err := e.put(context.Background(), b, o)
		if err == nil && r.Status != blobstore.StatusCreated {
			err = errors.New("status " + r.Status.String())
		}
		res <- err
	}()
	<-paused
	if err := <-res; err != nil {
		t.Fatalf("the request, finished by the other flusher: %v", err)
	}
	close(resume)
	waitFor(t, func() bool { return len(obsA.snapshot()) > 0 })
	ca := obsA.snapshot()[0]
	var fe *postgres.FenceError
	if !errors.As(ca.err, &fe) || !fe.Fenced() {
		t.Fatalf("the paused flusher's commit: %v, want fenced", ca.err)
	}
	if n := len(obsB.snapshot()); n != 1 || obsB.snapshot()[0].err != nil {
		t.Fatalf("the other flusher's commits: %+v", obsB.snapshot())
	}
	waitFor(t, func() bool { return !a.leading.Load() })
}

// Requests that cannot be committed in time are withdrawn while no
// flusher has taken them: ctx's error, and nothing left in Redis.
func TestRedisPoolWithdraws(t *testing.T) {
	e := newRedisEnv(t)
	p, obs := e.pool(RedisOptions{Options: Options{Window: time.Minute}, AckTimeout: 300 * time.Millisecond}, hooks{})
	waitLeading(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := e.put(ctx, p, newOwned(t)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a request whose context ended while queued: %v", err)
	}
	start := time.Now()
	_, err := e.put(context.Background(), p, newOwned(t))
	if wire.KindOf(err) != wire.KindUnavailable || time.Since(start) > 5*time.Second {
		t.Fatalf("a request past the acknowledgement timeout: %v after %v", err, time.Since(start))
	}
	if left := e.pendingKeys(t); len(left) != 0 {
		t.Fatalf("withdrawn requests left keys: %v", left)
	}
	if len(obs.snapshot()) != 0 {
		t.Fatalf("a withdrawn request was committed")
	}
}

// The per-request results of TestPoolAnswersEachRequestWithItsOwnResults,
// through two instances, and a clean Close that hands the lock over.
func TestRedisPoolResultsAndHandover(t *testing.T) {
	e := newRedisEnv(t)
	p1, _ := e.pool(RedisOptions{Options: Options{Window: 20 * time.Millisecond}}, hooks{})
	waitLeading(t, p1)
	p2, _ := e.pool(RedisOptions{Options: Options{Window: 20 * time.Millisecond}}, hooks{})
	ctx := context.Background()
	b := e.bk.CurrentBucket()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := []*RedisPool{p1, p2}[w%2]
			x := newOwned(t)
			x2 := x.withData(t)
			rs, err := p.Commit(ctx, []blobstore.Op{x.put(b, createOnly), x2.put(b, ifMatch(x.etag())), x2.renew(b), x.put(b, createOnly)})
			want := []blobstore.Status{blobstore.StatusCreated, blobstore.StatusReplaced, blobstore.StatusCurrent, blobstore.StatusPrecondition}
			if err != nil {
				t.Errorf("writer %d: %v", w, err)
				return
			}
			for i := range want {
				if rs[i].Status != want[i] {
					t.Errorf("writer %d op %d: %v, want %v", w, i, rs[i].Status, want[i])
				}
			}
			if rs[3].ETag != x2.etag() {
				t.Errorf("writer %d: a failed create-only put must carry the current ETag", w)
			}
		}()
	}
	wg.Wait()
	// Closing the flusher hands the lock to the other at once, not after
	// its TTL.
	start := time.Now()
	p1.Close()
	waitLeading(t, p2)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("handover took %v", d)
	}
	if _, err := e.put(ctx, p2, newOwned(t)); err != nil {
		t.Fatal(err)
	}
}

// Quorum in the shared pool: requests from two instances that reach it
// are committed without waiting for the window.
func TestRedisPoolQuorum(t *testing.T) {
	e := newRedisEnv(t)
	opt := RedisOptions{Options: Options{Window: time.Minute, Quorum: 6}}
	a, _ := e.pool(opt, hooks{})
	b, _ := e.pool(opt, hooks{})
	ctx := context.Background()
	done := make(chan error, 6)
	for i := range 6 {
		p := a
		if i%2 == 1 {
			p = b
		}
		go func() {
			_, err := e.put(ctx, p, newOwned(t))
			done <- err
		}()
	}
	awaitQuorum(t, done, 6, 20*time.Second)
}
