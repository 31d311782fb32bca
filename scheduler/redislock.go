package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"
)

// holdTTL is how long an in-progress lock outlives a process that died
// holding it. A live holder extends it every holdTTL/3. A variable so
// that a test can watch the extension work in a second.
var holdTTL = 30 * time.Second

// Timings of the Redis locker.
const (
	// minClaimTTL is the least a run's claim is kept. A claim must
	// outlast the spread of the instances' timers for that run (clock
	// skew plus scheduling delay); it is kept 2×every, and at least this.
	minClaimTTL = time.Minute
	// releaseTimeout bounds the release of a lock after the job's context
	// has ended (gocron unlocks with it, and cancels it at shutdown).
	releaseTimeout = 5 * time.Second
)

// RedisLocker is a gocron.Locker, and a RunLocker, on Redis through
// redsync. (gocron's own Redis locker module is not used: it locks by
// job name only, and its lock is free again as soon as the job returns,
// so a slower instance can run the same tick a second time.)
//
// Keys, all under the prefix given to NewRedisLocker:
//
//	run:<job>:<unix seconds>  the claim on one run; never deleted, expires after 2×interval (≥ 1 min)
//	job:<key>                 held while a run of that job is in progress, extended every 10 s
//
// No key or value says anything about blocks.
type RedisLocker struct {
	rs     *redsync.Redsync
	prefix string
	log    *slog.Logger
}

var (
	_ gocron.Locker = (*RedisLocker)(nil)
	_ RunLocker     = (*RedisLocker)(nil)
)

// NewRedisLocker returns a locker on client. Every key it writes starts
// with prefix, so deployments sharing one Redis must use different
// prefixes (blindstored derives one from the bucket key's fingerprint).
// The returned value is a *RedisLocker; the Scheduler uses its LockRun.
func NewRedisLocker(client redis.UniversalClient, prefix string) gocron.Locker {
	return &RedisLocker{rs: redsync.New(goredis.NewPool(client)), prefix: prefix, log: slog.Default()}
}

// Lock takes the plain gocron lock on key: held, and kept alive, until
// Unlock. It is what gocron calls without the Scheduler in between.
func (r *RedisLocker) Lock(ctx context.Context, key string) (gocron.Lock, error) {
	ttl := holdTTL
	m := r.rs.NewMutex(r.prefix+"job:"+key, redsync.WithExpiry(ttl), redsync.WithTries(1))
	if err := m.TryLockContext(ctx); err != nil {
		return nil, lockErr("lock "+key, err)
	}
	return r.hold(m, ttl), nil
}

// LockRun claims the run of job at run. The claim is a key that is
// never deleted, only left to expire after the run's window, so no
// instance can claim the same run again however late its timer fires;
// the job's in-progress lock is then taken as Lock takes it, and Unlock
// releases only that.
func (r *RedisLocker) LockRun(ctx context.Context, job string, run time.Time, every time.Duration) (gocron.Lock, error) {
	ttl := max(2*every, minClaimTTL)
	claim := r.rs.NewMutex(r.prefix+"run:"+job+":"+strconv.FormatInt(run.Unix(), 10),
		redsync.WithExpiry(ttl), redsync.WithTries(1))
	if err := claim.TryLockContext(ctx); err != nil {
		return nil, lockErr("claim run of "+job, err)
	}
	// The run is ours now, whatever follows: if an earlier run is still
	// in progress this one is skipped everywhere, as singleton mode
	// skips it on one instance.
	return r.Lock(ctx, job)
}

func lockErr(what string, err error) error {
	var taken *redsync.ErrTaken
	if errors.As(err, &taken) {
		return fmt.Errorf("redis locker: %s: %w", what, ErrRunTaken)
	}
	return fmt.Errorf("redis locker: %s: %w", what, err)
}

// hold keeps m, taken with expiry ttl, alive until Unlock.
func (r *RedisLocker) hold(m *redsync.Mutex, ttl time.Duration) *redisLock {
	l := &redisLock{m: m, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), ttl/3)
				ok, err := m.ExtendContext(ctx)
				cancel()
				if !ok {
					// The job keeps running; another instance may
					// start the next run beside it once the lock
					// expires. Say so, once per failed extension.
					r.log.Warn("scheduler: could not extend a job lock in Redis; runs may overlap", "err", err)
				}
			}
		}
	}()
	return l
}

type redisLock struct {
	m    *redsync.Mutex
	once sync.Once
	stop chan struct{}
	done chan struct{}
}

// Unlock stops extending and releases the in-progress lock. It uses its
// own deadline: gocron passes the job's context, which shutdown cancels.
func (l *redisLock) Unlock(ctx context.Context) error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		defer cancel()
		if _, e := l.m.UnlockContext(rctx); e != nil && !errors.Is(e, redsync.ErrLockAlreadyExpired) {
			err = fmt.Errorf("redis locker: release: %w", e)
		}
	})
	return err
}
