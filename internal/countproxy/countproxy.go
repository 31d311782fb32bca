// Package countproxy stands between a client and a blindstored on
// loopback and counts the blocks the server is sent and asked for, as an
// operator sees them: it cannot tell data from index blocks. The client's
// tests and blindbench use it to check that a put sends only what
// changed.
package countproxy

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"

	"github.com/blindstore/blindstore/blobstore/httpapi"
	"github.com/blindstore/blindstore/indexfile"
	"github.com/blindstore/blindstore/wire"
)

// Counts is what a Proxy saw since the last Take.
type Counts struct {
	Batched int // new blocks written in batches (POST /v1/blocks)
	Deleted int // deletions in batches
	Checked int // checks in batches
	Puts    int // overwrites (heads, roots): PUT /v1/blocks/{id}, or a batch entry with if_match
	Reads   int // single-block reads (GET /v1/blocks/{id})
	// ReadRequests are the POST /v1/read requests, which read ReadMany
	// blocks in all.
	ReadRequests, ReadMany int
}

// Proxy is a counting reverse proxy; Start makes one.
type Proxy struct {
	URL    string
	srv    *http.Server
	mu     sync.Mutex
	counts Counts
	refuse func(*http.Request, *Manifest) bool
}

// Manifest is what the proxy read of a batch write's manifest.
type Manifest struct {
	Atomic     bool
	Writes     []string // ids of the entries with data, as sent
	Overwrites int      // of Writes, those with if_match
	Deletes    []string // ids of the deletions
	Checks     int      // entries that check a block
}

// Start listens on a free loopback port and forwards to upstream.
func Start(upstream string) (*Proxy, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, fmt.Errorf("countproxy: upstream: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("countproxy: listen: %w", err)
	}
	p := &Proxy{URL: "http://" + ln.Addr().String()}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !p.count(r) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"code":"unavailable"}`)
			return
		}
		rp.ServeHTTP(w, r)
	})}
	// Serve ends with Close; a proxy that broke before makes the
	// client's requests fail, which its caller reports.
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// count counts r before it is forwarded, so that a caller who has its
// response finds it in the next Take, and reports whether to forward it.
func (p *Proxy) count(r *http.Request) bool {
	var m *Manifest
	if r.Method == http.MethodPost && r.URL.Path == "/v1/blocks" {
		m = readManifest(r)
	}
	many := -1
	if r.Method == http.MethodPost && r.URL.Path == wire.PathRead {
		// Small (ids only): read whole and put back for the server.
		raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		r.Body = io.NopCloser(bytes.NewReader(raw))
		var req wire.ReadRequest
		_ = json.Unmarshal(raw, &req)
		many = len(req.IDs)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refuse != nil && p.refuse(r, m) {
		return false
	}
	if m != nil {
		p.counts.Batched += len(m.Writes) - m.Overwrites
		p.counts.Puts += m.Overwrites
		p.counts.Deleted += len(m.Deletes)
		p.counts.Checked += m.Checks
	}
	switch {
	case r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/v1/blocks/"):
		p.counts.Puts++
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/blocks/"):
		p.counts.Reads++
	case many >= 0:
		p.counts.ReadRequests++
		p.counts.ReadMany += many
	}
	return true
}

// readManifest reads the manifest at the head of a batch write (a
// 4-byte big-endian length, then that much JSON) and leaves r.Body whole
// for the server, whose blocks stream on unbuffered. A body the server
// will refuse gives an empty manifest.
func readManifest(r *http.Request) *Manifest {
	var prefix [4]byte
	n, err := io.ReadFull(r.Body, prefix[:])
	head := prefix[:n]
	m := &Manifest{}
	if err == nil {
		if l := binary.BigEndian.Uint32(prefix[:]); l <= httpapi.MaxManifestBytes {
			manifest := make([]byte, l)
			k, err := io.ReadFull(r.Body, manifest)
			head = append(head, manifest[:k]...)
			var parsed struct {
				Atomic bool `json:"atomic"`
				Blocks []struct {
					ID      string `json:"id"`
					Delete  bool   `json:"delete"`
					Check   bool   `json:"check"`
					IfMatch string `json:"if_match"`
				} `json:"blocks"`
			}
			if err == nil && json.Unmarshal(manifest, &parsed) == nil {
				m.Atomic = parsed.Atomic
				for _, b := range parsed.Blocks {
					switch {
					case b.Delete:
						m.Deletes = append(m.Deletes, b.ID)
					case b.Check:
						m.Checks++
					default:
						m.Writes = append(m.Writes, b.ID)
						if b.IfMatch != "" {
							m.Overwrites++
						}
					}
				}
			}
		}
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), r.Body), r.Body}
	return m
}

// Refuse makes the proxy answer the requests f picks with 503
// unavailable instead of forwarding them (a server lost part way through
// a put); nil forwards all. f gets the manifest of a batch write, nil
// for other requests.
func (p *Proxy) Refuse(f func(*http.Request, *Manifest) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = f
}

// Take returns the counts since the last Take and starts anew.
func (p *Proxy) Take() Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.counts
	p.counts = Counts{}
	return c
}

// Close stops the proxy.
func (p *Proxy) Close() error { return p.srv.Close() }

// NewChunks counts the chunks of f whose blocks prev did not have: the
// data blocks a put of f over prev must send (all of f's for the zero
// prev).
func NewChunks(prev, f indexfile.File) int {
	old := make(map[wire.ID]bool, len(prev.Chunks))
	for _, c := range prev.Chunks {
		old[c.ID] = true
	}
	n := 0
	for _, c := range f.Chunks {
		if !old[c.ID] {
			n++
		}
	}
	return n
}
