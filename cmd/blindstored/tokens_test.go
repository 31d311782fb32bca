package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	binenc "encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/bolt"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/internal/pgtest"
	"github.com/blindstore/blindstore/privacypass"
	"github.com/blindstore/blindstore/wire"
	"github.com/jackc/pgx/v5"
	"go.etcd.io/bbolt"
)

// issuerProc is a running `blindstored issuer`.
type issuerProc struct {
	*server
	dir string
}

// startIssuer runs the issuer process on a fresh data directory.
func startIssuer(t *testing.T, args ...string) *issuerProc {
	t.Helper()
	dir := t.TempDir()
	s := startProcess(t, binary(t), nil, append([]string{"issuer", "--listen", "127.0.0.1:0", "--data", dir}, args...)...)
	return &issuerProc{server: s, dir: dir}
}

// invite runs `blindstored issuer invite` and returns the code.
func (is *issuerProc) invite(t *testing.T, tokens int) string {
	t.Helper()
	out, code := runCLI(t, []string{"BLINDSTORE_ISSUER_DATA=" + is.dir}, "issuer", "invite", "--tokens", fmt.Sprint(tokens))
	if code != 0 {
		t.Fatalf("issuer invite: exit %d\n%s", code, out)
	}
	return strings.TrimSpace(out)
}

// tokens fetches n tokens for the blob server at url (its challenge from
// /v1/config) with invite. It stops at the first refusal and returns it.
func fetchTokens(t *testing.T, issuerURL, url, invite string, n int) ([]string, error) {
	t.Helper()
	cfg := config(t, url)
	if cfg.Tokens == nil {
		t.Fatal("the server takes no tokens")
	}
	ch, err := base64.URLEncoding.DecodeString(cfg.Tokens.Challenge)
	if err != nil {
		t.Fatal(err)
	}
	ic := &privacypass.IssuerClient{URL: issuerURL, Invite: invite, HTTP: http.DefaultClient}
	d, reqURL, err := ic.Directory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	keys, err := d.Keys()
	if err != nil {
		t.Fatal(err)
	}
	key, ok := privacypass.IssuanceKey(keys, time.Now())
	if !ok {
		t.Fatal("no issuance key")
	}
	var out []string
	for range n {
		tok, err := ic.Issue(context.Background(), reqURL, key, ch)
		if err != nil {
			return out, err
		}
		out = append(out, privacypass.FormatAuthorization(tok))
	}
	return out, nil
}

type tokenConfig struct {
	Tokens *struct {
		Issuer         string `json:"issuer"`
		Challenge      string `json:"challenge"`
		BlocksPerToken int    `json:"blocks_per_token"`
		Keys           []struct {
			TokenKeyID string `json:"token_key_id"`
			Accepted   bool   `json:"accepted"`
		} `json:"token_keys"`
	} `json:"tokens"`
	Limits struct {
		RenewBatch  int      `json:"renew_batch"`
		WriteBatch  int      `json:"write_batch"`
		MaxBlocks   int64    `json:"max_blocks"`
		WriteRate   *float64 `json:"write_rate_per_second"`
		WriteBurst  *int     `json:"write_burst"`
		BlockSizeIn int      `json:"-"`
	} `json:"limits"`
	BlockSize int `json:"block_size"`
}

