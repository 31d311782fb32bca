// Package davserver serves a blindstore account as WebDAV (class 1 and
// 2) from the user's own machine, so that file managers, rclone and
// restic can use it: `blind serve webdav`. The keys stay in this
// process; the account's server sees what any put or get shows it.
//
// fs.go is the webdav.FileSystem over the client package; this file is
// the HTTP side: basic authentication, read-only mode, name checks, the
// request details the file system needs (the body's outcome, the range
// asked for), and a shutdown that waits for uploads.
package davserver

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/webdav"
)

// Options configure a Server.
type Options struct {
	// User and Password are the HTTP basic credentials every request
	// must carry.
	User, Password string
	// ReadOnly refuses every method that changes something.
	ReadOnly bool
	// Refresh is how often the index is checked for other devices'
	// changes; zero means 30 seconds.
	Refresh time.Duration
	// Log, if set, gets one line per request (method, path, status,
	// duration): names of the user's files, so off by default.
	Log *slog.Logger
	// JournalDir, if set, is where small PUTs are made durable, sealed
	// under JournalKey, before they are answered; they are committed to
	// the account in the background, and those a crash left are
	// committed at the next start (journal.go). Unset, each PUT is
	// answered once it is committed.
	JournalDir string
	JournalKey [32]byte
}

// Server is the WebDAV server over one account.
type Server struct {
	fs   *FS
	opt  Options
	dav  *webdav.Handler
	http *http.Server

	mu     sync.Mutex
	counts map[string]int // requests by method

	mkcols keyedMutex
}

// New returns a server over acc. With a journal it commits the files an
// earlier run left in it, in the background.
func New(acc Account, opt Options) (*Server, error) {
	if opt.Refresh <= 0 {
		opt.Refresh = 30 * time.Second
	}
	var j *journal
	var replay []journalEntry
	if opt.JournalDir != "" {
		var err error
		if j, replay, err = openJournal(journalPath(opt.JournalDir, opt.JournalKey), opt.JournalKey); err != nil {
			return nil, err
		}
		if len(replay) > 0 {
			slog.Info("webdav: committing the files an earlier run left in the journal", "files", len(replay))
		}
	}
	s := &Server{fs: NewFS(acc, j, replay), opt: opt, counts: map[string]int{}}
	s.dav = &webdav.Handler{FileSystem: s.fs, LockSystem: etagLS{LockSystem: webdav.NewMemLS(), fs: s.fs}}
	s.http = &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second}
	return s, nil
}

// FS is the server's file system.
func (s *Server) FS() *FS { return s.fs }

// Serve accepts connections on ln until Shutdown, and checks for other
// devices' changes every Refresh meanwhile. certFile and keyFile, if
// set, serve TLS.
func (s *Server) Serve(ln net.Listener, certFile, keyFile string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.refreshLoop(ctx)
	var err error
	if certFile != "" {
		err = s.http.ServeTLS(ln, certFile, keyFile)
	} else {
		err = s.http.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (s *Server) refreshLoop(ctx context.Context) {
	t := time.NewTicker(s.opt.Refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.fs.Refresh(ctx); err != nil && ctx.Err() == nil {
				slog.Warn("webdav: reading the account's changes", "err", err)
			}
		}
	}
}

// Shutdown stops accepting requests and waits, until ctx is done, for
// those in progress (uploads commit) to end, and for the journal's files
// to be committed.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	done := make(chan struct{})
	go func() { s.fs.WaitUploads(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	if cerr := s.fs.Close(ctx); err == nil {
		err = cerr
	}
	return err
}

// Close stops at once; uploads in progress are abandoned (nothing refers
// to their blocks, which expire), and files in the journal stay there
// for the next start.
func (s *Server) Close() error {
	err := s.http.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.fs.Close(ctx)
	return err
}

// Counts returns the number of requests served, by method.
func (s *Server) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.counts))
	for k, v := range s.counts {
		out[k] = v
	}
	return out
}

// writeMethods change the account.
var writeMethods = map[string]bool{
	"PUT": true, "DELETE": true, "MKCOL": true, "COPY": true, "MOVE": true,
	"PROPPATCH": true, "LOCK": true, "UNLOCK": true, "POST": true,
}

