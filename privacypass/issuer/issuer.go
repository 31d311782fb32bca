// Package issuer is `blindstored issuer`: the Privacy Pass issuer of
// blindstore's write tokens (package privacypass). It rotates token keys
// each period, hands out tokens to holders of invite codes within an
// allotment per period, and keeps its count in bbolt. Only the issuer
// needs this package; clients and the blob server use privacypass.
package issuer

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/blindstore/blindstore/internal/atomicfile"

	"github.com/blindstore/blindstore/privacypass"
	"go.etcd.io/bbolt"
)

// The issuer (docs/design.md §11) keeps, in its data directory:
//
//	keys/<period>.pem      the token key of each period (PKCS#8, mode 0600):
//	                       the previous, current and next period's
//	invites/<hash>.json    one file per invite code, named by a hash of
//	                       the code, holding its allotment per period
//	issuer.db              per invite (by the same hash): the period and
//	                       how many tokens it took in it
//
// and nothing else: not who an invite was given to, not when a token was
// issued, not a client address. It cannot tell which token paid for what:
// it signs blinded messages.

// Config configures an Issuer.
type Config struct {
	Dir    string        // data directory
	Period time.Duration // key rotation and allotment period (whole seconds)
	Logger *slog.Logger
	Now    func() time.Time
}

// Issuer issues tokens of type 0x0002 to holders of invite codes.
type Issuer struct {
	cfg Config
	log *slog.Logger
	db  *bbolt.DB

	mu   sync.RWMutex
	keys map[uint64]*privacypass.Signer // by period
}

var bucketUsed = []byte("used")

// Open opens (creating) the issuer's data directory and makes sure
// the current and next period have keys.
func Open(cfg Config) (*Issuer, error) {
	if cfg.Period < time.Second || cfg.Period%time.Second != 0 {
		return nil, fmt.Errorf("privacypass: issuer period must be whole seconds, at least one, got %v", cfg.Period)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	for _, d := range []string{cfg.Dir, filepath.Join(cfg.Dir, "keys"), filepath.Join(cfg.Dir, "invites")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("privacypass: issuer data directory: %w", err)
		}
	}
	db, err := bbolt.Open(filepath.Join(cfg.Dir, "issuer.db"), 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("privacypass: open issuer.db (is another issuer running on this directory?): %w", err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketUsed)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("privacypass: issuer.db: %w", err)
	}
	is := &Issuer{cfg: cfg, log: cfg.Logger, db: db, keys: map[uint64]*privacypass.Signer{}}
	if err := is.Rotate(); err != nil {
		db.Close()
		return nil, err
	}
	return is, nil
}

// Close closes the issuer's database.
func (is *Issuer) Close() error { return is.db.Close() }

func (is *Issuer) period(t time.Time) uint64 {
	return uint64(t.Unix()) / uint64(is.cfg.Period/time.Second)
}

func (is *Issuer) periodStart(p uint64) time.Time {
	return time.Unix(int64(p*uint64(is.cfg.Period/time.Second)), 0)
}

func (is *Issuer) keyPath(p uint64) string {
	return filepath.Join(is.cfg.Dir, "keys", strconv.FormatUint(p, 10)+".pem")
}

// Rotate loads or creates the keys of the current and next period, keeps
// the previous one (tokens under it are still redeemed), and deletes
// older ones. The next key is published ahead of its period, so that
// redeemers know it before any client holds a token under it.
func (is *Issuer) Rotate() error {
	cur := is.period(is.cfg.Now())
	want := map[uint64]bool{cur: true, cur + 1: true}
	if cur > 0 {
		want[cur-1] = true
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	for p := range is.keys {
		if !want[p] {
			delete(is.keys, p)
		}
	}
	for _, p := range []uint64{cur - 1, cur, cur + 1} {
		if !want[p] || is.keys[p] != nil {
			continue
		}
		s, err := is.loadKey(p)
		switch {
		case err == nil:
			is.keys[p] = s
		case errors.Is(err, fs.ErrNotExist) && p != cur-1:
			s, err := is.newKey(p)
			if err != nil {
				return err
			}
			is.keys[p] = s
			is.log.Info("token key created", "period", p, "token_key_id", s.Public().ID().String(), "not_before", is.periodStart(p).UTC())
		case errors.Is(err, fs.ErrNotExist):
		default:
			return err
		}
	}
	// Old keys go: a leaked old key would mint tokens nobody accepts,
	// but there is no reason to keep it.
	entries, err := os.ReadDir(filepath.Join(is.cfg.Dir, "keys"))
	if err != nil {
		return fmt.Errorf("privacypass: list keys: %w", err)
	}
	for _, e := range entries {
		p, err := strconv.ParseUint(strings.TrimSuffix(e.Name(), ".pem"), 10, 64)
		if err != nil || !strings.HasSuffix(e.Name(), ".pem") || want[p] {
			continue
		}
		if err := os.Remove(filepath.Join(is.cfg.Dir, "keys", e.Name())); err != nil {
			return fmt.Errorf("privacypass: remove a retired key: %w", err)
		}
	}
	return nil
}

func (is *Issuer) loadKey(p uint64) (*privacypass.Signer, error) {
	b, err := os.ReadFile(is.keyPath(p))
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("privacypass: %s is not a PEM key", is.keyPath(p))
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("privacypass: %s: %w", is.keyPath(p), err)
	}
	sk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("privacypass: %s is not an RSA key", is.keyPath(p))
	}
	return privacypass.NewSigner(sk)
}

