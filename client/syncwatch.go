package client

import (
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// WatchOptions configures Watch.
type WatchOptions struct {
	SyncOptions
	// Debounce is how long the folder must be quiet after a change
	// before a sync starts (default 300 ms): an editor's save is several
	// events.
	Debounce time.Duration
	// Interval is how often the account is checked for other devices'
	// changes (default 30 s). A check with nothing new costs one read of
	// the head block and a scan of the folder's metadata.
	Interval time.Duration
	// Renew renews the account (default Account.Renew); the CLI passes
	// one that also handles a server that charges for renewals.
	Renew func(ctx context.Context) error
	// Synced is told of each sync's result; Renewed of each renewal's.
	// A sync's or renewal's error does not stop the watch (the server
	// may be down for a while); Watch returns only when ctx ends or the
	// folder cannot be watched.
	Synced  func(*SyncReport, error)
	Renewed func(error)
}

// Watch syncs the folder now, again whenever it changes or the interval
// passes, and renews the account at each period boundary, until ctx
// ends (docs/spec.md §13).
func (a *Account) Watch(ctx context.Context, opt WatchOptions) error {
	if opt.Debounce <= 0 {
		opt.Debounce = 300 * time.Millisecond
	}
	if opt.Interval <= 0 {
		opt.Interval = 30 * time.Second
	}
	if opt.Renew == nil {
		opt.Renew = func(ctx context.Context) error { _, err := a.Renew(ctx); return err }
	}
	abs, err := filepath.Abs(opt.Dir)
	if err != nil {
		return localError("the folder", err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return localError("watching the folder", err)
	}
	defer w.Close()
	if err := watchTree(w, abs); err != nil {
		return err
	}
	if opt.CaseInsensitive == nil {
		// Once, not at every sync: the file system does not change, and
		// each probe writes to the folder.
		ci := probeCaseInsensitive(abs)
		opt.CaseInsensitive = &ci
	}

	sync := func() {
		rep, err := a.Sync(ctx, opt.SyncOptions)
		if opt.Synced != nil && ctx.Err() == nil {
			opt.Synced(rep, err)
		}
	}
	renew := func() {
		cur, err := a.remote.CurrentPeriod(ctx)
		if err == nil && a.Stale(cur) {
			err = opt.Renew(ctx)
		}
		if opt.Renewed != nil && ctx.Err() == nil {
			opt.Renewed(err)
		}
	}
	renew()
	sync()

	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	poll := time.NewTicker(opt.Interval)
	defer poll.Stop()
	boundary := time.NewTimer(a.untilNextPeriod())
	defer boundary.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return &Error{Kind: KindLocalIO, Msg: "the folder watch stopped"}
			}
			if isPartFile(filepath.Base(ev.Name)) {
				continue // our own temporary files
			}
			if ev.Op&fsnotify.Create != 0 {
				// A new folder (or one moved in) is watched from now on;
				// what it already holds is found by the sync's scan.
				_ = watchTree(w, ev.Name)
			}
			debounce.Reset(opt.Debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return &Error{Kind: KindLocalIO, Msg: "the folder watch stopped"}
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				// Events were lost: a sync's scan finds what they said.
				debounce.Reset(opt.Debounce)
				continue
			}
			return localError("watching the folder", err)
		case <-debounce.C:
			sync()
		case <-poll.C:
			sync()
		case <-boundary.C:
			renew()
			boundary.Reset(a.untilNextPeriod())
		}
	}
}

// untilNextPeriod is the time to the next period boundary, plus a random
// delay of up to a twentieth of a period so that clients do not all
// renew in the same instant.
func (a *Account) untilNextPeriod() time.Duration {
	cfg := a.cfg
	// The server's period, advanced by the local time elapsed since the
	// configuration was read.
	next := cfg.PeriodStart(cfg.CurrentPeriod + 1)
	for !next.After(time.Now()) {
		next = next.Add(cfg.Period())
	}
	jitter := time.Duration(rand.Int64N(int64(cfg.Period()/20) + 1))
	return time.Until(next) + jitter
}

// watchTree watches dir and every folder under it (fsnotify watches one
// level). Symbolic links are not followed, as sync does not follow them.
func watchTree(w *fsnotify.Watcher, dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return localError("watching the folder", err)
			}
			return nil
		}
		if !d.IsDir() {
			return nil
		}
		if err := w.Add(p); err != nil {
			if p == dir {
				return localError("watching the folder", err)
			}
		}
		return nil
	})
}
