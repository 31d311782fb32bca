package scheduler

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/internal/wait"
	"github.com/jonboulle/clockwork"
)

// recorder collects what schedulers report, from any number of them.
type recorder struct {
	mu      sync.Mutex
	reports []Report
	errs    []error
	skips   []error
}

func (r *recorder) onPurge(rep Report, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reports = append(r.reports, rep)
	r.errs = append(r.errs, err)
}

func (r *recorder) onSkip(_ string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.skips = append(r.skips, err)
}

func (r *recorder) counts() (purges, skips int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reports), len(r.skips)
}

// wait waits until the schedulers reported n events (purges and skips
// together) in all, and fails if more arrive or none come in time.
func (r *recorder) wait(t *testing.T, n int) {
	t.Helper()
	var p, s int
	err := wait.For(20*time.Second, 2*time.Millisecond, func() bool {
		p, s = r.counts()
		return p+s >= n
	})
	if err != nil {
		t.Fatalf("after 20s, %d events (%d purges, %d skips), want %d", p+s, p, s, n)
	}
	if p+s > n {
		t.Fatalf("%d events (%d purges, %d skips), want %d", p+s, p, s, n)
	}
	// Let a stray extra event show up before going on.
	time.Sleep(20 * time.Millisecond)
	if p2, s2 := r.counts(); p2+s2 != n {
		t.Fatalf("%d events, want %d", p2+s2, n)
	}
}

func (r *recorder) last(t *testing.T) (Report, error) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reports) == 0 {
		t.Fatal("no purge ran")
	}
	return r.reports[len(r.reports)-1], r.errs[len(r.errs)-1]
}

// waitTimers waits until n scheduler timers are set on the fake clock, so
// that advancing it fires them rather than overtaking them.
func waitTimers(t *testing.T, c *clockwork.FakeClock, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.BlockUntilContext(ctx, n); err != nil {
		t.Fatalf("waiting for %d timers on the fake clock: %v", n, err)
	}
}