func config(t *testing.T, url string) tokenConfig {
	t.Helper()
	code, body := httpGet(t, url+"/v1/config")
	if code != 200 {
		t.Fatalf("config: %d", code)
	}
	var c tokenConfig
	if err := json.Unmarshal([]byte(body), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

type answer struct {
	status int
	code   string
	header http.Header
	body   []byte
}

func send(t *testing.T, method, url string, body []byte, h ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(h); i += 2 {
		if h[i+1] != "" {
			req.Header.Set(h[i], h[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(b, &p)
	return answer{status: resp.StatusCode, code: p.Code, header: resp.Header, body: b}
}

type testBlock struct {
	id   wire.ID
	w    wire.WriteProof
	data []byte
}

func newTestBlock(bs int) testBlock {
	b := testBlock{id: wire.NewID(), data: make([]byte, bs)}
	rand.Read(b.w[:])
	rand.Read(b.data)
	return b
}

func putOne(t *testing.T, url string, b testBlock, token string, h ...string) answer {
	t.Helper()
	return send(t, "PUT", url+"/v1/blocks/"+b.id.String(), b.data,
		append([]string{"Blind-Proof", wire.EncodeProof(b.w), "Content-Type", "application/octet-stream", "Authorization", token}, h...)...)
}

func batchOf(t *testing.T, url string, blocks []testBlock, token string) answer {
	t.Helper()
	type entry struct {
		ID         string `json:"id"`
		Proof      string `json:"proof"`
		CreateOnly bool   `json:"create_only"`
	}
	var m struct {
		Blocks []entry `json:"blocks"`
	}
	for _, b := range blocks {
		m.Blocks = append(m.Blocks, entry{b.id.String(), wire.EncodeProof(b.w), true})
	}
	raw, _ := json.Marshal(m)
	var buf bytes.Buffer
	binenc.Write(&buf, binenc.BigEndian, uint32(len(raw)))
	buf.Write(raw)
	for _, b := range blocks {
		buf.Write(b.data)
	}
	return send(t, "POST", url+"/v1/blocks", buf.Bytes(), "Content-Type", "application/vnd.blindstore.batch", "Authorization", token)
}

func renewOf(t *testing.T, url string, blocks []testBlock, token string) answer {
	t.Helper()
	type entry struct {
		ID    string `json:"id"`
		Proof string `json:"proof"`
	}
	var body struct {
		Blocks []entry `json:"blocks"`
	}
	for _, b := range blocks {
		body.Blocks = append(body.Blocks, entry{b.id.String(), wire.EncodeProof(b.w.Renew())})
	}
	raw, _ := json.Marshal(body)
	return send(t, "POST", url+"/v1/renew", raw, "Content-Type", "application/json", "Authorization", token)
}

func want401(t *testing.T, a answer, code string) {
	t.Helper()
	if a.status != http.StatusUnauthorized || a.code != code || !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "PrivateToken challenge=") {
		t.Fatalf("answer %d %q (WWW-Authenticate %q), want 401 %s with a PrivateToken challenge", a.status, a.code, a.header.Get("WWW-Authenticate"), code)
	}
}

// countBlocks opens a stopped server's embedded store and counts its
// blocks.
func countBlocks(t *testing.T, data string, bs int) int64 {
	t.Helper()
	keyHex, err := os.ReadFile(filepath.Join(data, "bucket.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := parseKey(keyHex)
	if err != nil {
		t.Fatal(err)
	}
	bk, err := bucketer.New(bucketer.Config{Key: key, Period: bucketer.DefaultPeriod, Retention: bucketer.DefaultRetention})
	if err != nil {
		t.Fatal(err)
	}
	st, err := bolt.Open(filepath.Join(data, "blocks.db"), blobstore.Params{BlockSize: bs, Fingerprint: bk.Fingerprint()})
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

// spentNonces reads a stopped server's spent.db and fails unless it
// holds buckets named by 32-byte key ids of 32-byte nonces with empty
// values, and nothing else. It returns the nonces per key.
func spentNonces(t *testing.T, data string) map[string]int {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(data, "spent.db"), 0o600, &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string]int{}
	err = db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			if len(name) != 32 {
				return fmt.Errorf("a top-level bucket named with %d bytes", len(name))
			}
			id := privacypass.KeyID(name).String()
			return b.ForEach(func(k, v []byte) error {
				if v == nil {
					return errors.New("a nested bucket in a spent set")
				}
				if len(k) != 32 || len(v) != 0 {
					return fmt.Errorf("an entry of a %d-byte key and a %d-byte value; a spent set holds 32-byte nonces and nothing else", len(k), len(v))
				}
				out[id]++
				return nil
			})
		})
	})
	if err != nil {
		t.Fatalf("spent.db: %v", err)
	}
	return out
}

// Real processes: an issuer and a blob server that charges. Writes with
// no token, a spent one or a foreign one write nothing; one token pays
// for a batch and one for a renewal; the invite's allotment then stops
// further writes and renewals; the spent set survives a restart and
// holds nothing but nonces.
func TestPaidWritesOverRealProcesses(t *testing.T) {
	is := startIssuer(t)
	foreign := startIssuer(t)
	data := t.TempDir()
	args := []string{"--data", data, "--block-size", "4096", "--pool-window", "0", "--write-batch", "8", "--token-issuer", is.url}
	srv := startServer(t, nil, args...)
	cfg := config(t, srv.url)
	if cfg.Tokens == nil || cfg.Tokens.Issuer != is.url || cfg.Tokens.BlocksPerToken != 8 || cfg.Limits.RenewBatch != 8 || cfg.Limits.WriteRate != nil {
		t.Fatalf("config: %+v", cfg)
	}

	code := is.invite(t, 3)
	toks, err := fetchTokens(t, is.url, srv.url, code, 4)
	if !errors.Is(err, privacypass.ErrAllotmentUsed) || len(toks) != 3 {
		t.Fatalf("fetched %d tokens of an allotment of 3, then %v", len(toks), err)
	}

	b := newTestBlock(4096)
	want401(t, putOne(t, srv.url, b, ""), wire.CodeTokenRequired)
	a := putOne(t, srv.url, b, toks[0])
	if a.status != http.StatusCreated {
		t.Fatalf("paid put: %d %s", a.status, a.body)
	}
	b2 := newTestBlock(4096)
	want401(t, putOne(t, srv.url, b2, toks[0]), wire.CodeTokenSpent)

	// A token of another issuer's key, for this very challenge.
	fcode := foreign.invite(t, 1)
	ftoks, err := fetchTokens(t, foreign.url, srv.url, fcode, 1)
	if err != nil {
		t.Fatal(err)
	}
	want401(t, putOne(t, srv.url, b2, ftoks[0]), wire.CodeTokenInvalid)

	// One token pays for a batch of 8 new blocks, one for renewing them.
	var batch []testBlock
	for range 8 {
		batch = append(batch, newTestBlock(4096))
	}
	if a := batchOf(t, srv.url, batch, toks[1]); a.status != http.StatusOK {
		t.Fatalf("paid batch: %d %s", a.status, a.body)
	}
	want401(t, renewOf(t, srv.url, batch, ""), wire.CodeTokenRequired)
	if a := renewOf(t, srv.url, batch, toks[2]); a.status != http.StatusOK {
		t.Fatalf("paid renew: %d %s", a.status, a.body)
	}
	// The allotment is used up: the issuer refuses more, and without a
	// token the server refuses writes and renewals alike.
	if more, err := fetchTokens(t, is.url, srv.url, code, 1); !errors.Is(err, privacypass.ErrAllotmentUsed) || len(more) != 0 {
		t.Fatalf("a token past the allotment: %v", err)
	}
	want401(t, putOne(t, srv.url, b2, ""), wire.CodeTokenRequired)
	want401(t, batchOf(t, srv.url, []testBlock{b2}, ""), wire.CodeTokenRequired)
	want401(t, renewOf(t, srv.url, batch, ""), wire.CodeTokenRequired)
	// Overwrites (with If-Match) and deletes stay free.
	b.data[0] ^= 1
	if a := putOne(t, srv.url, b, "", "If-Match", wire.ETagOf(append([]byte{b.data[0] ^ 1}, b.data[1:]...)).String()); a.status != http.StatusNoContent {
		t.Fatalf("free overwrite: %d %s", a.status, a.body)
	}
	if a := send(t, "DELETE", srv.url+"/v1/blocks/"+batch[7].id.String(), nil, "Blind-Proof", wire.EncodeProof(batch[7].w)); a.status != http.StatusNoContent {
		t.Fatalf("free delete: %d", a.status)
	}

	// A restart keeps the spent set: the first token is still spent.
	srv.kill(t)
	srv = startServer(t, nil, args...)
	want401(t, putOne(t, srv.url, b2, toks[1]), wire.CodeTokenSpent)
	srv.kill(t)

	if n := countBlocks(t, data, 4096); n != 1+8-1 {
		t.Fatalf("the store holds %d blocks, want 8: only paid creations landed", n)
	}
	nonces := spentNonces(t, data)
	total := 0
	for _, n := range nonces {
		total += n
	}
	if len(nonces) != 1 || total != 3 {
		t.Fatalf("spent sets %v, want the 3 nonces spent under the one key", nonces)
	}
	for _, l := range []string{is.logs.String(), srv.logs.String()} {
		for _, s := range append([]string{code, privacypass.NormalizeInvite(code), "127.0.0.1:"}, toks...) {
			if s == "127.0.0.1:" {
				// The listening addresses are logged on purpose; client
				// addresses (with their ephemeral ports) must not be.
				continue
			}
			if strings.Contains(l, s) || strings.Contains(l, strings.Trim(strings.TrimPrefix(s, "PrivateToken token="), `"`)) {
				t.Fatalf("a log holds an invite code or a token:\n%s", l)
			}
		}
	}
}

// Keys rotate every period: a token is good through the next period and
// refused after, with a short real period.
func TestRotatedOutKeyRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for two key rotations (about 10 s)")
	}
	const period = 3 * time.Second
	is := startIssuer(t, "--period", period.String())
	srv := startServer(t, nil, "--data", t.TempDir(), "--block-size", "4096", "--pool-window", "0",
		"--token-issuer", is.url, "--token-refresh", "1s")
	// Start at the beginning of a period, so that the timing below holds.
	now := time.Now()
	time.Sleep(now.Truncate(period).Add(period + 200*time.Millisecond).Sub(now))
	waitKey := func() {
		// The server learns the period's key within --token-refresh.
		time.Sleep(1500 * time.Millisecond)
	}
	waitKey()
	code := is.invite(t, 3)
	toks, err := fetchTokens(t, is.url, srv.url, code, 3)
	if err != nil {
		t.Fatal(err)
	}
	if a := putOne(t, srv.url, newTestBlock(4096), toks[0]); a.status != http.StatusCreated {
		t.Fatalf("fresh token: %d %s", a.status, a.body)
	}
	// Next period: the key is the previous one, still accepted.
	time.Sleep(time.Now().Truncate(period).Add(period).Sub(time.Now()))
	waitKey()
	if a := putOne(t, srv.url, newTestBlock(4096), toks[1]); a.status != http.StatusCreated {
		t.Fatalf("token of the previous key: %d %s", a.status, a.body)
	}
	// Two periods on: rotated out.
	time.Sleep(time.Now().Truncate(period).Add(period).Sub(time.Now()))
	waitKey()
	want401(t, putOne(t, srv.url, newTestBlock(4096), toks[2]), wire.CodeTokenInvalid)
	cfg := config(t, srv.url)
	if n := len(cfg.Tokens.Keys); n > 4 || n < 2 {
		t.Fatalf("server publishes %d keys", n)
	}
}

// Without an issuer the store is open, and safe: a write rate per
// address and a capacity cap, both in /v1/config.
func TestOpenStoreLimitsOverRealProcess(t *testing.T) {
	srv := startServer(t, nil, "--data", t.TempDir(), "--block-size", "4096", "--pool-window", "0",
		"--max-blocks", "4", "--write-rate", "0.2", "--write-burst", "70")
	cfg := config(t, srv.url)
	if cfg.Tokens != nil || cfg.Limits.MaxBlocks != 4 || cfg.Limits.WriteBurst == nil || *cfg.Limits.WriteBurst != 70 || *cfg.Limits.WriteRate != 0.2 {
		t.Fatalf("config limits: %+v", cfg.Limits)
	}
	var blocks []testBlock
	for range 4 {
		b := newTestBlock(4096)
		if a := putOne(t, srv.url, b, ""); a.status != http.StatusCreated {
			t.Fatalf("put: %d %s", a.status, a.body)
		}
		blocks = append(blocks, b)
	}
	a := putOne(t, srv.url, newTestBlock(4096), "")
	if a.status != http.StatusInsufficientStorage || a.code != wire.CodeFull || a.header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("put into a full store: %d %s", a.status, a.body)
	}
	// Overwrites pass until the address's burst is spent.
	b := blocks[0]
	for i := 0; ; i++ {
		old := wire.ETagOf(b.data).String()
		rand.Read(b.data)
		a := putOne(t, srv.url, b, "", "If-Match", old)
		if a.status == http.StatusTooManyRequests {
			if a.code != wire.CodeRateLimited || a.header.Get("Retry-After") == "" || i != 70-4 {
				t.Fatalf("after %d overwrites: %d %s, Retry-After %q; want 429 after 66", i, a.status, a.body, a.header.Get("Retry-After"))
			}
			break
		}
		if a.status != http.StatusNoContent || i > 70 {
			t.Fatalf("overwrite %d: %d %s", i, a.status, a.body)
		}
	}
	if a := send(t, "DELETE", srv.url+"/v1/blocks/"+blocks[1].id.String(), nil, "Blind-Proof", wire.EncodeProof(blocks[1].w)); a.status != http.StatusNoContent {
		t.Fatalf("a delete in a rate-limited, full store: %d", a.status)
	}
}

