package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/blindstore/blindstore/scheduler"
)

// sealCommand runs one seal (docs/design.md §6), for operators who schedule it
// from outside or want one now: before a backup, say, so that the backup
// holds no write order.
func sealCommand(stdout, stderr io.Writer) *command {
	c := &command{
		name:    "seal",
		usage:   "[--store URL] [--data DIR]",
		summary: "Seal once: rewrite what was written since the last seal in a random order, so a copy of the store shows no write order (serve also seals every --seal-every).",
		flags:   newFlagSet("seal"),
	}
	var t oneOff
	t.register(c.flags)
	c.run = func(args []string) error {
		return t.run(stderr, args, func(ctx context.Context, o *opened) error {
			sealer, ok := o.store.(scheduler.Sealer)
			if !ok {
				return fmt.Errorf("this store (%T) does not seal", o.store)
			}
			rep, err := sealer.Seal(ctx)
			if err != nil {
				return fmt.Errorf("seal: %w (nothing acknowledged is lost; run it again to finish)", err)
			}
			resumed := ""
			if rep.Resumed {
				resumed = ", finishing an interrupted seal first"
			}
			fmt.Fprintf(stdout, "sealed %d blocks and %d leases, removed %d deleted blocks, %d bytes rewritten in %v%s\n",
				rep.Blocks, rep.Leases, rep.Deleted, rep.Bytes, rep.Duration.Round(time.Millisecond), resumed)
			return nil
		})
	}
	return c
}

// sealConfig adds the scheduled seal to cfg when --seal-every is not 0.
func (f *schedFlags) sealConfig(log *slog.Logger, o *opened, cfg *scheduler.Config) error {
	if f.sealEvery == 0 {
		log.Warn("scheduled seals are off (--seal-every 0): a copy of the store shows the order of writes until 'blindstored seal' runs")
		return nil
	}
	sealer, ok := o.store.(scheduler.Sealer)
	if !ok {
		return fmt.Errorf("this store (%T) does not seal; run with --seal-every 0", o.store)
	}
	every := f.sealEvery
	if period := o.bucketer.PeriodDuration(); every > period {
		log.Info("--seal-every is longer than a period; sealing once a period instead", "seal_every", period)
		every = period
	}
	cfg.Sealer, cfg.SealEvery = sealer, every
	if m, ok := o.store.(scheduler.Merger); ok {
		cfg.Merger = m
	}
	return nil
}

// mergeCommand runs one period merge (docs/design.md §6), for operators
// who schedule it from outside or whose server was down when a period
// ended.
func mergeCommand(stdout, stderr io.Writer) *command {
	c := &command{
		name:  "merge",
		usage: "[--store URL] [--data DIR]",
		summary: "Seal, then merge the period that closed last: rewrite what its seals placed in one random order, so a copy shows nothing finer than the period " +
			"(serve merges at each period's start).",
		flags: newFlagSet("merge"),
	}
	var t oneOff
	t.register(c.flags)
	c.run = func(args []string) error {
		return t.run(stderr, args, func(ctx context.Context, o *opened) error {
			sealer, ok := o.store.(scheduler.Sealer)
			merger, ok2 := o.store.(scheduler.Merger)
			if !ok || !ok2 {
				return fmt.Errorf("this store (%T) does not merge", o.store)
			}
			if _, err := sealer.Seal(ctx); err != nil {
				return fmt.Errorf("seal before the merge: %w (nothing acknowledged is lost; run it again to finish)", err)
			}
			rep, err := merger.Merge(ctx, o.bucketer.Live())
			if err != nil {
				return fmt.Errorf("merge: %w (nothing acknowledged is lost; run it again to finish)", err)
			}
			resumed := ""
			if rep.Resumed {
				resumed = ", finishing an interrupted merge"
			}
			fmt.Fprintf(stdout, "merged %d blocks and %d leases, %d bytes rewritten (%.3f per byte stored) in %v%s\n",
				rep.Blocks, rep.Leases, rep.Bytes, rep.Cost(), rep.Duration.Round(time.Millisecond), resumed)
			return nil
		})
	}
	return c
}
