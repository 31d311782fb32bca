package scheduler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
)

// DefaultMaxFraction is the largest share of all blocks one purge may
// delete unless forced. In a steady state a purge removes about 1/R of
// the blocks (1/13 by default); half of them at once means something is
// off (a wrong period length, a store restored from an old backup, a
// clock that ran ahead and was set back), and deleting is the one thing
// that cannot be undone.
const DefaultMaxFraction = 0.5

// ParamsReader is a store that can say which Params it was created with.
// Both stores implement it; the purge needs it for its key guard.
type ParamsReader interface {
	Params(ctx context.Context) (blobstore.Params, error)
}

// Guard names one of the purge's guards.
type Guard uint8

// The guards, in the order a run checks them.
const (
	GuardNone     Guard = iota
	GuardKey            // the bucket key's fingerprint differs from the store's
	GuardClock          // the clock moved backwards, or forward by more than one period
	GuardFraction       // the run would delete more than the allowed fraction of all blocks
)

func (g Guard) String() string {
	switch g {
	case GuardNone:
		return "none"
	case GuardKey:
		return "key"
	case GuardClock:
		return "clock"
	case GuardFraction:
		return "fraction"
	}
	return fmt.Sprintf("guard(%d)", g)
}

// Override names the option that lets a run past the guard: the
// RunOptions field and, for the CLI, its flag. The key guard has none:
// the only fix is to run with the key the store was created with.
func (g Guard) Override() string {
	switch g {
	case GuardClock:
		return "--confirm-jump"
	case GuardFraction:
		return "--force"
	}
	return ""
}

// Errors a refused run wraps, one per guard, so callers branch with
// errors.Is and tell the operator what to do.
var (
	ErrKeyMismatch = errors.New("the bucket key differs from the one the store was created with")
	ErrClockJump   = errors.New("the clock moved backwards or more than one period forward")
	ErrTooMany     = errors.New("the purge would delete more than the allowed fraction of all blocks")
)

// RefusedError is the error of a run a guard stopped. Nothing was
// deleted.
type RefusedError struct {
	Guard  Guard
	Reason string // one line for an operator; never names a block
}

func (e *RefusedError) Error() string {
	msg := "purge refused: " + e.Reason
	if o := e.Guard.Override(); o != "" {
		msg += " (if this is expected, run again with " + o + ")"
	}
	return msg
}

// Unwrap returns the guard's sentinel error.
func (e *RefusedError) Unwrap() error {
	switch e.Guard {
	case GuardKey:
		return ErrKeyMismatch
	case GuardClock:
		return ErrClockJump
	case GuardFraction:
		return ErrTooMany
	}
	return nil
}

// RunOptions are an operator's choices for one run.
type RunOptions struct {
	DryRun      bool // count and report, write nothing (not even the period)
	ConfirmJump bool // accept a clock that moved backwards or more than one period forward
	Force       bool // delete even more than the allowed fraction of all blocks
}

// Report says what one run saw and did. Counts are of blocks, never
// which ones.
type Report struct {
	Period  uint64 // the current period, whose live set the run used
	Highest uint64 // the highest period recorded before the run (0: none)
	Total   int64  // all blocks before the run
	Live    int64  // blocks in the live set's buckets
	Expired int64  // blocks whose bucket has left the live set
	Deleted int64  // blocks this run deleted (0 for a dry run or a refusal)
	DryRun  bool
	Refused Guard  // the guard that stopped the run, GuardNone if it ran
	Reason  string // why, when Refused is set
}

// Counters are the purger's running totals since it was created. They
// are read with Counters and are what the metrics endpoint will export.
type Counters struct {
	Runs            uint64 // runs that completed, dry runs included
	DryRuns         uint64
	Deleted         uint64 // blocks deleted
	RefusedKey      uint64
	RefusedClock    uint64
	RefusedFraction uint64
	Failed          uint64 // runs that ended on a store error
}

// Refused returns the refusals counted for guard g.
func (c Counters) Refused(g Guard) uint64 {
	switch g {
	case GuardKey:
		return c.RefusedKey
	case GuardClock:
		return c.RefusedClock
	case GuardFraction:
		return c.RefusedFraction
	}
	return 0
}

// PurgerConfig configures a Purger.
type PurgerConfig struct {
	Store    blobstore.Store // must also implement ParamsReader
	Bucketer *bucketer.Bucketer
	// MaxFraction is the largest share of all blocks one run may delete
	// without Force, in (0, 1]. Zero means DefaultMaxFraction.
	MaxFraction float64
	Logger      *slog.Logger // nil: discard
}

// Purger runs guarded purges. It is safe for concurrent use, though the
// Scheduler never runs two at once.
type Purger struct {
	store       blobstore.Store
	params      ParamsReader
	bk          *bucketer.Bucketer
	maxFraction float64
	log         *slog.Logger

	runs, dryRuns, deleted, failed atomic.Uint64
	refused                        [GuardFraction + 1]atomic.Uint64
}

