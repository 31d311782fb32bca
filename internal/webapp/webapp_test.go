package webapp

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

// api stands for the API behind the app: it names itself so that a test
// sees which handler answered.
var api = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Handler", "api")
	w.WriteHeader(http.StatusTeapot)
})

func get(t *testing.T, h http.Handler, method, path string, hdr ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

// TestEmbeddedBundle serves every file of the committed bundle with the
// app's headers, and index.html names only files that are in it.
func TestEmbeddedBundle(t *testing.T) {
	app, err := New(api, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/", "/index.html", "/app.js", "/worker.js", "/blocks.js", "/sw.js", "/app.css"}
	for _, p := range want {
		if app.files[p] == nil {
			t.Errorf("the bundle has no %s (paths: %v)", p, app.Paths())
		}
	}
	for _, p := range app.Paths() {
		res := get(t, app, "GET", p)
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK || len(body) == 0 {
			t.Errorf("GET %s: %d, %d bytes", p, res.StatusCode, len(body))
		}
		checkHeaders(t, p, res.Header)
		if !bytesEqual(body, app.files[p].data) {
			t.Errorf("GET %s: body is not the embedded file", p)
		}
	}
	index := string(app.files["/"].data)
	// Every src and href of the page is one of the app's files.
	for _, m := range regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(index, -1) {
		if app.files[m[1]] == nil {
			t.Errorf("index.html refers to %s, which the bundle lacks", m[1])
		}
	}
	// The CSP forbids inline script and style: the page has none.
	if regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`).MatchString(index) || !strings.Contains(index, `<script src="/app.js"`) {
		t.Error("index.html has an inline script, or does not load /app.js")
	}
	if strings.Contains(index, "<style") || strings.Contains(index, " style=") || regexp.MustCompile(`\son[a-z]+=`).MatchString(index) {
		t.Error("index.html has an inline style or event handler, which the CSP would block")
	}
	if !strings.Contains(string(app.files["/worker.js"].data), "WebAssembly") {
		t.Error("worker.js has no WebAssembly: Argon2id is not in the bundle")
	}
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

func checkHeaders(t *testing.T, p string, h http.Header) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'self'", "script-src 'self' 'wasm-unsafe-eval';", "style-src 'self';",
		"frame-ancestors 'none'", "base-uri 'none'", "object-src 'none'", "connect-src 'self';"} {
		if !strings.Contains(csp, d) {
			t.Errorf("%s: Content-Security-Policy %q lacks %q", p, csp, d)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "'unsafe-eval'") || strings.Contains(csp, "blob:") || strings.Contains(csp, "*") {
		t.Errorf("%s: Content-Security-Policy %q allows inline code, eval, blob: or any origin", p, csp)
	}
	for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "Cache-Control": "no-cache"} {
		if h.Get(k) != v {
			t.Errorf("%s: %s %q, want %q", p, k, h.Get(k), v)
		}
	}
	if h.Get("Content-Type") == "" || h.Get("ETag") == "" {
		t.Errorf("%s: Content-Type %q, ETag %q", p, h.Get("Content-Type"), h.Get("ETag"))
	}
}

// TestOtherRequestsReachTheAPI: only GET and HEAD of the app's own files
// are the app's; the API answers everything else as before.
func TestOtherRequestsReachTheAPI(t *testing.T) {
	app, err := New(api, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/config"}, {"GET", "/healthz"}, {"GET", "/nope.js"}, {"POST", "/"},
		{"PUT", "/app.js"}, {"OPTIONS", "/"}, {"GET", "/dist/app.js"}, {"GET", "/_download/x"},
	} {
		res := get(t, app, c.method, c.path)
		if res.Header.Get("X-Handler") != "api" || res.Header.Get("Content-Security-Policy") != "" {
			t.Errorf("%s %s: answered by the app, not the API", c.method, c.path)
		}
	}
	res := get(t, app, "HEAD", "/app.js")
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("HEAD /app.js: %d", res.StatusCode)
	}
	// An unchanged file costs a 304.
	etag := get(t, app, "GET", "/").Header.Get("ETag")
	if res := get(t, app, "GET", "/", "If-None-Match", etag); res.StatusCode != http.StatusNotModified {
		t.Errorf("GET / with its ETag: %d, want 304", res.StatusCode)
	}
}

// TestConnectOrigins: the issuer's origin joins connect-src, and nothing
// else does.
func TestConnectOrigins(t *testing.T) {
	app, err := New(api, []string{"https://issuer.example"})
	if err != nil {
		t.Fatal(err)
	}
	csp := get(t, app, "GET", "/").Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "connect-src 'self' https://issuer.example;") {
		t.Errorf("Content-Security-Policy %q does not allow the issuer", csp)
	}
}

// TestBadBundle: a bundle without index.html, or with a file whose type
// is unknown, is refused at start instead of being served sniffed.
func TestBadBundle(t *testing.T) {
	for name, fsys := range map[string]fs.FS{
		"no index":     fstest.MapFS{"dist/app.js": {Data: []byte("x")}},
		"unknown type": fstest.MapFS{"dist/index.html": {Data: []byte("x")}, "dist/a.exe": {Data: []byte("x")}},
	} {
		if _, err := newApp(fsys, api, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
