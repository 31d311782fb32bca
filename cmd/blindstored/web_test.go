package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func fetch(t *testing.T, method, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// TestServeWeb: the app is off by default; --web (or BLINDSTORE_WEB)
// serves it at / under its CSP, and the API stays as it was.
func TestServeWeb(t *testing.T) {
	off := startServer(t, nil, "--data", t.TempDir())
	if res, body := fetch(t, "GET", off.url+"/"); res.StatusCode != http.StatusNotFound || !strings.Contains(body, "no_route") {
		t.Errorf("without --web, GET /: %d %s", res.StatusCode, body)
	}
	for name, s := range map[string]*server{
		"flag": startServer(t, nil, "--data", t.TempDir(), "--web"),
		"env":  startServer(t, []string{"BLINDSTORE_WEB=yes"}, "--data", t.TempDir()),
	} {
		res, body := fetch(t, "GET", s.url+"/")
		if res.StatusCode != http.StatusOK || !strings.Contains(body, `<script src="/app.js"`) {
			t.Errorf("%s: GET /: %d", name, res.StatusCode)
		}
		if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self' 'wasm-unsafe-eval'") {
			t.Errorf("%s: Content-Security-Policy %q", name, csp)
		}
		if res, _ := fetch(t, "GET", s.url+"/worker.js"); res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/javascript") {
			t.Errorf("%s: GET /worker.js: %d %s", name, res.StatusCode, res.Header.Get("Content-Type"))
		}
		res, body = fetch(t, "GET", s.url+"/v1/config")
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Security-Policy") != "" || !strings.Contains(body, "block_size") {
			t.Errorf("%s: the API changed under --web: %d %q", name, res.StatusCode, res.Header.Get("Content-Security-Policy"))
		}
	}
}

// TestServeCORSOrigin: --cors-origin (and its environment fallback, a
// comma-separated list) allows the listed origins only; a value that is
// not an origin is a usage error.
func TestServeCORSOrigin(t *testing.T) {
	s := startServer(t, []string{"BLINDSTORE_CORS_ORIGIN=https://a.example, https://b.example"}, "--data", t.TempDir())
	for _, o := range []string{"https://a.example", "https://b.example"} {
		res, _ := fetch(t, "OPTIONS", s.url+"/v1/blocks", "Origin", o, "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type,authorization")
		if res.StatusCode != http.StatusNoContent || res.Header.Get("Access-Control-Allow-Origin") != o {
			t.Errorf("preflight from %s: %d, Allow-Origin %q", o, res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"))
		}
	}
	res, _ := fetch(t, "GET", s.url+"/v1/config", "Origin", "https://c.example")
	if res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Error("an origin not listed is allowed")
	}
	s2 := startServer(t, nil, "--data", t.TempDir(), "--cors-origin", "https://a.example")
	res, _ = fetch(t, "GET", s2.url+"/v1/config", "Origin", "https://a.example")
	if res.Header.Get("Access-Control-Allow-Origin") != "https://a.example" || res.Header.Get("Access-Control-Expose-Headers") != "ETag, Retry-After, WWW-Authenticate" {
		t.Errorf("--cors-origin: Allow-Origin %q, Expose-Headers %q", res.Header.Get("Access-Control-Allow-Origin"), res.Header.Get("Access-Control-Expose-Headers"))
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
	res, _ := fetch(t, "OPTIONS", is.url+"/.well-known/private-token-issuer-directory", "Origin", "http://127.0.0.1:7878", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type")
	if res.StatusCode != http.StatusNoContent || res.Header.Get("Access-Control-Allow-Origin") != "http://127.0.0.1:7878" {
		t.Errorf("issuer preflight: %d, Allow-Origin %q", res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"))
	}
	res, _ = fetch(t, "GET", is.url+"/.well-known/private-token-issuer-directory", "Origin", "https://other.example")
	if res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Error("the issuer allows an origin not listed")
	}
}
