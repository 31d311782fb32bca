package scheduler

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/jonboulle/clockwork"
)

// ErrRunTaken is the lock error of a run that is not this instance's to
// do: another instance claimed it first, or a run of the same job is
// still in progress somewhere.
var ErrRunTaken = errors.New("scheduler: this run is claimed by another instance or an earlier run is still in progress")

// RunLocker claims one scheduled run of a job, so that among all the
// instances sharing the locker each run happens at most once, and runs
// of one job never overlap.
//
// gocron hands a Locker only the job's name, and releases the lock as
// soon as the job returns. With a plain mutex, an instance whose timer
// fires a little later (clock skew, a busy machine) would find the lock
// free again and run the same tick a second time. A RunLocker is told
// which run is meant, and its claim on that run outlives Unlock: Unlock
// only ends the "in progress" part.
type RunLocker interface {
	// LockRun claims the run of job scheduled at run, a multiple of
	// every since the Unix epoch. It returns an error wrapping
	// ErrRunTaken if the run was claimed before or a run of job is in
	// progress, and another error if it cannot tell.
	LockRun(ctx context.Context, job string, run time.Time, every time.Duration) (gocron.Lock, error)
}

// runOf returns the scheduled run that now belongs to: now rounded down to
// a multiple of every since the Unix epoch. Jobs are started on those
// multiples, so every instance, whatever its small skew or delay, names
// the same tick the same way. (time.Truncate rounds from year 1, which
// is not aligned with Unix periods of, say, 30 days.)
func runOf(now time.Time, every time.Duration) time.Time {
	if every%time.Second == 0 {
		// In seconds, so that no date overflows int64 nanoseconds.
		e, sec := int64(every/time.Second), now.Unix()
		r := sec - sec%e
		if sec < 0 && r != sec {
			r -= e
		}
		return time.Unix(r, 0)
	}
	n := now.UnixNano()
	r := n - n%int64(every)
	if n < 0 && r != n {
		r -= int64(every)
	}
	return time.Unix(0, r)
}

// gate is the gocron.Locker the Scheduler gives each job: it names the
// run from its clock and asks the RunLocker for it.
type gate struct {
	job   string
	every time.Duration
	clock clockwork.Clock
	rl    RunLocker
}

func (g gate) Lock(ctx context.Context, _ string) (gocron.Lock, error) {
	return g.rl.LockRun(ctx, g.job, runOf(g.clock.Now(), g.every), g.every)
}

// plainRunLocker adapts any gocron.Locker: the run is named in the key,
// so each run is a lock of its own. Whether a claim outlives Unlock is
// then up to that locker.
type plainRunLocker struct{ l gocron.Locker }

func (p plainRunLocker) LockRun(ctx context.Context, job string, run time.Time, _ time.Duration) (gocron.Lock, error) {
	return p.l.Lock(ctx, job+"@"+strconv.FormatInt(run.Unix(), 10))
}

// localRunLocker is the RunLocker of a lone instance. It still matters
// there: the purge at start and the first tick can name the same run.
type localRunLocker struct {
	mu      sync.Mutex
	last    map[string]time.Time // the last run claimed, per job
	running map[string]bool
}

func newLocalRunLocker() *localRunLocker {
	return &localRunLocker{last: map[string]time.Time{}, running: map[string]bool{}}
}

func (l *localRunLocker) LockRun(_ context.Context, job string, run time.Time, _ time.Duration) (gocron.Lock, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if last, ok := l.last[job]; (ok && last.Equal(run)) || l.running[job] {
		return nil, ErrRunTaken
	}
	l.last[job] = run
	l.running[job] = true
	return localLock(func() {
		l.mu.Lock()
		delete(l.running, job)
		l.mu.Unlock()
	}), nil
}

type localLock func()

func (f localLock) Unlock(context.Context) error { f(); return nil }
