package client

// Paying for writes, docs/spec.md §14, as the client sees it. A server whose
// /v1/config has a "tokens" member charges one Privacy Pass token (RFC
// 9577/9578, type 0x0002) for each request that may create blocks (up to
// blocks_per_token of them) and for each renewal request; overwrites with
// If-Match and deletes are free.
//
// The Wallet keeps the user's invite code and unspent tokens in one file
// of the configuration directory (mode 0600). Early in each period (the
// first command after the server publishes a new issuance key) it fetches
// the whole allotment at once, so that when tokens were issued says
// nothing about when they are spent. Before it fetches, it checks that
// the key the issuer signs with is one the blob server publishes, and
// that neither lists more than a handful: an issuer that gave one user a
// key of their own could link that user's tokens when they are spent.
//
// A token leaves the file before it is sent, and is never sent twice:
// two requests with one token would be linkable.

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/blindstore/blindstore/internal/atomicfile"

	"github.com/blindstore/blindstore/internal/wait"
	"github.com/blindstore/blindstore/privacypass"
)

// TokenConfig is the "tokens" member of /v1/config.
type TokenConfig struct {
	Issuer         string         `json:"issuer"`
	Challenge      string         `json:"challenge"` // base64url TokenChallenge
	BlocksPerToken int            `json:"blocks_per_token"`
	Keys           []TokenKeyInfo `json:"token_keys"`
}

// TokenKeyInfo is a token key a server publishes.
type TokenKeyInfo struct {
	TokenKey   string `json:"token_key"` // base64url SPKI
	TokenKeyID string `json:"token_key_id"`
	NotBefore  int64  `json:"not_before"`
	Accepted   bool   `json:"accepted"`
}

// maxPublishedKeys bounds the keys a server or an issuer may list: the
// previous, current and next ones, and one spare for a rotation in
// flight. More would leave room for keys handed to single users.
const maxPublishedKeys = 4

// accepted returns the ids of the keys the server redeems now.
func (t *TokenConfig) accepted() map[string]bool {
	m := map[string]bool{}
	for _, k := range t.Keys {
		if k.Accepted {
			m[k.TokenKeyID] = true
		}
	}
	return m
}

// newest returns the id of the newest key the server redeems: when it
// changes, a new period's allotment is due.
func (t *TokenConfig) newest() string {
	best, id := int64(-1), ""
	for _, k := range t.Keys {
		if k.Accepted && k.NotBefore > best {
			best, id = k.NotBefore, k.TokenKeyID
		}
	}
	return id
}

// TokenSource hands out tokens for a server's paid writes. Token removes
// the token it returns from the source for good and returns it as an
// Authorization value; an error of KindQuota means there is none left.
type TokenSource interface {
	Token(ctx context.Context, server string, cfg *ServerConfig) (string, error)
}

// tokenRejectedError is a 401 for a token that was spent or is not valid
// at the server (its key rotated out, say): worth one more try with
// another token.
type tokenRejectedError struct{ code string }

func (e *tokenRejectedError) Error() string {
	return "the server refused the token (" + e.code + ")"
}

// errNoInvite: the wallet has no tokens and no invite to fetch them with.
var errNoInvite = &Error{Kind: KindQuota, Msg: "this server charges for writes with Privacy Pass tokens and none are held: sign up or log in with --invite CODE to fetch them"}

// errNoTokens is what a paid write meets without a TokenSource.
var errNoTokens = &Error{Kind: KindQuota, Msg: "this server charges for writes with Privacy Pass tokens: sign up or log in with --invite CODE to get them"}

// walletFormat names the wallet file's format.
const walletFormat = "blindstore-tokens-v1"

// walletFile is the wallet as stored.
type walletFile struct {
	Format string `json:"format"`
	Issuer string `json:"issuer,omitempty"` // the issuer the invite is for
	Invite string `json:"invite,omitempty"`
	// FetchedKey is the key of the last allotment fetched, and NextAt
	// when the issuer said the next one comes (unix seconds).
	FetchedKey string        `json:"fetched_key,omitempty"`
	NextAt     int64         `json:"next_allotment_at,omitempty"`
	Tokens     []walletToken `json:"tokens"`
}

