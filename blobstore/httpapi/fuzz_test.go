package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/bolt"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/wire"
)

// The fuzz targets feed the decoders of what clients send: the renew
// request, the batch write's framing and manifest, the precondition and
// proof headers, and the proxy headers the probe limiter reads. Each must
// refuse what it cannot use with a 4xx and a stable code, never panic,
// never answer 5xx, and never accept something it then misreads.

// fuzzFixture is an API over a real bolt store, called in process (no
// listener: a fuzzer runs it tens of thousands of times a second).
type fuzzFixture struct {
	a      *api
	bs     int
	blocks []*block // written, with their proofs
	logs   *logBuffer
}

func newFuzzFixture(f *testing.F) *fuzzFixture {
	f.Helper()
	const bs = 1024
	key := make([]byte, bucketer.KeySize)
	_, _ = rand.Read(key)
	// A fixed clock: renewals find their blocks current and write
	// nothing, so each run costs no fsync.
	bk, err := bucketer.New(bucketer.Config{Key: key, Period: 24 * time.Hour, Retention: 3, Clock: bucketer.NewFakeClock(time.Now())})
	if err != nil {
		f.Fatal(err)
	}
	store, err := bolt.Open(filepath.Join(f.TempDir(), "store.db"), blobstore.Params{BlockSize: bs, Fingerprint: bk.Fingerprint()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	svc, err := blobstore.NewService(blobstore.ServiceConfig{Store: store, Bucketer: bk, BlockSize: bs, Limits: blobstore.Limits{RenewBatch: 8, WriteBatch: 4}})
	if err != nil {
		f.Fatal(err)
	}
	logs := &logBuffer{}
	opt := Options{
		// Only warnings and errors: a 5xx logs one, and the fuzz
		// function fails on it.
		Logger:     slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
		ProbeLimit: NewMemoryProbeLimiter(1e9, 1<<30),
	}
	fx := &fuzzFixture{a: New(svc, opt).(*api), bs: bs, logs: logs}
	for range 2 {
		id := wire.NewID()
		var w wire.WriteProof
		_, _ = rand.Read(w[:])
		b := &block{id: id.String(), w: w, proof: wire.EncodeProof(w), renew: wire.EncodeProof(w.Renew()), data: make([]byte, bs)}
		_, _ = rand.Read(b.data)
		if _, err := svc.Put(context.Background(), blobstore.PutItem{ID: id, Proof: w, Data: b.data}); err != nil {
			f.Fatal(err)
		}
		fx.blocks = append(fx.blocks, b)
	}
	return fx
}

// serve runs one request in process and returns the recorder.
func (fx *fuzzFixture) serve(method, path string, body []byte, h http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	for k, vs := range h {
		req.Header[k] = vs
	}
	rec := httptest.NewRecorder()
	fx.a.ServeHTTP(rec, req)
	return rec
}

// checkAnswer fails t unless rec is a status the route declares, and a
// problem+json with a code when it is not a success.
func (fx *fuzzFixture) checkAnswer(t *testing.T, method, route string, rec *httptest.ResponseRecorder) {
	t.Helper()
	var declared []int
	for _, rt := range routeTable() {
		if rt.method == method && rt.path == route {
			declared = rt.statuses
		}
	}
	if !slices.Contains(declared, rec.Code) || rec.Code >= 500 {
		t.Fatalf("%s %s answered %d: %s", method, route, rec.Code, rec.Body)
	}
	if rec.Code >= 400 {
		var p problem
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Code == "" || rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Fatalf("%s %s answered %d without a problem+json code: %q", method, route, rec.Code, rec.Body)
		}
	}
	if l := fx.logs.String(); l != "" {
		t.Fatalf("the request logged a warning or an error:\n%s", l)
	}
}

func FuzzRenewRequest(f *testing.F) {
	fx := newFuzzFixture(f)
	a, b := fx.blocks[0], fx.blocks[1]
	seed := func(v any) []byte { j, _ := json.Marshal(v); return j }
	f.Add(seed(entry{"blocks": []entry{{"id": a.id, "proof": a.renew}}}), true)
	f.Add(seed(entry{"blocks": []entry{{"id": a.id, "proof": a.renew}, {"id": b.id, "proof": b.proof}, {"id": wire.NewID().String(), "proof": a.renew}}}), true)
	f.Add(seed(entry{"blocks": []entry{{"id": strings.ToUpper(a.id), "proof": a.renew + "="}}}), false)
	f.Add(seed(entry{"blocks": []entry{{"id": a.id, "proof": a.renew}, {"id": a.id, "proof": a.renew}}}), true)
	f.Add([]byte(`{"blocks":[]}`), true)
	f.Add([]byte(`{"blocks":null}`), true)
	f.Add([]byte(`{"blocks":[{"id":1,"proof":true}]}`), true)
	f.Add([]byte(`{"blocks":[{}]} {}`), true)
	f.Add([]byte(`{"blocks":[{"id":"`+a.id+`","proof":"`+a.renew+`","x":1}]}`), true)
	f.Add([]byte(`{"Blocks":[{"ID":"`+a.id+`","Proof":"`+a.renew+`"}]}`), true)
	f.Add([]byte(`[`), true)
	f.Add([]byte(strings.Repeat(`[`, 5000)), true)
	f.Add([]byte("\xef\xbb\xbf{}"), true)
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, body []byte, json bool) {
		h := http.Header{}
		if json {
			h.Set("Content-Type", "application/json")
		}
		rec := fx.serve("POST", "/v1/renew", body, h)
		fx.checkAnswer(t, "POST", "/v1/renew", rec)
		if rec.Code != http.StatusOK {
			return
		}
		var out RenewResponse
		if err := wire.DecodeStrict(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("a 200 whose body is not a RenewResponse: %q", rec.Body)
		}
		n := out.Renewed + out.Current + len(out.Missing) + len(out.Refused)
		if n < 1 || n > 8 || out.Renewed != 0 {
			t.Fatalf("a renewal of 1 to 8 current or missing blocks answered %+v", out)
		}
		for _, id := range append(slices.Clone(out.Missing), out.Refused...) {
			if p, err := wire.ParseID(id); err != nil || p.String() != id {
				t.Fatalf("answered an id not in canonical form: %q", id)
			}
		}
	})
}

