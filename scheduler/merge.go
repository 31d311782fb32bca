package scheduler

import (
	"context"
	"fmt"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/go-co-op/gocron/v2"
)

// Merger is a sealing store with the period merge (docs/design.md §6):
// once a period closes, what its seals placed is rewritten once more in
// one random order. blobstore/postgres and blobstore/bolt both are.
type Merger interface {
	Merge(ctx context.Context, live bucketer.LiveSet) (blobstore.MergeReport, error)
	MergeState(ctx context.Context) (blobstore.MergeState, error)
}

// JobMerge is the period merge's job name, in logs and lock keys.
const JobMerge = "merge"

// addMerge adds the merge's jobs: one at start, which merges only if
// the period that closed last was not (the server was down at its end,
// or a merge failed), and one at each period's start. Each seals first,
// so that the closed period's last writes join its merge. Both run once
// across instances through the locker; a seal and a merge never overlap
// within a store (the store's own lock).
func (s *Scheduler) addMerge(rl RunLocker) error {
	period := s.cfg.Bucketer.PeriodDuration()
	opts := []gocron.JobOption{
		gocron.WithName(JobMerge),
		gocron.WithSingletonMode(gocron.LimitModeReschedule),
		gocron.WithDistributedJobLocker(gate{job: JobMerge, every: period, clock: s.cfg.Clock, rl: rl}),
		gocron.WithEventListeners(gocron.AfterLockError(s.lockError)),
	}
	if _, err := s.s.NewJob(gocron.OneTimeJob(gocron.OneTimeJobStartImmediately()), gocron.NewTask(s.mergeIfOwed), opts...); err != nil {
		return fmt.Errorf("scheduler: merge at start: %w", err)
	}
	next := runOf(s.cfg.Clock.Now(), period).Add(period)
	opts = append(opts, gocron.WithStartAt(gocron.WithStartDateTime(next)))
	if _, err := s.s.NewJob(gocron.DurationJob(period), gocron.NewTask(s.merge), opts...); err != nil {
		return fmt.Errorf("scheduler: merge at each period's start: %w", err)
	}
	return nil
}

// mergeIfOwed merges if the period that closed last was not merged.
func (s *Scheduler) mergeIfOwed(ctx context.Context) error {
	cur := s.cfg.Bucketer.Current()
	if cur == 0 {
		return nil
	}
	st, err := s.cfg.Merger.MergeState(ctx)
	if err != nil {
		s.log.Error("could not read whether the last closed period was merged", "err", err)
		return err
	}
	if st.Merged[s.cfg.Bucketer.Bucket(cur-1)] {
		return nil
	}
	if st.Pending == 0 {
		// Nothing sealed awaits a merge (a new store): the merge only
		// records the closed periods, and a seal now would take the
		// first writes of this period along for nothing.
		return s.mergeOnly(ctx)
	}
	return s.merge(ctx)
}

// merge is the job: a seal, then the merge of the period that closed.
func (s *Scheduler) merge(ctx context.Context) error {
	if err := s.seal(ctx); err != nil {
		return err
	}
	return s.mergeOnly(ctx)
}

func (s *Scheduler) mergeOnly(ctx context.Context) error {
	s.mergeRuns.Add(1)
	rep, err := s.cfg.Merger.Merge(ctx, s.cfg.Bucketer.Live())
	if err != nil {
		s.mergeFailed.Add(1)
		s.log.Error("period merge failed; the next run, or blindstored merge, does it again", "err", err)
	} else {
		s.log.Info("period merge done", "blocks", rep.Blocks, "leases", rep.Leases, "bytes", rep.Bytes,
			"bytes_per_byte_stored", fmt.Sprintf("%.3f", rep.Cost()), "resumed", rep.Resumed, "duration", rep.Duration)
	}
	if s.cfg.OnMerge != nil {
		s.cfg.OnMerge(rep, err)
	}
	return err
}
