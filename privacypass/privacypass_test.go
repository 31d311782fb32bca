package privacypass_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blindstore/blindstore/privacypass"
	"github.com/blindstore/blindstore/privacypass/issuer"
	"github.com/blindstore/blindstore/privacypass/spent"
	"go.etcd.io/bbolt"
)

// clock is a settable time for the issuer and the redeemer.
type clock struct{ t atomic.Int64 }

func newClock(t time.Time) *clock { c := &clock{}; c.t.Store(t.UnixNano()); return c }
func (c *clock) Now() time.Time   { return time.Unix(0, c.t.Load()) }
func (c *clock) Add(d time.Duration) {
	c.t.Add(int64(d))
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const period = time.Hour

type stack struct {
	clock    *clock
	issuer   *issuer.Issuer
	url      string
	dir      string
	redeemer *privacypass.Redeemer
	spent    *spent.Bolt
	spentDB  string
}

// newStack runs a real issuer over HTTP on loopback and a redeemer that
// reads its directory, both on a settable clock.
func newStack(t testing.TB) *stack {
	t.Helper()
	c := newClock(time.Unix(1_800_000_000, 0).Truncate(period).Add(time.Minute))
	dir := t.TempDir()
	is, err := issuer.Open(issuer.Config{Dir: dir, Period: period, Logger: quiet, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(is.Handler())
	t.Cleanup(func() { srv.Close(); is.Close() })
	spentDB := filepath.Join(t.TempDir(), "spent.db")
	sp, err := spent.OpenBolt(spentDB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	r, err := privacypass.NewRedeemer(privacypass.RedeemerConfig{Issuer: srv.URL, Spent: sp, Logger: quiet, Now: c.Now, Grace: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &stack{clock: c, issuer: is, url: srv.URL, dir: dir, redeemer: r, spent: sp, spentDB: spentDB}
}

// client is a client of the stack's issuer with invite, and the request
// URL and the key its directory gives to issue under now.
func (s *stack) client(t testing.TB, invite string) (*privacypass.IssuerClient, string, *privacypass.PublicKey) {
	t.Helper()
	ic := &privacypass.IssuerClient{URL: s.url, Invite: invite, HTTP: http.DefaultClient}
	d, reqURL, err := ic.Directory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	keys, err := d.Keys()
	if err != nil {
		t.Fatal(err)
	}
	key, ok := privacypass.IssuanceKey(keys, s.clock.Now())
	if !ok {
		t.Fatal("no key to issue under")
	}
	return ic, reqURL, key
}

// tokens fetches n tokens for the redeemer's challenge with a new
// invite of the given allotment.
func (s *stack) tokens(t testing.TB, allotment, n int) []*privacypass.Token {
	t.Helper()
	code, err := issuer.CreateInvite(s.dir, allotment)
	if err != nil {
		t.Fatal(err)
	}
	toks, err := s.issue(t, code, n)
	if err != nil {
		t.Fatal(err)
	}
	return toks
}

// issue fetches n tokens for the redeemer's challenge with invite.
func (s *stack) issue(t testing.TB, invite string, n int) ([]*privacypass.Token, error) {
	t.Helper()
	ic, reqURL, key := s.client(t, invite)
	var out []*privacypass.Token
	for range n {
		tok, err := ic.Issue(context.Background(), reqURL, key, s.redeemer.Challenge())
		if err != nil {
			return out, err
		}
		out = append(out, tok)
	}
	return out, nil
}

func (s *stack) redeem(tok *privacypass.Token) error {
	t, err := s.redeemer.Check(privacypass.FormatAuthorization(tok))
	if err != nil {
		return err
	}
	return s.redeemer.Spend(context.Background(), t)
}

func TestIssueRedeemAndDoubleSpend(t *testing.T) {
	s := newStack(t)
	code, err := issuer.CreateInvite(s.dir, 3)
	if err != nil {
		t.Fatal(err)
	}
	ic := &privacypass.IssuerClient{URL: s.url, Invite: strings.ToUpper(code), HTTP: http.DefaultClient}
	a, err := ic.Allotment(context.Background())
	if err != nil || a.Left != 3 || a.TokensPerPeriod != 3 {
		t.Fatalf("allotment %+v, %v", a, err)
	}
	toks, err := s.issue(t, code, 4)
	if !errors.Is(err, privacypass.ErrAllotmentUsed) || len(toks) != 3 {
		t.Fatalf("issued %d tokens of an allotment of 3, then %v; want 3 and ErrAllotmentUsed", len(toks), err)
	}
	if _, err := s.issue(t, "aaaa-bbbb", 1); !errors.Is(err, privacypass.ErrInviteUnknown) {
		t.Fatalf("unknown invite: %v", err)
	}
	for i, tok := range toks {
		if err := s.redeem(tok); err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
	}
	if err := s.redeem(toks[0]); !errors.Is(err, privacypass.ErrSpent) {
		t.Fatalf("second spend: %v, want ErrSpent", err)
	}
	// A token for another challenge (another origin) is refused before
	// its signature is even checked.
	other, err := privacypass.NewRedeemer(privacypass.RedeemerConfig{Issuer: s.url, OriginInfo: "elsewhere.example", Spent: s.spent, Logger: quiet, Now: s.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	code2, _ := issuer.CreateInvite(s.dir, 1)
	tok2, err := s.issue(t, code2, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Check(privacypass.FormatAuthorization(tok2[0])); !errors.Is(err, privacypass.ErrChallenge) {
		t.Fatalf("token for another challenge: %v", err)
	}
	// A forged authenticator fails verification.
	forged := *tok2[0]
	forged.Authenticator[10] ^= 0x40
	if err := s.redeem(&forged); !errors.Is(err, privacypass.ErrBadToken) {
		t.Fatalf("forged token: %v", err)
	}
	if err := s.redeem(tok2[0]); err != nil {
		t.Fatalf("the genuine token after a forged copy was refused: %v", err)
	}
	if _, err := s.redeemer.Check(""); !errors.Is(err, privacypass.ErrNoToken) {
		t.Fatalf("no credentials: %v", err)
	}
	if _, err := s.redeemer.Check("Basic dXNlcjpwYXNz"); !errors.Is(err, privacypass.ErrNoToken) {
		t.Fatalf("other scheme: %v", err)
	}
	if _, err := s.redeemer.Check(`PrivateToken token="AAIA"`); !errors.Is(err, privacypass.ErrMalformed) {
		t.Fatalf("short token: %v", err)
	}
}

// A token from an issuer key this redeemer does not know is refused
// even though its signature is valid under that key.
func TestForeignKeyRefused(t *testing.T) {
	s := newStack(t)
	foreign := newStack(t)
	code, _ := issuer.CreateInvite(foreign.dir, 1)
	// The foreign issuer signs for our challenge, under its own key.
	ic, reqURL, key := foreign.client(t, code)
	tok, err := ic.Issue(context.Background(), reqURL, key, s.redeemer.Challenge())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.redeem(tok); !errors.Is(err, privacypass.ErrUnknownKey) {
		t.Fatalf("token of a foreign key: %v, want ErrUnknownKey", err)
	}
}

// Keys rotate each period: a token stays good through the next period
// (its key is then the previous one) and is refused after, and the spent
// set of a retired key is dropped whole.
func TestRotationRetiresKeysAndDropsTheirSpentSets(t *testing.T) {
	s := newStack(t)
	code, _ := issuer.CreateInvite(s.dir, 4)
	toks, err := s.issue(t, code, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.redeem(toks[0]); err != nil {
		t.Fatal(err)
	}
	first := toks[0].KeyID
	if got := len(s.redeemer.Keys()); got != 2 {
		t.Fatalf("redeemer knows %d keys at start (current and next), want 2", got)
	}

	// Next period: the key is the previous one, still accepted; a new
	// allotment is available under the new key.
	s.clock.Add(period)
	if err := s.issuer.Rotate(); err != nil {
		t.Fatal(err)
	}
	if err := s.redeemer.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.redeem(toks[1]); err != nil {
		t.Fatalf("token of the previous key: %v", err)
	}
	if err := s.redeem(toks[0]); !errors.Is(err, privacypass.ErrSpent) {
		t.Fatalf("a spent token of the previous key: %v", err)
	}
	fresh, err := s.issue(t, code, 4)
	if err != nil || len(fresh) != 4 || fresh[0].KeyID == first {
		t.Fatalf("new period: %d tokens, %v; want a full allotment under a new key", len(fresh), err)
	}

	// Two periods on, the first key is retired: its last token is
	// refused, and its spent set goes.
	s.clock.Add(period)
	if err := s.issuer.Rotate(); err != nil {
		t.Fatal(err)
	}
	if err := s.redeemer.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.redeem(toks[2]); !errors.Is(err, privacypass.ErrUnknownKey) {
		t.Fatalf("token of a rotated-out key: %v, want ErrUnknownKey", err)
	}
	if err := s.redeem(fresh[0]); err != nil {
		t.Fatalf("token of the previous key: %v", err)
	}
	if err := s.redeemer.DropRetired(context.Background()); err != nil {
		t.Fatal(err)
	}
	ids, err := s.spent.Keys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if id == first {
			t.Fatal("the retired key's spent set is still there")
		}
	}
	if len(ids) != 1 {
		t.Fatalf("%d spent sets, want the one of the key in use", len(ids))
	}
	// The issuer keeps three keys at most on disk.
	entries, _ := os.ReadDir(filepath.Join(s.dir, "keys"))
	if len(entries) != 3 || len(s.issuer.KeyPeriods()) != 3 {
		t.Fatalf("issuer holds %d key files, %v in memory; want previous, current and next", len(entries), s.issuer.KeyPeriods())
	}
}

// The spent set file holds buckets named by key ids and, in them,
// 32-byte nonces with empty values: nothing else.
func TestSpentFileHoldsOnlyNonces(t *testing.T) {
	s := newStack(t)
	toks := s.tokens(t, 5, 5)
	for _, tok := range toks {
		if err := s.redeem(tok); err != nil {
			t.Fatal(err)
		}
	}
	s.spent.Close()
	db, err := bbolt.Open(s.spentDB, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	nonces := map[[32]byte]bool{}
	err = db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			if len(name) != 32 {
				t.Errorf("bucket named with %d bytes", len(name))
			}
			return b.ForEach(func(k, v []byte) error {
				if v == nil {
					t.Error("a nested bucket in a spent set")
				}
				if len(k) != 32 || len(v) != 0 {
					t.Errorf("entry of %d-byte key and %d-byte value; want a 32-byte nonce and nothing", len(k), len(v))
				}
				nonces[[32]byte(k)] = true
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(nonces) != len(toks) {
		t.Fatalf("%d nonces stored for %d tokens spent", len(nonces), len(toks))
	}
	for _, tok := range toks {
		if !nonces[tok.Nonce] {
			t.Fatal("a spent token's nonce is missing")
		}
	}
}

func TestConcurrentSpendsOfOneTokenSucceedOnce(t *testing.T) {
	s := newStack(t)
	toks := s.tokens(t, 1, 1)
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s.redeem(toks[0]) == nil {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("%d of 16 concurrent spends of one token succeeded", ok.Load())
	}
}

func TestParseAuthForms(t *testing.T) {
	cs, err := privacypass.ParseAuth(`Negotiate abc==, Basic realm="a \"quoted\" realm", PrivateToken challenge=AAI, token-key="x=="`)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 3 || cs[0].Token68 != "abc==" || cs[1].Params["realm"] != `a "quoted" realm` ||
		cs[2].Params["challenge"] != "AAI" || cs[2].Params["token-key"] != "x==" {
		t.Fatalf("parsed %+v", cs)
	}
	for _, bad := range []string{`PrivateToken token="abc`, `=x`, `PrivateToken a=b c`} {
		if _, err := privacypass.ParseAuth(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	// "token=" is a token68 by the grammar, so no token parameter.
	if _, err := privacypass.ParseAuthorization(`PrivateToken token=`); !errors.Is(err, privacypass.ErrMalformed) {
		t.Errorf("empty token: %v", err)
	}
}