// newKey generates period p's key, avoiding a truncated key id that a
// key still in use has: the issuer picks the key by that byte.
func (is *Issuer) newKey(p uint64) (*privacypass.Signer, error) {
	var s *privacypass.Signer
	var sk *rsa.PrivateKey
	for {
		var err error
		s, sk, err = privacypass.GenerateSigner()
		if err != nil {
			return nil, err
		}
		clash := false
		for _, o := range is.keys {
			if o.Public().ID().Truncated() == s.Public().ID().Truncated() {
				clash = true
			}
		}
		if !clash {
			break
		}
	}
	der, err := x509.MarshalPKCS8PrivateKey(sk)
	if err != nil {
		return nil, fmt.Errorf("privacypass: encode a token key: %w", err)
	}
	if err := atomicfile.WriteFile(is.keyPath(p), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("privacypass: write a token key: %w", err)
	}
	return s, nil
}

// Run rotates keys as periods pass, until ctx ends.
func (is *Issuer) Run(ctx context.Context) {
	tick := min(max(is.cfg.Period/8, 100*time.Millisecond), time.Minute)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := is.Rotate(); err != nil {
				is.log.Error("token key rotation failed; retrying", "err", err)
			}
		}
	}
}

// Directory returns the issuer directory: the current key first (the
// one clients issue under), then the next one (not-before in the future,
// so clients skip it until then), then the previous one (redeemers still
// accept it).
func (is *Issuer) Directory() privacypass.Directory {
	cur := is.period(is.cfg.Now())
	is.mu.RLock()
	defer is.mu.RUnlock()
	d := privacypass.Directory{RequestURI: privacypass.IssuerRequestPath, TokenKeys: []privacypass.DirectoryKey{}}
	for _, p := range []uint64{cur, cur + 1, cur - 1} {
		s := is.keys[p]
		if s == nil || (p == cur-1 && cur == 0) {
			continue
		}
		d.TokenKeys = append(d.TokenKeys, privacypass.DirectoryKey{TokenType: int(privacypass.TokenTypeBlindRSA),
			TokenKey: base64.URLEncoding.EncodeToString(s.Public().SPKI()), NotBefore: is.periodStart(p).Unix()})
	}
	return d
}

// currentSigner returns the key tokens are issued under now.
func (is *Issuer) currentSigner() (*privacypass.Signer, uint64) {
	cur := is.period(is.cfg.Now())
	is.mu.RLock()
	defer is.mu.RUnlock()
	return is.keys[cur], cur
}

// Invite codes. A code is 20 random bytes in lower-case base32, grouped
// by dashes for reading aloud; the issuer keeps only a hash of it.

var inviteEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func inviteHash(code string) [32]byte {
	return sha256.Sum256([]byte("blindstore/v1/invite" + privacypass.NormalizeInvite(code)))
}

type inviteFile struct {
	TokensPerPeriod int `json:"tokens_per_period"`
}

