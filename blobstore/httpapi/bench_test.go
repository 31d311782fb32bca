package httpapi

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blindstore/blindstore/wire"
)

// The benchmarks measure the whole round trip over loopback, client
// included, against a bolt store (every PUT is an fsynced commit).

func BenchmarkGetBlock(b *testing.B) {
	e := newEnv(b, func(c *envConfig) { c.blockSize = wire.DefaultBlockSize })
	blk := e.newBlock()
	e.mustPut(blk)
	url := e.url + "/v1/blocks/" + blk.id
	b.SetBytes(int64(e.bs))
	b.ReportAllocs()
	for b.Loop() {
		res, err := e.hc.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || n != int64(e.bs) {
			b.Fatalf("status %d, %d bytes", res.StatusCode, n)
		}
	}
}

func BenchmarkPutBlock(b *testing.B) {
	e := newEnv(b, func(c *envConfig) { c.blockSize = wire.DefaultBlockSize })
	blk := e.newBlock()
	e.mustPut(blk)
	url := e.url + "/v1/blocks/" + blk.id
	b.SetBytes(int64(e.bs))
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest("PUT", url, bytes.NewReader(blk.data))
		req.Header.Set("Blind-Proof", blk.proof)
		res, err := e.hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNoContent {
			b.Fatalf("status %d", res.StatusCode)
		}
	}
}

// discardWriter is a ResponseWriter with no connection behind it, so
// BenchmarkGetBlockHandler measures the server's own work per read
// (router, limiter, metrics, store, headers) apart from the kernel's.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(code int)        { d.status = code }
func (d *discardWriter) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }

func BenchmarkGetBlockHandler(b *testing.B) {
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	e := newEnv(b, func(c *envConfig) {
		c.blockSize = wire.DefaultBlockSize
		c.opt.Metrics = m
	})
	blk := e.newBlock()
	e.mustPut(blk)
	req := httptest.NewRequest(http.MethodGet, "/v1/blocks/"+blk.id, nil)
	req.RemoteAddr = "192.0.2.1:5555"
	h := e.srv.Handler
	w := &discardWriter{h: http.Header{}}
	b.SetBytes(int64(e.bs))
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		w.status, w.n = 0, 0
		h.ServeHTTP(w, req)
		if w.status != http.StatusOK || w.n != e.bs {
			b.Fatalf("status %d, %d bytes", w.status, w.n)
		}
	}
}