// NewPurger validates cfg and returns a Purger.
func NewPurger(cfg PurgerConfig) (*Purger, error) {
	if cfg.Store == nil || cfg.Bucketer == nil {
		return nil, errors.New("scheduler: a purger needs a store and a bucketer")
	}
	pr, ok := cfg.Store.(ParamsReader)
	if !ok {
		return nil, fmt.Errorf("scheduler: the store (%T) cannot report the bucket key it was created with, so the purge's key guard cannot run", cfg.Store)
	}
	f := cfg.MaxFraction
	if f == 0 {
		f = DefaultMaxFraction
	}
	if !(f > 0 && f <= 1) {
		return nil, fmt.Errorf("scheduler: the purge's maximum fraction must be in (0, 1], got %v", cfg.MaxFraction)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Purger{store: cfg.Store, params: pr, bk: cfg.Bucketer, maxFraction: f, log: log}, nil
}

// MaxFraction returns the fraction the fraction guard allows.
func (p *Purger) MaxFraction() float64 { return p.maxFraction }

// Counters returns a snapshot of the running totals.
func (p *Purger) Counters() Counters {
	return Counters{
		Runs:            p.runs.Load(),
		DryRuns:         p.dryRuns.Load(),
		Deleted:         p.deleted.Load(),
		RefusedKey:      p.refused[GuardKey].Load(),
		RefusedClock:    p.refused[GuardClock].Load(),
		RefusedFraction: p.refused[GuardFraction].Load(),
		Failed:          p.failed.Load(),
	}
}

// Run runs one purge behind its three guards, in this order:
//
//  1. key: the store's stored fingerprint must be the bucketer's. Under
//     another key no stored bucket is in the live set, so every block
//     would look expired. Nothing overrides this guard.
//  2. clock: the current period must be the highest recorded one or the
//     next. A clock that moved backwards, or forward by two periods or
//     more, would expire blocks their owners had no chance to renew; it
//     needs ConfirmJump. A run that passes (confirmed or not, dry runs
//     excepted) records the current period, so a scheduler that keeps
//     running keeps the record current; a refused run records nothing.
//  3. fraction: the run must not delete more than MaxFraction of all
//     blocks, counted first with a dry run; more needs Force.
//
// A refusal returns a *RefusedError (wrapping ErrKeyMismatch,
// ErrClockJump or ErrTooMany) with a Report saying what was seen. Each
// refusal logs one line and counts once.
func (p *Purger) Run(ctx context.Context, opt RunOptions) (Report, error) {
	rep, err := p.run(ctx, opt)
	var refused *RefusedError
	switch {
	case errors.As(err, &refused):
		p.refused[refused.Guard].Add(1)
		rep.Refused, rep.Reason = refused.Guard, refused.Reason
		p.log.Warn("purge refused: "+refused.Reason, "guard", refused.Guard.String(), "override", refused.Guard.Override(),
			"current_period", rep.Period, "highest_period", rep.Highest, "expired", rep.Expired, "total", rep.Total)
	case err != nil:
		p.failed.Add(1)
		p.log.Error("purge failed", "err", err)
	default:
		p.runs.Add(1)
		if opt.DryRun {
			p.dryRuns.Add(1)
			p.log.Info("purge dry run: nothing deleted", "period", rep.Period, "expired", rep.Expired, "total", rep.Total)
		} else {
			p.deleted.Add(uint64(rep.Deleted))
			p.log.Info("purge done", "period", rep.Period, "deleted", rep.Deleted, "expired", rep.Expired, "total", rep.Total)
		}
	}
	return rep, err
}

func (p *Purger) run(ctx context.Context, opt RunOptions) (Report, error) {
	rep := Report{DryRun: opt.DryRun, Period: p.bk.Current()}

	params, err := p.params.Params(ctx)
	if err != nil {
		return rep, fmt.Errorf("purge: read the store's parameters: %w", err)
	}
	highest, err := p.store.HighestPeriod(ctx)
	if err != nil {
		return rep, fmt.Errorf("purge: read the highest period: %w", err)
	}
	rep.Highest = highest
	if params.Fingerprint != p.bk.Fingerprint() {
		return rep, &RefusedError{Guard: GuardKey,
			Reason: "the bucket key differs from the one the store was created with, and a changed key would make every block look expired; run with the store's own bucket key file"}
	}

	// Highest 0 means no period was ever recorded: a new store, where
	// there is nothing to compare with.
	if highest != 0 && (rep.Period > highest+1 || rep.Period < highest) && !opt.ConfirmJump {
		how := fmt.Sprintf("the clock moved forward by %d periods since the highest period recorded", rep.Period-highest)
		if rep.Period < highest {
			how = fmt.Sprintf("the clock is %d periods behind the highest period recorded", highest-rep.Period)
		}
		return rep, &RefusedError{Guard: GuardClock,
			Reason: how + ", which would expire blocks their owners had no chance to renew; check the clock, and that the period length is the one the store runs with"}
	}
	if !opt.DryRun {
		if err := p.store.SetHighestPeriod(ctx, rep.Period); err != nil {
			return rep, fmt.Errorf("purge: record the current period: %w", err)
		}
	}

	live := p.bk.LiveAt(rep.Period)
	expired, err := p.store.Purge(ctx, live, true)
	if err != nil {
		return rep, fmt.Errorf("purge: count expired blocks: %w", err)
	}
	st, err := p.store.Stats(ctx)
	if err != nil {
		return rep, fmt.Errorf("purge: count blocks: %w", err)
	}
	rep.Expired, rep.Total = expired, st.Blocks
	for b, n := range st.Buckets {
		if live.Contains(b) {
			rep.Live += n
		}
	}
	if rep.Total > 0 && float64(expired) > p.maxFraction*float64(rep.Total) && !opt.Force {
		return rep, &RefusedError{Guard: GuardFraction,
			Reason: fmt.Sprintf("%d of %d blocks (%.0f%%) have expired, more than the %.0f%% one purge may delete",
				expired, rep.Total, 100*float64(expired)/float64(rep.Total), 100*p.maxFraction)}
	}
	if opt.DryRun {
		return rep, nil
	}
	// Called even when the count is zero: a store may still hold empty
	// expired buckets (PostgreSQL partitions) to drop.
	rep.Deleted, err = p.store.Purge(ctx, live, false)
	if err != nil {
		return rep, fmt.Errorf("purge: delete expired blocks (%d deleted before the error): %w", rep.Deleted, err)
	}
	return rep, nil
}