// CreateInvite makes a new invite code worth tokens per period in the
// issuer data directory dir, and returns it. It works while the issuer
// runs: invites are files, read on each request.
func CreateInvite(dir string, tokens int) (string, error) {
	if tokens < 1 {
		return "", fmt.Errorf("privacypass: an invite must be worth at least one token per period")
	}
	var raw [20]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	code := strings.ToLower(inviteEncoding.EncodeToString(raw[:]))
	var groups []string
	for i := 0; i < len(code); i += 4 {
		groups = append(groups, code[i:min(i+4, len(code))])
	}
	code = strings.Join(groups, "-")
	h := inviteHash(code)
	idir := filepath.Join(dir, "invites")
	if err := os.MkdirAll(idir, 0o700); err != nil {
		return "", fmt.Errorf("privacypass: invites directory: %w", err)
	}
	b, _ := json.Marshal(inviteFile{TokensPerPeriod: tokens})
	f, err := os.OpenFile(filepath.Join(idir, hex.EncodeToString(h[:])+".json"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("privacypass: write an invite: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return "", fmt.Errorf("privacypass: write an invite: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", fmt.Errorf("privacypass: write an invite: %w", err)
	}
	return code, f.Close()
}

// errInvite: no such invite (or none given).
var errInvite = errors.New("privacypass: unknown invite code")

// invite returns the allotment of the invite whose hash is h.
func (is *Issuer) invite(h [32]byte) (int, error) {
	b, err := os.ReadFile(filepath.Join(is.cfg.Dir, "invites", hex.EncodeToString(h[:])+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, errInvite
	}
	if err != nil {
		return 0, fmt.Errorf("privacypass: read an invite: %w", err)
	}
	var f inviteFile
	if err := json.Unmarshal(b, &f); err != nil || f.TokensPerPeriod < 1 {
		return 0, fmt.Errorf("privacypass: an invite file is damaged")
	}
	return f.TokensPerPeriod, nil
}

// used returns how many tokens the invite took in period p.
func (is *Issuer) used(h [32]byte, p uint64) (int, error) {
	n := 0
	err := is.db.View(func(tx *bbolt.Tx) error {
		n = decodeUsed(tx.Bucket(bucketUsed).Get(h[:]), p)
		return nil
	})
	return n, err
}

func decodeUsed(v []byte, p uint64) int {
	if len(v) != 12 || binary.BigEndian.Uint64(v) != p {
		return 0
	}
	return int(binary.BigEndian.Uint32(v[8:]))
}

var errAllotment = errors.New("privacypass: this invite's allotment for the period is used up")

// take counts one token against the invite in period p, refusing past
// the allotment. Concurrent issuances share a commit.
func (is *Issuer) take(h [32]byte, p uint64, allot int) error {
	return is.db.Batch(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketUsed)
		n := decodeUsed(b.Get(h[:]), p)
		if n >= allot {
			return errAllotment
		}
		v := make([]byte, 12)
		binary.BigEndian.PutUint64(v, p)
		binary.BigEndian.PutUint32(v[8:], uint32(n+1))
		return b.Put(h[:], v)
	})
}

// giveBack undoes one take of period p, for a token that was counted but
// not issued.
func (is *Issuer) giveBack(h [32]byte, p uint64) error {
	return is.db.Batch(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketUsed)
		n := decodeUsed(b.Get(h[:]), p)
		if n == 0 {
			// The period turned since the take: its count is gone.
			return nil
		}
		v := make([]byte, 12)
		binary.BigEndian.PutUint64(v, p)
		binary.BigEndian.PutUint32(v[8:], uint32(n-1))
		return b.Put(h[:], v)
	})
}

// blindedInRange reports whether req's blinded message, as an integer,
// is below the modulus of s: the only messages RSASP1 signs.
func blindedInRange(s *privacypass.Signer, req *privacypass.TokenRequest) bool {
	return new(big.Int).SetBytes(req.BlindedMsg[:]).Cmp(s.Public().RSA().N) < 0
}

// Handler serves the issuer's HTTP API: the directory, issuance, the
// allotment, and liveness. It never logs an invite code, a request body
// or a client address.
func (is *Issuer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+privacypass.WellKnownDirectory, is.serveDirectory)
	mux.HandleFunc("POST "+privacypass.IssuerRequestPath, is.serveIssue)
	mux.HandleFunc("GET "+privacypass.AllotmentPath, is.serveAllotment)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		issuerProblem(w, http.StatusNotFound, "no_route", "no such route")
	})
	return mux
}

func (is *Issuer) serveDirectory(w http.ResponseWriter, r *http.Request) {
	d := is.Directory()
	body, _ := json.Marshal(d)
	// Caches may keep the directory until the next key could matter;
	// never past the next rotation.
	next := is.periodStart(is.period(is.cfg.Now()) + 1)
	age := min(300, max(0, int(time.Until(next)/time.Second)))
	w.Header().Set("Content-Type", privacypass.MediaDirectory)
	w.Header().Set("Cache-Control", "max-age="+strconv.Itoa(age))
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// bearer returns the invite hash of a request's "Authorization: Bearer
// CODE".
func bearer(r *http.Request) ([32]byte, bool) {
	scheme, code, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(code) == "" {
		return [32]byte{}, false
	}
	return inviteHash(code), true
}

func (is *Issuer) authorize(w http.ResponseWriter, r *http.Request) ([32]byte, int, bool) {
	h, ok := bearer(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="blindstore issuer"`)
		issuerProblem(w, http.StatusUnauthorized, "invite_required", "send the invite code as Authorization: Bearer CODE")
		return h, 0, false
	}
	allot, err := is.invite(h)
	if errors.Is(err, errInvite) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="blindstore issuer", error="invalid_token"`)
		issuerProblem(w, http.StatusUnauthorized, "invite_unknown", "no such invite code")
		return h, 0, false
	}
	if err != nil {
		is.log.Error("issuer: reading an invite failed", "err", err)
		issuerProblem(w, http.StatusServiceUnavailable, "unavailable", "the issuer cannot read its invites; retry later")
		return h, 0, false
	}
	return h, allot, true
}