// On PostgreSQL the spent sets are tables of one column, the nonce.
func TestPaidWritesOnPostgres(t *testing.T) {
	url := pgtest.URL(t)
	is := startIssuer(t)
	srv := startServer(t, nil, "--store", url, "--data", t.TempDir(), "--block-size", "4096", "--pool-window", "0", "--token-issuer", is.url)
	code := is.invite(t, 4)
	toks, err := fetchTokens(t, is.url, srv.url, code, 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range toks[:3] {
		if a := putOne(t, srv.url, newTestBlock(4096), tok); a.status != http.StatusCreated {
			t.Fatalf("paid put: %d %s", a.status, a.body)
		}
	}
	want401(t, putOne(t, srv.url, newTestBlock(4096), toks[0]), wire.CodeTokenSpent)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT table_name, column_name, data_type FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name LIKE 'spent\_%' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var table, col, typ string
		if err := rows.Scan(&table, &col, &typ); err != nil {
			t.Fatal(err)
		}
		if col != "nonce" || typ != "bytea" {
			t.Fatalf("spent table %s has column %s %s; a spent set holds only the nonce", table, col, typ)
		}
		tables = append(tables, table)
	}
	if rows.Err() != nil || len(tables) != 1 {
		t.Fatalf("spent tables %v, %v; want one, for the one key", tables, rows.Err())
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+tables[0]).Scan(&n); err != nil || n != 3 {
		t.Fatalf("%d nonces in %s (%v), want the 3 spent", n, tables[0], err)
	}
}
