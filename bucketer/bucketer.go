// Package bucketer turns wall-clock time into the coarse, keyed time
// buckets that are the only notion of age the blob store keeps.
//
// A period is floor(unix_seconds / period_seconds). A bucket is
// HMAC-SHA256(key, "bucket" ‖ uint64be(period)) truncated to 16 bytes, so a
// copy of the store without the key cannot tell which period a bucket
// stands for, nor order two buckets in time. The live set is the buckets of
// the last R periods; a block stamped in period p is purged once p leaves
// it, so an untouched block lives at least R-1 and less than R periods.
//
// The package never logs and never stores the key.
package bucketer

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// KeySize is the size of a bucket key in bytes.
const KeySize = 32

// BucketSize is the size of a stored bucket in bytes.
const BucketSize = 16

// Defaults from the design.
const (
	DefaultPeriod    = 30 * 24 * time.Hour
	DefaultRetention = 13
)

// Bucket is a keyed, truncated hash of a period.
type Bucket [BucketSize]byte

// String returns the bucket in hex. Buckets are not secret (every block
// carries one) but they are not logged by default either.
func (b Bucket) String() string { return hex.EncodeToString(b[:]) }

// Fingerprint identifies a bucket key without revealing it, so a store can
// refuse to run under a different key (which would make every block look
// expired).
type Fingerprint [32]byte

// String returns the fingerprint in hex.
func (f Fingerprint) String() string { return hex.EncodeToString(f[:]) }

// Clock tells the time. Tests pass a fake one to move across periods.
type Clock interface {
	Now() time.Time
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// FakeClock is a settable clock for tests; safe for concurrent use.
type FakeClock struct{ ns atomic.Int64 }

// NewFakeClock returns a fake clock set to t.
func NewFakeClock(t time.Time) *FakeClock {
	c := &FakeClock{}
	c.Set(t)
	return c
}

// Now returns the clock's current time.
func (c *FakeClock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

// Set moves the clock to t.
func (c *FakeClock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }

// Advance moves the clock forward by d.
func (c *FakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// Config describes a deployment's time buckets.
type Config struct {
	Key       []byte        // KeySize bytes
	Period    time.Duration // whole seconds, > 0
	Retention int           // R >= 2
	Clock     Clock         // nil means SystemClock
}

// Bucketer computes periods, buckets and live sets. It is immutable and
// safe for concurrent use.
type Bucketer struct {
	key       []byte
	periodSec int64
	retention int
	clock     Clock
}

// New validates cfg and returns a Bucketer.
func New(cfg Config) (*Bucketer, error) {
	if len(cfg.Key) != KeySize {
		return nil, fmt.Errorf("bucketer: key must be %d bytes, got %d", KeySize, len(cfg.Key))
	}
	if cfg.Period < time.Second || cfg.Period%time.Second != 0 {
		return nil, fmt.Errorf("bucketer: period must be a whole number of seconds, at least 1s (got %v)", cfg.Period)
	}
	if cfg.Retention < 2 {
		// With R = 1 a block written at the end of a period would live
		// for an instant: the guarantee "at least R-1 periods" is empty.
		return nil, errors.New("bucketer: retention must be at least 2 periods")
	}
	clock := cfg.Clock
	if clock == nil {
		clock = SystemClock{}
	}
	key := make([]byte, KeySize)
	copy(key, cfg.Key)
	return &Bucketer{key: key, periodSec: int64(cfg.Period / time.Second), retention: cfg.Retention, clock: clock}, nil
}

// PeriodDuration is the length of one period.
func (b *Bucketer) PeriodDuration() time.Duration { return time.Duration(b.periodSec) * time.Second }

// Retention is R, the number of periods in the live set.
func (b *Bucketer) Retention() int { return b.retention }

// Clock returns the clock the Bucketer reads.
func (b *Bucketer) Clock() Clock { return b.clock }

// PeriodAt returns the period that contains t. Times before the Unix epoch
// map to period 0: the store has no use for them and a negative period
// would wrap.
func (b *Bucketer) PeriodAt(t time.Time) uint64 {
	s := t.Unix()
	if s < 0 {
		return 0
	}
	return uint64(s / b.periodSec)
}

// Current returns the current period.
func (b *Bucketer) Current() uint64 { return b.PeriodAt(b.clock.Now()) }

// Start returns the instant period p begins.
func (b *Bucketer) Start(p uint64) time.Time { return time.Unix(int64(p)*b.periodSec, 0) }

// Bucket returns the keyed bucket of period p.
func (b *Bucketer) Bucket(p uint64) Bucket {
	m := hmac.New(sha256.New, b.key)
	var buf [6 + 8]byte
	copy(buf[:], "bucket")
	binary.BigEndian.PutUint64(buf[6:], p)
	m.Write(buf[:])
	var out Bucket
	copy(out[:], m.Sum(nil))
	return out
}

// CurrentBucket returns the bucket of the current period.
func (b *Bucketer) CurrentBucket() Bucket { return b.Bucket(b.Current()) }

// Fingerprint returns HMAC(key, "fingerprint").
func (b *Bucketer) Fingerprint() Fingerprint {
	m := hmac.New(sha256.New, b.key)
	m.Write([]byte("fingerprint"))
	var f Fingerprint
	copy(f[:], m.Sum(nil))
	return f
}

// LiveSet is the set of buckets that are not yet expired.
type LiveSet struct {
	Current uint64   // the current period
	Buckets []Bucket // buckets of periods Current-R+1 … Current, newest first
}

// Contains reports whether bucket x is live.
func (l LiveSet) Contains(x Bucket) bool {
	for _, b := range l.Buckets {
		if b == x {
			return true
		}
	}
	return false
}

// LiveAt returns the live set for period p: periods p-R+1 … p (never
// below period 0).
func (b *Bucketer) LiveAt(p uint64) LiveSet {
	ls := LiveSet{Current: p, Buckets: make([]Bucket, 0, b.retention)}
	for i := 0; i < b.retention && uint64(i) <= p; i++ {
		ls.Buckets = append(ls.Buckets, b.Bucket(p-uint64(i)))
	}
	return ls
}

// Live returns the live set for the current period.
func (b *Bucketer) Live() LiveSet { return b.LiveAt(b.Current()) }

// ExpiresAt returns the instant a block stamped in period p stops being
// live: the start of period p+R. Clients show it as "safe until".
func (b *Bucketer) ExpiresAt(p uint64) time.Time { return b.Start(p + uint64(b.retention)) }

// NewKey returns a fresh random bucket key.
func NewKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("bucketer: generate key: %w", err)
	}
	return k, nil
}