func (is *Issuer) serveAllotment(w http.ResponseWriter, r *http.Request) {
	h, allot, ok := is.authorize(w, r)
	if !ok {
		return
	}
	s, p := is.currentSigner()
	n, err := is.used(h, p)
	if err != nil || s == nil {
		is.log.Error("issuer: reading the allotment failed", "err", err, "key", s != nil)
		issuerProblem(w, http.StatusServiceUnavailable, "unavailable", "retry later")
		return
	}
	body, _ := json.Marshal(privacypass.Allotment{Period: p, TokensPerPeriod: allot, Left: max(0, allot-n),
		NextPeriodAt: is.periodStart(p + 1).Unix(), TokenKeyID: s.Public().ID().String()})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}

func (is *Issuer) serveIssue(w http.ResponseWriter, r *http.Request) {
	h, allot, ok := is.authorize(w, r)
	if !ok {
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != privacypass.MediaTokenRequest {
		issuerProblem(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be "+privacypass.MediaTokenRequest)
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, privacypass.TokenRequestSize+1))
	if err != nil {
		issuerProblem(w, http.StatusRequestEntityTooLarge, "body_too_large", "a token request is "+strconv.Itoa(privacypass.TokenRequestSize)+" bytes")
		return
	}
	// RFC 9578 §6.2: a request of another type, size or key is 422.
	req, err := privacypass.ParseTokenRequest(raw)
	if err != nil {
		issuerProblem(w, http.StatusUnprocessableEntity, "bad_token_request", "not a token request of type 0x0002")
		return
	}
	s, p := is.currentSigner()
	if s == nil {
		issuerProblem(w, http.StatusServiceUnavailable, "unavailable", "no token key for this period yet; retry later")
		return
	}
	if req.TruncatedKeyID != s.Public().ID().Truncated() {
		issuerProblem(w, http.StatusUnprocessableEntity, "bad_token_request", "the request is not for the current token key: fetch the directory again")
		return
	}
	// RFC 9474 §4.3: a blinded message must be less than the modulus.
	// Refused before take, so that a token the issuer does not sign is
	// not charged to the invite.
	if !blindedInRange(s, req) {
		issuerProblem(w, http.StatusUnprocessableEntity, "bad_token_request", "the blinded message is not valid for the key")
		return
	}
	if err := is.take(h, p, allot); err != nil {
		if errors.Is(err, errAllotment) {
			w.Header().Set("Retry-After", strconv.FormatInt(max(1, int64(time.Until(is.periodStart(p+1))/time.Second)), 10))
			issuerProblem(w, http.StatusTooManyRequests, "allotment_used", "this invite's tokens for the period are all issued")
			return
		}
		is.log.Error("issuer: counting a token failed", "err", err)
		issuerProblem(w, http.StatusServiceUnavailable, "unavailable", "retry later")
		return
	}
	sig, err := s.Sign(req)
	if err != nil {
		// The request was checked above, so this is the signer's fault
		// (its own check of the signature failed): the token is not
		// issued, and its count goes back to the invite.
		is.log.Error("issuer: signing a checked token request failed", "err", err)
		if err := is.giveBack(h, p); err != nil {
			is.log.Error("issuer: returning an unissued token to its invite failed", "err", err)
		}
		issuerProblem(w, http.StatusServiceUnavailable, "unavailable", "retry later")
		return
	}
	w.Header().Set("Content-Type", privacypass.MediaTokenResponse)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(sig)))
	_, _ = w.Write(sig)
}

func issuerProblem(w http.ResponseWriter, status int, code, detail string) {
	body, _ := json.Marshal(map[string]any{"type": "about:blank", "title": http.StatusText(status), "status": status, "detail": detail, "code": code})
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// KeyPeriods lists the periods whose keys the issuer holds, oldest
// first (for tests and the operator's log).
func (is *Issuer) KeyPeriods() []uint64 {
	is.mu.RLock()
	defer is.mu.RUnlock()
	out := make([]uint64, 0, len(is.keys))
	for p := range is.keys {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
