package scheduler

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/internal/wait"
)

// mergeRecorder collects what a scheduler reports of its merges.
type mergeRecorder struct {
	mu      sync.Mutex
	reports []blobstore.MergeReport
	errs    []error
}

func (r *mergeRecorder) onMerge(rep blobstore.MergeReport, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reports = append(r.reports, rep)
	r.errs = append(r.errs, err)
}

func (r *mergeRecorder) wait(t *testing.T, n int) []blobstore.MergeReport {
	t.Helper()
	var got []blobstore.MergeReport
	err := wait.For(20*time.Second, 2*time.Millisecond, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		got = append(got[:0], r.reports...)
		return len(got) >= n
	})
	if err != nil || len(got) != n {
		t.Fatalf("%d merges reported, want %d", len(got), n)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, err := range r.errs {
		if err != nil {
			t.Errorf("merge %d: %v", i, err)
		}
	}
	return got
}

// The merge runs at start when the period that closed last was not
// merged (a new store never was), and at the start of each period, after
// a seal: the closed period is then merged, nothing awaits a merge, and
// no block is lost.
func TestScheduledMerges(t *testing.T) {
	for _, o := range stores() {
		t.Run(o.name, func(t *testing.T) {
			d := newDeployment(t, o, t0.Add(50*time.Minute))
			blocks := d.put(t, 4)
			rec := &mergeRecorder{}
			s := startScheduler(t, Config{Sealer: d.store.(Sealer), Merger: d.store.(Merger), SealEvery: 30 * time.Minute,
				Bucketer: d.bk, Clock: d.clock, OnMerge: rec.onMerge})
			// At start: owed, the store never merged. The seal at start
			// runs beside it, so the 4 blocks written so far are merged
			// now (sealed first) or with the period they belong to.
			rec.wait(t, 1)
			blocks = append(blocks, d.put(t, 3)...)
			d.renew(t, blocks[:2])
			waitTimers(t, d.clock, 3)
			d.clock.Advance(10 * time.Minute) // t0+60m: a period begins
			reps := rec.wait(t, 2)
			if reps[0].Blocks+reps[1].Blocks != 7 || reps[1].Blocks < 3 || reps[1].Leases < 3 || reps[1].Cost() <= 0 {
				t.Errorf("the merges: %+v; want the period's 7 blocks, the 3 written after the start in the second", reps)
			}
			st, err := d.store.(Merger).MergeState(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !st.Merged[d.bk.Bucket(d.bk.Current()-1)] || st.Pending != 0 {
				t.Errorf("after the merge: %+v; want the closed period merged and nothing pending", st)
			}
			if got := d.present(t, blocks); got != len(blocks) {
				t.Errorf("%d of %d blocks left after the merges", got, len(blocks))
			}
			if s.Stats().MergeRuns != 2 || s.Stats().MergeFailed != 0 {
				t.Errorf("stats %+v", s.Stats())
			}
		})
	}
}

// Two instances sharing a locker merge once per period between them.
func TestScheduledMergeRunsOnceAcrossInstances(t *testing.T) {
	d := newDeployment(t, stores()[1], t0.Add(50*time.Minute))
	rl := sharedLocker{newLocalRunLocker()}
	rec, skips := &mergeRecorder{}, &sealRecorder{}
	for i := 0; i < 2; i++ {
		startScheduler(t, Config{Sealer: d.store.(Sealer), Merger: d.store.(Merger), SealEvery: 30 * time.Minute, Bucketer: d.bk,
			Locker: rl, Clock: d.clock, OnMerge: rec.onMerge, OnSkip: skips.onSkip})
	}
	rec.wait(t, 1) // at start: one merge; the other instance's run is taken
	d.put(t, 2)
	waitTimers(t, d.clock, 6)
	d.clock.Advance(10 * time.Minute) // t0+60m: a period begins
	rec.wait(t, 2)
	time.Sleep(50 * time.Millisecond)
	skips.mu.Lock()
	defer skips.mu.Unlock()
	var merges int
	for _, j := range skips.skips {
		if j == JobMerge {
			merges++
		}
	}
	if merges != 2 {
		t.Errorf("%d merge runs skipped, want 2 (one at start, one at the period's start)", merges)
	}
}
