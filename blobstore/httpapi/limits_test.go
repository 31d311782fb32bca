package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/blindstore/blindstore/wire"
)

func TestHealthConfigAndOpenAPI(t *testing.T) {
	e := newEnv(t, func(c *envConfig) { c.opt.MaxHeaderBytes = 8192 })
	r := e.do("GET", "/healthz", nil, nil)
	r.wantStatus(t, http.StatusOK)
	if string(r.body) != "ok\n" {
		t.Fatalf("healthz body %q", r.body)
	}
	e.do("GET", "/readyz", nil, nil).wantStatus(t, http.StatusOK)

	r = e.do("GET", "/v1/config", nil, nil)
	r.wantStatus(t, http.StatusOK)
	var c Config
	if err := json.Unmarshal(r.body, &c); err != nil {
		t.Fatal(err)
	}
	bk := e.svc.Bucketer()
	if c.Version != "test" || c.BlockSize != 4096 || c.PeriodSeconds != 86400 || c.RetentionPeriods != 3 || c.CurrentPeriod != bk.Current() {
		t.Fatalf("config %+v", c)
	}
	l := c.Limits
	if l.RenewBatch != 8 || l.WriteBatch != 4 || l.MaxHeaderBytes != 8192 || l.MaxManifestBytes != MaxManifestBytes ||
		l.MaxBatchBodyBytes != 4+MaxManifestBytes+4*4096 || l.MaxRenewBodyBytes != renewBytesSlack+8*renewBytesPerBlock ||
		l.ProbeRatePerSecond == nil || *l.ProbeRatePerSecond != 1000 || l.ProbeBurst == nil || *l.ProbeBurst != 100000 ||
		l.ReadHeaderTimeoutSeconds != 10 || l.ReadTimeoutSeconds != 60 || l.WriteTimeoutSeconds != 60 || l.IdleTimeoutSeconds != 120 {
		t.Fatalf("config limits %+v", l)
	}

	r = e.do("GET", "/v1/openapi.json", nil, nil)
	r.wantStatus(t, http.StatusOK)
	if !bytes.Equal(r.body, openapiDoc) || r.header.Get("Content-Type") != "application/json" {
		t.Fatal("/v1/openapi.json does not serve the embedded document")
	}
}

func TestNotReady(t *testing.T) {
	e := newEnv(t, func(c *envConfig) {
		c.opt.Ready = func(context.Context) error { return errors.New("redis: connection refused") }
	})
	e.do("GET", "/readyz", nil, nil).wantProblem(t, http.StatusServiceUnavailable, wire.CodeUnavailable)
	e.do("GET", "/healthz", nil, nil).wantStatus(t, http.StatusOK)
	if !strings.Contains(e.logs.String(), "readiness check: redis: connection refused") {
		t.Fatalf("the failed check's cause is not logged:\n%s", e.logs.String())
	}
}

// TestStoreClosed closes the store under a running server: every route
// that needs it answers 503 with Retry-After, and the cause is logged.
func TestStoreClosed(t *testing.T) {
	e := newEnv(t)
	b := e.newBlock()
	e.mustPut(b)
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	path := "/v1/blocks/" + b.id
	batch := batchBody(t, entry{"blocks": []entry{{"id": b.id, "proof": b.proof}}}, b.data)
	renew, _ := json.Marshal(entry{"blocks": []entry{{"id": b.id, "proof": b.renew}}})
	reqs := []struct {
		method, path string
		body         []byte
		h            hdr
	}{
		{"GET", "/readyz", nil, nil},
		{"GET", path, nil, nil},
		{"GET", path, nil, hdr{"If-None-Match", `"x"`}},
		{"HEAD", path, nil, nil},
		{"PUT", path, b.data, hdr{"Blind-Proof", b.proof}},
		{"DELETE", path, nil, hdr{"Blind-Proof", b.proof}},
		{"POST", "/v1/blocks", batch, hdr{"Content-Type", "application/vnd.blindstore.batch"}},
		{"POST", "/v1/renew", renew, hdr{"Content-Type", "application/json"}},
		{"POST", "/v1/read", readBody(b), hdr{"Content-Type", "application/json"}},
	}
	for _, q := range reqs {
		r := e.do(q.method, q.path, q.body, q.h)
		r.wantProblem(t, http.StatusServiceUnavailable, wire.CodeUnavailable)
		if r.header.Get("Retry-After") != "5" {
			t.Errorf("%s: Retry-After %q", q.method, r.header.Get("Retry-After"))
		}
	}
	logs := e.logs.String()
	if !strings.Contains(logs, `"level":"WARN","msg":"service unavailable"`) || !strings.Contains(logs, "database not open") {
		t.Fatalf("store failures are not logged with their cause:\n%s", logs)
	}
	// Config and liveness do not need the store.
	e.do("GET", "/v1/config", nil, nil).wantStatus(t, http.StatusOK)
	e.do("GET", "/healthz", nil, nil).wantStatus(t, http.StatusOK)
}