func startScheduler(t *testing.T, cfg Config) *Scheduler {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() {
		if err := s.Shutdown(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

// With the defaults (purge every period, here an hour of fake time, and
// R = 3), scheduled purges delete blocks nobody renewed once their period
// leaves the live set, R periods after they were written, and keep the
// blocks that were renewed; each run records its period.
func TestScheduledPurgeExpiresUnrenewedBlocks(t *testing.T) {
	for _, o := range stores() {
		t.Run(o.name, func(t *testing.T) {
			d := newDeployment(t, o, t0.Add(30*time.Minute))
			p0 := d.bk.Current()
			kept, dropped := d.put(t, 3), d.put(t, 2)
			rec := &recorder{}
			pur := d.purger(t, PurgerConfig{})
			s := startScheduler(t, Config{Purger: pur, Clock: d.clock, OnPurge: rec.onPurge, OnSkip: rec.onSkip})
			if s.PurgeEvery() != DefaultPurgeEvery {
				t.Fatalf("PurgeEvery = %v", s.PurgeEvery())
			}

			rec.wait(t, 1) // the run at start
			if rep, err := rec.last(t); err != nil || rep.Period != p0 || rep.Total != 5 || rep.Deleted != 0 {
				t.Fatalf("run at start: %+v, %v", rep, err)
			}
			waitTimers(t, d.clock, 1)
			d.clock.Advance(30 * time.Minute) // to the next period's first instant
			for k := uint64(1); k <= 4; k++ {
				if k > 1 {
					d.clock.Advance(testPeriod)
				}
				rec.wait(t, int(k)+1)
				rep, err := rec.last(t)
				if err != nil || rep.Period != p0+k {
					t.Fatalf("tick %d: %+v, %v", k, rep, err)
				}
				wantDeleted, wantLeft := int64(0), 2
				if k == testRetention {
					wantDeleted = 2
				}
				if k >= testRetention {
					wantLeft = 0
				}
				if rep.Deleted != wantDeleted {
					t.Errorf("tick %d (period p0+%d) deleted %d blocks, want %d", k, k, rep.Deleted, wantDeleted)
				}
				if n := d.present(t, dropped); n != wantLeft {
					t.Errorf("after tick %d, %d unrenewed blocks left, want %d", k, n, wantLeft)
				}
				if h := d.highest(t); h != p0+k {
					t.Errorf("after tick %d the highest period is %d, want %d", k, h, p0+k)
				}
				d.renew(t, kept)
				waitTimers(t, d.clock, 1)
			}
			if n := d.present(t, kept); n != 3 {
				t.Errorf("%d of 3 renewed blocks left", n)
			}
			if st := s.Stats(); st.PurgeRuns != 5 || st.PurgeSkipped != 0 {
				t.Errorf("scheduler stats = %+v, want 5 runs", st)
			}
			if c := pur.Counters(); c.Runs != 5 || c.Deleted != 2 {
				t.Errorf("purger counters = %+v", c)
			}
		})
	}
}

// An instance that starts after two periods of downtime refuses to purge,
// at start and on every tick, and leaves the record alone, until an
// operator confirms the jump once; then the scheduled purges go on.
func TestScheduledPurgeRefusesAfterDowntime(t *testing.T) {
	d := newDeployment(t, stores()[0], t0.Add(5*testPeriod+30*time.Minute))
	cur := d.bk.Current()
	live := d.put(t, 3)
	old := d.putAt(t, cur-3, 1) // expired now, but its owner was never given the chance
	if err := d.store.SetHighestPeriod(context.Background(), cur-2); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	pur := d.purger(t, PurgerConfig{})
	startScheduler(t, Config{Purger: pur, Clock: d.clock, OnPurge: rec.onPurge})
	rec.wait(t, 1)
	waitTimers(t, d.clock, 1)
	d.clock.Advance(30 * time.Minute)
	rec.wait(t, 2)
	for i, err := range rec.errs {
		if !errors.Is(err, ErrClockJump) {
			t.Fatalf("scheduled run %d: %v, want a clock refusal", i, err)
		}
	}
	if h := d.highest(t); h != cur-2 {
		t.Fatalf("refused runs moved the record to %d", h)
	}
	if d.present(t, old)+d.present(t, live) != 4 {
		t.Fatal("a refused run deleted blocks")
	}
	if c := pur.Counters(); c.RefusedClock != 2 {
		t.Fatalf("counters = %+v, want 2 clock refusals", c)
	}

	// The operator confirms (blindstored purge --confirm-jump).
	if rep := run(t, pur, RunOptions{ConfirmJump: true}); rep.Deleted != 1 {
		t.Fatalf("confirmed run: %+v", rep)
	}
	waitTimers(t, d.clock, 1)
	d.clock.Advance(testPeriod)
	rec.wait(t, 3)
	if rep, err := rec.last(t); err != nil || rep.Period != cur+2 {
		t.Fatalf("the next scheduled run after the confirmation: %+v, %v", rep, err)
	}
}

// Started exactly on a tick, the run at start and the tick's run are the
// same run, and only one of them purges.
func TestStartOnATickRunsOnce(t *testing.T) {
	d := newDeployment(t, stores()[0], t0)
	rec := &recorder{}
	s := startScheduler(t, Config{Purger: d.purger(t, PurgerConfig{}), Clock: d.clock, OnPurge: rec.onPurge, OnSkip: rec.onSkip})
	rec.wait(t, 2)
	if p, sk := rec.counts(); p != 1 || sk != 1 || !errors.Is(rec.skips[0], ErrRunTaken) {
		t.Fatalf("at start: %d purges, %d skips (%v); want one of each", p, sk, rec.skips)
	}
	waitTimers(t, d.clock, 1)
	d.clock.Advance(testPeriod)
	rec.wait(t, 3)
	if rep, err := rec.last(t); err != nil || rep.Period != d.bk.Current() {
		t.Fatalf("next tick: %+v, %v", rep, err)
	}
	if st := s.Stats(); st.PurgeRuns != 2 || st.PurgeSkipped != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestSchedulerIntervalBounds(t *testing.T) {
	d := newDeployment(t, stores()[0], t0)
	p := d.purger(t, PurgerConfig{})
	for _, every := range []time.Duration{2 * testPeriod, testPeriod + time.Second, 500 * time.Millisecond, 1500 * time.Millisecond} {
		if _, err := New(Config{Purger: p, PurgeEvery: every, Clock: d.clock}); err == nil {
			t.Errorf("PurgeEvery %v accepted with a period of %v", every, testPeriod)
		}
	}
	s, err := New(Config{Purger: p, PurgeEvery: 15 * time.Minute, Clock: d.clock})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{}); err == nil {
		t.Error("a scheduler without a purger was accepted")
	}
}

// Runs are named on multiples of the interval since the Unix epoch, the
// same grid as the periods, also for intervals (30 days) that do not
// divide the years since time.Time's zero.
func TestRunOfFollowsTheUnixGrid(t *testing.T) {
	bk, err := bucketer.New(bucketer.Config{Key: make([]byte, bucketer.KeySize), Period: bucketer.DefaultPeriod, Retention: 13})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []uint64{0, 1, 700, 12345} {
		start := bk.Start(p)
		for _, off := range []time.Duration{0, time.Nanosecond, 29 * 24 * time.Hour, bucketer.DefaultPeriod - time.Nanosecond} {
			if got := runOf(start.Add(off), bucketer.DefaultPeriod); !got.Equal(start) {
				t.Errorf("runOf(start of period %d + %v) = %v, want %v", p, off, got, start)
			}
		}
	}
	if got := runOf(time.Unix(-1, 0), time.Hour); !got.Equal(time.Unix(-3600, 0)) {
		t.Errorf("runOf before the epoch = %v", got)
	}
	if got := runOf(time.Unix(10, 700_000_000), 500*time.Millisecond); !got.Equal(time.Unix(10, 500_000_000)) {
		t.Errorf("runOf with a sub-second interval = %v", got)
	}
}

// The lone instance's locker gives each run once, and no run while
// another is in progress.
func TestLocalRunLocker(t *testing.T) {
	ctx := context.Background()
	l := newLocalRunLocker()
	a, err := l.LockRun(ctx, JobPurge, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.LockRun(ctx, JobPurge, t0.Add(time.Hour), time.Hour); !errors.Is(err, ErrRunTaken) {
		t.Fatalf("a run while another is in progress: %v", err)
	}
	if _, err := l.LockRun(ctx, "other", t0, time.Hour); err != nil {
		t.Fatalf("another job: %v", err)
	}
	a.Unlock(ctx)
	if _, err := l.LockRun(ctx, JobPurge, t0, time.Hour); !errors.Is(err, ErrRunTaken) {
		t.Fatalf("the same run again: %v", err)
	}
	if _, err := l.LockRun(ctx, JobPurge, t0.Add(time.Hour), time.Hour); err != nil {
		t.Fatalf("the next run: %v", err)
	}
}
