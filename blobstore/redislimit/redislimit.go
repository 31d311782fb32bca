// Package redislimit is the limiter of failed probes (httpapi.ProbeLimiter)
// that several blindstored instances share through Redis, so that a client
// probing for blocks is slowed down as one client whichever instance it
// reaches. It is a token bucket per client address (GCRA, from
// github.com/go-redis/redis_rate), with the same allowance, debt and
// longest block as httpapi's in-process limiter.
//
// It must never store, log or send a client's address: a Redis key is a
// keyed hash of it, HMAC-SHA256 under a key every instance derives from
// the deployment's bucket key with HKDF, so that all instances agree on
// it and a copy of Redis alone does not tell whose keys they are. A key
// lives only as long as it restricts its client (its TTL is the time
// until the client's allowance is whole again, 15 minutes at most), and
// holds a number.
//
// While Redis fails, it limits in this process alone rather than not at
// all.
package redislimit

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/blindstore/blindstore/blobstore/httpapi"
	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// maxDebt is the longest a client is blocked for failures it has already
// made: failures beyond the allowance are owed up to this much time at the
// allowed rate, as in httpapi's in-process limiter.
const maxDebt = 15 * time.Minute

// hkdfInfo separates the limiter's HMAC key from every other use of the
// bucket key.
const hkdfInfo = "blindstore/v1/probe-limit-key"

// Limiter is an httpapi.ProbeLimiter on Redis. It also implements
// httpapi.MultiFailer and httpapi.ProbeLimitDescriber.
type Limiter struct {
	rl        *redis_rate.Limiter
	mac       []byte
	prefix    string
	perSecond float64
	burst     int
	peek      redis_rate.Limit // is one more failure allowed now?
	record    redis_rate.Limit // the allowance plus the debt bound
	fallback  httpapi.ProbeLimiter
	log       *slog.Logger
	warned    atomic.Int64 // unix seconds of the last warning
}

var (
	_ httpapi.ProbeLimiter        = (*Limiter)(nil)
	_ httpapi.MultiFailer         = (*Limiter)(nil)
	_ httpapi.ProbeLimitDescriber = (*Limiter)(nil)
)

// New returns a limiter on client that lets each client address fail
// burst probes at once and perSecond a second after that. secret is the
// deployment's bucket key (every instance has it; the HMAC key is derived
// from it); prefix starts every key, after redis_rate's own "rate:".
func New(client redis.UniversalClient, secret []byte, prefix string, perSecond float64, burst int, log *slog.Logger) (*Limiter, error) {
	if len(secret) < 16 {
		return nil, errors.New("redislimit: the secret must be at least 16 bytes")
	}
	if !(perSecond > 0) || math.IsInf(perSecond, 0) || burst < 1 {
		return nil, fmt.Errorf("redislimit: want a positive rate and burst, got %v and %d", perSecond, burst)
	}
	mac, err := hkdf.Key(sha256.New, secret, nil, hkdfInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("redislimit: derive the key: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	// One token every 1/perSecond seconds: redis_rate's emission interval
	// is Period/Rate.
	period := time.Duration(float64(time.Second) / perSecond)
	debt := int(math.Ceil(perSecond * maxDebt.Seconds()))
	return &Limiter{
		rl:        redis_rate.NewLimiter(client),
		mac:       mac,
		prefix:    prefix,
		perSecond: perSecond,
		burst:     burst,
		// Blocked asks whether a cost of 0 fits an allowance of burst-1:
		// that is, whether at least one whole token is left.
		peek:     redis_rate.Limit{Rate: 1, Period: period, Burst: burst - 1},
		record:   redis_rate.Limit{Rate: 1, Period: period, Burst: burst + debt},
		fallback: httpapi.NewMemoryProbeLimiter(perSecond, burst),
		log:      log,
	}, nil
}

// ProbeLimits returns the allowed rate and burst, for /v1/config.
func (l *Limiter) ProbeLimits() (float64, int) { return l.perSecond, l.burst }

// redisKey is the key of a client address: a keyed hash, truncated to
// 128 bits, never the address.
func (l *Limiter) redisKey(key string) string {
	h := hmac.New(sha256.New, l.mac)
	h.Write([]byte(key))
	return l.prefix + hex.EncodeToString(h.Sum(nil)[:16])
}

// Blocked reports whether key has no failure left to spend now.
func (l *Limiter) Blocked(ctx context.Context, key string) (time.Duration, bool) {
	res, err := l.rl.AllowN(ctx, l.redisKey(key), l.peek, 0)
	if err != nil {
		l.warn(err)
		return l.fallback.Blocked(ctx, key)
	}
	if res.Allowed == 0 && res.RetryAfter > 0 {
		return res.RetryAfter, true
	}
	return 0, false
}

// Failed records one failed probe of key.
func (l *Limiter) Failed(ctx context.Context, key string) { l.FailedN(ctx, key, 1) }

// FailedN records n failed probes of key in one round trip. Failures
// beyond the allowance become debt, up to maxDebt at the allowed rate.
func (l *Limiter) FailedN(ctx context.Context, key string, n int) {
	if n <= 0 {
		return
	}
	if _, err := l.rl.AllowAtMost(ctx, l.redisKey(key), l.record, n); err != nil {
		l.warn(err)
		if m, ok := l.fallback.(httpapi.MultiFailer); ok {
			m.FailedN(ctx, key, n)
		}
	}
}

// warn logs a Redis failure at most once a minute. The error is
// go-redis's, which names the server, never a client.
func (l *Limiter) warn(err error) {
	now := time.Now().Unix()
	last := l.warned.Load()
	if now-last < 60 || !l.warned.CompareAndSwap(last, now) {
		return
	}
	l.log.Warn("probe limiter: Redis unavailable, limiting within this instance only", "err", err)
}
