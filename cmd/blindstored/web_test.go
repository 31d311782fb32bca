package main

import (
	"net/http"
	"strings"
	"testing"
)

// TestServeWeb: the app is off by default; --web (or BLINDSTORE_WEB)
// serves it at / under its CSP, and the API stays as it was.
func TestServeWeb(t *testing.T) {
	off := startServer(t, nil, "--data", t.TempDir())
	if a := send(t, "GET", off.url+"/", nil); a.status != http.StatusNotFound || a.code != "no_route" {
		t.Errorf("without --web, GET /: %d %s", a.status, a.body)
	}
	for name, s := range map[string]*server{
		"flag": startServer(t, nil, "--data", t.TempDir(), "--web"),
		"env":  startServer(t, []string{"BLINDSTORE_WEB=yes"}, "--data", t.TempDir()),
	} {
		a := send(t, "GET", s.url+"/", nil)
		if a.status != http.StatusOK || !strings.Contains(string(a.body), `<script src="/app.js"`) {
			t.Errorf("%s: GET /: %d", name, a.status)
		}
		if csp := a.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self' 'wasm-unsafe-eval'") {
			t.Errorf("%s: Content-Security-Policy %q", name, csp)
		}
		if a := send(t, "GET", s.url+"/worker.js", nil); a.status != http.StatusOK || !strings.HasPrefix(a.header.Get("Content-Type"), "text/javascript") {
			t.Errorf("%s: GET /worker.js: %d %s", name, a.status, a.header.Get("Content-Type"))
		}
		a = send(t, "GET", s.url+"/v1/config", nil)
		if a.status != http.StatusOK || a.header.Get("Content-Security-Policy") != "" || !strings.Contains(string(a.body), "block_size") {
			t.Errorf("%s: the API changed under --web: %d %q", name, a.status, a.header.Get("Content-Security-Policy"))
		}
	}
}

// TestServeCORSOrigin: --cors-origin (and its environment fallback, a
// comma-separated list) allows the listed origins only; a value that is
// not an origin is a usage error.
func TestServeCORSOrigin(t *testing.T) {
	s := startServer(t, []string{"BLINDSTORE_CORS_ORIGIN=https://a.example, https://b.example"}, "--data", t.TempDir())
	for _, o := range []string{"https://a.example", "https://b.example"} {
		a := send(t, "OPTIONS", s.url+"/v1/blocks", nil, "Origin", o, "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type,authorization")
		if a.status != http.StatusNoContent || a.header.Get("Access-Control-Allow-Origin") != o {
			t.Errorf("preflight from %s: %d, Allow-Origin %q", o, a.status, a.header.Get("Access-Control-Allow-Origin"))
		}
	}
	if a := send(t, "GET", s.url+"/v1/config", nil, "Origin", "https://c.example"); a.header.Get("Access-Control-Allow-Origin") != "" {
		t.Error("an origin not listed is allowed")
	}
	s2 := startServer(t, nil, "--data", t.TempDir(), "--cors-origin", "https://a.example")
	a := send(t, "GET", s2.url+"/v1/config", nil, "Origin", "https://a.example")
	if a.header.Get("Access-Control-Allow-Origin") != "https://a.example" || a.header.Get("Access-Control-Expose-Headers") != "ETag, Retry-After, WWW-Authenticate" {
		t.Errorf("--cors-origin: Allow-Origin %q, Expose-Headers %q", a.header.Get("Access-Control-Allow-Origin"), a.header.Get("Access-Control-Expose-Headers"))
	}
	for _, bad := range []string{"a.example", "https://a.example/app", "*", "ftp://a.example"} {
		out, code := runCLI(t, nil, "serve", "--data", t.TempDir(), "--cors-origin", bad)
		if code != exitUsage || strings.Count(strings.TrimSpace(out), "\n") > 0 || !strings.Contains(out, "not an origin") {
			t.Errorf("--cors-origin %q: exit %d, output %q; want one line and exit %d", bad, code, out, exitUsage)
		}
	}
}

// TestIssuerCORSOrigin: a browser app on the listed origin may fetch
// tokens from the issuer (its wallet's POST is preflighted).
func TestIssuerCORSOrigin(t *testing.T) {
	is := startIssuer(t, "--cors-origin", "http://127.0.0.1:7878")
	a := send(t, "OPTIONS", is.url+"/.well-known/private-token-issuer-directory", nil, "Origin", "http://127.0.0.1:7878", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type")
	if a.status != http.StatusNoContent || a.header.Get("Access-Control-Allow-Origin") != "http://127.0.0.1:7878" {
		t.Errorf("issuer preflight: %d, Allow-Origin %q", a.status, a.header.Get("Access-Control-Allow-Origin"))
	}
	if a := send(t, "GET", is.url+"/.well-known/private-token-issuer-directory", nil, "Origin", "https://other.example"); a.header.Get("Access-Control-Allow-Origin") != "" {
		t.Error("the issuer allows an origin not listed")
	}
}
