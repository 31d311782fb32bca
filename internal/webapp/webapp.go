// Package webapp is the browser app that `blindstored serve --web`
// serves beside the API: the bundle web/app builds (npm run build writes
// dist/), embedded in the binary so that `go build` needs no Node. The
// app runs the whole client (key derivation, encryption) in the browser;
// the server only hands out these static files, under a strict
// Content-Security-Policy.
package webapp

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed dist
var dist embed.FS

// Policy is the Content-Security-Policy of every file of the app.
// Scripts only from the app's own files, no inline script or style, and
// 'wasm-unsafe-eval' for Argon2id's WebAssembly, which hash-wasm
// compiles from bytes. connect-src: the server that served the app, and
// the origins in connect (the token issuer, on a server that charges);
// workers (the client's Web Worker, the Service Worker that streams
// downloads) come from 'self'.
func Policy(connect []string) string {
	src := "'self'"
	for _, o := range connect {
		src += " " + o
	}
	return "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; " +
		"img-src 'self' data:; connect-src " + src + "; worker-src 'self'; frame-src 'self'; " +
		"object-src 'none'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
}

// file is one embedded file, ready to serve.
type file struct {
	name  string
	data  []byte
	ctype string
	etag  string
}

// App serves the app's files; everything else goes to next (the API).
type App struct {
	files map[string]*file // by URL path: "/" is index.html
	next  http.Handler
	csp   string
}

// contentTypes are the types of the files a build writes; a file of
// another kind is refused at start, so nothing is served sniffed.
var contentTypes = map[string]string{
	".html":        "text/html; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".svg":         "image/svg+xml",
	".png":         "image/png",
	".webmanifest": "application/manifest+json",
	".txt":         "text/plain; charset=utf-8",
}

// New returns the app in front of next, which answers every request
// that is not a GET or HEAD of one of the app's files. connect lists the
// origins besides the server's own that the app may reach (Policy).
func New(next http.Handler, connect []string) (*App, error) {
	return newApp(dist, next, connect)
}

func newApp(fsys fs.FS, next http.Handler, connect []string) (*App, error) {
	sub, err := fs.Sub(fsys, "dist")
	if err != nil {
		return nil, fmt.Errorf("webapp: %w", err)
	}
	a := &App{files: map[string]*file{}, next: next, csp: Policy(connect)}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			return fmt.Errorf("%s: no content type for this kind of file", p)
		}
		data, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		f := &file{name: p, data: data, ctype: ct, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`}
		a.files["/"+p] = f
		if p == "index.html" {
			a.files["/"] = f
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("webapp: embedded bundle: %w", err)
	}
	if a.files["/"] == nil {
		return nil, fmt.Errorf("webapp: embedded bundle has no index.html: run npm run build in web/app")
	}
	return a, nil
}

// Paths lists the URL paths the app serves.
func (a *App) Paths() []string {
	ps := make([]string, 0, len(a.files))
	for p := range a.files {
		ps = append(ps, p)
	}
	return ps
}

func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := a.files[r.URL.Path]
	if f == nil || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		a.next.ServeHTTP(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", a.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Type", f.ctype)
	h.Set("ETag", f.etag)
	// Revalidated on every load: a new binary's app is picked up at
	// once, and an unchanged one costs a 304.
	h.Set("Cache-Control", "no-cache")
	if strings.HasSuffix(f.name, "sw.js") {
		// The Service Worker's scope is the whole app.
		h.Set("Service-Worker-Allowed", "/")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.data))
}
