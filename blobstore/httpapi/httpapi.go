// Package httpapi is blindstore's HTTP API, version 1 (docs/design.md §4): the
// routes under /v1, health and readiness, problem+json errors, request
// caps and timeouts, and the limiter of failed probes. It translates HTTP
// into calls of a blobstore.Service and back; all decisions about blocks
// are the service's.
//
// It must never log a block ID, a proof, an ETag, a precondition's value
// or a client's address, in any form: the access log names the route
// pattern, never the path, and server errors are logged by their cause
// alone. It never writes part of a block: a body is read whole and
// checked before the service sees it.
package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/wire"
	"github.com/julienschmidt/httprouter"
)

// Defaults of Options.
const (
	DefaultMaxHeaderBytes    = 16 << 10
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 60 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
)

// HardMaxHeaderBytes is the http.Server's own header cap set by NewServer.
// Below it, headers over Options.MaxHeaderBytes get a 431 problem+json;
// beyond it, Go's server answers 431 in plain text before any handler runs.
const HardMaxHeaderBytes = 1 << 20

// Framing limits of the request bodies that are not a single block.
const (
	// MaxManifestBytes caps the JSON manifest of a batch write (wire's).
	MaxManifestBytes = wire.MaxManifestBytes
	// renewBytesPerBlock bounds one renew entry with generous whitespace:
	// a 36-byte id and a 43-byte proof take about 100 bytes of JSON.
	renewBytesPerBlock = 256
	renewBytesSlack    = 1 << 10
)

// Options configure the API. The zero value is usable.
type Options struct {
	Logger         *slog.Logger // nil: slog.Default()
	Version        string       // shown in /v1/config
	MaxHeaderBytes int          // default 16 KiB; headers beyond it get 431 problem+json
	// ProbeLimit throttles clients that fail probes. nil: an in-process
	// limiter per client address allowing DefaultProbeRate a second with
	// a burst of DefaultProbeBurst.
	ProbeLimit ProbeLimiter
	// Ready adds readiness checks (Redis, say) to the store's Ping. Its
	// error is logged as the cause and answered as 503.
	Ready func(ctx context.Context) error
	// TrustProxyHeader names a header, such as X-Forwarded-For or
	// Forwarded, that a trusted reverse proxy sets to the client's
	// address. "" (the default): the client is the connection's peer.
	// Setting it without such a proxy lets clients choose their address.
	TrustProxyHeader string
	// Metrics, if set, counts and times every request (metrics.go).
	Metrics *Metrics
	// Tokens, if set, makes writes that may create blocks, and renewals,
	// cost a Privacy Pass token each (tokens.go). nil: an open store.
	Tokens TokenRedeemer
	// WriteLimit bounds the blocks each address writes in an open store
	// (ignored with Tokens). nil: no limit.
	WriteLimit WriteLimiter
	// CORSOrigins are the origins (https://app.example) whose browser
	// apps may call the API (cors.go). nil: none, no CORS headers.
	CORSOrigins []string

	// Server timeouts used by NewServer and published in /v1/config.
	// Zero takes the Default* value.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration // the whole request, body included
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	// PoolWindow is the write pool's window, published in /v1/config:
	// a client commits its index while its last data still waits in
	// the pool only when there is a window to share (client.Put).
	PoolWindow time.Duration
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if o.MaxHeaderBytes > HardMaxHeaderBytes {
		o.MaxHeaderBytes = HardMaxHeaderBytes
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&o.ReadTimeout, DefaultReadTimeout)
	def(&o.WriteTimeout, DefaultWriteTimeout)
	def(&o.IdleTimeout, DefaultIdleTimeout)
	return o
}

// api holds what the handlers share.
type api struct {
	svc    *blobstore.Service
	opt    Options
	log    *slog.Logger
	probe  ProbeLimiter
	router *httprouter.Router
	cors   *cors // nil: no origin allowed
	// blocks recycles block-sized buffers (capacity block_size+1, so an
	// oversized body is detected without a second read). A write's buffer
	// goes back only after the service returned a decided outcome: this
	// relies on Store.Apply and every blobstore.Committer keeping no
	// reference to Op.Data once they have returned results.
	blocks sync.Pool
}

