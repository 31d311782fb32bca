package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/blindstore/blindstore/scheduler"
	"github.com/redis/go-redis/v9"
)

// purgeCommand runs one guarded purge, for operators who schedule it
// from outside (cron, a systemd timer) or need to confirm a clock jump.
func purgeCommand(stdout, stderr io.Writer) *command {
	c := &command{
		name:    "purge",
		usage:   "[--store URL] [--data DIR] [--dry-run] [--confirm-jump] [--force]",
		summary: "Delete the blocks nobody renewed, once, behind the purge's guards (serve also purges every --purge-every).",
		flags:   newFlagSet("purge"),
	}
	var t oneOff
	t.register(c.flags)
	dryRun := c.flags.Bool("dry-run", false, "count what a purge would delete, and delete nothing")
	confirmJump := c.flags.Bool("confirm-jump", false, "purge although the clock moved backwards or more than one period forward since the last purge (check the clock first)")
	force := c.flags.Bool("force", false, "purge although more than --purge-max-fraction of all blocks would go")
	maxFraction := c.flags.Float64("purge-max-fraction", scheduler.DefaultMaxFraction, "largest `fraction` of all blocks one purge may delete without --force")
	c.run = func(args []string) error {
		if !(*maxFraction > 0 && *maxFraction <= 1) {
			return usageError{fmt.Errorf("--purge-max-fraction must be in (0, 1], got %v", *maxFraction)}
		}
		return t.run(stderr, args, func(ctx context.Context, o *opened) error {
			p, err := scheduler.NewPurger(scheduler.PurgerConfig{
				Store: o.store, Bucketer: o.bucketer, MaxFraction: *maxFraction,
				// The report below is the run's one line; the purger's own
				// log line would repeat it.
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			if err != nil {
				return err
			}
			rep, err := p.Run(ctx, scheduler.RunOptions{DryRun: *dryRun, ConfirmJump: *confirmJump, Force: *force})
			prefix := ""
			if *dryRun {
				prefix = "dry run: "
			}
			var refused *scheduler.RefusedError
			switch {
			case errors.As(err, &refused):
				hint := "run again with " + refused.Guard.Override() + " if this is expected"
				if refused.Guard.Override() == "" {
					hint = "nothing overrides this"
				}
				return fmt.Errorf("%srefused, nothing deleted: %s (%s)", prefix, refused.Reason, hint)
			case err != nil:
				return err
			case *dryRun:
				fmt.Fprintf(stdout, "dry run: would purge %d of %d blocks (%d expired); nothing deleted\n", rep.Expired, rep.Total, rep.Expired)
			default:
				fmt.Fprintf(stdout, "purged %d of %d blocks (%d expired)\n", rep.Deleted, rep.Total, rep.Expired)
			}
			return nil
		})
	}
	return c
}

// schedFlags are serve's flags for the scheduled jobs.
type schedFlags struct {
	purgeEvery  time.Duration
	sealEvery   time.Duration
	redis       string
	maxFraction float64
	// observe, if set, is given the purger (nil when purges are off) and
	// the scheduler once they run (the metrics read their counters);
	// hooks, if set, may add callbacks to the scheduler's configuration.
	observe func(*scheduler.Purger, *scheduler.Scheduler)
	hooks   func(*scheduler.Config)
}

func (f *schedFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&f.purgeEvery, "purge-every", scheduler.DefaultPurgeEvery, "how often to purge expired blocks (at most one --period; 0 never purges: then run 'blindstored purge' from cron)")
	fs.StringVar(&f.redis, "redis", "", "Redis `URL` (redis://host:6379/0) that instances on one PostgreSQL store share for: the write pool (a commit mixes the writes of every instance), the failed-probe limits per client address, and the locks that make each scheduled purge and seal run on one instance; /readyz then checks it too. With the embedded store, only the limits and the locks")
	fs.Float64Var(&f.maxFraction, "purge-max-fraction", scheduler.DefaultMaxFraction, "largest `fraction` of all blocks a scheduled purge may delete; above it the purge refuses until 'blindstored purge --force'")
	fs.DurationVar(&f.sealEvery, "seal-every", scheduler.DefaultSealEvery, "how often to seal what was written since the last seal, so a copy of the store does not show who wrote what or when (at most one --period; a seal also runs in each period's last minute; 0 never seals: then run 'blindstored seal' from cron)")
}

// start starts the scheduler on o's store and returns a stop function,
// safe to call more than once, that waits for a purge or seal in
// progress. The scheduler must stop before the store closes.
func (f *schedFlags) start(ctx context.Context, log *slog.Logger, o *opened) (func() error, error) {
	if f.purgeEvery < 0 || f.purgeEvery%time.Second != 0 {
		return nil, usageError{fmt.Errorf("--purge-every must be 0 or a whole number of seconds, got %v", f.purgeEvery)}
	}
	if !(f.maxFraction > 0 && f.maxFraction <= 1) {
		return nil, usageError{fmt.Errorf("--purge-max-fraction must be in (0, 1], got %v", f.maxFraction)}
	}
	if f.sealEvery < 0 || f.sealEvery%time.Second != 0 {
		return nil, usageError{fmt.Errorf("--seal-every must be 0 or a whole number of seconds, got %v", f.sealEvery)}
	}
	cfg := scheduler.Config{Bucketer: o.bucketer, Logger: log}
	var p *scheduler.Purger
	if f.purgeEvery == 0 {
		log.Info("scheduled purges are off (--purge-every 0): expired blocks stay until 'blindstored purge' runs")
	} else {
		every := f.purgeEvery
		if period := o.bucketer.PeriodDuration(); every > period {
			// A purge less often than once a period would see the clock
			// jump two periods and refuse every time.
			log.Info("--purge-every is longer than a period; purging once a period instead", "purge_every", period)
			every = period
		}
		var err error
		p, err = scheduler.NewPurger(scheduler.PurgerConfig{Store: o.store, Bucketer: o.bucketer, MaxFraction: f.maxFraction, Logger: log})
		if err != nil {
			return nil, err
		}
		cfg.Purger, cfg.PurgeEvery = p, every
	}
	if err := f.sealConfig(log, o, &cfg); err != nil { // seal.go
		return nil, err
	}
	if cfg.Purger == nil && cfg.Sealer == nil {
		return func() error { return nil }, nil
	}
	var rc *redis.Client
	if f.redis != "" {
		opt, err := redis.ParseURL(f.redis)
		if err != nil {
			return nil, usageError{fmt.Errorf("--redis %q: %w", redactURL(f.redis), err)}
		}
		rc = redis.NewClient(opt)
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = rc.Ping(pctx).Err()
		cancel()
		if err != nil {
			rc.Close()
			return nil, fmt.Errorf("--redis %s: not reachable: %w", redactURL(f.redis), err)
		}
		// Deployments sharing a Redis must not share runs: the key
		// prefix follows the bucket key, which is what makes a
		// deployment one.
		fp := o.bucketer.Fingerprint()
		cfg.Locker = scheduler.NewRedisLocker(rc, "blindstore:scheduler:"+hex.EncodeToString(fp[:8])+":")
	}
	if f.hooks != nil {
		f.hooks(&cfg)
	}
	s, err := scheduler.New(cfg)
	if err != nil {
		if rc != nil {
			rc.Close()
		}
		return nil, err
	}
	s.Start()
	if f.observe != nil {
		f.observe(p, s)
	}
	var once sync.Once
	var stopErr error
	return func() error {
		once.Do(func() {
			stopErr = s.Shutdown()
			if rc != nil {
				rc.Close()
			}
		})
		return stopErr
	}, nil
}
