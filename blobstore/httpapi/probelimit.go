package httpapi

import (
	"context"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of the in-process probe limiter: a client may fail 50 probes in
// a burst, then 5 a second. A legitimate client fails a probe only when
// another device deleted a block under it, so it never comes close.
const (
	DefaultProbeRate  = 5.0
	DefaultProbeBurst = 50
)

// ProbeLimiter throttles clients that fail too many probes: a read,
// delete or renewal of a block that does not exist, or a write or
// delete with a proof that does not match. IDs are 122 random bits, so
// guessing is hopeless anyway; the limiter makes it also slow.
//
// key identifies a client address (an IPv4 address, or the /64 prefix of
// an IPv6 one). It is personal data: an implementation must never log it,
// and one that stores or shares it (Redis) must keep only a keyed hash of
// it, with an expiry no longer than the block it imposes.
// Implementations must be safe for concurrent use. They report no errors:
// a limiter whose backend is down decides by itself whether to fail open.
type ProbeLimiter interface {
	// Blocked reports whether key may not make requests now, and for how long.
	Blocked(ctx context.Context, key string) (retryAfter time.Duration, blocked bool)
	// Failed records one failed probe (404 on read, 403 on write) by key.
	Failed(ctx context.Context, key string)
}

// MultiFailer is an optional fast path of a ProbeLimiter: it records n
// failed probes at once. A renewal naming many missing blocks counts one
// failure per block, so that renewing is no faster a way to probe than
// reading; a limiter whose Failed does I/O should implement this so that
// such a request costs it one round trip, not thousands.
type MultiFailer interface {
	FailedN(ctx context.Context, key string, n int)
}

// ProbeLimitDescriber is an optional interface of a ProbeLimiter that
// tells the rate and burst it allows, so /v1/config can publish them.
type ProbeLimitDescriber interface {
	ProbeLimits() (perSecond float64, burst int)
}

// failed records n failures of key with lim.
func failed(ctx context.Context, lim ProbeLimiter, key string, n int) {
	if n <= 0 {
		return
	}
	if m, ok := lim.(MultiFailer); ok {
		m.FailedN(ctx, key, n)
		return
	}
	for range n {
		lim.Failed(ctx, key)
	}
}

// memoryProbeLimiter is a token bucket per client key, in this process.
type memoryProbeLimiter struct {
	limit   rate.Limit
	burst   int
	maxDebt float64 // tokens a key may owe: bounds how long one key stays blocked
	maxKeys int
	now     func() time.Time

	mu        sync.Mutex
	keys      map[string]*rate.Limiter
	lastSweep time.Time
	// tracked is len(keys), readable without mu: while no client has
	// failed a probe, a request need not even work out its key.
	tracked atomic.Int64
	// whole is when (Unix nanoseconds) every tracked key's allowance is
	// whole again: from then on nobody is blocked, although the keys
	// stay in the map until the next sweep. Without it, one failed probe
	// (a signup checks that its name is free) would keep quiet false
	// until another client failed one a minute later.
	whole atomic.Int64
}

// quietLimiter is an optional fast path of a ProbeLimiter: quiet reports
// that no key is blocked now, so Blocked need not be asked.
type quietLimiter interface{ quiet() bool }

func (m *memoryProbeLimiter) quiet() bool {
	return m.tracked.Load() == 0 || m.now().UnixNano() >= m.whole.Load()
}

// Bounds of the in-process limiter's memory and of its longest block.
const (
	memoryProbeMaxKeys = 1 << 16
	memoryProbeMaxDebt = 15 * time.Minute
	memoryProbeSweep   = time.Minute
)

// NewMemoryProbeLimiter returns an in-process ProbeLimiter that lets each
// client key fail burst probes at once and perSecond probes a second after
// that. Failures beyond the allowance are owed, so a client that fails
// many probes in one request (a renewal) is blocked for as long as those
// failures would have taken at the allowed rate, up to 15 minutes.
//
// It remembers at most 65536 keys and forgets a key as soon as its
// allowance is whole again; when an attacker with many addresses fills
// it, arbitrary keys are forgotten, so its memory stays bounded.
func NewMemoryProbeLimiter(perSecond float64, burst int) ProbeLimiter {
	return newMemoryProbeLimiter(perSecond, burst, time.Now)
}

func newMemoryProbeLimiter(perSecond float64, burst int, now func() time.Time) *memoryProbeLimiter {
	if perSecond <= 0 || math.IsNaN(perSecond) || math.IsInf(perSecond, 0) {
		perSecond = DefaultProbeRate
	}
	if burst < 1 {
		burst = DefaultProbeBurst
	}
	return &memoryProbeLimiter{
		limit:   rate.Limit(perSecond),
		burst:   burst,
		maxDebt: perSecond * memoryProbeMaxDebt.Seconds(),
		maxKeys: memoryProbeMaxKeys,
		now:     now,
		keys:    make(map[string]*rate.Limiter),
	}
}

func (m *memoryProbeLimiter) ProbeLimits() (float64, int) { return float64(m.limit), m.burst }

func (m *memoryProbeLimiter) Blocked(_ context.Context, key string) (time.Duration, bool) {
	m.mu.Lock()
	lim := m.keys[key]
	m.mu.Unlock()
	if lim == nil {
		return 0, false
	}
	tokens := lim.TokensAt(m.now())
	if tokens >= 1 {
		return 0, false
	}
	wait := time.Duration((1 - tokens) / float64(m.limit) * float64(time.Second))
	return wait, true
}

func (m *memoryProbeLimiter) Failed(ctx context.Context, key string) { m.FailedN(ctx, key, 1) }

func (m *memoryProbeLimiter) FailedN(_ context.Context, key string, n int) {
	if n <= 0 {
		return
	}
	now := m.now()
	lim := m.limiter(key, now)
	// ReserveN refuses more than burst at once, and a reservation is
	// never cancelled: the owed tokens are the block. Stop once the debt
	// reaches its bound.
	for n > 0 && lim.TokensAt(now) > -m.maxDebt {
		k := min(n, m.burst)
		lim.ReserveN(now, k)
		n -= k
	}
	// The key is whole once the owed and the spent tokens are back.
	short := float64(m.burst) - lim.TokensAt(now)
	at := now.Add(time.Duration(math.Ceil(short / float64(m.limit) * float64(time.Second)))).UnixNano()
	for {
		old := m.whole.Load()
		if at <= old || m.whole.CompareAndSwap(old, at) {
			break
		}
	}
}

// limiter returns key's limiter, creating it, and sweeps recovered keys
// from time to time so that memory follows the number of offending keys.
func (m *memoryProbeLimiter) limiter(key string, now time.Time) *rate.Limiter {
	m.mu.Lock()
	defer m.mu.Unlock()
	if lim := m.keys[key]; lim != nil {
		return lim
	}
	if len(m.keys) >= m.maxKeys || now.Sub(m.lastSweep) >= memoryProbeSweep {
		m.sweepLocked(now)
	}
	for k := range m.keys {
		if len(m.keys) < m.maxKeys {
			break
		}
		delete(m.keys, k)
	}
	lim := rate.NewLimiter(m.limit, m.burst)
	m.keys[key] = lim
	m.tracked.Store(int64(len(m.keys)))
	return lim
}

func (m *memoryProbeLimiter) sweepLocked(now time.Time) {
	m.lastSweep = now
	full := float64(m.burst)
	for k, lim := range m.keys {
		if lim.TokensAt(now) >= full {
			delete(m.keys, k)
		}
	}
	m.tracked.Store(int64(len(m.keys)))
}

// clientKey returns the probe limiter's key for r: the client's IPv4
// address, or the /64 prefix of its IPv6 address (one subscriber usually
// holds a whole /64, so a single address would be no limit at all).
//
// With a trusted proxy header, the client is its last (rightmost) entry:
// the one the trusted proxy appended itself; entries to its left were
// sent by the client and may be forged. Without the header, or when it
// does not parse, the connection's address is used.
func clientKey(r *http.Request, trustHeader string) string {
	if trustHeader != "" {
		if v := r.Header.Values(trustHeader); len(v) > 0 {
			if ip, ok := lastForwarded(v[len(v)-1], strings.EqualFold(trustHeader, "Forwarded")); ok {
				return keyOf(ip)
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return keyOf(ip)
	}
	// Not an IP (a Unix socket): every such client shares one allowance.
	return "local"
}

// lastForwarded parses the rightmost address of an X-Forwarded-For style
// list, or of an RFC 7239 Forwarded header's for= parameter.
func lastForwarded(v string, rfc7239 bool) (netip.Addr, bool) {
	parts := strings.Split(v, ",")
	s := strings.TrimSpace(parts[len(parts)-1])
	if rfc7239 {
		s = ""
		for _, pair := range strings.Split(parts[len(parts)-1], ";") {
			name, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
			if ok && strings.EqualFold(name, "for") {
				s = strings.Trim(val, `"`)
			}
		}
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr(), true
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	ip, err := netip.ParseAddr(s)
	return ip, err == nil
}

func keyOf(ip netip.Addr) string {
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return ip.String()
	}
	p, err := ip.Prefix(64)
	if err != nil {
		return ip.String()
	}
	return p.String()
}
