package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blindstore/blindstore/wire"
	"github.com/julienschmidt/httprouter"
)

// panicRoutes adds routes that panic as a bug would: with a value that
// holds a block id, with a runtime error, and after the answer started.
func panicRoutes(id string) func(*api) {
	return func(a *api) {
		a.router.GET("/test/panic/:kind", func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
			switch ps.ByName("kind") {
			case "value":
				panic(fmt.Errorf("lost block %s: %w", id, errors.ErrUnsupported))
			case "runtime":
				var m map[string]int
				m[id] = 1 // assignment to a nil map
			case "late":
				w.WriteHeader(http.StatusOK)
				_, _ = w.Write([]byte("partial"))
				if f, ok := w.(http.Flusher); ok {
					f.Flush()
				}
				panic(errors.New(id))
			}
		})
	}
}

func TestPanics(t *testing.T) {
	id := wire.NewID().String()
	e := newEnv(t, func(c *envConfig) { c.hook = panicRoutes(id) })
	e.secretID(id)
	e.do("GET", "/test/panic/value", nil, nil).wantProblem(t, http.StatusInternalServerError, wire.CodeInternal)
	e.do("GET", "/test/panic/runtime", nil, nil).wantProblem(t, http.StatusInternalServerError, wire.CodeInternal)

	// A panic after the answer began aborts the connection: the client
	// must not take a short answer for a whole one.
	res, err := e.hc.Get(e.url + "/test/panic/late")
	if err == nil {
		_, err = io.ReadAll(res.Body)
		res.Body.Close()
	}
	if err == nil {
		t.Fatal("a panic after the header was sent did not abort the response")
	}
	// The server keeps serving.
	e.do("GET", "/healthz", nil, nil).wantStatus(t, http.StatusOK)

	logs := e.logs.String()
	for _, want := range []string{`"panic":"*fmt.wrapError"`, `"panic":"assignment to entry in nil map"`, `"panic":"*errors.errorString"`, "panicRoutes"} {
		if !strings.Contains(logs, want) {
			t.Errorf("panic log lacks %s:\n%s", want, logs)
		}
	}
}