func TestHeaderTooLarge(t *testing.T) {
	e := newEnv(t)
	b := e.newBlock()
	e.mustPut(b)
	pad := strings.Repeat("a", DefaultMaxHeaderBytes)
	for _, q := range []struct{ method, path string }{{"GET", "/healthz"}, {"GET", "/v1/blocks/" + b.id}, {"PUT", "/v1/blocks/" + b.id}, {"GET", "/nowhere"}} {
		before := e.snapshot(b.id)
		var body []byte
		if q.method == "PUT" {
			body = e.randomData()
		}
		e.do(q.method, q.path, body, hdr{"Blind-Proof", b.proof, "X-Pad", pad}).wantProblem(t, http.StatusRequestHeaderFieldsTooLarge, wire.CodeHeaderTooLarge)
		e.unchanged(before, b.id)
	}
	// Just under the cap passes.
	e.do("GET", "/healthz", nil, hdr{"X-Pad", strings.Repeat("a", DefaultMaxHeaderBytes-200)}).wantStatus(t, http.StatusOK)

	// Beyond the server's hard cap, Go answers by itself, in plain text.
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	go func() {
		_, _ = fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n", strings.Repeat("a", HardMaxHeaderBytes+8192))
	}()
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge || strings.Contains(res.Header.Get("Content-Type"), "json") {
		t.Fatalf("beyond the hard cap: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
}

// rawRequest writes head and body on a fresh connection, then either
// half-closes it (cut) or leaves it open (stall), and reads the answer.
func (e *env) rawRequest(t *testing.T, head string, body []byte, cut bool) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(body); err != nil {
		t.Fatal(err)
	}
	if cut {
		_ = conn.(*net.TCPConn).CloseWrite()
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var p problem
	_ = json.NewDecoder(res.Body).Decode(&p)
	if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("status %d with Content-Type %q", res.StatusCode, ct)
	}
	return res.StatusCode, p.Code
}

// TestSlowAndCutBodies: a body that stalls past the read timeout, or
// ends before its declared length, is refused and writes nothing.
func TestSlowAndCutBodies(t *testing.T) {
	e := newEnv(t, func(c *envConfig) { c.opt.ReadTimeout = 300 * time.Millisecond })
	b := e.newBlock()
	e.mustPut(b)
	fresh := e.newBlock()
	next := e.randomData()
	manifest, _ := json.Marshal(entry{"blocks": []entry{{"id": b.id, "proof": b.proof}, {"id": fresh.id, "proof": fresh.proof}}})
	batch := batchBody(t, manifest, next, fresh.data)
	renew, _ := json.Marshal(entry{"blocks": []entry{{"id": b.id, "proof": b.renew}}})
	e.clock.Advance(24 * time.Hour) // a renewal would now change the store

	cases := []struct {
		name string
		head string
		body []byte
	}{
		{"put", fmt.Sprintf("PUT /v1/blocks/%s HTTP/1.1\r\nHost: x\r\nBlind-Proof: %s\r\nContent-Length: %d\r\n\r\n", b.id, b.proof, e.bs), next},
		{"batch", fmt.Sprintf("POST /v1/blocks HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.blindstore.batch\r\nContent-Length: %d\r\n\r\n", len(batch)), batch},
		{"renew", fmt.Sprintf("POST /v1/renew HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(renew)), renew},
		{"read", fmt.Sprintf("POST /v1/read HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(readBody(b))), readBody(b)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Everything but the last byte: the most that could be
			// written in part.
			partial := c.body[:len(c.body)-1]
			for _, cut := range []bool{false, true} {
				before := e.snapshot(b.id, fresh.id)
				st, _ := e.store.Stats(context.Background())
				status, code := e.rawRequest(t, c.head, partial, cut)
				want, wantCode := http.StatusRequestTimeout, wire.CodeTimeout
				if cut {
					want, wantCode = http.StatusBadRequest, wire.CodeBadRequest
				}
				if status != want || code != wantCode {
					t.Fatalf("cut=%v: %d %q, want %d %q", cut, status, code, want, wantCode)
				}
				e.unchanged(before, b.id, fresh.id)
				st2, _ := e.store.Stats(context.Background())
				cur := e.svc.Bucketer().CurrentBucket()
				if st.Buckets[cur] != st2.Buckets[cur] {
					t.Fatal("a renewal was applied from a partial body")
				}
			}
		})
	}
	// The whole body, sent promptly, still works on this server.
	status, _ := e.rawRequestOK(t, cases[0].head, next)
	if status != http.StatusNoContent {
		t.Fatalf("a complete put answered %d", status)
	}
}

func (e *env) rawRequestOK(t *testing.T, head string, body []byte) (int, http.Header) {
	t.Helper()
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(conn, head)
	_, _ = conn.Write(body)
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	e.secretETag(res.Header.Get("ETag"))
	return res.StatusCode, res.Header
}

// TestProbeLimit: failed probes of each kind block the client's address
// on every block route, with Retry-After, and only that address.
func TestProbeLimit(t *testing.T) {
	e := newEnv(t, func(c *envConfig) {
		c.opt.ProbeLimit = NewMemoryProbeLimiter(0.5, 3)
		c.opt.TrustProxyHeader = "X-Forwarded-For"
	})
	b := e.newBlock()
	etag := e.mustPut(b)
	stranger := e.newBlock()
	path := "/v1/blocks/" + b.id
	e.secret("192.0.2.7")
	n := 0
	addr := func() string {
		n++
		a := "10.9.8." + strconv.Itoa(n)
		e.secret(a)
		return a
	}
	renewBody := func(blocks ...*block) []byte {
		var es []entry
		for _, x := range blocks {
			es = append(es, entry{"id": x.id, "proof": x.renew})
		}
		body, _ := json.Marshal(entry{"blocks": es})
		return body
	}
	batchOf := func(w *block) []byte {
		return batchBody(t, entry{"blocks": []entry{{"id": b.id, "proof": w.proof}}}, e.randomData())
	}
	missing := func() *block { return e.newBlock() }
	failures := []struct {
		name string
		fail func(from string)
	}{
		{"get missing", func(from string) {
			e.do("GET", "/v1/blocks/"+missing().id, nil, hdr{"X-Forwarded-For", from}).wantStatus(t, 404)
		}},
		{"head missing", func(from string) {
			e.do("HEAD", "/v1/blocks/"+missing().id, nil, hdr{"X-Forwarded-For", from}).wantStatus(t, 404)
		}},
		{"delete missing", func(from string) {
			m := missing()
			e.do("DELETE", "/v1/blocks/"+m.id, nil, hdr{"X-Forwarded-For", from, "Blind-Proof", m.proof}).wantStatus(t, 404)
		}},
		{"delete wrong proof", func(from string) {
			e.do("DELETE", path, nil, hdr{"X-Forwarded-For", from, "Blind-Proof", stranger.proof}).wantStatus(t, 403)
		}},
		{"put wrong proof", func(from string) {
			e.do("PUT", path, e.randomData(), hdr{"X-Forwarded-For", from, "Blind-Proof", stranger.proof}).wantStatus(t, 403)
		}},
		{"renew missing", func(from string) {
			e.do("POST", "/v1/renew", renewBody(missing()), hdr{"X-Forwarded-For", from}).wantStatus(t, 200)
		}},
		{"renew refused", func(from string) {
			wrong := &block{id: b.id, renew: stranger.renew}
			e.do("POST", "/v1/renew", renewBody(wrong), hdr{"X-Forwarded-For", from}).wantStatus(t, 200)
		}},
		{"read missing", func(from string) {
			e.do("POST", "/v1/read", readBody(missing()), hdr{"X-Forwarded-For", from, "Content-Type", "application/json"}).wantStatus(t, 200)
		}},
		{"batch forbidden", func(from string) {
			e.do("POST", "/v1/blocks", batchOf(stranger), hdr{"X-Forwarded-For", from, "Content-Type", "application/vnd.blindstore.batch"}).wantStatus(t, 200)
		}},
	}
	for _, f := range failures {
		t.Run(f.name, func(t *testing.T) {
			from := addr()
			for range 3 {
				f.fail(from)
			}
			r := e.do("GET", path, nil, hdr{"X-Forwarded-For", from})
			r.wantProblem(t, http.StatusTooManyRequests, wire.CodeRateLimited)
			// The client's own left-hand entries do not change who it is.
			e.do("GET", path, nil, hdr{"X-Forwarded-For", "192.0.2.7, " + from}).wantProblem(t, 429, wire.CodeRateLimited)
			e.do("GET", path, nil, hdr{"X-Forwarded-For", addr()}).wantStatus(t, http.StatusOK)
		})
	}

	// A blocked address is refused on every block route, and nothing it
	// sends is applied; the other routes still answer.
	from := addr()
	for range 3 {
		e.do("GET", "/v1/blocks/"+missing().id, nil, hdr{"X-Forwarded-For", from}).wantStatus(t, 404)
	}
	before := e.snapshot(b.id)
	xff := hdr{"X-Forwarded-For", from}
	with := func(more ...string) hdr { return append(append(hdr{}, xff...), more...) }
	for _, q := range []struct {
		method, path string
		body         []byte
		h            hdr
	}{
		{"GET", path, nil, xff},
		{"HEAD", path, nil, xff},
		{"PUT", path, e.randomData(), with("Blind-Proof", b.proof)},
		{"DELETE", path, nil, with("Blind-Proof", b.proof, "If-Match", etag)},
		{"POST", "/v1/blocks", batchOf(b), with("Content-Type", "application/vnd.blindstore.batch")},
		{"POST", "/v1/renew", renewBody(b), with("Content-Type", "application/json")},
		{"POST", "/v1/read", readBody(b), with("Content-Type", "application/json")},
	} {
		r := e.do(q.method, q.path, q.body, q.h)
		r.wantProblem(t, http.StatusTooManyRequests, wire.CodeRateLimited)
		if ra, _ := strconv.Atoi(r.header.Get("Retry-After")); ra < 1 || ra > 3 {
			t.Errorf("%s %s: Retry-After %q, want about 2 s", q.method, q.path, r.header.Get("Retry-After"))
		}
	}
	e.unchanged(before, b.id)
	e.do("GET", "/v1/config", nil, xff).wantStatus(t, http.StatusOK)
	e.do("GET", "/healthz", nil, xff).wantStatus(t, http.StatusOK)

	// A renewal naming 8 missing blocks owes 8 failures: 5 beyond the
	// burst, 10 s at 0.5 a second.
	from = addr()
	var many []*block
	for range 8 {
		many = append(many, missing())
	}
	e.do("POST", "/v1/renew", renewBody(many...), hdr{"X-Forwarded-For", from}).wantStatus(t, 200)
	r := e.do("GET", path, nil, hdr{"X-Forwarded-For", from})
	r.wantProblem(t, http.StatusTooManyRequests, wire.CodeRateLimited)
	if ra, _ := strconv.Atoi(r.header.Get("Retry-After")); ra < 10 || ra > 12 {
		t.Fatalf("Retry-After %q after 8 failures in one renewal, want about 11 s", r.header.Get("Retry-After"))
	}

	// IPv6 clients are keyed by /64.
	e.secret("2001:db8:0:5::1", "2001:db8:0:5::2", "2001:db8:0:6::1")
	for range 3 {
		e.do("GET", "/v1/blocks/"+missing().id, nil, hdr{"X-Forwarded-For", "2001:db8:0:5::1"}).wantStatus(t, 404)
	}
	e.do("GET", path, nil, hdr{"X-Forwarded-For", "2001:db8:0:5::2"}).wantProblem(t, 429, wire.CodeRateLimited)
	e.do("GET", path, nil, hdr{"X-Forwarded-For", "2001:db8:0:6::1"}).wantStatus(t, http.StatusOK)
}

// TestProbeLimitByConnection: without a trusted header the connection's
// address is the key, and a forged X-Forwarded-For changes nothing.
func TestProbeLimitByConnection(t *testing.T) {
	e := newEnv(t, func(c *envConfig) { c.opt.ProbeLimit = NewMemoryProbeLimiter(0.5, 2) })
	b := e.newBlock()
	e.mustPut(b)
	e.secret("192.0.2.0", "192.0.2.1", "192.0.2.99")
	for i := range 2 {
		e.do("GET", "/v1/blocks/"+e.newBlock().id, nil, hdr{"X-Forwarded-For", "192.0.2." + strconv.Itoa(i)}).wantStatus(t, 404)
	}
	e.do("GET", "/v1/blocks/"+b.id, nil, hdr{"X-Forwarded-For", "192.0.2.99"}).wantProblem(t, 429, wire.CodeRateLimited)
}
