package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/bolt"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/wire"
)

// observed collects, across every test of the package, the statuses each
// route answered, read back from the access log. TestMain checks them
// against the route table, which the OpenAPI test checks against
// openapi.json: so every status the tests can provoke is documented.
var observed = struct {
	sync.Mutex
	m map[string]map[int]bool // "METHOD path" → statuses
}{m: map[string]map[int]bool{}}

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := checkObserved(flag.Lookup("test.run").Value.String() == ""); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL: statuses observed in the tests:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// checkObserved fails if a route answered a status its table entry does
// not declare and, when the whole package ran, if a declared status was
// never provoked (431 and 500 are provoked before routing or by a panic,
// and are checked by their own tests).
func checkObserved(full bool) error {
	observed.Lock()
	defer observed.Unlock()
	var problems []string
	for _, rt := range routeTable() {
		key := rt.method + " " + rt.path
		declared := append(slices.Clone(rt.statuses), commonStatuses...)
		for st := range observed.m[key] {
			if !slices.Contains(declared, st) {
				problems = append(problems, fmt.Sprintf("%s answered %d, which its route does not declare", key, st))
			}
		}
		if !full {
			continue
		}
		for _, st := range rt.statuses {
			if !observed.m[key][st] {
				problems = append(problems, fmt.Sprintf("%s never answered declared status %d", key, st))
			}
		}
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		return fmt.Errorf("\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// envConfig adjusts a test server.
type envConfig struct {
	blockSize int
	limits    blobstore.Limits
	maxBlocks int64 // the service's capacity cap (0: none)
	opt       Options
	hook      func(*api) // adds test-only routes before serving
	// fast serves through FastReads, with the access log off (at debug
	// level every request would go to net/http), and the same handler
	// on a second, plain listener (env.plainAddr).
	fast bool
}

// env is a real server over a real bolt store on a loopback listener.
type env struct {
	t     testing.TB
	url   string
	addr  string
	svc   *blobstore.Service
	store *bolt.Store
	clock *bucketer.FakeClock
	srv   *http.Server
	logs  *logBuffer
	bs    int
	hc    *http.Client
	// With envConfig.fast: the fast listener, and the address of the
	// same handler served by net/http alone.
	fastLn    *fastListener
	plainAddr string

	mu      sync.Mutex
	secrets []string // every form of every id, proof and ETag the test used
}

func newEnv(t testing.TB, adjust ...func(*envConfig)) *env {
	t.Helper()
	cfg := envConfig{
		blockSize: 4096,
		limits:    blobstore.Limits{RenewBatch: 8, WriteBatch: 4},
		// Generous, so that the many failures of the status tests never
		// block; the probe tests set their own.
		opt: Options{Version: "test", ProbeLimit: NewMemoryProbeLimiter(1000, 100000)},
	}
	for _, f := range adjust {
		f(&cfg)
	}
	logs := &logBuffer{}
	level := slog.LevelDebug
	if cfg.fast {
		level = slog.LevelInfo
	}
	cfg.opt.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: level}))

	key := make([]byte, bucketer.KeySize)
	_, _ = rand.Read(key)
	clock := bucketer.NewFakeClock(time.Now())
	bk, err := bucketer.New(bucketer.Config{Key: key, Period: 24 * time.Hour, Retention: 3, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	store, err := bolt.Open(filepath.Join(t.TempDir(), "store.db"), blobstore.Params{BlockSize: cfg.blockSize, Fingerprint: bk.Fingerprint()})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := blobstore.NewService(blobstore.ServiceConfig{Store: store, Bucketer: bk, BlockSize: cfg.blockSize, Limits: cfg.limits, MaxBlocks: cfg.maxBlocks})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := New(svc, cfg.opt)
	if cfg.hook != nil {
		cfg.hook(h.(*api))
	}
	srv := NewServer(h, cfg.opt)
	e := &env{
		t: t, url: "http://" + ln.Addr().String(), addr: ln.Addr().String(),
		svc: svc, store: store, clock: clock, srv: srv, logs: logs, bs: cfg.blockSize,
		hc: &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second},
	}
	var plain *http.Server
	if cfg.fast {
		fl, ok := FastReads(ln, h, nil).(*fastListener)
		if !ok {
			t.Fatal("FastReads did not take the listener")
		}
		e.fastLn = fl
		pln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		e.plainAddr = pln.Addr().String()
		plain = NewServer(h, cfg.opt)
		go func() { _ = plain.Serve(pln) }()
		go func() { _ = srv.Serve(fl) }()
	} else {
		go func() { _ = srv.Serve(ln) }()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// Shutdown waits for handlers to return, so every access line
		// is written before the logs are read.
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if plain != nil {
			if err := plain.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
			e.fastLn.wait()
		}
		e.hc.CloseIdleConnections()
		_ = store.Close()
		e.recordStatuses()
		e.assertLogsPrivate()
	})
	return e
}

// block is a test block with its secrets.
type block struct {
	id    string
	w     wire.WriteProof
	proof string // base64url write proof
	renew string // base64url renew proof
	data  []byte
}

func (e *env) newBlock() *block {
	id := wire.NewID()
	var w wire.WriteProof
	_, _ = rand.Read(w[:])
	b := &block{id: id.String(), w: w, proof: wire.EncodeProof(w), renew: wire.EncodeProof(w.Renew()), data: e.randomData()}
	e.secretID(b.id)
	e.secret(b.proof, b.renew, hex.EncodeToString(w[:]), base64.StdEncoding.EncodeToString(w[:]))
	r := w.Renew()
	e.secret(hex.EncodeToString(r[:]), base64.StdEncoding.EncodeToString(r[:]))
	return b
}

