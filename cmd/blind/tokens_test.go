package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blindstore/blindstore/wire"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/bolt"
	"github.com/blindstore/blindstore/bucketer"
	"go.etcd.io/bbolt"
)

// issuer is a running `blindstored issuer` process.
type issuer struct {
	url string
	dir string
}

func startIssuer(t testing.TB) *issuer {
	t.Helper()
	dir := t.TempDir()
	s := startBlindstored(t, 60*time.Second, "issuer", "--listen", "127.0.0.1:0", "--data", dir)
	return &issuer{url: s.url, dir: dir}
}

func (is *issuer) invite(t testing.TB, tokens int) string {
	t.Helper()
	_, bin := binaries(t)
	out, err := exec.Command(bin, "issuer", "invite", "--data", is.dir, "--tokens", fmt.Sprint(tokens)).Output()
	if err != nil {
		t.Fatalf("issuer invite: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func stopServer(s *server) { _ = s.p.Kill() }

// storeBlocks counts the blocks of a stopped server's embedded store.
func storeBlocks(t *testing.T, data string) int64 {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(data, "bucket.key"))
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, bucketer.KeySize)
	if _, err := fmt.Sscanf(strings.TrimSpace(string(raw)), "%x", &key); err != nil {
		t.Fatal(err)
	}
	bk, err := bucketer.New(bucketer.Config{Key: key, Period: bucketer.DefaultPeriod, Retention: bucketer.DefaultRetention})
	if err != nil {
		t.Fatal(err)
	}
	st, err := bolt.Open(filepath.Join(data, "blocks.db"), blobstore.Params{BlockSize: wire.DefaultBlockSize, Fingerprint: bk.Fingerprint()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := st.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s.Blocks
}

type statusJSON struct {
	Files  int `json:"files"`
	Tokens *struct {
		Left   int  `json:"left"`
		Invite bool `json:"invite"`
	} `json:"tokens"`
}

func (u *user) status() statusJSON {
	u.t.Helper()
	var s statusJSON
	if err := json.Unmarshal([]byte(u.must("--json", "status").stdout), &s); err != nil {
		u.t.Fatal(err)
	}
	return s
}

// The blind CLI against a server that charges: no invite, no writes; an
// invite fetches the allotment into a 0600 file; status tells what is
// left; a put that cannot be paid for is refused before anything is sent
// (exit 9), and one that runs out on the way leaves nothing behind; the
// server's spent set holds one nonce per token spent.
func TestBlindPaysWithTokens(t *testing.T) {
	is := startIssuer(t)
	data := t.TempDir()
	args := []string{"--data", data, "--token-issuer", is.url, "--pool-window", "0"}
	srv := startServer(t, args...)
	const allotment = 12
	code := is.invite(t, allotment)

	u := newUser(t, srv.url, "tina")
	r := u.expect(wire.ExitQuota, nil, "signup", "--user", u.name)
	if !strings.Contains(r.stderr, "--invite") {
		t.Fatalf("signup without tokens says %q; it should say how to get them", r.stderr)
	}
	r = u.must("signup", "--user", u.name, "--invite", code)
	if !strings.Contains(r.stderr, fmt.Sprintf("fetched this period's %d write tokens", allotment)) {
		t.Fatalf("signup --invite: stderr %q", r.stderr)
	}
	fi, err := os.Stat(filepath.Join(u.cfg, "tokens.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("tokens.json: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	writeRandom(t, small, 3*capacity, 1) // 3 blocks: one token, and one for the index
	u.must("put", small)
	st := u.status()
	if st.Tokens == nil || st.Tokens.Left != allotment-3 || !st.Tokens.Invite {
		t.Fatalf("status tokens %+v, want %d left (signup, data, index)", st.Tokens, allotment-3)
	}
	if text := u.must("status").stdout; !strings.Contains(text, fmt.Sprintf("tokens:  %d left", allotment-3)) {
		t.Fatalf("status does not show the tokens left:\n%s", text)
	}

	// Too big for what is left: refused before anything is sent.
	big := filepath.Join(dir, "big")
	writeRandom(t, big, int64(64*capacity*(allotment-2)), 2)
	r = u.expect(wire.ExitQuota, nil, "put", big)
	if !strings.Contains(r.stderr, "nothing was sent") {
		t.Fatalf("put beyond the tokens: %q", r.stderr)
	}
	if st := u.status(); st.Tokens.Left != allotment-3 {
		t.Fatalf("a refused put took tokens: %d left", st.Tokens.Left)
	}

	// From standard input the size is not known beforehand: it runs out
	// on the way, and leaves nothing referenced and nothing stored.
	stopServer(srv)
	before := storeBlocks(t, data)
	srv = startServer(t, args...)
	u.server = srv.url
	u.must("logout")
	u.must("login", "--user", u.name) // a login renews the roots, head and index: one token
	fh, err := os.Open(big)
	if err != nil {
		t.Fatal(err)
	}
	bin, _ := binaries(t)
	cmd := exec.Command(bin, "put", "-", "--as", "big")
	cmd.Env = append(os.Environ(), "BLIND_SERVER="+u.server, "BLIND_CONFIG_DIR="+u.cfg, "BLIND_PASSWORD="+u.pass)
	cmd.Stdin = fh
	out, err := cmd.CombinedOutput()
	fh.Close()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != wire.ExitQuota || !strings.Contains(string(out), "out of tokens") {
		t.Fatalf("put - past the tokens: %v\n%s", err, out)
	}
	var files []struct {
		Name string `json:"name"`
	}
	if err := lsFiles(u.must("--json", "ls").stdout, &files); err != nil || len(files) != 1 || files[0].Name != "small" {
		t.Fatalf("ls after the failed put: %+v, %v", files, err)
	}
	left := u.status().Tokens.Left
	stopServer(srv)
	if after := storeBlocks(t, data); after != before {
		t.Fatalf("the store holds %d blocks after the failed put, %d before: half-written blocks stayed", after, before)
	}

	// The spent set: one nonce per token spent, under one key, and
	// nothing else.
	db, err := bbolt.Open(filepath.Join(data, "spent.db"), 0o600, &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	nonces, buckets := 0, 0
	err = db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			buckets++
			if len(name) != 32 {
				return fmt.Errorf("bucket name of %d bytes", len(name))
			}
			return b.ForEach(func(k, v []byte) error {
				if len(k) != 32 || v == nil || len(v) != 0 {
					return fmt.Errorf("entry of %d/%d bytes: not a bare nonce", len(k), len(v))
				}
				nonces++
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	// The client counts a token as used once it went out with a request;
	// when the put fails part-way (out of tokens), requests still in
	// flight are cancelled, and the server may or may not have spent
	// their tokens. So the server holds at most the tokens the client
	// gave out, and at least those less what one file write takes out of
	// the wallet at a time.
	spent := allotment - left
	if buckets != 1 || nonces > spent || nonces < spent-walletTake {
		t.Fatalf("spent.db: %d sets, %d nonces; want 1 set of %d to %d nonces (the client gave out %d tokens)",
			buckets, nonces, spent-walletTake, spent, spent)
	}
}

// An issuer that shows this user a key of its own, which the blob server
// does not publish, is refused: no token is fetched under it.
func TestBlindRefusesAnIssuerKeyForOneUser(t *testing.T) {
	honest, other := startIssuer(t), startIssuer(t)
	var target atomic.Bool
	hu, _ := url.Parse(honest.url)
	ou, _ := url.Parse(other.url)
	hp, op := httputil.NewSingleHostReverseProxy(hu), httputil.NewSingleHostReverseProxy(ou)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The allotment is asked of the honest issuer either way; the
		// directory and the signatures come from the other key when
		// this user is targeted.
		if target.Load() && r.URL.Path != "/v1/allotment" {
			op.ServeHTTP(w, r)
			return
		}
		hp.ServeHTTP(w, r)
	}))
	defer front.Close()
	srv := startServer(t, "--token-issuer", front.URL, "--pool-window", "0")
	code := honest.invite(t, 5)
	// The other issuer knows the code too: it could issue.
	if err := os.CopyFS(filepath.Join(other.dir, "invites"), os.DirFS(filepath.Join(honest.dir, "invites"))); err != nil {
		t.Fatal(err)
	}
	target.Store(true)
	u := newUser(t, srv.url, "vera")
	r := u.expect(wire.ExitTampered, nil, "signup", "--user", u.name, "--invite", code)
	if !strings.Contains(r.stderr, "does not publish") {
		t.Fatalf("signup with a targeted key: %q", r.stderr)
	}
	raw, err := os.ReadFile(filepath.Join(u.cfg, "tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	var w struct {
		Tokens []json.RawMessage `json:"tokens"`
	}
	if err := json.Unmarshal(raw, &w); err != nil || len(w.Tokens) != 0 {
		t.Fatalf("the wallet holds %d tokens from the targeted key (%v)", len(w.Tokens), err)
	}
	target.Store(false)
	u.must("signup", "--user", u.name, "--invite", code)
}

// BLIND_TEST_TOKENS_BENCH=1 compares `blind put` of 256 MiB on a server
// that charges tokens with one that does not, in alternating rounds with
// the default write pool.
func TestBenchPutWithTokens(t *testing.T) {
	if os.Getenv("BLIND_TEST_TOKENS_BENCH") == "" {
		t.Skip("set BLIND_TEST_TOKENS_BENCH=1 to measure a 256 MiB put with and without tokens")
	}
	const size = 256 << 20
	rounds := 3
	is := startIssuer(t)
	paid := startServer(t, "--token-issuer", is.url)
	open := startServer(t, "--write-rate", "0")
	src := filepath.Join(t.TempDir(), "in")
	writeRandom(t, src, size, 7)
	pu := newUser(t, paid.url, "payer")
	pu.must("signup", "--user", pu.name, "--invite", is.invite(t, 100*rounds+20))
	ou := newUser(t, open.url, "free")
	ou.signup()
	var tp, to []time.Duration
	for i := range rounds {
		name := fmt.Sprintf("f%d", i)
		r := ou.must("put", src, "--as", name)
		to = append(to, r.took)
		r = pu.must("put", src, "--as", name)
		tp = append(tp, r.took)
	}
	best := func(ds []time.Duration) time.Duration {
		b := ds[0]
		for _, d := range ds[1:] {
			b = min(b, d)
		}
		return b
	}
	bo, bp := best(to), best(tp)
	ratio := bo.Seconds() / bp.Seconds()
	t.Logf("put 256 MiB: without tokens %v (%.1f MiB/s, rounds %v), with tokens %v (%.1f MiB/s, rounds %v): %.0f%%",
		bo, 256/bo.Seconds(), to, bp, 256/bp.Seconds(), tp, 100*ratio)
	if ratio < 0.9 {
		t.Errorf("with tokens a put runs at %.0f%% of the speed without; the target is 90%%", 100*ratio)
	}
}

// Unattended renewal on another machine pays with that machine's own
// invite: without one it stops with exit 9, with one it renews.
func TestBlindRenewFromExportPays(t *testing.T) {
	is := startIssuer(t)
	srv := startServer(t, "--token-issuer", is.url, "--pool-window", "0")
	u := newUser(t, srv.url, "rita")
	u.must("signup", "--user", u.name, "--invite", is.invite(t, 5))
	export := filepath.Join(t.TempDir(), "renew.json")
	u.must("renew", "--export", export)
	cron := newUser(t, srv.url, "cron")
	cron.expect(wire.ExitQuota, nil, "renew", "--from", export)
	r := cron.must("renew", "--from", export, "--invite", is.invite(t, 2))
	if !strings.Contains(r.stdout, "renewed") {
		t.Fatalf("renew --from: %s", r.stdout)
	}
}

// walletTake is how many tokens one file write takes out of the wallet at
// a time (client.Wallet), the most that can be in flight when a put stops.
const walletTake = 8
