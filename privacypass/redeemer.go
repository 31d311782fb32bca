package privacypass

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// SpentSet remembers the nonces of spent tokens, one set per token key,
// so that no token is spent twice. It keeps nothing but the nonces, and
// the key they belong to, which is how a set is dropped whole once its
// key is no longer accepted. Implementations must be safe for concurrent
// use, and Spend must be durable when it reports a fresh nonce.
type SpentSet interface {
	// Spend records nonce under key and reports whether it was new.
	Spend(ctx context.Context, key KeyID, nonce [NonceSize]byte) (fresh bool, err error)
	// Keys lists the keys that have a set.
	Keys(ctx context.Context) ([]KeyID, error)
	// Drop deletes key's set whole.
	Drop(ctx context.Context, key KeyID) error
	// Close releases the set.
	Close() error
}

// Defaults of RedeemerConfig.
const (
	DefaultRefresh = 5 * time.Minute
	DefaultGrace   = 10 * time.Minute
)

// RedeemerConfig configures a Redeemer.
type RedeemerConfig struct {
	// Issuer is the issuer's URL: its directory is at the well-known
	// path of its origin, and its authority is the challenge's
	// issuer_name.
	Issuer string
	// OriginInfo is the challenge's origin_info: empty for tokens any
	// origin of this issuer accepts, else this server's name(s). Servers
	// that share an issuer and an empty origin_info must share the spent
	// set too, or a token could be spent once at each.
	OriginInfo string
	Spent      SpentSet
	// Refresh is how often the directory is fetched again (default 5 min).
	Refresh time.Duration
	// Grace is how long after a key left the accepted set its spent set
	// is dropped (default 10 min): servers whose clocks differ by less
	// never accept a key whose set another one dropped.
	Grace      time.Duration
	HTTPClient *http.Client
	Logger     *slog.Logger
	Now        func() time.Time
}

// Redeemer is the blob server's side of Privacy Pass (RFC 9577 §2.2):
// it knows the issuer's token keys from its directory, challenges with a
// fixed TokenChallenge (empty redemption context, so clients may fetch
// tokens ahead of time), verifies tokens with the issuer's public key
// alone, and spends each nonce once.
type Redeemer struct {
	cfg       RedeemerConfig
	challenge []byte
	digest    [32]byte
	log       *slog.Logger

	mu      sync.RWMutex
	known   []DatedKey     // every key the directory listed that is not retired
	retired map[KeyID]bool // keys that left the accepted set: never accepted again
	loaded  bool           // the directory has been read at least once
}

// NewRedeemer validates cfg and builds the challenge. It does not fetch
// the directory: call Refresh or Run.
func NewRedeemer(cfg RedeemerConfig) (*Redeemer, error) {
	if cfg.Spent == nil {
		return nil, errors.New("privacypass: a redeemer needs a spent set")
	}
	name, err := IssuerName(cfg.Issuer)
	if err != nil {
		return nil, err
	}
	if _, err := DirectoryURL(cfg.Issuer); err != nil {
		return nil, err
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = DefaultRefresh
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ch, err := Challenge{TokenType: TokenTypeBlindRSA, IssuerName: name, OriginInfo: cfg.OriginInfo}.Marshal()
	if err != nil {
		return nil, err
	}
	return &Redeemer{cfg: cfg, challenge: ch, digest: ChallengeDigest(ch), log: cfg.Logger, retired: map[KeyID]bool{}}, nil
}

// Challenge returns the encoded TokenChallenge every token must be for.
func (r *Redeemer) Challenge() []byte { return append([]byte(nil), r.challenge...) }

// Issuer returns the issuer's URL.
func (r *Redeemer) Issuer() string { return r.cfg.Issuer }

// Refresh reads the issuer's directory and adds the keys it lists.
// Keys the directory no longer lists stay known until they retire, so an
// issuer that stops listing its previous key does not void tokens the
// redeemer still accepts.
func (r *Redeemer) Refresh(ctx context.Context) error {
	d, _, err := FetchDirectory(ctx, r.cfg.HTTPClient, r.cfg.Issuer)
	if err != nil {
		return err
	}
	keys, err := d.Keys()
	if err != nil {
		return fmt.Errorf("privacypass: the issuer directory: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		if r.retired[k.Key.ID()] {
			continue
		}
		found := false
		for i := range r.known {
			if r.known[i].Key.ID() == k.Key.ID() {
				r.known[i].NotBefore = k.NotBefore
				found = true
			}
		}
		if !found {
			r.known = append(r.known, k)
		}
	}
	r.loaded = true
	r.retireLocked(r.cfg.Now())
	return nil
}

// retireLocked forgets keys that are neither accepted now nor were a
// grace period ago, and are not yet to come.
func (r *Redeemer) retireLocked(now time.Time) {
	keep := r.known[:0]
	live := keySet(Accepted(r.known, now), Accepted(r.known, now.Add(-r.cfg.Grace)))
	for _, k := range r.known {
		if live[k.Key.ID()] || k.NotBefore.After(now) {
			keep = append(keep, k)
			continue
		}
		r.retired[k.Key.ID()] = true
	}
	r.known = keep
}

func keySet(lists ...[]DatedKey) map[KeyID]bool {
	m := map[KeyID]bool{}
	for _, l := range lists {
		for _, k := range l {
			m[k.Key.ID()] = true
		}
	}
	return m
}

// Run refreshes the directory every Refresh and drops the spent sets of
// retired keys, until ctx ends. The first refresh is immediate, and is
// retried every few seconds until it succeeds.
func (r *Redeemer) Run(ctx context.Context) {
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := r.Refresh(rctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			r.log.Warn("token issuer directory not refreshed; keeping the keys known so far", "err", err)
		}
		if err == nil {
			if err := r.DropRetired(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("dropping the spent tokens of retired keys failed; retrying at the next refresh", "err", err)
			}
		}
		wait = r.cfg.Refresh
		if !r.Ready() {
			wait = min(wait, 2*time.Second)
		}
	}
}