func (e *env) randomData() []byte {
	d := make([]byte, e.bs)
	_, _ = rand.Read(d)
	return d
}

// secretID registers every printable form of a block id.
func (e *env) secretID(s string) {
	e.secret(s)
	h := strings.ReplaceAll(s, "-", "")
	if raw, err := hex.DecodeString(h); err == nil && len(raw) == 16 {
		e.secret(h, base64.RawURLEncoding.EncodeToString(raw), base64.RawStdEncoding.EncodeToString(raw))
	}
}

func (e *env) secretETag(s string) {
	if s == "" {
		return
	}
	e.secret(s, strings.Trim(s, `"`))
	if raw, err := base64.RawURLEncoding.DecodeString(strings.Trim(s, `"`)); err == nil {
		e.secret(hex.EncodeToString(raw))
	}
}

func (e *env) secret(ss ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range ss {
		if len(s) >= 8 {
			e.secrets = append(e.secrets, s)
		}
	}
}

// assertLogsPrivate fails the test if the server's log holds any id,
// proof or ETag the test used (case-insensitively) or the client's
// address.
func (e *env) assertLogsPrivate() {
	logs := strings.ToLower(e.logs.String())
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range append(slices.Clone(e.secrets), "127.0.0.1") {
		if strings.Contains(logs, strings.ToLower(s)) {
			e.t.Errorf("server log contains %q:\n%s", s, e.logs.String())
			return
		}
	}
}

// recordStatuses feeds the access lines into observed.
func (e *env) recordStatuses() {
	sc := bufio.NewScanner(strings.NewReader(e.logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	observed.Lock()
	defer observed.Unlock()
	for sc.Scan() {
		var line struct {
			Msg    string `json:"msg"`
			Method string `json:"method"`
			Route  string `json:"route"`
			Status int    `json:"status"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Msg != "request" {
			continue
		}
		k := line.Method + " " + line.Route
		if observed.m[k] == nil {
			observed.m[k] = map[int]bool{}
		}
		observed.m[k][line.Status] = true
	}
}

// resp is a finished response.
type resp struct {
	status int
	header http.Header
	body   []byte
}

// hdr is request headers as name, value pairs.
type hdr []string

// do sends one request. body nil means no body; chunked sends it
// without a Content-Length.
func (e *env) do(method, path string, body []byte, h hdr) *resp {
	e.t.Helper()
	return e.doReader(method, path, body, false, h)
}

func (e *env) doReader(method, path string, body []byte, chunked bool, h hdr) *resp {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
		if chunked {
			rd = io.MultiReader(rd) // hides the length from net/http
		}
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(h); i += 2 {
		req.Header.Add(h[i], h[i+1])
	}
	res, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	e.secretETag(res.Header.Get("ETag"))
	return &resp{status: res.StatusCode, header: res.Header, body: b}
}

// put writes b (create or overwrite) and returns its ETag.
func (e *env) put(b *block, h ...string) *resp {
	e.t.Helper()
	return e.do("PUT", "/v1/blocks/"+b.id, b.data, append(hdr{"Blind-Proof", b.proof, "Content-Type", "application/octet-stream"}, h...))
}

// mustPut creates b and returns its ETag.
func (e *env) mustPut(b *block) string {
	e.t.Helper()
	r := e.put(b)
	if r.status != http.StatusCreated && r.status != http.StatusNoContent {
		e.t.Fatalf("put: status %d: %s", r.status, r.body)
	}
	return r.header.Get("ETag")
}

// wantStatus checks a response's status.
func (r *resp) wantStatus(t *testing.T, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
}

// wantProblem checks a problem+json answer with the given status and code.
func (r *resp) wantProblem(t *testing.T, status int, code string) {
	t.Helper()
	r.wantStatus(t, status)
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	if len(r.body) == 0 {
		return // HEAD
	}
	var p problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body %q: %v", r.body, err)
	}
	if p.Type != "about:blank" || p.Title != http.StatusText(status) || p.Status != status || p.Code != code || p.Detail == "" {
		t.Fatalf("problem %+v, want status %d code %q", p, status, code)
	}
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
			t.Fatalf("status %d without a usable Retry-After (%q)", status, ra)
		}
	}
}

// snapshot is the store's state as seen without HTTP: the count of
// blocks, and the ETag and data of the blocks named.
type snapshot struct {
	blocks int64
	of     map[string]string // id → etag+data digest, "" when missing
}

func (e *env) snapshot(ids ...string) snapshot {
	e.t.Helper()
	ctx := context.Background()
	st, err := e.store.Stats(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	s := snapshot{blocks: st.Blocks, of: map[string]string{}}
	for _, id := range ids {
		pid, err := wire.ParseID(id)
		if err != nil {
			continue
		}
		data, etag, err := e.store.Read(ctx, pid, nil)
		switch {
		case blobstore.IsNotFound(err):
			s.of[id] = ""
		case err != nil:
			e.t.Fatal(err)
		default:
			sum := wire.ETagOf(data)
			s.of[id] = etag.String() + hex.EncodeToString(sum[:])
		}
	}
	return s
}

// unchanged fails if the store differs from before.
func (e *env) unchanged(before snapshot, ids ...string) {
	e.t.Helper()
	after := e.snapshot(ids...)
	if after.blocks != before.blocks {
		e.t.Fatalf("store holds %d blocks, was %d", after.blocks, before.blocks)
	}
	for id, v := range before.of {
		if after.of[id] != v {
			e.t.Fatalf("a block changed (was present: %v, is present: %v)", v != "", after.of[id] != "")
		}
	}
}
