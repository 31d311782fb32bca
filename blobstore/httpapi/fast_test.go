package httpapi

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/blindstore/blindstore/wire"
	"github.com/prometheus/client_golang/prometheus"
)

// exchange sends raw to addr on one connection, in pieces with a pause
// between them, and returns the raw bytes of the want answers, read
// with net/http's own response parser (HEAD answers have no body: heads
// lists which of them answer a HEAD).
func rawExchange(t *testing.T, addr string, pieces []string, heads []bool) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	for i, p := range pieces {
		if i > 0 {
			time.Sleep(30 * time.Millisecond)
		}
		if _, err := io.WriteString(c, p); err != nil {
			t.Fatal(err)
		}
	}
	var got bytes.Buffer
	br := bufio.NewReader(io.TeeReader(c, &got))
	for _, head := range heads {
		method := "GET"
		if head {
			method = "HEAD"
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("read an answer: %v (so far %q)", err, got.String())
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if br.Buffered() > 0 {
		t.Fatalf("%d bytes beyond the answers", br.Buffered())
	}
	return got.Bytes()
}

// answeredSoon is l's count of fast answers once it reaches want, or
// after a second: the count and the metrics follow the write, which the
// client may have read first.
func answeredSoon(l *fastListener, want int64) int64 {
	for range 100 {
		if n := l.answered.Load(); n >= want {
			// Anything more would come at once too.
			time.Sleep(10 * time.Millisecond)
			return l.answered.Load()
		}
		time.Sleep(10 * time.Millisecond)
	}
	return l.answered.Load()
}

var dateLine = regexp.MustCompile(`\r\nDate: [^\r]*\r\n`)

// A GET that the fast path answers gets the bytes net/http would write,
// Date apart; every other request, alone or after fast ones on the same
// connection, gets net/http's answer.
func TestFastAnswersAsNetHTTP(t *testing.T) {
	e := newEnv(t, func(c *envConfig) { c.fast = true; c.blockSize = wire.DefaultBlockSize })
	a, b := e.newBlock(), e.newBlock()
	etagA := e.mustPut(a)
	e.mustPut(b)
	missing := e.newBlock()
	e.secretETag(etagA)

	get := func(id string, hdrs ...string) string {
		return "GET /v1/blocks/" + id + " HTTP/1.1\r\nHost: x\r\n" + strings.Join(hdrs, "") + "\r\n"
	}
	cases := []struct {
		name   string
		pieces []string
		heads  []bool
		fast   int64 // answers expected from the fast path
	}{
		{"plain", []string{get(a.id)}, []bool{false}, 1},
		{"curl-like", []string{get(a.id, "User-Agent: curl/8\r\n", "Accept: */*\r\n")}, []bool{false}, 1},
		{"lower-case names, keep-alive", []string{"GET /v1/blocks/" + a.id + " HTTP/1.1\r\nhost: example.com:80\r\nconnection: Keep-Alive\r\naccept-encoding: gzip\r\n\r\n"}, []bool{false}, 1},
		{"upper-case id", []string{get(strings.ToUpper(a.id))}, []bool{false}, 1},
		{"pipelined", []string{get(a.id) + get(b.id) + get(a.id)}, []bool{false, false, false}, 3},
		{"head", []string{"HEAD /v1/blocks/" + a.id + " HTTP/1.1\r\nHost: x\r\n\r\n"}, []bool{true}, 0},
		{"fast then head", []string{get(a.id) + "HEAD /v1/blocks/" + a.id + " HTTP/1.1\r\nHost: x\r\n\r\n"}, []bool{false, true}, 1},
		{"if-none-match", []string{get(a.id, "If-None-Match: "+etagA+"\r\n")}, []bool{false}, 0},
		{"if-none-match other", []string{get(a.id, `If-None-Match: "nope"`+"\r\n")}, []bool{false}, 0},
		{"connection close", []string{get(a.id, "Connection: close\r\n")}, []bool{false}, 0},
		{"http/1.0", []string{"GET /v1/blocks/" + a.id + " HTTP/1.0\r\n\r\n"}, []bool{false}, 0},
		{"query", []string{"GET /v1/blocks/" + a.id + "?x=1 HTTP/1.1\r\nHost: x\r\n\r\n"}, []bool{false}, 0},
		{"origin", []string{get(a.id, "Origin: https://app.example\r\n")}, []bool{false}, 0},
		{"no host", []string{"GET /v1/blocks/" + a.id + " HTTP/1.1\r\n\r\n"}, []bool{false}, 0},
		{"two hosts", []string{get(a.id, "Host: y\r\n")}, []bool{false}, 0},
		{"bad id", []string{get(strings.Repeat("z", 36))}, []bool{false}, 0},
		{"split request", []string{get(a.id)[:20], get(a.id)[20:]}, []bool{false}, 0},
		{"split after a fast one", []string{get(b.id) + get(a.id)[:30], get(a.id)[30:]}, []bool{false, false}, 1},
		{"config", []string{"GET /v1/config HTTP/1.1\r\nHost: x\r\n\r\n"}, []bool{false}, 0},
		{"other route then fast", []string{"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + get(a.id)}, []bool{false, false}, 0},
		// Last: a 404 is a failed probe, and while the probe limiter
		// tracks a client every read goes through net/http.
		{"fast then missing then fast", []string{get(a.id) + get(missing.id) + get(b.id)}, []bool{false, false, false}, 1},
		{"missing", []string{get(missing.id)}, []bool{false}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.fastLn.answered.Load()
			fast := rawExchange(t, e.addr, tc.pieces, tc.heads)
			if got := answeredSoon(e.fastLn, before+tc.fast) - before; got != tc.fast {
				t.Errorf("fast path answered %d requests, want %d", got, tc.fast)
			}
			plain := rawExchange(t, e.plainAddr, tc.pieces, tc.heads)
			norm := func(b []byte) []byte { return dateLine.ReplaceAll(b, []byte("\r\nDate: -\r\n")) }
			if !bytes.Equal(norm(fast), norm(plain)) {
				t.Errorf("answers differ:\nfast:  %.600q\nnet/http: %.600q", fast, plain)
			}
			if tc.fast > 0 && !bytes.Contains(fast, a.data[:64]) && !bytes.Contains(fast, b.data[:64]) {
				t.Error("the answer holds no block")
			}
		})
	}
	// Once the client that failed a probe has its allowance back (one
	// failure at the default 5/s: 200 ms), reads are fast again.
	time.Sleep(300 * time.Millisecond)
	before := e.fastLn.answered.Load()
	rawExchange(t, e.addr, []string{get(a.id)}, []bool{false})
	if got := answeredSoon(e.fastLn, before+1) - before; got != 1 {
		t.Errorf("after the probe limiter's allowance came back, the fast path answered %d reads, want 1", got)
	}
}

// A reader that stops reading must not hold the store's read
// transaction on the fast path either.
func TestFastStalledReaderHoldsNoReadTransaction(t *testing.T) {
	testStalledReader(t, func(c *envConfig) { c.fast = true; c.blockSize = wire.DefaultBlockSize })
}

// Shutdown closes idle fast connections at once and lets a client that
// is being answered have its answer.
func TestFastShutdown(t *testing.T) {
	e := newEnv(t, func(c *envConfig) { c.fast = true })
	a := e.newBlock()
	e.mustPut(a)
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /v1/blocks/"+a.id+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("answer: %v %v", resp, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	if answeredSoon(e.fastLn, 1) != 1 {
		t.Fatal("not answered by the fast path")
	}
	start := time.Now()
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	// The idle connection is closed by the server: the read sees EOF.
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("read after close: %v, want EOF", err)
	}
	e.fastLn.wait()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("closing took %v", d)
	}
}

