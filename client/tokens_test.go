package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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

	"github.com/blindstore/blindstore/client/format"
	"github.com/blindstore/blindstore/privacypass"
	"github.com/blindstore/blindstore/privacypass/issuer"
	"github.com/blindstore/blindstore/privacypass/spent"
)

// paidServer is a real API that charges tokens, a real issuer, and the
// issuer's data directory for making invites.
type paidServer struct {
	*testServer
	issuerURL string
	issuerDir string
}

// newPaidServer starts an issuer and a blob server redeeming its tokens.
// front, if set, wraps the issuer's handler (a hostile issuer); the blob
// server reads the directory through it too.
func newPaidServer(t *testing.T, front func(honest http.Handler) http.Handler) *paidServer {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	idir := t.TempDir()
	is, err := issuer.Open(issuer.Config{Dir: idir, Period: time.Hour, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = is.Handler()
	if front != nil {
		h = front(h)
	}
	isrv := httptest.NewServer(h)
	t.Cleanup(func() { isrv.Close(); is.Close() })

	sp, err := spent.OpenBolt(filepath.Join(t.TempDir(), "spent.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	red, err := privacypass.NewRedeemer(privacypass.RedeemerConfig{Issuer: isrv.URL, Spent: sp, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := red.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	ts := startTestServer(t, testServerOptions{blockSize: testBlockSize, renewBatch: 8, tokens: red})
	return &paidServer{testServer: ts, issuerURL: isrv.URL, issuerDir: idir}
}

func (p *paidServer) wallet(t *testing.T, tokens int) (*Wallet, string) {
	t.Helper()
	code, err := issuer.CreateInvite(p.issuerDir, tokens)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cfg", "tokens.json")
	w := OpenWallet(path, nil)
	if err := w.SetInvite(context.Background(), code); err != nil {
		t.Fatal(err)
	}
	return w, path
}

func (p *paidServer) paidRemote(t *testing.T, w *Wallet) *Remote {
	r := p.remote(t)
	r.Tokens = w
	return r
}

func TestTokensPayForAnAccount(t *testing.T) {
	p := newPaidServer(t, nil)
	ctx := context.Background()

	// Without tokens, nothing is written.
	if _, _, err := signup(ctx, p.remote(t), "nobody", testLocator(t, "nobody", "pw")); KindOf(err) != KindQuota {
		t.Fatalf("signup without tokens: %v, want KindQuota", err)
	}
	if p.blocks(t) != 0 {
		t.Fatal("an unpaid signup wrote blocks")
	}

	w, path := p.wallet(t, 12)
	r := p.paidRemote(t, w)
	cfg, err := r.Config(ctx)
	if err != nil || cfg.Tokens == nil {
		t.Fatalf("config %+v, %v", cfg, err)
	}
	n, err := w.Refill(ctx, r.URL(), cfg)
	if err != nil || n != 12 {
		t.Fatalf("refill: %d tokens, %v", n, err)
	}
	if n, err := w.Refill(ctx, r.URL(), cfg); err != nil || n != 0 {
		t.Fatalf("second refill in one period fetched %d, %v", n, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("wallet file %v, %v; want mode 0600", fi.Mode(), err)
	}

	a, _, err := signup(ctx, r, "payer", testLocator(t, "payer", "pw"))
	if err != nil {
		t.Fatal(err)
	}
	// 8 blocks per token: a file of 20 blocks takes 3 tokens, its index
	// one more; the signup took one.
	data := randomBytes(20*format.PayloadCapacity(testBlockSize) - 100)
	putBytes(t, a, "f", data)
	if got, err := getBytes(t, a, "f"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: %v", err)
	}
	st, err := w.Status(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Left != 12-1-3-1 || !st.Invite {
		t.Fatalf("tokens left %d, want 7", st.Left)
	}
	// Tokens taken out together and not spent go back to the file on
	// Close; it holds the invite and the tokens only.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	var f walletFile
	if err := json.Unmarshal(raw, &f); err != nil || len(f.Tokens) != 7 || f.Invite == "" {
		t.Fatalf("wallet file: %v, %d tokens", err, len(f.Tokens))
	}

	// Renewal after a period boundary is paid too: blocks of this
	// account (2 roots, head, index, 20 data blocks) in batches of 8.
	p.advance()
	rep, err := a.Renew(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Renewed == 0 {
		t.Fatal("nothing renewed")
	}
	// One token per renew request of up to 8 blocks, and one for the
	// index blocks that record the renewal.
	st2, _ := w.Status(ctx, cfg)
	if spentOnRenew, want := st.Left-st2.Left, (rep.Sent+7)/8+1; spentOnRenew != want {
		t.Fatalf("renewing %d blocks cost %d tokens, want %d", rep.Sent, spentOnRenew, want)
	}
}

// Running out in the middle of an upload leaves nothing referenced and
// nothing behind: the written blocks are deleted (for free), the index
// is unchanged.
func TestOutOfTokensLeavesNothingHalfWritten(t *testing.T) {
	p := newPaidServer(t, nil)
	ctx := context.Background()
	w, _ := p.wallet(t, 4)
	r := p.paidRemote(t, w)
	a, _, err := signup(ctx, r, "short", testLocator(t, "short", "pw"))
	if err != nil {
		t.Fatal(err)
	}
	putBytes(t, a, "small", randomBytes(100))
	before := p.blocks(t)
	// 3 tokens were used (signup, data, index); one is left, and this
	// file needs five.
	_, err = a.Put(ctx, bytes.NewReader(randomBytes(40*format.PayloadCapacity(testBlockSize))), PutInfo{Name: "big", Mode: 0o600}, nil)
	if KindOf(err) != KindQuota {
		t.Fatalf("put past the allotment: %v, want KindQuota", err)
	}
	if _, err := a.Lookup("big"); KindOf(err) != KindNotFound {
		t.Fatal("the half-written file is in the index")
	}
	if after := p.blocks(t); after != before {
		t.Fatalf("the store holds %d blocks, held %d before the failed put", after, before)
	}
	// Reading needs no token.
	if _, err := getBytes(t, a, "small"); err != nil {
		t.Fatalf("read without tokens: %v", err)
	}
}

// An issuer that hands this client a key the blob server does not know
// (as it would to single out one user) is refused before any token is
// fetched under it.
func TestIssuerWithAPerUserKeyIsRefused(t *testing.T) {
	var target atomic.Bool
	otherDir := t.TempDir()
	other, err := issuer.Open(issuer.Config{Dir: otherDir, Period: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	// The hostile front serves the honest directory until it targets,
	// then its own key, and signs under it.
	p := newPaidServer(t, func(honest http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if target.Load() && r.URL.Path != privacypass.AllotmentPath {
				other.Handler().ServeHTTP(w, r)
				return
			}
			honest.ServeHTTP(w, r)
		})
	})
	code, _ := issuer.CreateInvite(p.issuerDir, 5)
	// The hostile issuer knows the user's invite too.
	if err := os.CopyFS(filepath.Join(otherDir, "invites"), os.DirFS(filepath.Join(p.issuerDir, "invites"))); err != nil {
		t.Fatal(err)
	}
	target.Store(true)
	w := OpenWallet(filepath.Join(t.TempDir(), "tokens.json"), nil)
	if err := w.SetInvite(context.Background(), code); err != nil {
		t.Fatal(err)
	}
	r := p.paidRemote(t, w)
	cfg, err := r.Config(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n, err := w.Refill(context.Background(), r.URL(), cfg)
	if KindOf(err) != KindTampered || n != 0 || !strings.Contains(err.Error(), "does not publish") {
		t.Fatalf("refill from an issuer with a key of its own: %d tokens, %v; want KindTampered", n, err)
	}
	st, _ := w.Status(context.Background(), cfg)
	if st.Left != 0 {
		t.Fatal("tokens were kept")
	}
	// The honest issuer serves the same client fine.
	target.Store(false)
	if n, err := w.Refill(context.Background(), r.URL(), cfg); err != nil || n != 5 {
		t.Fatalf("refill from the honest issuer: %d, %v", n, err)
	}
}

// Two processes (two Wallets on one file) taking tokens at once never
// get the same one, and between them get every one: a token sent twice
// would link two requests.
func TestWalletNeverHandsOutATokenTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	tc := &TokenConfig{Challenge: "c", Keys: []TokenKeyInfo{{TokenKeyID: "k", Accepted: true}}}
	f := &walletFile{Format: walletFormat}
	const n = 100
	for i := range n {
		f.Tokens = append(f.Tokens, walletToken{Challenge: "c", KeyID: "k", Token: fmt.Sprintf("tok%03d", i)})
	}
	a, b := OpenWallet(path, nil), OpenWallet(path, nil)
	if err := a.save(f); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for i := range 8 {
		w := a
		if i%2 == 1 {
			w = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n / 8 {
				tok, _, err := w.take(context.Background(), tc)
				if err != nil {
					t.Error(err)
					return
				}
				if tok == "" {
					return
				}
				mu.Lock()
				seen[tok]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for tok, c := range seen {
		if c != 1 {
			t.Fatalf("%s handed out %d times", tok, c)
		}
	}
	// What was taken out and not spent goes back.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	w := OpenWallet(path, nil)
	st, err := w.Status(context.Background(), &ServerConfig{Tokens: tc})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen)+st.Left != n {
		t.Fatalf("%d handed out and %d back in the file, of %d", len(seen), st.Left, n)
	}
}