// ServeHTTP checks the request, then hands it to x/net/webdav.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	s.serve(sw, r)
	s.mu.Lock()
	s.counts[r.Method]++
	s.mu.Unlock()
	if s.opt.Log != nil {
		s.opt.Log.Info("webdav", "method", r.Method, "path", r.URL.Path, "status", sw.code(), "took", time.Since(start).Round(time.Millisecond))
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(s.opt.User))&subtle.ConstantTimeCompare([]byte(pass), []byte(s.opt.Password)) != 1 {
		w.Header().Set("WWW-Authenticate", `Basic realm="blindstore", charset="UTF-8"`)
		http.Error(w, "the user and password printed by 'blind serve webdav' (or BLIND_WEBDAV_PASSWORD)", http.StatusUnauthorized)
		return
	}
	if s.opt.ReadOnly && writeMethods[r.Method] {
		http.Error(w, "this server is read-only (blind serve webdav --read-only)", http.StatusForbidden)
		return
	}
	if msg := s.badName(r); msg != "" {
		http.Error(w, msg, http.StatusForbidden)
		return
	}
	ctx := r.Context()
	switch r.Method {
	case "PROPFIND", "PROPPATCH":
		if msg := checkXMLBody(r); msg != "" {
			http.Error(w, msg, http.StatusBadRequest)
			return
		}
	case http.MethodPut:
		b := &bodyState{want: r.ContentLength}
		r.Body = &trackedBody{ReadCloser: r.Body, st: b}
		ctx = context.WithValue(ctx, bodyKey{}, b)
	case http.MethodGet, http.MethodHead:
		// ServeContent sniffs a type it does not know by reading the
		// start of the file, which would fetch a block for nothing.
		w.Header().Set("Content-Type", contentType(r.URL.Path))
		if br := parseRange(r.Header.Get("Range")); br != nil {
			ctx = context.WithValue(ctx, rangeKey{}, br)
		}
	}
	if r.Method == "MKCOL" && r.Header.Get("If") == "" {
		// Concurrent MKCOLs of one folder (rclone's transfers each make
		// the folder of their file) go one after the other: the later
		// ones find it made (405), where x/net/webdav's lock would
		// answer them 423 while the first may not have made it yet,
		// and their PUTs into it would fail.
		unlock := s.mkcols.lock(clean(r.URL.Path))
		defer unlock()
	}
	s.dav.ServeHTTP(w, r.WithContext(ctx))
}

// keyedMutex is a mutex per key, kept only while it is held or waited
// for.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedEntry{}
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}

// badName says why a request's target, or its Destination, cannot be
// stored in the index (as sync refuses it), or "".
func (s *Server) badName(r *http.Request) string {
	var names []string
	switch r.Method {
	case http.MethodPut, "MKCOL":
		names = append(names, r.URL.Path)
	case "COPY", "MOVE":
		if u, err := url.Parse(r.Header.Get("Destination")); err == nil {
			names = append(names, u.Path)
		}
	}
	for _, n := range names {
		c := clean(n)
		if c == "" {
			continue
		}
		if r.Method == "MKCOL" {
			c += "/x" // a folder's name is checked as the prefix it is
		}
		if err := Storable(c); err != nil {
			return fmt.Sprintf("%q cannot be stored: %v", "/"+clean(n), err)
		}
	}
	return ""
}

// bodyState is how a PUT's body ended: the file is committed only if
// the body was read to its end.
type bodyState struct {
	mu   sync.Mutex
	want int64 // Content-Length, or -1
	err  error
}

type bodyKey struct{}

func bodyOf(ctx context.Context) *bodyState {
	b, _ := ctx.Value(bodyKey{}).(*bodyState)
	return b
}

// failed returns why the body is not whole after got bytes, or nil. A
// nil bodyState (a COPY's write) is whole.
func (b *bodyState) failed(got int64) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return b.err
	}
	if b.want >= 0 && got != b.want {
		return fmt.Errorf("the request sent %d of %d bytes", got, b.want)
	}
	return nil
}

type trackedBody struct {
	io.ReadCloser
	st *bodyState
}

func (t *trackedBody) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		t.st.mu.Lock()
		if t.st.err == nil {
			t.st.err = fmt.Errorf("the request's body broke off: %w", err)
		}
		t.st.mu.Unlock()
	}
	return n, err
}

// byteRange is a single range a GET asked for.
type byteRange struct{ off, n int64 }

type rangeKey struct{}

func rangeHint(ctx context.Context) *byteRange {
	b, _ := ctx.Value(rangeKey{}).(*byteRange)
	return b
}

// parseRange reads "bytes=A-B", the one form whose end is known before
// the file's size; anything else (several ranges, suffixes, open ends)
// gives nil, and reads go to the end of the file as they need.
func parseRange(h string) *byteRange {
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return nil
	}
	a, b, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok || a == "" || b == "" {
		return nil
	}
	off, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || off < 0 || end < off {
		return nil
	}
	return &byteRange{off: off, n: end - off + 1}
}

// statusWriter remembers the status written, for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// maxXMLBody bounds a PROPFIND's or PROPPATCH's body, which is read
// whole to be checked.
const maxXMLBody = 1 << 20

// checkXMLBody refuses a body that declares a namespace prefix as empty
// (xmlns:p=""), which XML namespaces forbid but encoding/xml accepts, and
// one too large; it puts the body back for x/net/webdav to read. It
// returns why it refused, or "".
func checkXMLBody(r *http.Request) string {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxXMLBody+1))
	if err != nil {
		return "reading the request: " + err.Error()
	}
	if len(b) > maxXMLBody {
		return "the request's body is too large"
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := d.Token()
		if err != nil {
			return "" // the end, or malformed XML, which x/net/webdav answers
		}
		if el, ok := tok.(xml.StartElement); ok {
			for _, a := range el.Attr {
				if a.Name.Space == "xmlns" && a.Value == "" {
					return fmt.Sprintf("the namespace prefix %q is declared empty", a.Name.Local)
				}
			}
		}
	}
}