// TestLogsNamePrivateNothing drives every endpoint through successes and
// failures with the log at Debug level, then checks that the log holds no
// block id (in any form), proof, ETag or client address. (Every other
// test's server log is checked the same way when it ends.)
func TestLogsNamePrivateNothing(t *testing.T) {
	var notReady atomic.Bool
	panicID := wire.NewID().String()
	e := newEnv(t, func(c *envConfig) {
		c.opt.Ready = func(context.Context) error {
			if notReady.Load() {
				return errors.New("redis: connection refused")
			}
			return nil
		}
		c.opt.ProbeLimit = NewMemoryProbeLimiter(0.01, 40)
		c.hook = panicRoutes(panicID)
	})
	e.secretID(panicID)
	requests := 0
	do := func(method, path string, body []byte, h hdr) *resp {
		requests++
		return e.do(method, path, body, h)
	}
	a, b, stranger := e.newBlock(), e.newBlock(), e.newBlock()
	pa, pb := "/v1/blocks/"+a.id, "/v1/blocks/"+b.id

	do("GET", "/v1/config", nil, nil)
	do("GET", "/v1/openapi.json", nil, nil)
	do("GET", "/healthz", nil, nil)
	do("GET", "/readyz", nil, nil)
	notReady.Store(true)
	do("GET", "/readyz", nil, nil)
	notReady.Store(false)

	ra := do("PUT", pa, a.data, hdr{"Blind-Proof", a.proof, "If-None-Match", "*"})
	rb := do("PUT", "/v1/blocks/"+strings.ToUpper(b.id), b.data, hdr{"Blind-Proof", b.proof})
	etagA, etagB := ra.header.Get("ETag"), rb.header.Get("ETag")
	a.data = e.randomData()
	ra = do("PUT", pa, a.data, hdr{"Blind-Proof", a.proof, "If-Match", etagA})
	etagA = ra.header.Get("ETag")
	do("GET", pa, nil, nil)
	do("HEAD", pb, nil, nil)
	do("GET", pa, nil, hdr{"If-None-Match", etagA})
	do("PUT", pa, a.data, hdr{"Blind-Proof", stranger.proof})
	do("PUT", pa, a.data, hdr{"Blind-Proof", a.proof, "If-Match", etagB})
	do("PUT", pa, a.data, hdr{"Blind-Proof", a.proof, "If-Match", "garbage"})
	do("PUT", pa, a.data[:10], hdr{"Blind-Proof", a.proof})
	do("PUT", pa, a.data, hdr{"Blind-Proof", "bad proof"})
	do("GET", "/v1/blocks/"+stranger.id, nil, nil)
	do("GET", "/v1/blocks/6ba7b810-9dad-11d1-80b4-00c04fd430c8", nil, nil)
	e.secretID("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
	do("DELETE", pb, nil, hdr{"Blind-Proof", stranger.proof})
	do("DELETE", pb, nil, hdr{"Blind-Proof", b.proof, "If-Match", etagA})
	do("DELETE", "/v1/blocks/"+stranger.id, nil, hdr{"Blind-Proof", stranger.proof})

	c := e.newBlock()
	batch := batchBody(t, entry{"blocks": []entry{
		{"id": c.id, "proof": c.proof, "create_only": true},
		{"id": b.id, "proof": stranger.proof},
		{"id": a.id, "proof": a.proof, "if_match": etagB},
	}}, c.data, e.randomData(), e.randomData())
	do("POST", "/v1/blocks", batch, hdr{"Content-Type", "application/vnd.blindstore.batch"})
	do("POST", "/v1/blocks", batchBody(t, entry{"blocks": []entry{{"id": "nope-" + c.id, "proof": c.proof}}}, c.data), hdr{"Content-Type", "application/vnd.blindstore.batch"})
	e.clock.Advance(24 * time.Hour)
	renew, _ := json.Marshal(entry{"blocks": []entry{
		{"id": a.id, "proof": a.renew}, {"id": b.id, "proof": stranger.renew}, {"id": stranger.id, "proof": stranger.renew},
	}})
	r := do("POST", "/v1/renew", renew, hdr{"Content-Type", "application/json"})
	if !strings.Contains(string(r.body), stranger.id) || !strings.Contains(string(r.body), b.id) {
		t.Fatalf("renew answer lacks the missing and refused ids: %s", r.body)
	}
	do("POST", "/v1/renew", []byte(`{"blocks":[{"id":"`+a.id+`","proof":"`+a.proof+`x"}]}`), nil)

	do("POST", pa, nil, nil)
	do("GET", "/v1/blocks/"+a.id+"/extra", nil, nil)
	do("GET", pa, nil, hdr{"X-Pad", strings.Repeat("p", DefaultMaxHeaderBytes)})
	do("GET", "/test/panic/value", nil, nil)
	do("GET", "/test/panic/runtime", nil, nil)

	// Probe until the address is blocked.
	blocked := false
	for range 60 {
		if do("GET", "/v1/blocks/"+e.newBlock().id, nil, nil).status == http.StatusTooManyRequests {
			blocked = true
			break
		}
	}
	if !blocked {
		t.Fatal("the probe limiter never blocked the sweep's address")
	}

	// Failures of the store itself are logged, with their cause.
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	notReady.Store(false)
	do("GET", "/readyz", nil, nil)

	// Shut down now, so every access line is written, then look.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	logs := e.logs.String()
	if got := strings.Count(logs, `"msg":"request"`); got != requests {
		t.Fatalf("%d access lines for %d requests:\n%s", got, requests, logs)
	}
	for _, want := range []string{`"level":"WARN","msg":"service unavailable"`, "readiness check: redis", `"msg":"panic in handler"`, `"route":"/v1/blocks/:id"`, `"status":429`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s", want)
		}
	}
	e.assertLogsPrivate()
}
