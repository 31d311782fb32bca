package httpapi

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blindstore/blindstore/privacypass"
	"github.com/blindstore/blindstore/privacypass/issuer"
	"github.com/blindstore/blindstore/privacypass/spent"
	"github.com/blindstore/blindstore/wire"
)

// tokenIssuer is a real issuer on a loopback listener, with a redeemer
// reading its directory: what serve --token-issuer runs.
type tokenIssuer struct {
	url      string
	dir      string
	redeemer *privacypass.Redeemer
}

func newTokenIssuer(t *testing.T) *tokenIssuer {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	is, err := issuer.Open(issuer.Config{Dir: dir, Period: time.Hour, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(is.Handler())
	t.Cleanup(func() { srv.Close(); is.Close() })
	sp, err := spent.OpenBolt(filepath.Join(t.TempDir(), "spent.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	r, err := privacypass.NewRedeemer(privacypass.RedeemerConfig{Issuer: srv.URL, Spent: sp, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &tokenIssuer{url: srv.URL, dir: dir, redeemer: r}
}

// tokens issues n tokens for challenge (the redeemer's when nil).
func (ti *tokenIssuer) tokens(t *testing.T, n int, challenge []byte) []string {
	t.Helper()
	if challenge == nil {
		challenge = ti.redeemer.Challenge()
	}
	code, err := issuer.CreateInvite(ti.dir, n)
	if err != nil {
		t.Fatal(err)
	}
	ic := &privacypass.IssuerClient{URL: ti.url, Invite: code, HTTP: http.DefaultClient}
	d, reqURL, err := ic.Directory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := d.Keys()
	key, _ := privacypass.IssuanceKey(keys, time.Now())
	var out []string
	for range n {
		tok, err := ic.Issue(context.Background(), reqURL, key, challenge)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, privacypass.FormatAuthorization(tok))
	}
	return out
}

func paidEnv(t *testing.T, ti *tokenIssuer) *env {
	return newEnv(t, func(c *envConfig) { c.opt.Tokens = ti.redeemer })
}

// blocksBody frames a batch write of blocks; ifMatch, when set, makes
// every entry an overwrite of that block's current ETag.
func blocksBody(t *testing.T, blocks []*block, ifMatch map[string]string) []byte {
	t.Helper()
	type entry struct {
		ID         string `json:"id"`
		Proof      string `json:"proof"`
		CreateOnly bool   `json:"create_only,omitempty"`
		IfMatch    string `json:"if_match,omitempty"`
	}
	var m struct {
		Blocks []entry `json:"blocks"`
	}
	for _, b := range blocks {
		e := entry{ID: b.id, Proof: b.proof, CreateOnly: ifMatch == nil}
		if ifMatch != nil {
			e.IfMatch = ifMatch[b.id]
		}
		m.Blocks = append(m.Blocks, e)
	}
	raw, _ := json.Marshal(m)
	var buf bytes.Buffer
	binary.Write(&buf, binary.BigEndian, uint32(len(raw)))
	buf.Write(raw)
	for _, b := range blocks {
		buf.Write(b.data)
	}
	return buf.Bytes()
}

func (e *env) batch(body []byte, h ...string) *resp {
	e.t.Helper()
	return e.do("POST", "/v1/blocks", body, append(hdr{"Content-Type", "application/vnd.blindstore.batch"}, h...))
}

func (e *env) renewReq(blocks []*block, h ...string) *resp {
	e.t.Helper()
	type entry struct {
		ID    string `json:"id"`
		Proof string `json:"proof"`
	}
	var body struct {
		Blocks []entry `json:"blocks"`
	}
	for _, b := range blocks {
		body.Blocks = append(body.Blocks, entry{b.id, b.renew})
	}
	raw, _ := json.Marshal(body)
	return e.do("POST", "/v1/renew", raw, append(hdr{"Content-Type", "application/json"}, h...))
}

func wantChallenge(t *testing.T, r *resp, code string, ti *tokenIssuer) {
	t.Helper()
	r.wantProblem(t, http.StatusUnauthorized, code)
	cs, err := privacypass.ParseChallenges(r.header.Get("WWW-Authenticate"))
	if err != nil || len(cs) != 1 {
		t.Fatalf("WWW-Authenticate %q: %v", r.header.Get("WWW-Authenticate"), err)
	}
	if !bytes.Equal(cs[0].Challenge, ti.redeemer.Challenge()) || cs[0].TokenKey == nil {
		t.Fatal("the 401's challenge is not the redeemer's, or names no key")
	}
	c, err := privacypass.ParseChallenge(cs[0].Challenge)
	if err != nil || len(c.RedemptionContext) != 0 || c.TokenType != privacypass.TokenTypeBlindRSA {
		t.Fatalf("challenge %+v, %v: want type 2 with an empty redemption context", c, err)
	}
}

func TestPaidSingleWrites(t *testing.T) {
	ti := newTokenIssuer(t)
	e := paidEnv(t, ti)
	toks := ti.tokens(t, 3, nil)
	for _, tok := range toks {
		e.secret(strings.TrimSuffix(strings.TrimPrefix(tok, `PrivateToken token="`), `"`))
	}

	b := e.newBlock()
	before := e.snapshot(b.id)
	wantChallenge(t, e.put(b), wire.CodeTokenRequired, ti)
	e.unchanged(before, b.id)

	// Malformed and forged tokens write nothing.
	wantChallenge(t, e.put(b, "Authorization", `PrivateToken token="AAIAAA=="`), wire.CodeTokenInvalid, ti)
	forged := []byte(toks[2])
	forged[40] ^= 1 // inside the nonce's base64: the signature no longer holds
	wantChallenge(t, e.put(b, "Authorization", string(forged)), wire.CodeTokenInvalid, ti)
	e.unchanged(before, b.id)

	e.put(b, "Authorization", toks[0]).wantStatus(t, http.StatusCreated)
	// The same token again, for another block: spent.
	b2 := e.newBlock()
	wantChallenge(t, e.put(b2, "Authorization", toks[0]), wire.CodeTokenSpent, ti)
	if e.snapshot(b2.id).of[b2.id] != "" {
		t.Fatal("a write paid with a spent token landed")
	}

	// An overwrite with If-Match needs no token, and does not renew.
	etag := wire.ETagOf(b.data).String()
	e.clock.Advance(24 * time.Hour)
	b.data = e.randomData()
	e.put(b, "If-Match", etag).wantStatus(t, http.StatusNoContent)
	st, _ := e.store.Stats(context.Background())
	if st.Buckets[e.svc.Bucketer().CurrentBucket()] != 0 {
		t.Fatal("a free overwrite moved the block to the current bucket: overwriting would renew for free")
	}
	// A paid overwrite renews.
	etag = wire.ETagOf(b.data).String()
	e.put(b, "If-Match", etag, "Authorization", toks[1]).wantStatus(t, http.StatusNoContent)
	st, _ = e.store.Stats(context.Background())
	if st.Buckets[e.svc.Bucketer().CurrentBucket()] != 1 {
		t.Fatal("a paid overwrite did not stamp the current bucket")
	}
	// A put without If-Match may create: even over an existing block it
	// must be paid.
	wantChallenge(t, e.put(b), wire.CodeTokenRequired, ti)
	// Deletes are free.
	e.do("DELETE", "/v1/blocks/"+b.id, nil, hdr{"Blind-Proof", b.proof}).wantStatus(t, http.StatusNoContent)

	// A token for another challenge (another origin) is refused.
	otherCh, _ := privacypass.Challenge{TokenType: privacypass.TokenTypeBlindRSA, IssuerName: "other.example"}.Marshal()
	other := ti.tokens(t, 1, otherCh)
	wantChallenge(t, e.put(b2, "Authorization", other[0]), wire.CodeTokenInvalid, ti)
}

func TestPaidBatchAndRenew(t *testing.T) {
	ti := newTokenIssuer(t)
	e := paidEnv(t, ti)
	toks := ti.tokens(t, 3, nil)
	blocks := []*block{e.newBlock(), e.newBlock(), e.newBlock(), e.newBlock()}
	ids := []string{blocks[0].id, blocks[1].id, blocks[2].id, blocks[3].id}
	body := blocksBody(t, blocks, nil)
	before := e.snapshot(ids...)
	wantChallenge(t, e.batch(body), wire.CodeTokenRequired, ti)
	e.unchanged(before, ids...)

	// One token pays for the whole batch of write_batch blocks.
	r := e.batch(body, "Authorization", toks[0])
	r.wantStatus(t, http.StatusOK)
	var out BatchResponse
	if err := json.Unmarshal(r.body, &out); err != nil || len(out.Results) != 4 {
		t.Fatalf("batch answer %s", r.body)
	}
	if e.snapshot().blocks != 4 {
		t.Fatal("the paid batch did not land whole")
	}
	// A batch of overwrites only is free.
	im := map[string]string{}
	for _, b := range blocks {
		im[b.id] = wire.ETagOf(b.data).String()
		b.data = e.randomData()
	}
	e.batch(blocksBody(t, blocks, im)).wantStatus(t, http.StatusOK)

	// Renewals are paid, up to write_batch ids per token.
	wantChallenge(t, e.renewReq(blocks), wire.CodeTokenRequired, ti)
	e.clock.Advance(24 * time.Hour)
	r = e.renewReq(blocks, "Authorization", toks[1])
	r.wantStatus(t, http.StatusOK)
	var rr RenewResponse
	if err := json.Unmarshal(r.body, &rr); err != nil || rr.Renewed != 4 {
		t.Fatalf("renew answer %s", r.body)
	}
	more := append(blocks, e.newBlock())
	r = e.renewReq(more, "Authorization", toks[2])
	r.wantProblem(t, http.StatusBadRequest, wire.CodeBatchTooLarge)
	// A request refused for its own fault keeps its token.
	e.renewReq(blocks, "Authorization", toks[2]).wantStatus(t, http.StatusOK)
	wantChallenge(t, e.renewReq(blocks, "Authorization", toks[2]), wire.CodeTokenSpent, ti)

	// /v1/config says how to pay.
	var cfg Config
	cr := e.do("GET", "/v1/config", nil, nil)
	if err := json.Unmarshal(cr.body, &cfg); err != nil || cfg.Tokens == nil {
		t.Fatalf("config %s", cr.body)
	}
	ch, err := b64pad.DecodeString(cfg.Tokens.Challenge)
	if err != nil || !bytes.Equal(ch, ti.redeemer.Challenge()) || cfg.Tokens.Issuer != ti.url || cfg.Tokens.BlocksPerToken != 4 {
		t.Fatalf("config tokens %+v", cfg.Tokens)
	}
	accepted := 0
	for _, k := range cfg.Tokens.Keys {
		if k.Accepted {
			accepted++
		}
	}
	if len(cfg.Tokens.Keys) != 2 || accepted != 1 || cfg.Limits.WriteBurst != nil {
		t.Fatalf("config keys %+v (want the current key accepted and the next one published), write limit %v", cfg.Tokens.Keys, cfg.Limits.WriteBurst)
	}
}

func TestOpenStoreWriteLimitAndCapacity(t *testing.T) {
	e := newEnv(t, func(c *envConfig) {
		c.opt.WriteLimit = NewMemoryWriteLimiter(0.5, 6)
		c.maxBlocks = 6
	})
	var cfg Config
	if err := json.Unmarshal(e.do("GET", "/v1/config", nil, nil).body, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Tokens != nil || cfg.Limits.MaxBlocks != 6 || cfg.Limits.WriteBurst == nil || *cfg.Limits.WriteBurst != 6 || *cfg.Limits.WriteRatePerSecond != 0.5 {
		t.Fatalf("config limits %+v", cfg.Limits)
	}
	// Capacity: five blocks, then a batch of two does not fit.
	var blocks []*block
	for range 5 {
		b := e.newBlock()
		e.mustPut(b)
		blocks = append(blocks, b)
	}
	two := []*block{e.newBlock(), e.newBlock()}
	e.batch(blocksBody(t, two, nil)).wantProblem(t, http.StatusInsufficientStorage, wire.CodeFull)
	e.mustPut(two[0])
	e.put(two[1]).wantProblem(t, http.StatusInsufficientStorage, wire.CodeFull)
	if e.snapshot().blocks != 6 {
		t.Fatal("the store passed its cap")
	}
	// The write limit: the burst of 6 is used up (a refused write costs
	// nothing of it), so the next write waits.
	blocks[0].data = e.randomData()
	r := e.put(blocks[0], "If-Match", wire.ETagOf(blocks[0].data).String())
	r.wantProblem(t, http.StatusTooManyRequests, wire.CodeRateLimited)
	if e.snapshot().blocks != 6 {
		t.Fatal("a rate-limited write landed")
	}
	// Deletes are neither limited nor capped.
	e.do("DELETE", "/v1/blocks/"+blocks[1].id, nil, hdr{"Blind-Proof", blocks[1].proof}).wantStatus(t, http.StatusNoContent)
}

func TestWriteLimiterRefills(t *testing.T) {
	lim := NewMemoryWriteLimiter(10, 5).(*memoryWriteLimiter)
	now := time.Unix(1_700_000_000, 0)
	lim.now = func() time.Time { return now }
	ctx := context.Background()
	if _, ok := lim.Allow(ctx, "a", 5); !ok {
		t.Fatal("the burst did not pass")
	}
	wait, ok := lim.Allow(ctx, "a", 2)
	if ok || wait < 150*time.Millisecond || wait > 250*time.Millisecond {
		t.Fatalf("past the burst: ok %v, wait %v; want a refusal of about 200ms", ok, wait)
	}
	if _, ok := lim.Allow(ctx, "b", 5); !ok {
		t.Fatal("one address's writes limited another's")
	}
	now = now.Add(time.Second)
	if _, ok := lim.Allow(ctx, "a", 5); !ok {
		t.Fatal("the allowance did not refill")
	}
	if _, ok := lim.Allow(ctx, "c", 6); ok {
		t.Fatal("more than the burst passed at once")
	}
}
