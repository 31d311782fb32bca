package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"

	"github.com/blindstore/blindstore/client/format"
	"github.com/blindstore/blindstore/internal/countproxy"
	"github.com/blindstore/blindstore/wire"
)

// A get reads the file's blocks readGroup at a time with POST /v1/read,
// and no data block by GET.
func TestGetReadsManyBlocksPerRequest(t *testing.T) {
	s := newTestServer(t)
	owner, loc := newTestAccount(t, s)
	data := randomBytes(40 * format.PayloadCapacity(testBlockSize))
	putBytes(t, owner, "f", data)
	p, err := countproxy.Start(s.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	a, err := login(context.Background(), s.remoteAt(t, p.URL), "", loc)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := a.Lookup("f")
	p.Take()
	got, err := getBytes(t, a, "f")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: %v (equal %v)", err, bytes.Equal(got, data))
	}
	c := p.Take()
	n := len(f.Chunks)
	if want := (n + readGroup - 1) / readGroup; c.ReadRequests != want || c.ReadMany != n || c.Reads != 0 {
		t.Fatalf("a get of %d chunks: %d POST /v1/read for %d blocks and %d GETs; want %d, %d and 0", n, c.ReadRequests, c.ReadMany, c.Reads, want, n)
	}

	// A range reads only its chunks, the same way.
	var buf bytes.Buffer
	off := int64(f.Chunks[0].Size) + 10
	if _, err := a.GetRange(context.Background(), "f", off, 100, &buf); err != nil || !bytes.Equal(buf.Bytes(), data[off:off+100]) {
		t.Fatalf("range: %v", err)
	}
	if c := p.Take(); c.ReadMany > 2 || c.Reads != 0 {
		t.Fatalf("a 100-byte range read %d blocks and %d by GET", c.ReadMany, c.Reads)
	}
}

// cutProxy cuts the first POST /v1/read answer after cutAt bytes, as a
// connection that broke, and records the ids of every read request.
type cutProxy struct {
	url   string
	cutAt int

	mu   sync.Mutex
	cut  bool
	asks [][]string
}

func newCutProxy(t *testing.T, upstream string, cutAt int) *cutProxy {
	u, _ := url.Parse(upstream)
	cp := &cutProxy{cutAt: cutAt}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.URL.Path != wire.PathRead {
			return nil
		}
		cp.mu.Lock()
		defer cp.mu.Unlock()
		if cp.cut {
			return nil
		}
		cp.cut = true
		resp.Body = io.NopCloser(io.MultiReader(io.LimitReader(resp.Body, int64(cp.cutAt)), errorReader{errors.New("connection reset")}))
		return nil
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == wire.PathRead {
			raw, _ := io.ReadAll(r.Body)
			var req wire.ReadRequest
			_ = json.Unmarshal(raw, &req)
			cp.mu.Lock()
			cp.asks = append(cp.asks, req.IDs)
			cp.mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(raw))
		}
		rp.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	cp.url = "http://" + ln.Addr().String()
	return cp
}

type errorReader struct{ err error }

func (e errorReader) Read([]byte) (int, error) { return 0, e.err }

// An answer cut short is asked again for the blocks not yet seen only,
// and the file still reads back whole; what was cut is never used.
func TestReadManyRetriesTheRest(t *testing.T) {
	s := newTestServer(t)
	owner, loc := newTestAccount(t, s)
	data := randomBytes(10 * format.PayloadCapacity(testBlockSize))
	putBytes(t, owner, "f", data)
	rec := wire.ReadRecordSize(testBlockSize)
	cp := newCutProxy(t, s.url, 2*rec+rec/2)
	a, err := login(context.Background(), s.remoteAt(t, cp.url), "", loc)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := a.Lookup("f")
	got, err := getBytes(t, a, "f")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get through a cut answer: %v (equal %v)", err, bytes.Equal(got, data))
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if len(cp.asks) != 2 || len(cp.asks[0]) != len(f.Chunks) || len(cp.asks[1]) != len(f.Chunks)-2 || cp.asks[1][0] != f.Chunks[2].ID.String() {
		t.Fatalf("read requests %d (sizes %v), want the %d chunks, then the %d after the two whole records", len(cp.asks), lens(cp.asks), len(f.Chunks), len(f.Chunks)-2)
	}
}

func lens(ss [][]string) []int {
	var n []int
	for _, s := range ss {
		n = append(n, len(s))
	}
	return n
}

// A block missing from the server is a "not found" get, with nothing
// written out.
func TestReadManyMissingBlock(t *testing.T) {
	s := newTestServer(t)
	p := newTamperProxy(t, s.url)
	owner, loc := newTestAccount(t, s)
	putBytes(t, owner, "f", randomBytes(5*format.PayloadCapacity(testBlockSize)))
	a, err := login(context.Background(), s.remoteAt(t, p.url), "", loc)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := a.Lookup("f")
	p.mu.Lock()
	p.redirect[f.Chunks[3].ID.String()] = wire.NewID().String()
	p.mu.Unlock()
	var out bytes.Buffer
	_, err = a.Get(context.Background(), "f", &out, nil)
	wantKind(t, err, KindNotFound)
	if out.Len() > 3*format.PayloadCapacity(testBlockSize) {
		t.Fatalf("%d bytes written before the missing block", out.Len())
	}
}
