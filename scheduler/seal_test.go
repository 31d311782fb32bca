package scheduler

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/internal/wait"
	"github.com/go-co-op/gocron/v2"
)

// sealRecorder collects what schedulers report of their seals.
type sealRecorder struct {
	mu      sync.Mutex
	reports []blobstore.SealReport
	errs    []error
	skips   []string
}

func (r *sealRecorder) onSeal(rep blobstore.SealReport, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reports = append(r.reports, rep)
	r.errs = append(r.errs, err)
}

func (r *sealRecorder) onSkip(job string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if errors.Is(err, ErrRunTaken) {
		r.skips = append(r.skips, job)
	}
}

// wait waits until n seals and skips were reported in all.
func (r *sealRecorder) wait(t *testing.T, n int) {
	t.Helper()
	events := func() int {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.reports) + len(r.skips)
	}
	var got int
	err := wait.For(20*time.Second, 2*time.Millisecond, func() bool {
		got = events()
		return got >= n
	})
	if err != nil || got > n {
		t.Fatalf("%d seal events, want %d", got, n)
	}
	time.Sleep(20 * time.Millisecond)
	if got = events(); got != n {
		t.Fatalf("%d seal events, want %d", got, n)
	}
}

func (r *sealRecorder) seals() (int, []error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reports), append([]error(nil), r.errs...)
}

type sealStatser interface {
	SealStats(context.Context) (blobstore.SealStats, error)
}

func pending(t *testing.T, d *deployment) int64 {
	t.Helper()
	st, err := d.store.(sealStatser).SealStats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Blocks
}

// Seals run at start, on every multiple of SealEvery, and in the last
// minute of each period; each leaves nothing unsealed, and no seal
// loses a block.
func TestScheduledSeals(t *testing.T) {
	for _, o := range stores() {
		t.Run(o.name, func(t *testing.T) {
			d := newDeployment(t, o, t0.Add(40*time.Minute))
			blocks := d.put(t, 4)
			rec := &sealRecorder{}
			s := startScheduler(t, Config{Sealer: d.store.(Sealer), SealEvery: 15 * time.Minute, Bucketer: d.bk,
				Clock: d.clock, OnSeal: rec.onSeal, OnSkip: rec.onSkip})
			if s.SealEvery() != 15*time.Minute {
				t.Fatalf("SealEvery = %v", s.SealEvery())
			}
			rec.wait(t, 1) // at start
			if n := pending(t, d); n != 0 {
				t.Fatalf("after the seal at start, %d blocks unsealed", n)
			}
			blocks = append(blocks, d.put(t, 3)...)
			waitTimers(t, d.clock, 2)
			d.clock.Advance(5 * time.Minute) // t0+45m, a multiple of 15 minutes
			rec.wait(t, 2)
			if n := pending(t, d); n != 0 {
				t.Fatalf("after the scheduled seal, %d blocks unsealed", n)
			}
			d.renew(t, blocks[:2])
			waitTimers(t, d.clock, 2)
			d.clock.Advance(14 * time.Minute) // t0+59m: the period's last seal
			rec.wait(t, 3)
			if n := pending(t, d); n != 0 {
				t.Fatalf("after the period's last seal, %d blocks unsealed", n)
			}
			waitTimers(t, d.clock, 2)
			d.clock.Advance(time.Minute) // t0+60m: the regular seal at the boundary
			rec.wait(t, 4)
			n, errs := rec.seals()
			for i, err := range errs {
				if err != nil {
					t.Errorf("seal %d: %v", i, err)
				}
			}
			if n != 4 || s.Stats().SealRuns != 4 || s.Stats().SealFailed != 0 {
				t.Errorf("%d seals reported, stats %+v; want 4", n, s.Stats())
			}
			if got := d.present(t, blocks); got != len(blocks) {
				t.Errorf("%d of %d blocks left after the seals", got, len(blocks))
			}
		})
	}
}

// Two instances sharing a locker seal once per run between them.
func TestScheduledSealRunsOnceAcrossInstances(t *testing.T) {
	d := newDeployment(t, stores()[1], t0.Add(10*time.Minute))
	rl := sharedLocker{newLocalRunLocker()}
	rec := &sealRecorder{}
	var scheds []*Scheduler
	for i := 0; i < 2; i++ {
		scheds = append(scheds, startScheduler(t, Config{Sealer: d.store.(Sealer), SealEvery: 30 * time.Minute, Bucketer: d.bk,
			Locker: rl, Clock: d.clock, OnSeal: rec.onSeal, OnSkip: rec.onSkip}))
	}
	rec.wait(t, 2) // at start: one seal, one skip
	d.put(t, 2)
	waitTimers(t, d.clock, 4)
	d.clock.Advance(20 * time.Minute) // t0+30m
	rec.wait(t, 4)
	n, _ := rec.seals()
	if n != 2 || len(rec.skips) != 2 {
		t.Fatalf("%d seals and %d skips, want 2 of each", n, len(rec.skips))
	}
	if p := pending(t, d); p != 0 {
		t.Fatalf("%d blocks unsealed after the run", p)
	}
}

// sharedLocker is one instance's run locker shared by several schedulers,
// as a Redis locker is shared by several processes.
type sharedLocker struct{ *localRunLocker }

func (sharedLocker) Lock(context.Context, string) (gocron.Lock, error) {
	return nil, errors.New("a RunLocker is asked for runs, not keys")
}

func TestSealIntervalBounds(t *testing.T) {
	d := newDeployment(t, stores()[0], t0)
	for _, every := range []time.Duration{2 * testPeriod, 500 * time.Millisecond, 1500 * time.Millisecond} {
		if _, err := New(Config{Sealer: d.store.(Sealer), SealEvery: every, Bucketer: d.bk, Clock: d.clock}); err == nil {
			t.Errorf("SealEvery %v accepted with a period of %v", every, testPeriod)
		}
	}
	if _, err := New(Config{Sealer: d.store.(Sealer), Clock: d.clock}); err == nil {
		t.Error("a seal without a purger or a bucketer was accepted")
	}
}
