// Package scheduler runs blindstore's periodic jobs inside `blindstored
// serve`: the purge of expired blocks, behind the guards that keep a
// wrong key, a jumping clock or a bad restore from deleting what users
// still hold; and the seal (seal.go) that rewrites what was written since
// the last one so that a copy of the store does not show who wrote what,
// or when (docs/design.md §6).
//
// Jobs run on gocron v2 with a clock the caller gives (tests move a fake
// one across periods). With several instances, a RunLocker (NewRedisLocker)
// makes each scheduled run happen once in total. `blindstored purge` and
// `blindstored seal` run the same work once, for an external scheduler.
//
// The package must never log, count or lock on anything that names a
// block: its logs and counters hold periods and counts only.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/go-co-op/gocron/v2"
	"github.com/google/uuid"
	"github.com/jonboulle/clockwork"
)

// DefaultPurgeEvery is how often the purge runs by default.
const DefaultPurgeEvery = time.Hour

// JobPurge is the purge job's name, in logs and lock keys.
const JobPurge = "purge"

// Config configures a Scheduler: a purge, a seal, or both.
type Config struct {
	Purger *Purger // nil: no purge job
	// PurgeEvery is the purge's interval: DefaultPurgeEvery when zero, at
	// most one period (a longer one would see the clock "jump" two
	// periods between runs and refuse every time). Runs fall on
	// multiples of it since the Unix epoch, so a divisor of the period
	// puts one run right at each period's start.
	PurgeEvery time.Duration
	// Clock drives the jobs; nil means the real clock. Give the
	// bucketer the same clock, or the purge and its schedule disagree.
	Clock clockwork.Clock
	// Locker shares runs among instances. A RunLocker (NewRedisLocker
	// returns one) is used as such; any other gocron.Locker is asked for
	// one key per run. Nil: this instance is alone.
	Locker gocron.Locker
	Logger *slog.Logger // nil: discard
	// OnPurge, if set, is called after each purge this instance ran,
	// with its report and error (a *RefusedError for a refusal).
	OnPurge func(Report, error)
	// OnSkip, if set, is called when this instance skipped a run
	// because the locker gave it to another instance (err wraps
	// ErrRunTaken) or could not be asked.
	OnSkip func(job string, err error)

	// Sealer, when set, is sealed every SealEvery and once more right
	// before each period ends (see seal.go).
	Sealer Sealer
	// SealEvery is the seal's interval: DefaultSealEvery when zero, whole
	// seconds from 1s to one period. Runs fall on multiples of it since
	// the Unix epoch, like the purge's.
	SealEvery time.Duration
	// Bucketer gives the period; nil takes the Purger's. Required for a
	// seal without a purge.
	Bucketer *bucketer.Bucketer
	// OnSeal, if set, is called after each seal this instance ran.
	OnSeal func(blobstore.SealReport, error)
	// Merger, when set with a Sealer, merges each period once it closes
	// (merge.go).
	Merger Merger
	// OnMerge, if set, is called after each merge this instance ran.
	OnMerge func(blobstore.MergeReport, error)
}

// Stats are the scheduler's own running totals; the purge's are in
// Purger.Counters.
type Stats struct {
	PurgeRuns     uint64 // purges this instance started, refused or not
	PurgeSkipped  uint64 // runs another instance had, or an earlier run still held (any job)
	LockerErrored uint64 // runs skipped because the locker could not be asked (any job)
	SealRuns      uint64 // seals this instance ran
	SealFailed    uint64 // of which failed
	MergeRuns     uint64 // period merges this instance ran
	MergeFailed   uint64 // of which failed
}

// Scheduler runs the jobs. Create it with New, then Start and Shutdown
// it once each.
type Scheduler struct {
	cfg       Config
	every     time.Duration
	sealEvery time.Duration
	log       *slog.Logger
	s         gocron.Scheduler

	purgeRuns, skipped, lockerErrors atomic.Uint64
	sealRuns, sealFailed             atomic.Uint64
	mergeRuns, mergeFailed           atomic.Uint64
}

// New validates cfg and creates the scheduler with its jobs; nothing runs
// before Start.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Purger == nil && cfg.Sealer == nil {
		return nil, errors.New("scheduler: nothing to schedule: Config needs a Purger, a Sealer or both")
	}
	if cfg.Bucketer == nil && cfg.Purger != nil {
		cfg.Bucketer = cfg.Purger.bk
	}
	if cfg.Bucketer == nil {
		return nil, errors.New("scheduler: Config.Bucketer is required for a seal without a purge")
	}
	period := cfg.Bucketer.PeriodDuration()
	every := cfg.PurgeEvery
	if every == 0 {
		every = DefaultPurgeEvery
	}
	if cfg.Purger != nil && (every < time.Second || every > period || every%time.Second != 0) {
		return nil, fmt.Errorf("scheduler: the purge interval must be whole seconds, from 1s to one period (%v), got %v", period, every)
	}
	sealEvery := cfg.SealEvery
	if sealEvery == 0 {
		sealEvery = DefaultSealEvery
	}
	if cfg.Sealer != nil && (sealEvery < time.Second || sealEvery > period || sealEvery%time.Second != 0) {
		return nil, fmt.Errorf("scheduler: the seal interval must be whole seconds, from 1s to one period (%v), got %v", period, sealEvery)
	}
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	gs, err := gocron.NewScheduler(gocron.WithClock(cfg.Clock), gocron.WithLogger(gocronLogger{log}))
	if err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	s := &Scheduler{cfg: cfg, every: every, sealEvery: sealEvery, log: log, s: gs}

	var rl RunLocker
	switch l := cfg.Locker.(type) {
	case nil:
		rl = newLocalRunLocker()
	case RunLocker:
		rl = l
	default:
		rl = plainRunLocker{l}
	}
	if cfg.Purger != nil {
		if err := s.addEvery(JobPurge, every, rl, s.purge); err != nil {
			_ = gs.Shutdown()
			return nil, err
		}
	}
	if cfg.Sealer != nil {
		if err := s.addSeal(rl); err != nil {
			_ = gs.Shutdown()
			return nil, err
		}
		if cfg.Merger != nil {
			if err := s.addMerge(rl); err != nil {
				_ = gs.Shutdown()
				return nil, err
			}
		}
	}
	return s, nil
}