// Answers of the fast path count in the metrics as net/http's do.
func TestFastMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *envConfig) { c.fast = true; c.opt.Metrics = m })
	a := e.newBlock()
	e.mustPut(a)
	// The put's connection is net/http's for good: the reads go on
	// another one.
	hc := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	for range 3 {
		res, err := hc.Get(e.url + "/v1/blocks/" + a.id)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK || !bytes.Equal(body, a.data) {
			t.Fatalf("GET: status %d, %d bytes, %v", res.StatusCode, len(body), err)
		}
	}
	if n := answeredSoon(e.fastLn, 3); n != 3 {
		t.Fatalf("fast path answered %d, want 3", n)
	}
	text := scrape(t, reg)
	if v := metricValue(text, `blindstore_http_requests_total{code="200",method="GET",route="/v1/blocks/:id"}`); v != 3 {
		t.Errorf("GET 200 counted %v times, want 3:\n%s", v, text)
	}
	if v := metricValue(text, `blindstore_http_request_duration_seconds_count{method="GET",route="/v1/blocks/:id"}`); v != 3 {
		t.Errorf("GET durations counted %v times, want 3", v)
	}
	if v := metricValue(text, `blindstore_http_requests_in_flight`); v != 0 {
		t.Errorf("in flight %v, want 0", v)
	}
}

