package httpapi

// Paying for writes (docs/design.md §11).
//
// With a TokenRedeemer (blindstored serve --token-issuer), a write that
// may create blocks, and every renewal, costs one Privacy Pass token for
// up to write_batch blocks: PUT of a block without If-Match, POST
// /v1/blocks with any entry without if_match, POST /v1/renew. The token
// comes in "Authorization: PrivateToken token=…"; without one the answer
// is 401 with the PrivateToken challenge. A request that carries a valid
// token is paid: its writes stamp the current bucket (they renew). One
// without a token whose entries all carry If-Match is free, and keeps
// each block's bucket, so that overwriting can never stand in for a
// renewal. Deletes are always free.
//
// The token is checked (parsed, verified) before the body is read, and
// spent only once the request is known to be well formed and the store
// has room, so a request refused for its own faults keeps its token.
// Nothing here records which token paid for which block.
//
// Without a redeemer the store is open: each client address may write
// WriteLimit's rate of blocks, and the capacity cap (the service's
// MaxBlocks) bounds the whole.

import (
	"context"
	"encoding/base64"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/blindstore/blindstore/privacypass"
	"github.com/blindstore/blindstore/wire"
	"golang.org/x/time/rate"
)

// TokenRedeemer redeems Privacy Pass tokens: *privacypass.Redeemer.
type TokenRedeemer interface {
	// Check parses and verifies the token of an Authorization value
	// without spending it.
	Check(authorization string) (*privacypass.Token, error)
	// Spend records the token's nonce; privacypass.ErrSpent if it was.
	Spend(ctx context.Context, t *privacypass.Token) error
	// WWWAuthenticate is the challenge 401 answers carry.
	WWWAuthenticate() string
	// Challenge is the encoded TokenChallenge tokens must be for.
	Challenge() []byte
	// Issuer is the issuer's URL.
	Issuer() string
	// Keys are the issuer's keys as this server knows them.
	Keys() []privacypass.KeyInfo
}

// WriteLimiter bounds how many blocks each client address may write in
// an open deployment (one without tokens). key is as for ProbeLimiter:
// personal data, never logged, kept in memory only as long as needed.
type WriteLimiter interface {
	// Allow takes n blocks from key's allowance, or reports how long to
	// wait before the request could pass.
	Allow(ctx context.Context, key string, n int) (retryAfter time.Duration, ok bool)
	// WriteLimits tells the rate and burst, for /v1/config.
	WriteLimits() (perSecond float64, burst int)
}

// Defaults of the write limiter in an open deployment: generous for one
// user's uploads (a burst of 1 GiB of 64 KiB blocks), and a bound on how
// fast one address can fill the store.
const (
	DefaultWriteRate  = 1000.0
	DefaultWriteBurst = 16384
)

// memoryWriteLimiter is a token bucket of blocks per client key.
type memoryWriteLimiter struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu        sync.Mutex
	keys      map[string]*rate.Limiter
	lastSweep time.Time
}

// NewMemoryWriteLimiter returns an in-process WriteLimiter allowing each
// client key burst blocks at once and perSecond blocks a second after
// that. Like the probe limiter, it forgets a key once its allowance is
// whole again and never holds more than 65536 keys.
func NewMemoryWriteLimiter(perSecond float64, burst int) WriteLimiter {
	if perSecond <= 0 || math.IsNaN(perSecond) || math.IsInf(perSecond, 0) {
		perSecond = DefaultWriteRate
	}
	if burst < 1 {
		burst = DefaultWriteBurst
	}
	return &memoryWriteLimiter{limit: rate.Limit(perSecond), burst: burst, now: time.Now, keys: map[string]*rate.Limiter{}}
}

func (m *memoryWriteLimiter) WriteLimits() (float64, int) { return float64(m.limit), m.burst }

func (m *memoryWriteLimiter) Allow(_ context.Context, key string, n int) (time.Duration, bool) {
	if n <= 0 {
		return 0, true
	}
	now := m.now()
	m.mu.Lock()
	lim := m.keys[key]
	if lim == nil {
		if len(m.keys) >= memoryProbeMaxKeys || now.Sub(m.lastSweep) >= memoryProbeSweep {
			m.lastSweep = now
			for k, l := range m.keys {
				if l.TokensAt(now) >= float64(m.burst) {
					delete(m.keys, k)
				}
			}
			for k := range m.keys {
				if len(m.keys) < memoryProbeMaxKeys {
					break
				}
				delete(m.keys, k)
			}
		}
		lim = rate.NewLimiter(m.limit, m.burst)
		m.keys[key] = lim
	}
	m.mu.Unlock()
	if n > m.burst {
		// More than the burst can ever pass; the batch limit keeps a
		// well-configured server from getting here.
		return time.Duration(float64(n) / float64(m.limit) * float64(time.Second)), false
	}
	if lim.AllowN(now, n) {
		return 0, true
	}
	need := float64(n) - lim.TokensAt(now)
	return time.Duration(need / float64(m.limit) * float64(time.Second)), false
}

// b64pad is base64url with padding, as RFC 9577 writes its values.
var b64pad = base64.URLEncoding

// payment is what a write request brings to pay with.
type payment struct {
	token *privacypass.Token // nil: none
}