// New returns the API's handler over svc. Pass NewServer the same
// Options, so that the timeouts /v1/config publishes are the server's.
func New(svc *blobstore.Service, opt Options) http.Handler {
	opt = opt.withDefaults()
	if opt.ProbeLimit == nil {
		opt.ProbeLimit = NewMemoryProbeLimiter(DefaultProbeRate, DefaultProbeBurst)
	}
	a := &api{svc: svc, opt: opt, log: opt.Logger, probe: opt.ProbeLimit}
	bs := svc.BlockSize()
	a.blocks.New = func() any {
		b := make([]byte, bs+1)
		return &b
	}
	r := httprouter.New()
	// Routes match exactly: a redirect to a "fixed" path would answer
	// with a status the API does not document, and OPTIONS is not served.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleOPTIONS = false
	r.HandleMethodNotAllowed = true
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		writeCode(w, req, wire.CodeNoRoute, "no such route")
	})
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Allow", withoutOptions(w.Header().Get("Allow")))
		writeCode(w, req, wire.CodeMethodNotAllowed, "method not allowed on this route")
	})
	r.PanicHandler = a.panicked
	for _, rt := range routeTable() {
		r.Handle(rt.method, rt.path, a.handle(rt))
	}
	a.router = r
	a.cors = newCORS(opt.CORSOrigins, func(method, path string) bool {
		h, _, _ := r.Lookup(method, path)
		return h != nil
	})
	return a
}

// withoutOptions drops OPTIONS from httprouter's Allow list: it always
// adds it, but this API does not serve OPTIONS.
func withoutOptions(allow string) string {
	parts := strings.Split(allow, ", ")
	out := parts[:0]
	for _, p := range parts {
		if p != http.MethodOptions {
			out = append(out, p)
		}
	}
	return strings.Join(out, ", ")
}

// route is one entry of the single route table: it registers the route
// and is what the OpenAPI test compares with openapi.json.
type route struct {
	method string
	path   string // httprouter syntax: /v1/blocks/:id
	// probed routes touch blocks: a blocked client is refused on them,
	// and their failed probes count.
	probed bool
	// statuses lists every status the route can answer; the tests check
	// that openapi.json documents exactly these and that every status
	// observed in the integration tests is among them.
	statuses []int
	handle   func(a *api, x *exchange)
}

// Statuses every route can answer: oversized headers and a panic, and
// the plain-text answers of net/http itself, before any handler runs, to
// a request it cannot parse (400) or with a transfer coding it does not
// know (501); openapi.json documents those as text/plain.
var commonStatuses = []int{400, 431, 500, 501}

func routeTable() []route {
	block := []int{400, 429, 503} // bad input, blocked client, store down
	return withHead([]route{
		{method: "GET", path: "/healthz", statuses: []int{200}, handle: (*api).healthz},
		{method: "GET", path: "/readyz", statuses: []int{200, 503}, handle: (*api).readyz},
		{method: "GET", path: "/v1/config", statuses: []int{200}, handle: (*api).config},
		{method: "GET", path: "/v1/openapi.json", statuses: []int{200}, handle: (*api).openapi},
		{method: "GET", path: "/v1/blocks/:id", probed: true, statuses: join(block, 200, 304, 404), handle: (*api).getBlock},
		{method: "HEAD", path: "/v1/blocks/:id", probed: true, statuses: join(block, 200, 304, 404), handle: (*api).getBlock},
		// 401: a write that must be paid (tokens.go); 507: the store is full.
		{method: "PUT", path: "/v1/blocks/:id", probed: true, statuses: join(block, 201, 204, 401, 403, 408, 412, 413, 415, 507), handle: (*api).putBlock},
		{method: "DELETE", path: "/v1/blocks/:id", probed: true, statuses: join(block, 204, 403, 404, 412), handle: (*api).deleteBlock},
		{method: "POST", path: "/v1/blocks", probed: true, statuses: join(block, 200, 401, 408, 413, 415, 507), handle: (*api).putBatch},
		// A missing block is a record of the answer, not a 404.
		{method: "POST", path: "/v1/read", probed: true, statuses: join(block, 200, 408, 413, 415), handle: (*api).readMany},
		{method: "POST", path: "/v1/renew", probed: true, statuses: join(block, 200, 401, 408, 413, 415), handle: (*api).renew},
	})
}

// withHead adds a HEAD route beside each GET route that has none: RFC
// 9110 §9.3.2 asks a server that answers GET to answer HEAD with the same
// headers and no body. The twin runs the GET handler, whose body is
// dropped (headOnly); a route with a HEAD of its own, which can skip
// reading data, keeps it.
func withHead(rs []route) []route {
	own := map[string]bool{}
	for _, rt := range rs {
		if rt.method == http.MethodHead {
			own[rt.path] = true
		}
	}
	for _, rt := range rs {
		if rt.method == http.MethodGet && !own[rt.path] {
			rt.method = http.MethodHead
			rs = append(rs, rt)
		}
	}
	return rs
}