// FuzzReadBatch feeds the batch write's framing: a length, a manifest,
// the blocks. What it accepts is exactly 4 + L + n×block_size bytes
// holding 1 to write_batch valid entries.
func FuzzReadBatch(f *testing.F) {
	fx := newFuzzFixture(f)
	a, b := fx.blocks[0], fx.blocks[1]
	frame := func(manifest []byte, blocks int, extra ...byte) []byte {
		out := binary.BigEndian.AppendUint32(nil, uint32(len(manifest)))
		out = append(out, manifest...)
		out = append(out, make([]byte, blocks*fx.bs)...)
		return append(out, extra...)
	}
	m := func(v any) []byte { j, _ := json.Marshal(v); return j }
	one := m(entry{"blocks": []entry{{"id": a.id, "proof": a.proof, "create_only": true}}})
	two := m(entry{"blocks": []entry{{"id": a.id, "proof": a.proof, "if_match": `"AAAAAAAAAAAAAAAAAAAAAA"`}, {"id": b.id, "proof": b.proof}}})
	f.Add(frame(one, 1), true)
	f.Add(frame(one, 1), false)
	f.Add(frame(two, 2), true)
	f.Add(frame(two, 1), false)
	f.Add(frame(one, 1, 0), false)
	f.Add(frame(m(entry{"blocks": []entry{{"id": a.id, "proof": a.proof, "if_match": "*"}}}), 1), true)
	f.Add(frame([]byte(`{"blocks":[{"id":"x"}]}`), 1), true)
	f.Add([]byte{0, 1, 0, 0}, true)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, '{'}, false)
	f.Add([]byte{0, 0}, false)
	withDelete := m(entry{"atomic": true, "blocks": []entry{{"id": a.id, "proof": a.proof, "delete": true}, {"id": b.id, "proof": b.proof, "if_match": `"AAAAAAAAAAAAAAAAAAAAAA"`}}})
	f.Add(frame(withDelete, 1), true)
	f.Add(frame(withDelete, 2), false)
	f.Add(frame(m(entry{"blocks": []entry{{"id": a.id, "proof": a.proof, "delete": true, "create_only": true}}}), 0), true)
	f.Add(frame(m(entry{"atomic": true, "blocks": []entry{{"id": a.id, "proof": a.proof, "check": true, "if_match": `"AAAAAAAAAAAAAAAAAAAAAA"`}, {"id": b.id, "proof": b.proof}}}), 1), true)
	f.Fuzz(func(t *testing.T, in []byte, declared bool) {
		cl := int64(-1)
		if declared {
			cl = int64(len(in))
		}
		items, _, bufs, err := fx.a.readBatch(bytes.NewReader(in), cl)
		for _, b := range bufs {
			fx.a.blocks.Put(b)
		}
		if err != nil {
			if k := wire.KindOf(err); k != wire.KindInvalid && k != wire.KindTooLarge {
				t.Fatalf("a framing error of kind %v: %v", k, err)
			}
			if codeOf(err) == "" {
				t.Fatalf("an error without a code: %v", err)
			}
			return
		}
		if len(items) < 1 {
			t.Fatal("accepted an empty batch")
		}
		n := 0 // items with data, which take the body's blocks in order
		for _, it := range items {
			if !it.Delete && !it.Check {
				n++
			}
		}
		if n > 4 {
			t.Fatalf("accepted a batch of %d blocks", n)
		}
		l := int(binary.BigEndian.Uint32(in))
		if len(in) != 4+l+n*fx.bs {
			t.Fatalf("accepted %d bytes for %d blocks and a %d-byte manifest", len(in), n, l)
		}
		k := 0
		for i, it := range items {
			if it.ID.Validate() != nil {
				t.Fatalf("item %d: invalid id accepted", i)
			}
			if it.Delete || it.Check {
				if it.Data != nil || it.Cond.IfNoneMatchAny || it.Delete && it.Check {
					t.Fatalf("item %d: a deletion or check with data or create_only", i)
				}
				continue
			}
			if len(it.Data) != fx.bs {
				t.Fatalf("item %d: %d bytes of data", i, len(it.Data))
			}
			if !bytes.Equal(it.Data, in[4+l+k*fx.bs:4+l+(k+1)*fx.bs]) {
				t.Fatalf("item %d holds other data than its place in the body", i)
			}
			k++
		}
	})
}