// tokenFrom checks the Authorization of a write before its body is read.
// In an open deployment there is nothing to check. A token that is
// present but not valid here is answered at once (401), and counts as a
// failed probe: forging tokens is no cheaper a way to probe than
// guessing ids.
func (a *api) tokenFrom(x *exchange) (payment, bool) {
	if a.opt.Tokens == nil {
		return payment{}, true
	}
	h := x.r.Header.Get("Authorization")
	if h == "" {
		return payment{}, true
	}
	t, err := a.opt.Tokens.Check(h)
	switch {
	case err == nil:
		return payment{token: t}, true
	case errors.Is(err, privacypass.ErrNoToken):
		// Other credentials: as good as none.
		return payment{}, true
	case errors.Is(err, privacypass.ErrUnavailable):
		x.fail(a, wire.E(wire.KindUnavailable, wire.CodeUnavailable, "the token issuer's keys are not known yet; retry later"))
		return payment{}, false
	}
	x.failed++
	a.challenge(x, wire.CodeTokenInvalid, tokenProblem(err))
	return payment{}, false
}

func tokenProblem(err error) string {
	switch {
	case errors.Is(err, privacypass.ErrUnknownKey):
		return "the token was issued under a key this server does not accept (a foreign issuer, or a key rotated out): fetch new tokens"
	case errors.Is(err, privacypass.ErrChallenge):
		return "the token is for another challenge: fetch tokens for the one in /v1/config"
	case errors.Is(err, privacypass.ErrBadToken):
		return "the token's signature does not verify"
	}
	return "the Authorization header does not carry a PrivateToken token of type 0x0002"
}

// challenge answers 401 with the PrivateToken challenge.
func (a *api) challenge(x *exchange, code, detail string) {
	x.w.Header().Set("WWW-Authenticate", a.opt.Tokens.WWWAuthenticate())
	writeCode(x.w, x.r, code, detail)
}

// needToken answers 401 token_required when a write that must be paid
// carries no token, and reports whether the request may go on.
func (a *api) needToken(x *exchange, p payment, mustPay bool) bool {
	if a.opt.Tokens == nil || !mustPay || p.token != nil {
		return true
	}
	a.challenge(x, wire.CodeTokenRequired,
		"this write must be paid with a Privacy Pass token (Authorization: PrivateToken token=…) for up to write_batch blocks; writes with If-Match only overwrite and are free")
	return false
}

// pay settles a well-formed write of n blocks, of which creates may
// create blocks, just before the service commits it: in an open
// deployment it takes n blocks from the address's allowance and checks
// for room; with tokens it checks for room and spends the token. It
// reports whether the write may go on; if not, the answer is written.
func (a *api) pay(x *exchange, p payment, n, creates int) bool {
	if err := a.svc.HasRoom(x.r.Context(), creates); err != nil {
		x.fail(a, err)
		return false
	}
	if a.opt.Tokens == nil {
		if a.opt.WriteLimit == nil || n == 0 {
			return true
		}
		key := clientKey(x.r, a.opt.TrustProxyHeader)
		if wait, ok := a.opt.WriteLimit.Allow(x.r.Context(), key, n); !ok {
			x.w.Header().Set("Retry-After", retryAfter(wait))
			writeCode(x.w, x.r, wire.CodeRateLimited,
				"this address writes faster than the write_rate_per_second and write_burst in /v1/config allow; retry later")
			return false
		}
		return true
	}
	if p.token == nil {
		return true
	}
	if err := a.opt.Tokens.Spend(context.WithoutCancel(x.r.Context()), p.token); err != nil {
		if errors.Is(err, privacypass.ErrSpent) {
			x.failed++
			a.challenge(x, wire.CodeTokenSpent, "this token was spent already: use each token once")
			return false
		}
		x.fail(a, wire.Wrap(wire.KindUnavailable, wire.CodeUnavailable, "tokens cannot be redeemed now; retry later", err))
		return false
	}
	return true
}

// keepBucket reports whether a write's puts should keep their blocks'
// buckets: an unpaid write in a deployment with tokens.
func (a *api) keepBucket(p payment) bool { return a.opt.Tokens != nil && p.token == nil }

// ConfigTokens and ConfigTokenKey are the "tokens" member of /v1/config
// when writes are paid (wire's).
type (
	ConfigTokens   = wire.ConfigTokens
	ConfigTokenKey = wire.ConfigTokenKey
)

func (a *api) configTokens() *ConfigTokens {
	t := a.opt.Tokens
	if t == nil {
		return nil
	}
	c := &ConfigTokens{Issuer: t.Issuer(), Challenge: b64pad.EncodeToString(t.Challenge()),
		BlocksPerToken: a.svc.Limits().WriteBatch, Keys: []ConfigTokenKey{}}
	for _, k := range t.Keys() {
		ck := ConfigTokenKey{TokenKey: b64pad.EncodeToString(k.Key.SPKI()), TokenKeyID: k.Key.ID().String(), Accepted: k.Accepted}
		if !k.NotBefore.IsZero() {
			ck.NotBefore = k.NotBefore.Unix()
		}
		c.Keys = append(c.Keys, ck)
	}
	return c
}