// Whatever parseFastGet accepts, net/http reads as the same request: a
// GET of that block, HTTP/1.1, kept alive, of the same length, with no
// header but those the fast path knows.
func FuzzParseFastGet(f *testing.F) {
	id := wire.NewID().String()
	f.Add([]byte("GET /v1/blocks/" + id + " HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("GET /v1/blocks/" + id + " HTTP/1.1\r\nHost: x\r\nUser-Agent: a\r\nAccept: */*\r\n\r\nGET /"))
	f.Add([]byte("GET /v1/blocks/" + id + " HTTP/1.1\r\nhost:x\r\nConnection:  keep-alive \r\n\r\n"))
	f.Add([]byte("GET /v1/blocks/" + id + " HTTP/1.1\r\nHost: x\r\n Folded: y\r\n\r\n"))
	f.Add([]byte("GET /v1/blocks/" + id + " HTTP/1.1\nHost: x\n\n"))
	f.Add([]byte("GET /v1/blocks/" + strings.ToUpper(id) + " HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pid, n, ok := parseFastGet(b, DefaultMaxHeaderBytes)
		if !ok {
			return
		}
		br := bufio.NewReaderSize(bytes.NewReader(b), len(b)+16)
		r, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("accepted what net/http refuses (%v): %q", err, b)
		}
		if used := len(b) - br.Buffered(); used != n {
			t.Fatalf("length %d, net/http read %d: %q", n, used, b)
		}
		if r.Method != "GET" || r.ProtoMajor != 1 || r.ProtoMinor != 1 || r.Close || r.ContentLength != 0 ||
			r.URL.RawQuery != "" || !strings.HasPrefix(r.URL.Path, wire.PathBlock) {
			t.Fatalf("accepted %q, net/http reads %+v", b, r)
		}
		got, err := wire.ParseID(r.URL.Path[len(wire.PathBlock):])
		if err != nil || got != pid {
			t.Fatalf("id %v, net/http's path gives %v (%v)", pid, got, err)
		}
		for k := range r.Header {
			switch k {
			case "User-Agent", "Accept", "Accept-Encoding", "Connection":
			default:
				t.Fatalf("accepted header %q: %q", k, b)
			}
		}
	})
}

// A client that reads slowly gets every answer whole: what the socket
// does not take at once is sent after the read transaction, in order.
func TestFastSlowReaderGetsWholeAnswers(t *testing.T) {
	e := newEnv(t, func(c *envConfig) { c.fast = true; c.blockSize = wire.DefaultBlockSize })
	a, b := e.newBlock(), e.newBlock()
	e.mustPut(a)
	e.mustPut(b)
	c := dialSmallWindow(t, e.addr)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	// Groups of requests that each fit in one read of the fast path's
	// buffer, so that none is split between reads (which would hand the
	// connection to net/http), and whose answers overfill the buffers.
	const group, groups = 50, 3
	const n = group * groups
	br := bufio.NewReaderSize(c, 1024)
	buf := make([]byte, 700)
	for g := range groups {
		var req strings.Builder
		for i := range group {
			id := a.id
			if (g*group+i)%3 == 1 {
				id = b.id
			}
			req.WriteString("GET /v1/blocks/" + id + " HTTP/1.1\r\nHost: x\r\n\r\n")
		}
		if _, err := io.WriteString(c, req.String()); err != nil {
			t.Fatal(err)
		}
		// Let the server fill the buffers before anything is read.
		time.Sleep(200 * time.Millisecond)
		for i := range group {
			want := a.data
			if (g*group+i)%3 == 1 {
				want = b.data
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("answer %d: %v", g*group+i, err)
			}
			var body bytes.Buffer
			// Slowly: small reads.
			for {
				k, err := resp.Body.Read(buf)
				body.Write(buf[:k])
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("answer %d body: %v", g*group+i, err)
				}
			}
			if resp.StatusCode != 200 || !bytes.Equal(body.Bytes(), want) {
				t.Fatalf("answer %d: status %d, %d bytes, want the block's %d", g*group+i, resp.StatusCode, body.Len(), len(want))
			}
		}
	}
	if got := answeredSoon(e.fastLn, n); got != n {
		t.Errorf("fast path answered %d of %d", got, n)
	}
}
