package main

import (
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
)

// countingProxy stands between a client and a blindstored on loopback
// and counts the blocks the server is sent, as the server sees them: the
// blocks of each batch write (from its bytes: the framing puts the
// blocks, each exactly the block size, after a length-prefixed manifest)
// and each single PUT (heads, roots). It sees what an operator sees, so
// it cannot tell data from index blocks; the rows that need that split
// take the index blocks from the client.
type countingProxy struct {
	url       string
	blockSize int
	srv       *http.Server
	batched   atomic.Int64 // blocks in POST /v1/blocks
	puts      atomic.Int64 // PUT /v1/blocks/{id}
}

// proxyCounts is what a countingProxy saw since the last take.
type proxyCounts struct {
	batched, puts int
}

func startCountingProxy(upstream string, blockSize int) (*countingProxy, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &countingProxy{url: "http://" + ln.Addr().String(), blockSize: blockSize}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/blocks":
			body := &batchCounter{r: r.Body}
			r.Body = body
			rp.ServeHTTP(w, r)
			p.batched.Add(int64(body.blocks(blockSize)))
			return
		case r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/v1/blocks/"):
			p.puts.Add(1)
		}
		rp.ServeHTTP(w, r)
	})}
	// Serve ends with close; a proxy that broke before makes the rows'
	// requests fail, which they report.
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// take returns the counts since the last take and starts anew.
func (p *countingProxy) take() proxyCounts {
	return proxyCounts{batched: int(p.batched.Swap(0)), puts: int(p.puts.Swap(0))}
}

func (p *countingProxy) close() { _ = p.srv.Close() }

// batchCounter counts the bytes of a batch body as the server reads
// them, and keeps its 4-byte manifest length.
type batchCounter struct {
	r    io.ReadCloser
	mu   sync.Mutex
	n    int64
	head []byte
}

func (b *batchCounter) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.mu.Lock()
	if len(b.head) < 4 {
		b.head = append(b.head, p[:min(n, 4-len(b.head))]...)
	}
	b.n += int64(n)
	b.mu.Unlock()
	return n, err
}

func (b *batchCounter) Close() error { return b.r.Close() }

// blocks is the number of whole blocks after the manifest.
func (b *batchCounter) blocks(blockSize int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.head) < 4 {
		return 0
	}
	rest := b.n - 4 - int64(binary.BigEndian.Uint32(b.head))
	if rest <= 0 {
		return 0
	}
	return int(rest / int64(blockSize))
}
