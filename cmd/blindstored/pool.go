package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/httpapi"
	"github.com/blindstore/blindstore/blobstore/pool"
	"github.com/blindstore/blindstore/blobstore/redislimit"
	"github.com/redis/go-redis/v9"
)

// DefaultPoolQuorum is how many waiting requests make a batch due before
// its window ends. 32 requests from (under load) as many clients is more
// company than most windows gather; holding them longer would only cut
// throughput (see the README's design section).
const DefaultPoolQuorum = 32

// poolFlags are serve's flags for the write pool.
type poolFlags struct {
	window time.Duration
	maxOps int
	quorum int
}

func (f *poolFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&f.window, "pool-window", pool.DefaultWindow, "how long writes wait for others to be committed with them, shuffled (0: commit as soon as the previous commit is done)")
	fs.IntVar(&f.maxOps, "pool-max-ops", pool.DefaultMaxOps, "most operations in one commit (a batch is committed without waiting for the window once 1024 operations, or this many if fewer, wait)")
	fs.IntVar(&f.quorum, "pool-quorum", DefaultPoolQuorum, "commit a batch without waiting for the window once this many requests wait (0: always wait the window)")
}

// writePath is how serve writes: the write pool, and the probe limiter
// that goes with the deployment's shape.
type writePath struct {
	committer blobstore.Committer
	probe     httpapi.ProbeLimiter
	ready     func(ctx context.Context) error // nil: nothing beyond the store
	close     func() error                    // stops the pool; call before closing the store
}

// start opens the write path on o's store. Without Redis: the in-process
// pool and limiter. With Redis: the probe limiter is shared, and on
// PostgreSQL so is the pool; the embedded store belongs to one process,
// so its pool stays in-process.
func (f *poolFlags) start(ctx context.Context, log *slog.Logger, sf *storeFlags, redisURL string, o *opened, probeRate float64, probeBurst int) (*writePath, error) {
	if f.window < 0 {
		return nil, usageError{fmt.Errorf("--pool-window must be 0 or more, got %v", f.window)}
	}
	if f.maxOps < 1 {
		return nil, usageError{fmt.Errorf("--pool-max-ops must be at least 1, got %d", f.maxOps)}
	}
	if f.quorum < 0 {
		return nil, usageError{fmt.Errorf("--pool-quorum must be 0 or more, got %d", f.quorum)}
	}
	popt := pool.Options{Window: pool.WindowOption(f.window), MaxOps: f.maxOps, Quorum: f.quorum, Logger: log}
	if redisURL == "" {
		p := pool.New(o.store, popt)
		return &writePath{committer: p, probe: httpapi.NewMemoryProbeLimiter(probeRate, probeBurst), close: p.Close}, nil
	}

	ropt, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, usageError{fmt.Errorf("--redis %q: %w", redactURL(redisURL), err)}
	}
	rc := redis.NewClient(ropt)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = rc.Ping(pctx).Err()
	cancel()
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("--redis %s: not reachable: %w", redactURL(redisURL), err)
	}
	// The bucket key makes a deployment one: every instance has it, and
	// the limiter's keyed hashes of client addresses are derived from it.
	key, _, err := loadKey(sf.key, sf.keyPath(), false)
	if err != nil {
		rc.Close()
		return nil, err
	}
	fp := o.bucketer.Fingerprint()
	ns := hex.EncodeToString(fp[:8])
	lim, err := redislimit.New(rc, key, "blindstore:probe:"+ns+":", probeRate, probeBurst, log)
	if err != nil {
		rc.Close()
		return nil, usageError{err}
	}
	w := &writePath{probe: lim, ready: func(ctx context.Context) error {
		if err := rc.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		return nil
	}}
	fs, fenced := o.store.(pool.FencedStore)
	if !sf.isPostgres() || !fenced {
		log.Info("embedded store: writes go through this process's own write pool (one process owns the store); Redis shares the scheduler's locks and the probe limits")
		p := pool.New(o.store, popt)
		w.committer = p
		w.close = func() error { p.Close(); return rc.Close() }
		return w, nil
	}
	rp, err := pool.NewRedis(ctx, rc, fs, pool.RedisOptions{Options: popt, Prefix: "blindstore:pool:" + ns + ":"})
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("--redis %s: %w", redactURL(redisURL), err)
	}
	log.Info("write pool shared through Redis: batches mix the writes of every instance")
	w.committer = rp
	w.close = func() error { rp.Close(); return rc.Close() }
	return w, nil
}
