package scheduler

import (
	"context"
	"fmt"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/go-co-op/gocron/v2"
)

// Sealer is a store that keeps what was written since its last seal
// apart and can seal it (docs/design.md §6): blobstore/postgres and
// blobstore/bolt both are.
type Sealer interface {
	Seal(ctx context.Context) (blobstore.SealReport, error)
}

// DefaultSealEvery is how often the seal runs by default.
const DefaultSealEvery = time.Hour

// Job names of the seal, in logs and lock keys.
const (
	JobSeal          = "seal"
	JobSealPeriodEnd = "seal-period-end"
)

// sealLead is how long before a period ends the period's last seal runs:
// enough for a seal to finish before the purge at the boundary, short
// enough that few writes land after it.
const sealLead = time.Minute

// addSeal adds the seal's two jobs: every SealEvery (and one at start,
// which also finishes a seal an earlier process left interrupted), and
// once right before each period ends, so that what a period wrote is
// sealed before the purge at its end runs and before the renewals of
// the next period begin. Both are run once across instances by the
// locker, under job names of their own: the period's last run and the
// regular run at the same boundary are different runs.
func (s *Scheduler) addSeal(rl RunLocker) error {
	if err := s.addEvery(JobSeal, s.sealEvery, rl, s.seal); err != nil {
		return err
	}
	period := s.cfg.Bucketer.PeriodDuration()
	lead := min(sealLead, period/4)
	// The next period end minus the lead, still ahead of now.
	now := s.cfg.Clock.Now()
	next := runOf(now, period).Add(period - lead)
	if !next.After(now) {
		next = next.Add(period)
	}
	opts := []gocron.JobOption{
		gocron.WithName(JobSealPeriodEnd),
		gocron.WithSingletonMode(gocron.LimitModeReschedule),
		// The run is named after the period it ends: runOf of any instant
		// in its last minute.
		gocron.WithDistributedJobLocker(gate{job: JobSealPeriodEnd, every: period, clock: s.cfg.Clock, rl: rl}),
		gocron.WithEventListeners(gocron.AfterLockError(s.lockError)),
		gocron.WithStartAt(gocron.WithStartDateTime(next)),
	}
	if _, err := s.s.NewJob(gocron.DurationJob(period), gocron.NewTask(s.seal), opts...); err != nil {
		return fmt.Errorf("scheduler: seal before each period ends: %w", err)
	}
	return nil
}

// seal is the job. The store's report is logged here; its error only
// feeds gocron's own counts besides.
func (s *Scheduler) seal(ctx context.Context) error {
	s.sealRuns.Add(1)
	rep, err := s.cfg.Sealer.Seal(ctx)
	if err != nil {
		s.sealFailed.Add(1)
		s.log.Error("seal failed; the next seal finishes the work", "err", err)
	} else {
		s.log.Info("seal done", "blocks", rep.Blocks, "leases", rep.Leases, "deleted", rep.Deleted,
			"bytes", rep.Bytes, "resumed", rep.Resumed, "duration", rep.Duration)
	}
	if s.cfg.OnSeal != nil {
		s.cfg.OnSeal(rep, err)
	}
	return err
}
