package httpapi

import (
	"bytes"
	"io"
	"net/http"
	"testing"

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
