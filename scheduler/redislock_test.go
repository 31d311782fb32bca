package scheduler

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/internal/redistest"
	"github.com/jonboulle/clockwork"
	"github.com/redis/go-redis/v9"
)

// newRedisClient returns a client of its own (an instance's connection)
// to the test Redis.
func newRedisClient(t *testing.T) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

func runLocker(t *testing.T, c redis.UniversalClient, prefix string) *RedisLocker {
	t.Helper()
	l, ok := NewRedisLocker(c, prefix).(*RedisLocker)
	if !ok {
		t.Fatal("NewRedisLocker does not return a *RedisLocker")
	}
	return l
}

// Three instances, each with its own store connection, Redis connection,
// scheduler and fake clock: every tick's purge runs exactly once in
// total, the other two skip it, and the blocks that expire are deleted
// once. "together": the clocks move at the same instant, so the three
// race for each run. "staggered": each tick reaches one instance after
// another, each only once the previous one is done with the run (an
// instance with a slow clock or a busy machine), and a lock that was
// free again after the run would let it run twice.
func TestThreeSchedulersRunEachTickOnce(t *testing.T) {
	for _, staggered := range []bool{false, true} {
		name := "together"
		if staggered {
			name = "staggered"
		}
		t.Run(name, func(t *testing.T) { threeSchedulers(t, staggered) })
	}
}

func threeSchedulers(t *testing.T, staggered bool) {
	const instances, ticks = 3, 5
	o := stores()[1] // PostgreSQL: each instance opens its own store
	prefix := redistest.Prefix(t, redistest.Client(t))
	start := t0.Add(30 * time.Minute)
	key := newKey(t)
	rec := &recorder{}
	var ds []*deployment
	var purgers []*Purger
	for i := 0; i < instances; i++ {
		clock := clockwork.NewFakeClockAt(start)
		if i > 0 && !staggered {
			clock = ds[0].clock
		}
		d := &deployment{clock: clock, key: key, bk: newBucketer(t, key, clock)}
		d.store = o.open(t, blobstore.Params{BlockSize: testBlockSize, Fingerprint: d.bk.Fingerprint()})
		svc, err := blobstore.NewService(blobstore.ServiceConfig{Store: d.store, Bucketer: d.bk, BlockSize: testBlockSize})
		if err != nil {
			t.Fatal(err)
		}
		d.svc = svc
		ds = append(ds, d)
		purgers = append(purgers, d.purger(t, PurgerConfig{}))
	}
	first := ds[0]
	p0 := first.bk.Current()
	// Some blocks expire at each of the ticks p0+3 and p0+4; the rest are
	// renewed.
	kept := first.put(t, 6)
	expireAt3 := first.putAt(t, p0, 2)
	expireAt4 := first.putAt(t, p0+1, 3)

	for i := 0; i < instances; i++ {
		startScheduler(t, Config{
			Purger: purgers[i], Clock: ds[i].clock,
			Locker:  NewRedisLocker(newRedisClient(t), prefix),
			OnPurge: rec.onPurge, OnSkip: rec.onSkip,
		})
	}
	rec.wait(t, instances) // the runs at start: one purge in all
	events := instances
	for k := 1; k <= ticks; k++ {
		step := testPeriod
		if k == 1 {
			step = 30 * time.Minute
		}
		if !staggered {
			waitTimers(t, first.clock, instances)
			first.clock.Advance(step)
			events += instances
			rec.wait(t, events)
		} else {
			for j := 0; j < instances; j++ {
				d := ds[(k+j)%instances] // a different instance leads each tick
				waitTimers(t, d.clock, 1)
				d.clock.Advance(step)
				events++
				rec.wait(t, events)
			}
		}
		first.renew(t, kept)
	}

	purges, skips := rec.counts()
	if purges != ticks+1 || skips != instances*(ticks+1)-purges {
		t.Fatalf("%d purges and %d skips for %d runs on %d instances", purges, skips, ticks+1, instances)
	}
	periods := make([]uint64, 0, purges)
	var deleted int64
	for i, rep := range rec.reports {
		if rec.errs[i] != nil {
			t.Fatalf("purge %d: %v", i, rec.errs[i])
		}
		periods = append(periods, rep.Period)
		deleted += rep.Deleted
	}
	sort.Slice(periods, func(i, j int) bool { return periods[i] < periods[j] })
	for i, p := range periods {
		if p != p0+uint64(i) {
			t.Fatalf("purged periods %v, want each of p0=%d … p0+%d once", periods, p0, ticks)
		}
	}
	for _, err := range rec.skips {
		if !errors.Is(err, ErrRunTaken) {
			t.Fatalf("a skip for another reason than a taken run: %v", err)
		}
	}
	if deleted != 5 || first.present(t, expireAt3)+first.present(t, expireAt4) != 0 || first.present(t, kept) != 6 {
		t.Fatalf("deleted %d blocks in all, want 5, and the 6 renewed ones kept", deleted)
	}
	var runs uint64
	for _, p := range purgers {
		runs += p.Counters().Runs
	}
	if runs != ticks+1 {
		t.Fatalf("the purgers ran %d times in all, want %d", runs, ticks+1)
	}
}

