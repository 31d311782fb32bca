// Package tamperproxy is a reverse proxy for tests that lies about blocks
// the way a hostile server could: it answers a read of one block with
// another block's data, with a chosen body, or with one bit flipped,
// whether the block is read by GET /v1/blocks/{id} or as a record of
// POST /v1/read. The client tests and the CLI tests both stand it between
// a client and a real server.
package tamperproxy

import (
	"bytes"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/blindstore/blindstore/wire"
)

// Lie is what the proxy does to the read of one block.
type Lie struct {
	Other string // read this block instead
	Fixed []byte // answer this body (a GET) or record data (a read) instead
	Flip  bool   // flip a bit of the data
}

// Proxy forwards to a server and lies as its Policy says.
type Proxy struct {
	URL string

	mu     sync.Mutex
	policy func(id string) Lie
	seen   func(id string)
	srv    *http.Server
}

// Start listens on a free loopback port and forwards to upstream, telling
// no lies until SetPolicy.
func Start(upstream string) (*Proxy, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{URL: "http://" + ln.Addr().String()}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0) // clients that hang up on a lie are expected
	director := rp.Director
	rp.Director = func(r *http.Request) {
		director(r)
		p.rewrite(r)
	}
	rp.ModifyResponse = p.modify
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, ok := strings.CutPrefix(r.URL.Path, wire.PathBlock); ok && r.Method == http.MethodGet {
			if body := p.lie(id).Fixed; body != nil {
				w.Header().Set("Content-Type", wire.MediaBlock)
				w.Header().Set("ETag", wire.ETagOf(body).String())
				_, _ = w.Write(body)
				return
			}
		}
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// SetPolicy sets the lies from now on (nil: none).
func (p *Proxy) SetPolicy(policy func(id string) Lie) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.policy = policy
}

// SetSeen has seen told of every block read through the proxy, in the
// order the requests name them (nil: nobody).
func (p *Proxy) SetSeen(seen func(id string)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = seen
}

// Close stops the proxy.
func (p *Proxy) Close() error { return p.srv.Close() }

func (p *Proxy) lie(id string) Lie {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.policy == nil {
		return Lie{}
	}
	return p.policy(id)
}

func (p *Proxy) see(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen != nil {
		p.seen(id)
	}
}

// tamperIDs carries the ids a read asked for to modify, which sees only
// the request sent upstream.
const tamperIDs = "X-Tamper-Ids"

func (p *Proxy) rewrite(r *http.Request) {
	if id, ok := strings.CutPrefix(r.URL.Path, wire.PathBlock); ok && r.Method == http.MethodGet {
		p.see(id)
		if other := p.lie(id).Other; other != "" {
			r.URL.Path = wire.PathBlock + other
		}
		return
	}
	if r.URL.Path != wire.PathRead || r.Method != http.MethodPost {
		return
	}
	raw, _ := io.ReadAll(r.Body)
	var req wire.ReadRequest
	if json.Unmarshal(raw, &req) == nil {
		r.Header.Set(tamperIDs, strings.Join(req.IDs, ","))
		for i, id := range req.IDs {
			p.see(id)
			if other := p.lie(id).Other; other != "" {
				req.IDs[i] = other
			}
		}
		raw, _ = json.Marshal(req)
	}
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(raw)), int64(len(raw))
	r.Header.Set("Content-Length", strconv.Itoa(len(raw)))
}

func (p *Proxy) modify(resp *http.Response) error {
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	if resp.Request.URL.Path == wire.PathRead {
		ids := strings.Split(resp.Request.Header.Get(tamperIDs), ",")
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if len(ids) > 0 && len(body)%len(ids) == 0 {
			rec := len(body) / len(ids)
			for i, id := range ids {
				r := body[i*rec : (i+1)*rec]
				l := p.lie(id)
				if l.Fixed != nil && len(l.Fixed) == rec-1-wire.ETagSize {
					r[0] = wire.ReadFound
					etag := wire.ETagOf(l.Fixed)
					copy(r[1:], etag[:])
					copy(r[1+wire.ETagSize:], l.Fixed)
				}
				if l.Flip && r[0] == wire.ReadFound {
					r[1+wire.ETagSize+100] ^= 0x80
				}
			}
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return nil
	}
	id, ok := strings.CutPrefix(resp.Request.URL.Path, wire.PathBlock)
	if !ok || resp.Request.Method != http.MethodGet || !p.lie(id).Flip {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	body[100] ^= 0x80
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return nil
}