// addEvery adds job: one run at start, so an operator sees at once
// whether it works (it counts as the run of the tick it falls in: if
// another instance did that one, this one skips), then one on every
// multiple of every since the Unix epoch.
func (s *Scheduler) addEvery(job string, every time.Duration, rl RunLocker, fn func(context.Context) error) error {
	opts := []gocron.JobOption{
		gocron.WithName(job),
		gocron.WithSingletonMode(gocron.LimitModeReschedule),
		gocron.WithDistributedJobLocker(gate{job: job, every: every, clock: s.cfg.Clock, rl: rl}),
		gocron.WithEventListeners(gocron.AfterLockError(s.lockError)),
	}
	task := gocron.NewTask(fn)
	if _, err := s.s.NewJob(gocron.OneTimeJob(gocron.OneTimeJobStartImmediately()), task, opts...); err != nil {
		return fmt.Errorf("scheduler: %s at start: %w", job, err)
	}
	first := runOf(s.cfg.Clock.Now(), every)
	opts = append(opts, gocron.WithStartAt(gocron.WithStartDateTimePast(first)))
	if _, err := s.s.NewJob(gocron.DurationJob(every), task, opts...); err != nil {
		return fmt.Errorf("scheduler: %s every %v: %w", job, every, err)
	}
	return nil
}

// PurgeEvery returns the purge's interval.
func (s *Scheduler) PurgeEvery() time.Duration { return s.every }

// SealEvery returns the seal's interval.
func (s *Scheduler) SealEvery() time.Duration { return s.sealEvery }

// Start starts running the jobs.
func (s *Scheduler) Start() {
	args := []any{"distributed", s.cfg.Locker != nil}
	if s.cfg.Purger != nil {
		args = append(args, "purge_every", s.every)
	}
	if s.cfg.Sealer != nil {
		args = append(args, "seal_every", s.sealEvery)
	}
	if s.cfg.Sealer != nil && s.cfg.Merger != nil {
		args = append(args, "period_merge", true)
	}
	s.log.Info("scheduler started", args...)
	s.s.Start()
}

// Shutdown cancels the jobs' contexts and waits for runs in progress.
func (s *Scheduler) Shutdown() error {
	if err := s.s.Shutdown(); err != nil {
		return fmt.Errorf("scheduler: shut down: %w", err)
	}
	return nil
}

// Stats returns a snapshot of the scheduler's running totals.
func (s *Scheduler) Stats() Stats {
	return Stats{PurgeRuns: s.purgeRuns.Load(), PurgeSkipped: s.skipped.Load(), LockerErrored: s.lockerErrors.Load(),
		SealRuns: s.sealRuns.Load(), SealFailed: s.sealFailed.Load(),
		MergeRuns: s.mergeRuns.Load(), MergeFailed: s.mergeFailed.Load()}
}

// purge is the job: one guarded run with no override. Refusals and
// failures are logged by the Purger; the job's error only feeds gocron's
// own counts.
func (s *Scheduler) purge(ctx context.Context) error {
	s.purgeRuns.Add(1)
	rep, err := s.cfg.Purger.Run(ctx, RunOptions{})
	if s.cfg.OnPurge != nil {
		s.cfg.OnPurge(rep, err)
	}
	return err
}

func (s *Scheduler) lockError(_ uuid.UUID, job string, err error) {
	if errors.Is(err, ErrRunTaken) {
		s.skipped.Add(1)
		s.log.Debug("scheduled run belongs to another instance; skipped", "job", job)
	} else {
		s.lockerErrors.Add(1)
		s.log.Warn("could not ask the locker for a scheduled run; skipped it", "job", job, "err", err)
	}
	if s.cfg.OnSkip != nil {
		s.cfg.OnSkip(job, err)
	}
}

// gocronLogger passes gocron's own messages to slog at debug level: they
// name jobs, never blocks.
type gocronLogger struct{ l *slog.Logger }

func (g gocronLogger) Debug(msg string, args ...any) { g.l.Debug(msg, args...) }
func (g gocronLogger) Info(msg string, args ...any)  { g.l.Debug(msg, args...) }
func (g gocronLogger) Warn(msg string, args ...any)  { g.l.Warn(msg, args...) }
func (g gocronLogger) Error(msg string, args ...any) { g.l.Error(msg, args...) }