// The claim on a run outlives Unlock: an instance whose timer fires
// after another has finished that run does not run it again. The next
// run is free.
func TestRedisLockerClaimOutlivesUnlock(t *testing.T) {
	ctx := context.Background()
	c := redistest.Client(t)
	prefix := redistest.Prefix(t, c)
	a, b := runLocker(t, newRedisClient(t), prefix), runLocker(t, newRedisClient(t), prefix)
	run := t0
	la, err := a.LockRun(ctx, JobPurge, run, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.LockRun(ctx, JobPurge, run, time.Hour); !errors.Is(err, ErrRunTaken) {
		t.Fatalf("second claim while the first holds it: %v, want ErrRunTaken", err)
	}
	if err := la.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.LockRun(ctx, JobPurge, run, time.Hour); !errors.Is(err, ErrRunTaken) {
		t.Fatalf("late claim after the run ended: %v, want ErrRunTaken", err)
	}
	ttl, err := c.PTTL(ctx, prefix+"run:"+JobPurge+":"+strconv.FormatInt(run.Unix(), 10)).Result()
	if err != nil || ttl < time.Hour+59*time.Minute || ttl > 2*time.Hour {
		t.Fatalf("claim key TTL = %v (%v), want about 2h for an hourly job", ttl, err)
	}
	lb, err := b.LockRun(ctx, JobPurge, run.Add(time.Hour), time.Hour)
	if err != nil {
		t.Fatalf("the next run: %v", err)
	}
	if err := lb.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	// A short interval still keeps its claim at least a minute.
	la, err = a.LockRun(ctx, JobPurge, t0.Add(time.Second), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	la.Unlock(ctx)
	if ttl, err := c.PTTL(ctx, prefix+"run:"+JobPurge+":"+strconv.FormatInt(t0.Add(time.Second).Unix(), 10)).Result(); err != nil || ttl < 59*time.Second {
		t.Fatalf("claim TTL for a 1s job = %v (%v), want at least a minute", ttl, err)
	}
}

// While a run is in progress, no instance starts the next one; the
// in-progress lock is kept alive past its TTL while the holder lives, and
// released by Unlock.
func TestRedisLockerExcludesOverlappingRuns(t *testing.T) {
	saved := holdTTL
	holdTTL = 600 * time.Millisecond
	defer func() { holdTTL = saved }()
	ctx := context.Background()
	prefix := redistest.Prefix(t, redistest.Client(t))
	a, b := runLocker(t, newRedisClient(t), prefix), runLocker(t, newRedisClient(t), prefix)

	la, err := a.LockRun(ctx, JobPurge, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * holdTTL / 2) // past the TTL: only the extension keeps it
	if _, err := b.LockRun(ctx, JobPurge, t0.Add(time.Hour), time.Hour); !errors.Is(err, ErrRunTaken) {
		t.Fatalf("next run while one is in progress: %v, want ErrRunTaken", err)
	}
	if err := la.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	lb, err := b.LockRun(ctx, JobPurge, t0.Add(2*time.Hour), time.Hour)
	if err != nil {
		t.Fatalf("a run after the previous one ended: %v", err)
	}
	// Unlock twice is harmless, and gocron's cancelled job context does
	// not stop the release.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := lb.Unlock(cctx); err != nil {
		t.Fatal(err)
	}
	if err := lb.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := a.Lock(ctx, "other")
	if err != nil {
		t.Fatalf("plain Lock: %v", err)
	}
	if _, err := b.Lock(ctx, "other"); !errors.Is(err, ErrRunTaken) {
		t.Fatalf("plain Lock twice: %v", err)
	}
	l.Unlock(ctx)
	if l, err = b.Lock(ctx, "other"); err != nil {
		t.Fatalf("plain Lock after Unlock: %v", err)
	}
	l.Unlock(ctx)
}

// When Redis cannot be reached, the run is skipped (nobody can say it is
// this instance's) and counted as a locker error, not as another
// instance's run.
func TestSchedulerSkipsWhenLockerIsDown(t *testing.T) {
	d := newDeployment(t, stores()[0], t0.Add(30*time.Minute))
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { down.Close() })
	rec := &recorder{}
	s := startScheduler(t, Config{Purger: d.purger(t, PurgerConfig{}), Clock: d.clock,
		Locker: NewRedisLocker(down, "x:"), OnPurge: rec.onPurge, OnSkip: rec.onSkip})
	rec.wait(t, 1)
	if p, _ := rec.counts(); p != 0 || errors.Is(rec.skips[0], ErrRunTaken) {
		t.Fatalf("with Redis down: %d purges, skip error %v", p, rec.skips[0])
	}
	if st := s.Stats(); st.LockerErrored != 1 || st.PurgeSkipped != 0 || st.PurgeRuns != 0 {
		t.Fatalf("stats = %+v", st)
	}
}