type walletToken struct {
	Challenge string `json:"challenge"` // base64url of the TokenChallenge it is for
	KeyID     string `json:"key_id"`
	Token     string `json:"token"` // base64url Token
}

// Wallet is a file of tokens and the invite that fetches them. It is
// safe for concurrent use, by goroutines and by processes (a lock file
// beside it).
type Wallet struct {
	path string
	hc   *http.Client
	now  func() time.Time
	mu   sync.Mutex
	// reserve holds tokens taken out of the file together, for this
	// process to spend: one file write pays for reserveSize tokens.
	// Close puts back those not spent; a crash loses them (they are
	// never sent twice, so nothing links).
	reserve []walletToken
}

// reserveSize is how many tokens one write of the file takes out.
const reserveSize = 8

// OpenWallet returns the wallet kept at path (created on first save).
// hc talks to the issuer (nil: the client's default). Close it when
// done, so that tokens taken out and not spent go back into the file.
func OpenWallet(path string, hc *http.Client) *Wallet {
	if hc == nil {
		hc = newHTTPClient(nil)
	}
	return &Wallet{path: path, hc: hc, now: time.Now}
}

// load reads the file; a missing file is an empty wallet.
func (w *Wallet) load() (*walletFile, error) {
	b, err := os.ReadFile(w.path)
	if errors.Is(err, fs.ErrNotExist) {
		return &walletFile{Format: walletFormat}, nil
	}
	if err != nil {
		return nil, &Error{Kind: KindLocalIO, Msg: "reading the token wallet", Err: err}
	}
	var f walletFile
	if err := json.Unmarshal(b, &f); err != nil || f.Format != walletFormat {
		return nil, &Error{Kind: KindLocalIO, Msg: "the token wallet " + w.path + " is damaged: move it away and log in with --invite again"}
	}
	return &f, nil
}

// save writes the file atomically, mode 0600 in a 0700 directory.
func (w *Wallet) save(f *walletFile) error {
	dir := filepath.Dir(w.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return &Error{Kind: KindLocalIO, Msg: "creating the configuration directory", Err: err}
	}
	b, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(w.path, append(b, '\n'), 0o600); err != nil {
		return &Error{Kind: KindLocalIO, Msg: "writing the token wallet", Err: err}
	}
	return nil
}

// lock serialises the wallet between processes: an exclusive lock file
// beside it, broken when older than a minute (a process that died
// holding it).
func (w *Wallet) lock(ctx context.Context) (func(), error) {
	w.mu.Lock()
	path := w.path + ".lock"
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		w.mu.Unlock()
		return nil, &Error{Kind: KindLocalIO, Msg: "creating the configuration directory", Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var openErr error
	err := wait.Until(ctx, 20*time.Millisecond, func() bool {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			f.Close()
			return true
		}
		if !errors.Is(err, fs.ErrExist) {
			openErr = err
			return true
		}
		if fi, err := os.Stat(path); err == nil && time.Since(fi.ModTime()) > time.Minute {
			os.Remove(path) // the next try takes it
		}
		return false
	})
	switch {
	case openErr != nil:
		w.mu.Unlock()
		return nil, &Error{Kind: KindLocalIO, Msg: "locking the token wallet", Err: openErr}
	case err != nil:
		w.mu.Unlock()
		return nil, &Error{Kind: KindLocalIO, Msg: "the token wallet stays locked by another blind process (remove " + path + " if none runs)"}
	}
	return func() { os.Remove(path); w.mu.Unlock() }, nil
}

// open locks the wallet (see lock) and reads it; the caller calls
// unlock once done with it, after any save.
func (w *Wallet) open(ctx context.Context) (*walletFile, func(), error) {
	unlock, err := w.lock(ctx)
	if err != nil {
		return nil, nil, err
	}
	f, err := w.load()
	if err != nil {
		unlock()
		return nil, nil, err
	}
	return f, unlock, nil
}