// headOnly is the writer of a HEAD request: headers and status pass,
// the body of the GET handler does not. net/http drops it too; this
// keeps the access log's byte count and any other server honest.
type headOnly struct{ http.ResponseWriter }

func (h headOnly) Write(p []byte) (int, error) { return len(p), nil }

// Unwrap lets http.ResponseController reach the connection's writer.
func (h headOnly) Unwrap() http.ResponseWriter { return h.ResponseWriter }

func join(base []int, more ...int) []int { return append(append([]int(nil), base...), more...) }

// exchange is one request as a handler sees it.
type exchange struct {
	w      http.ResponseWriter
	r      *http.Request
	ps     httprouter.Params
	route  string
	failed int // failed probes to record once the handler returns
}

func (x *exchange) fail(a *api, err error) { a.fail(x.w, x.r, x.route, err) }

// handle wraps a route's handler: it names the route for the access log,
// refuses blocked clients, and records the failed probes of the request.
func (a *api) handle(rt route) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		if rec, ok := w.(*recorder); ok {
			rec.route = rt.path
		}
		if r.Method == http.MethodHead {
			w = headOnly{w}
		}
		x := &exchange{w: w, r: r, ps: ps, route: rt.path}
		if !rt.probed {
			rt.handle(a, x)
			return
		}
		// The key is worked out only when the limiter needs it: on a
		// quiet limiter, a read that succeeds never parses the address.
		key := ""
		if q, ok := a.probe.(quietLimiter); !ok || !q.quiet() {
			key = clientKey(r, a.opt.TrustProxyHeader)
			if wait, blocked := a.probe.Blocked(r.Context(), key); blocked {
				w.Header().Set("Retry-After", retryAfter(wait))
				writeCode(w, r, wire.CodeRateLimited, "too many failed requests from this address; retry later")
				return
			}
		}
		rt.handle(a, x)
		if x.failed > 0 {
			if key == "" {
				key = clientKey(r, a.opt.TrustProxyHeader)
			}
			// The answer is already written; the count must survive a
			// client that hung up, or hanging up would be a way around
			// the limit.
			failed(context.WithoutCancel(r.Context()), a.probe, key, x.failed)
		}
	}
}

// ServeHTTP is the front of the API: the access log and the header cap
// wrap the router.
func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &recorder{ResponseWriter: w, route: "no_route"}
	logged := a.log.Enabled(r.Context(), slog.LevelDebug)
	if logged || a.opt.Metrics != nil {
		start := time.Now()
		done := a.opt.Metrics.begin()
		// Deferred, so that a request aborted by a panic is logged too.
		defer func() {
			d := time.Since(start)
			done(r.Method, rec.route, rec.status(), d)
			if !logged {
				return
			}
			a.log.LogAttrs(context.WithoutCancel(r.Context()), slog.LevelDebug, "request",
				slog.String("method", r.Method),
				slog.String("route", rec.route),
				slog.Int("status", rec.status()),
				slog.Duration("duration", d),
				slog.Int64("bytes", rec.bytes))
		}()
	}
	// Before the header check, so that a script on an allowed origin
	// can read that answer too.
	if a.cors.handle(rec, r) {
		rec.route = "cors_preflight"
		return
	}
	if headerBytes(r) > a.opt.MaxHeaderBytes {
		rec.route = "header_check"
		writeCode(rec, r, wire.CodeHeaderTooLarge,
			"request headers exceed the limit published in /v1/config")
		return
	}
	a.router.ServeHTTP(rec, r)
}

// headerBytes approximates the size of r's request line and header block
// on the wire, the quantity http.Server.MaxHeaderBytes bounds.
func headerBytes(r *http.Request) int {
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2
	n += len("Host: ") + len(r.Host) + 2
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n + 2
}

// recorder notes what a response was, for the access log and for the
// panic handler, which must know whether the header is already out.
type recorder struct {
	http.ResponseWriter
	route       string
	code        int
	wroteHeader bool
	bytes       int64
}

func (rec *recorder) WriteHeader(code int) {
	if !rec.wroteHeader && code >= 200 {
		rec.code, rec.wroteHeader = code, true
	}
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *recorder) Write(p []byte) (int, error) {
	if !rec.wroteHeader {
		rec.code, rec.wroteHeader = http.StatusOK, true
	}
	n, err := rec.ResponseWriter.Write(p)
	rec.bytes += int64(n)
	return n, err
}

// writerOnly hides a writer's ReadFrom, so that io.Copy does not call it.
type writerOnly struct{ io.Writer }

// Unwrap lets http.ResponseController reach the connection's writer.
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

func (rec *recorder) status() int {
	if !rec.wroteHeader {
		return http.StatusOK
	}
	return rec.code
}