// DropRetired drops the spent set of every key that is not accepted now,
// was not a grace period ago, and is not yet to come. Until the
// directory has been read once it drops nothing: a set whose key is
// merely not known yet must stay.
func (r *Redeemer) DropRetired(ctx context.Context) error {
	r.mu.Lock()
	if !r.loaded {
		r.mu.Unlock()
		return nil
	}
	r.retireLocked(r.cfg.Now())
	keep := map[KeyID]bool{}
	for _, k := range r.known {
		keep[k.Key.ID()] = true
	}
	r.mu.Unlock()
	ids, err := r.cfg.Spent.Keys(ctx)
	if err != nil {
		return fmt.Errorf("privacypass: list spent sets: %w", err)
	}
	for _, id := range ids {
		if keep[id] {
			continue
		}
		if err := r.cfg.Spent.Drop(ctx, id); err != nil {
			return fmt.Errorf("privacypass: drop a spent set: %w", err)
		}
		r.log.Info("dropped the spent tokens of a retired token key", "token_key_id", id.String())
	}
	return nil
}

// Ready reports whether the directory has been read.
func (r *Redeemer) Ready() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.loaded
}

// accepted returns the keys accepted now.
func (r *Redeemer) accepted() []DatedKey {
	r.mu.RLock()
	defer r.mu.RUnlock()
	now := r.cfg.Now()
	var out []DatedKey
	for _, k := range Accepted(r.known, now) {
		if !r.retired[k.Key.ID()] {
			out = append(out, k)
		}
	}
	return out
}

// Check reads the token of an Authorization value and verifies it,
// without spending it: it is for this server's challenge, of a key
// accepted now, and its signature holds. Errors: ErrNoToken, ErrMalformed,
// ErrTokenType, ErrChallenge, ErrUnknownKey, ErrBadToken, ErrUnavailable.
func (r *Redeemer) Check(authorization string) (*Token, error) {
	t, err := ParseAuthorization(authorization)
	if err != nil {
		return nil, err
	}
	if t.ChallengeDigest != r.digest {
		return nil, ErrChallenge
	}
	if !r.Ready() {
		return nil, ErrUnavailable
	}
	for _, k := range r.accepted() {
		if k.Key.ID() == t.KeyID {
			if err := k.Key.Verify(t); err != nil {
				return nil, err
			}
			return t, nil
		}
	}
	return nil, ErrUnknownKey
}

// Spend records t's nonce; ErrSpent if it was spent before. Call it only
// once the request t pays for is known to be well formed, so that a
// request refused for its own faults keeps its token unspent.
func (r *Redeemer) Spend(ctx context.Context, t *Token) error {
	fresh, err := r.cfg.Spent.Spend(ctx, t.KeyID, t.Nonce)
	if err != nil {
		return fmt.Errorf("privacypass: record a spent token: %w", err)
	}
	if !fresh {
		return ErrSpent
	}
	return nil
}

// WWWAuthenticate returns the challenge to answer 401 with: the
// TokenChallenge and the key to fetch tokens under now.
func (r *Redeemer) WWWAuthenticate() string {
	p := ChallengeParams{Challenge: r.challenge, MaxAge: -1}
	if acc := r.accepted(); len(acc) > 0 {
		p.TokenKey = acc[0].Key.SPKI()
	}
	return FormatChallenge(p)
}

// KeyInfo is a known token key as the blob server publishes it.
type KeyInfo struct {
	Key       *PublicKey
	NotBefore time.Time
	Accepted  bool // tokens under it are redeemed now
}

// Keys returns the known keys, newest first: the accepted ones and any
// published ahead of their time. Clients compare them with the issuer's
// directory, so that an issuer cannot hand one user a key of their own.
func (r *Redeemer) Keys() []KeyInfo {
	acc := keySet(r.accepted())
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]KeyInfo, 0, len(r.known))
	for _, k := range r.known {
		out = append(out, KeyInfo{Key: k.Key, NotBefore: k.NotBefore, Accepted: acc[k.Key.ID()]})
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].NotBefore.After(out[j-1].NotBefore); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
