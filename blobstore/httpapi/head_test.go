package httpapi

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/blindstore/blindstore/wire"
)

// TestHeadOnGetRoutes: every route that answers GET answers HEAD with the
// same status and headers and no body (RFC 9110 §9.3.2).
func TestHeadOnGetRoutes(t *testing.T) {
	e := newEnv(t)
	down := newEnv(t, func(c *envConfig) {
		c.opt.Ready = func(context.Context) error { return errors.New("redis: connection refused") }
	})
	cases := []struct {
		e      *env
		path   string
		status int
	}{
		{e, "/healthz", http.StatusOK},
		{e, "/readyz", http.StatusOK},
		{down, "/readyz", http.StatusServiceUnavailable},
		{e, "/v1/config", http.StatusOK},
		{e, "/v1/openapi.json", http.StatusOK},
	}
	for _, c := range cases {
		get := c.e.do("GET", c.path, nil, nil)
		head := c.e.do("HEAD", c.path, nil, nil)
		if get.status != c.status || head.status != c.status {
			t.Errorf("%s: GET %d, HEAD %d, want %d", c.path, get.status, head.status, c.status)
		}
		if len(get.body) == 0 || len(head.body) != 0 {
			t.Errorf("%s: GET body %d bytes, HEAD body %d bytes", c.path, len(get.body), len(head.body))
		}
		for _, h := range []string{"Content-Type", "Content-Length", "Cache-Control", "Retry-After"} {
			if g, hd := get.header.Get(h), head.header.Get(h); g != hd {
				t.Errorf("%s: %s is %q on GET, %q on HEAD", c.path, h, g, hd)
			}
		}
	}
	down.do("HEAD", "/readyz", nil, nil).wantProblem(t, http.StatusServiceUnavailable, wire.CodeUnavailable)
	// The twins are routes like any other: other methods get 405 with
	// an Allow that names HEAD.
	if r := e.do("DELETE", "/healthz", nil, nil); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, HEAD" {
		t.Errorf("DELETE /healthz: %d, Allow %q", r.status, r.header.Get("Allow"))
	}
}
