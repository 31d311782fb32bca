package countproxy

import (
	"bytes"
	"encoding/binary"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// The proxy counts the blocks of a batch write from its manifest, single
// PUTs and GETs, and nothing else, and forwards the bodies unchanged.
func TestCountingProxy(t *testing.T) {
	const bs = 4096
	var got struct {
		sync.Mutex
		bodies int
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		got.Lock()
		got.bodies += int(n)
		got.Unlock()
	}))
	defer up.Close()
	p, err := Start(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	manifest := []byte(`{"blocks":[{"id":"a"},{"id":"b"},{"id":"c"},{"id":"d","delete":true},{"id":"e","if_match":"\"x\""},{"id":"f","check":true}]}`)
	body := binary.BigEndian.AppendUint32(nil, uint32(len(manifest)))
	body = append(body, manifest...)
	body = append(body, make([]byte, 4*bs)...)
	do := func(method, path string, b []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, p.URL+path, bytes.NewReader(b))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	do(http.MethodPost, "/v1/blocks", body)
	do(http.MethodPost, "/v1/blocks", body[:3]) // too short to have a manifest
	do(http.MethodPut, "/v1/blocks/x", make([]byte, bs))
	do(http.MethodGet, "/v1/blocks/x", nil)
	do(http.MethodPost, "/v1/renew", body)
	if c := p.Take(); c.Batched != 3 || c.Deleted != 1 || c.Checked != 1 || c.Puts != 2 || c.Reads != 1 {
		t.Errorf("counted %+v, want 3 batched blocks, 1 batched deletion, 1 check, 2 overwrites (a PUT, an if_match entry) and 1 GET", c)
	}
	if c := p.Take(); c != (Counts{}) {
		t.Errorf("take did not start anew: %+v", c)
	}
	got.Lock()
	defer got.Unlock()
	if want := 2*len(body) + 3 + bs; got.bodies != want {
		t.Errorf("the server received %d bytes, want %d: the proxy changed the bodies", got.bodies, want)
	}
}