// SetInvite records the invite code that fetches this wallet's tokens.
// A new code replaces the old one; tokens already fetched stay.
func (w *Wallet) SetInvite(ctx context.Context, code string) error {
	code = privacypass.NormalizeInvite(code)
	if code == "" {
		return &Error{Kind: KindInvalid, Msg: "the invite code is empty"}
	}
	f, unlock, err := w.open(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if f.Invite != code {
		f.Invite, f.Issuer, f.FetchedKey, f.NextAt = code, "", "", 0
	}
	return w.save(f)
}

// TokenStatus is what the wallet holds for one server.
type TokenStatus struct {
	Left   int       `json:"left"`   // tokens usable at the server now
	Invite bool      `json:"invite"` // an invite code is kept to fetch more
	NextAt time.Time `json:"next_allotment_at,omitzero"`
}

// Status counts the tokens usable at the server of cfg.
func (w *Wallet) Status(ctx context.Context, cfg *ServerConfig) (TokenStatus, error) {
	f, unlock, err := w.open(ctx)
	if err != nil {
		return TokenStatus{}, err
	}
	defer unlock()
	st := TokenStatus{Invite: f.Invite != ""}
	if f.NextAt > 0 {
		st.NextAt = time.Unix(f.NextAt, 0)
	}
	if cfg.Tokens != nil {
		st.Left = len(usable(f.Tokens, cfg.Tokens)) + len(usable(w.reserve, cfg.Tokens))
	}
	return st, nil
}

// usable returns the tokens the server of t redeems now, oldest key
// first: those expire first.
func usable(toks []walletToken, t *TokenConfig) []walletToken {
	acc := t.accepted()
	var out []walletToken
	for _, k := range toks {
		if k.Challenge == t.Challenge && acc[k.KeyID] {
			out = append(out, k)
		}
	}
	order := map[string]int64{}
	for _, k := range t.Keys {
		order[k.TokenKeyID] = k.NotBefore
	}
	slices.SortStableFunc(out, func(a, b walletToken) int {
		switch {
		case order[a.KeyID] < order[b.KeyID]:
			return -1
		case order[a.KeyID] > order[b.KeyID]:
			return 1
		}
		return 0
	})
	return out
}

// Token takes one token usable at server, fetching the period's
// allotment first if the wallet has none left and one is due.
func (w *Wallet) Token(ctx context.Context, server string, cfg *ServerConfig) (string, error) {
	if cfg.Tokens == nil {
		return "", errors.New("client: a token was asked for a server that takes none")
	}
	for attempt := 0; ; attempt++ {
		tok, next, err := w.take(ctx, cfg.Tokens)
		if err != nil || tok != "" {
			return tok, err
		}
		if attempt == 0 {
			n, err := w.Refill(ctx, server, cfg)
			switch {
			case err == nil && n > 0:
				continue
			case errors.Is(err, errNoInvite) || (err != nil && KindOf(err) != KindQuota):
				return "", err
			}
		}
		msg := "out of tokens: this invite's allotment for the period is used up"
		if !next.IsZero() {
			msg += "; the next one comes " + next.Local().Format(time.RFC1123)
		}
		return "", &Error{Kind: KindQuota, Msg: msg}
	}
}

// take hands out a usable token: from the reserve, else from the file,
// taking out up to reserveSize at once and dropping tokens the server
// will never take again (their key rotated out).
func (w *Wallet) take(ctx context.Context, t *TokenConfig) (string, time.Time, error) {
	w.mu.Lock()
	if u := usable(w.reserve, t); len(u) > 0 {
		w.reserve = without(w.reserve, u[:1])
		w.mu.Unlock()
		return `PrivateToken token="` + u[0].Token + `"`, time.Time{}, nil
	}
	w.mu.Unlock()
	f, unlock, err := w.open(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	defer unlock()
	var next time.Time
	if f.NextAt > 0 {
		next = time.Unix(f.NextAt, 0)
	}
	u := usable(f.Tokens, t)
	if len(u) == 0 {
		return "", next, nil
	}
	picked := u[:min(len(u), reserveSize)]
	known := map[string]bool{}
	for _, k := range t.Keys {
		known[k.TokenKeyID] = true
	}
	rest := without(f.Tokens, picked)
	keep := rest[:0]
	for _, k := range rest {
		// Tokens of keys the server no longer lists are worthless.
		if k.Challenge == t.Challenge && !known[k.KeyID] {
			continue
		}
		keep = append(keep, k)
	}
	f.Tokens = keep
	if err := w.save(f); err != nil {
		return "", next, err
	}
	w.reserve = append(w.reserve, picked[1:]...)
	return `PrivateToken token="` + picked[0].Token + `"`, next, nil
}

// without returns toks less those in drop (by token).
func without(toks, drop []walletToken) []walletToken {
	d := map[string]bool{}
	for _, k := range drop {
		d[k.Token] = true
	}
	var out []walletToken
	for _, k := range toks {
		if !d[k.Token] {
			out = append(out, k)
		}
	}
	return out
}

// Close puts the tokens this process took out and did not spend back
// into the file.
func (w *Wallet) Close() error {
	w.mu.Lock()
	empty := len(w.reserve) == 0
	w.mu.Unlock()
	if empty {
		return nil
	}
	f, unlock, err := w.open(context.Background())
	if err != nil {
		return err
	}
	defer unlock()
	f.Tokens = append(f.Tokens, w.reserve...)
	if err := w.save(f); err != nil {
		return err
	}
	w.reserve = nil
	return nil
}

// issuanceParallel bounds concurrent issuance requests: the issuer's CPU
// is the limit, not the network.
const issuanceParallel = 4

// Refill fetches this period's allotment from the invite's issuer when
// it is due: no allotment was fetched under the server's newest key yet.
// It returns how many tokens it added. Before fetching, it checks that
// the server's challenge is well formed and names this issuer, and that
// the issuer issues under a key the server publishes: a key the server
// does not know is refused as tampering (KindTampered).
func (w *Wallet) Refill(ctx context.Context, server string, cfg *ServerConfig) (int, error) {
	t := cfg.Tokens
	if t == nil {
		return 0, nil
	}
	f, unlock, err := w.open(ctx)
	if err != nil {
		return 0, err
	}
	defer unlock()
	if f.Invite == "" {
		return 0, errNoInvite
	}
	if f.FetchedKey != "" && f.FetchedKey == t.newest() {
		return 0, nil
	}
	challenge, err := checkChallenge(server, t)
	if err != nil {
		return 0, err
	}
	if f.Issuer != "" && f.Issuer != t.Issuer {
		return 0, &Error{Kind: KindQuota, Msg: fmt.Sprintf("the invite kept is for the issuer %s, and this server takes tokens of %s: log in with an invite of that issuer", f.Issuer, t.Issuer)}
	}
	ic := &privacypass.IssuerClient{URL: t.Issuer, Invite: f.Invite, HTTP: w.hc}
	key, reqURL, err := consistentKey(ctx, ic, t, w.now())
	if err != nil {
		return 0, err
	}
	allot, err := ic.Allotment(ctx)
	if err != nil {
		return 0, issuerErr(err)
	}
	if allot.TokenKeyID != key.ID().String() {
		return 0, &Error{Kind: KindNetwork, Msg: "the issuer's directory and its allotment name different keys (a rotation in flight?): try again in a minute"}
	}
	toks := make([]walletToken, allot.Left)
	enc := base64.URLEncoding.EncodeToString(challenge)
	var firstErr error
	var mu sync.Mutex
	_ = parallel(ctx, allot.Left, issuanceParallel, func(ctx context.Context, i int) error {
		tok, err := ic.Issue(ctx, reqURL, key, challenge)
		if err != nil {
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
			return err
		}
		toks[i] = walletToken{Challenge: enc, KeyID: key.ID().String(), Token: base64.URLEncoding.EncodeToString(tok.Marshal())}
		return nil
	})
	added := 0
	for _, tk := range toks {
		if tk.Token != "" {
			f.Tokens = append(f.Tokens, tk)
			added++
		}
	}
	f.Issuer = t.Issuer
	f.NextAt = allot.NextPeriodAt
	if firstErr == nil || errors.Is(firstErr, privacypass.ErrAllotmentUsed) {
		f.FetchedKey = t.newest()
	}
	if err := w.save(f); err != nil {
		return added, err
	}
	if firstErr != nil && !errors.Is(firstErr, privacypass.ErrAllotmentUsed) {
		return added, issuerErr(firstErr)
	}
	return added, nil
}

// checkChallenge validates the server's TokenChallenge (RFC 9577
// §2.1.3): type 0x0002, this issuer's name, an empty redemption context,
// and origin_info empty or naming the server.
func checkChallenge(server string, t *TokenConfig) ([]byte, error) {
	raw, err := base64.URLEncoding.DecodeString(t.Challenge)
	if err != nil {
		raw, err = base64.RawURLEncoding.DecodeString(t.Challenge)
	}
	bad := func(why string) error {
		return &Error{Kind: KindNetwork, Msg: "the server's token challenge is not usable: " + why}
	}
	if err != nil {
		return nil, bad("not base64url")
	}
	c, err := privacypass.ParseChallenge(raw)
	if err != nil || c.TokenType != privacypass.TokenTypeBlindRSA {
		return nil, bad("not a TokenChallenge of type 0x0002")
	}
	name, err := privacypass.IssuerName(t.Issuer)
	if err != nil || name != c.IssuerName {
		return nil, bad("it names another issuer than the one the server points to")
	}
	if len(c.RedemptionContext) != 0 {
		return nil, bad("it has a redemption context, which would tie tokens to this moment")
	}
	host, err := privacypass.IssuerName(server)
	if err != nil || !c.HasOrigin(host) {
		return nil, bad("its origin_info does not name this server")
	}
	return raw, nil
}

// consistentKey reads the issuer's directory and returns the key to issue
// under now, refusing an issuer whose key the blob server does not
// publish, and either side listing more keys than a rotation needs.
func consistentKey(ctx context.Context, ic *privacypass.IssuerClient, t *TokenConfig, now time.Time) (*privacypass.PublicKey, string, error) {
	d, reqURL, err := ic.Directory(ctx)
	if err != nil {
		return nil, "", &Error{Kind: KindNetwork, Msg: "reading the token issuer's directory", Err: err}
	}
	keys, err := d.Keys()
	if err != nil {
		return nil, "", &Error{Kind: KindNetwork, Msg: "the token issuer's directory", Err: err}
	}
	if len(keys) > maxPublishedKeys || len(t.Keys) > maxPublishedKeys {
		return nil, "", &Error{Kind: KindTampered, Msg: fmt.Sprintf("the token issuer lists %d keys and the server %d: more than a key rotation needs, so keys could be one user's; refusing to fetch tokens", len(keys), len(t.Keys))}
	}
	key, ok := privacypass.IssuanceKey(keys, now)
	if !ok {
		return nil, "", &Error{Kind: KindNetwork, Msg: "the token issuer publishes no key in use now"}
	}
	for _, k := range t.Keys {
		spki, err := base64.URLEncoding.DecodeString(k.TokenKey)
		if err != nil {
			spki, err = base64.RawURLEncoding.DecodeString(k.TokenKey)
		}
		if err == nil && subtle.ConstantTimeCompare(spki, key.SPKI()) == 1 {
			return key, reqURL, nil
		}
	}
	return nil, "", &Error{Kind: KindTampered, Msg: "the token issuer offers this client a key the server does not publish: tokens under it could be told apart from other users'; refusing to fetch tokens"}
}

func issuerErr(err error) error {
	switch {
	case errors.Is(err, privacypass.ErrInviteUnknown):
		return &Error{Kind: KindAuth, Msg: "the token issuer does not know this invite code", Err: err}
	case errors.Is(err, privacypass.ErrAllotmentUsed):
		return &Error{Kind: KindQuota, Msg: "this invite's tokens for the period are all fetched", Err: err}
	case errors.Is(err, privacypass.ErrBadToken):
		return &Error{Kind: KindTampered, Msg: "the token issuer signed with another key than the one it publishes", Err: err}
	}
	return &Error{Kind: KindNetwork, Msg: "fetching tokens from the issuer", Err: err}
}