// FuzzWriteHeaders feeds a PUT's and a DELETE's headers through the
// handler: proof, If-Match, If-None-Match. Nothing changes a block
// unless the proof is its own.
func FuzzWriteHeaders(f *testing.F) {
	fx := newFuzzFixture(f)
	a := fx.blocks[0]
	etag := wire.ETagOf(a.data).String()
	f.Add(a.proof, etag, "", false)
	f.Add(a.proof, "", "*", true)
	f.Add(a.proof+"==", "*", "", false)
	f.Add("", `W/"x"`, `"a", W/"b"`, true)
	f.Add(strings.Repeat("A", 43), etag+", "+etag, "*, *", false)
	f.Add("\x00", `"`, ``, true)
	f.Fuzz(func(t *testing.T, proof, ifMatch, ifNoneMatch string, put bool) {
		h := http.Header{}
		for k, v := range map[string]string{"Blind-Proof": proof, "If-Match": ifMatch, "If-None-Match": ifNoneMatch} {
			if v != "" {
				h[k] = []string{v}
			}
		}
		method := http.MethodDelete
		var body []byte
		if put {
			method = http.MethodPut
			body = a.data // the same data: a PUT that succeeds changes nothing
			h.Set("Content-Type", "application/octet-stream")
		}
		// The proof is a's own: a delete that got through would remove
		// the fixture's block. Keep those off the store.
		if !put && proof != "" {
			if p, err := wire.ParseProof(proof); err == nil && wire.WriteProof(p) == a.w {
				return
			}
		}
		rec := fx.serve(method, "/v1/blocks/"+a.id, body, h)
		fx.checkAnswer(t, method, "/v1/blocks/:id", rec)
		if rec.Code < 300 {
			p, err := wire.ParseProof(proof)
			if err != nil || wire.WriteProof(p) != a.w {
				t.Fatalf("%s with proof %q answered %d", method, proof, rec.Code)
			}
		}
		// Reads: any If-None-Match parses or is refused with 400.
		rh := http.Header{}
		if ifNoneMatch != "" {
			rh["If-None-Match"] = []string{ifNoneMatch}
		}
		rec = fx.serve("GET", "/v1/blocks/"+a.id, nil, rh)
		fx.checkAnswer(t, "GET", "/v1/blocks/:id", rec)
		if rec.Code == http.StatusOK && !bytes.Equal(rec.Body.Bytes(), a.data) {
			t.Fatal("GET answered other data")
		}
	})
}

// FuzzClientKey feeds the proxy headers the probe limiter reads. The key
// is one of "local", an IPv4 address or an IPv6 /64, so that a client
// cannot spread its failures over keys by decorating one address.
func FuzzClientKey(f *testing.F) {
	f.Add("X-Forwarded-For", "203.0.113.7", "192.0.2.1:5555")
	f.Add("X-Forwarded-For", "203.0.113.7, [2001:db8::1]:443", "192.0.2.1:5555")
	f.Add("Forwarded", `for="[2001:db8:cafe::17]:4711";proto=https, for=192.0.2.60`, "[::1]:80")
	f.Add("Forwarded", `for=unknown`, "@")
	f.Add("", "", "::ffff:192.0.2.1")
	f.Add("X-Real-IP", "fe80::1%eth0", "10.0.0.1:1")
	f.Fuzz(func(t *testing.T, header, value, remote string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		if header != "" && value != "" {
			r.Header[http.CanonicalHeaderKey(header)] = []string{value}
		}
		key := clientKey(r, header)
		if key == "local" {
			return
		}
		if ip, err := netip.ParseAddr(key); err == nil {
			if !ip.Is4() || ip.String() != key {
				t.Fatalf("key %q is an address that is not plain IPv4", key)
			}
			return
		}
		p, err := netip.ParsePrefix(key)
		if err != nil || p.Bits() != 64 || !p.Addr().Is6() || p.Masked() != p || p.String() != key {
			t.Fatalf("key %q is neither local, IPv4 nor an IPv6 /64", key)
		}
	})
}

// codeOf returns the stable code of err's *wire.Error, "" if none.
func codeOf(err error) string {
	var be *wire.Error
	if errors.As(err, &be) {
		return be.Code
	}
	return ""
}
