package httpapi

import (
	"net/http"
	"strings"
	"testing"
)

func TestCORS(t *testing.T) {
	const app = "https://app.example"
	e := newEnv(t, func(c *envConfig) { c.opt.CORSOrigins = []string{"HTTPS://App.Example/"} })
	b := e.newBlock()
	e.secret(b.id, b.proof, b.renew)

	t.Run("allowed origin reads the ETag", func(t *testing.T) {
		r := e.put(b, "Origin", app)
		if r.status != http.StatusCreated {
			t.Fatalf("put: %d %s", r.status, r.body)
		}
		r = e.do("GET", "/v1/blocks/"+b.id, nil, hdr{"Origin", app})
		r.wantStatus(t, http.StatusOK)
		if got := r.header.Get("Access-Control-Allow-Origin"); got != app {
			t.Errorf("Access-Control-Allow-Origin %q, want %q", got, app)
		}
		if got := r.header.Get("Access-Control-Expose-Headers"); got != "ETag, Retry-After, WWW-Authenticate" {
			t.Errorf("Access-Control-Expose-Headers %q", got)
		}
		if got := r.header.Get("Access-Control-Allow-Credentials"); got != "" {
			t.Errorf("Access-Control-Allow-Credentials %q: the API has no credentials to share", got)
		}
		if !strings.Contains(strings.Join(r.header.Values("Vary"), ","), "Origin") {
			t.Errorf("Vary %q lacks Origin", r.header.Values("Vary"))
		}
	})

	t.Run("problem answers carry it too", func(t *testing.T) {
		r := e.do("GET", "/v1/blocks/not-an-id", nil, hdr{"Origin", app})
		r.wantProblem(t, http.StatusBadRequest, "bad_id")
		if r.header.Get("Access-Control-Allow-Origin") != app {
			t.Errorf("a 400 for an allowed origin lacks Access-Control-Allow-Origin")
		}
	})

	t.Run("other origin gets nothing", func(t *testing.T) {
		r := e.do("GET", "/v1/blocks/"+b.id, nil, hdr{"Origin", "https://evil.example"})
		r.wantStatus(t, http.StatusOK)
		for _, h := range []string{"Access-Control-Allow-Origin", "Access-Control-Expose-Headers", "Access-Control-Allow-Methods"} {
			if v := r.header.Get(h); v != "" {
				t.Errorf("%s: %q for an origin not listed", h, v)
			}
		}
	})

	t.Run("preflight allowed", func(t *testing.T) {
		r := e.do("OPTIONS", "/v1/blocks/"+b.id, nil, hdr{"Origin", app,
			"Access-Control-Request-Method", "PUT",
			"Access-Control-Request-Headers", "blind-proof,content-type,if-match,authorization"})
		r.wantStatus(t, http.StatusNoContent)
		want := map[string]string{
			"Access-Control-Allow-Origin":  app,
			"Access-Control-Allow-Methods": "PUT",
			"Access-Control-Max-Age":       "600",
		}
		for h, v := range want {
			if got := r.header.Get(h); got != v {
				t.Errorf("%s %q, want %q", h, got, v)
			}
		}
		allowed := strings.ToLower(r.header.Get("Access-Control-Allow-Headers"))
		for _, h := range []string{"authorization", "blind-proof", "content-type", "if-match", "if-none-match"} {
			if !strings.Contains(allowed, h) {
				t.Errorf("Access-Control-Allow-Headers %q lacks %s", allowed, h)
			}
		}
	})

	t.Run("preflight for a method the path does not serve", func(t *testing.T) {
		r := e.do("OPTIONS", "/v1/renew", nil, hdr{"Origin", app, "Access-Control-Request-Method", "DELETE"})
		r.wantProblem(t, http.StatusMethodNotAllowed, "method_not_allowed")
		if r.header.Get("Access-Control-Allow-Methods") != "" {
			t.Error("a refused preflight allows methods")
		}
	})

	t.Run("preflight from another origin", func(t *testing.T) {
		r := e.do("OPTIONS", "/v1/blocks/"+b.id, nil, hdr{"Origin", "https://evil.example", "Access-Control-Request-Method", "PUT"})
		r.wantProblem(t, http.StatusMethodNotAllowed, "method_not_allowed")
		if r.header.Get("Access-Control-Allow-Origin") != "" || r.header.Get("Access-Control-Allow-Methods") != "" {
			t.Error("a preflight from an origin not listed is allowed")
		}
	})
}

// TestCORSOff: without origins the API sends no CORS header and a
// preflight is a plain OPTIONS, answered 405.
func TestCORSOff(t *testing.T) {
	e := newEnv(t)
	r := e.do("OPTIONS", "/v1/config", nil, hdr{"Origin", "https://app.example", "Access-Control-Request-Method", "GET"})
	r.wantProblem(t, http.StatusMethodNotAllowed, "method_not_allowed")
	r = e.do("GET", "/v1/config", nil, hdr{"Origin", "https://app.example"})
	r.wantStatus(t, http.StatusOK)
	for h := range r.header {
		if strings.HasPrefix(h, "Access-Control-") {
			t.Errorf("%s sent with CORS off", h)
		}
	}
}
