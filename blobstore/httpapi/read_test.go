package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/wire"
)

// readBody is the JSON of a POST /v1/read naming bs in order.
func readBody(bs ...*block) []byte {
	ids := make([]string, len(bs))
	for i, b := range bs {
		ids[i] = b.id
	}
	raw, _ := json.Marshal(wire.ReadRequest{IDs: ids})
	return raw
}

// records splits a read answer with wire.ReadRecord.
func (e *env) records(t *testing.T, body []byte, n int) (datas [][]byte, etags []wire.ETag, errs []error) {
	t.Helper()
	if want := n * wire.ReadRecordSize(e.bs); len(body) != want {
		t.Fatalf("answer of %d bytes, want %d records of %d", len(body), n, wire.ReadRecordSize(e.bs))
	}
	r := bytes.NewReader(body)
	buf := make([]byte, wire.ReadRecordSize(e.bs))
	for range n {
		data, etag, err := wire.ReadRecord(r, buf, e.bs)
		datas, etags, errs = append(datas, bytes.Clone(data)), append(etags, etag), append(errs, err)
	}
	if r.Len() != 0 {
		t.Fatalf("%d bytes after the records", r.Len())
	}
	return datas, etags, errs
}

func TestReadMany(t *testing.T) {
	e := newEnv(t)
	a, b, gone := e.newBlock(), e.newBlock(), e.newBlock()
	etagA, etagB := e.mustPut(a), e.mustPut(b)

	// In request order, a repeat included, with a missing block's record
	// in its place.
	r := e.do("POST", "/v1/read", readBody(b, gone, a, b), hdr{"Content-Type", "application/json"})
	r.wantStatus(t, http.StatusOK)
	if r.header.Get("Content-Type") != wire.MediaBlocks || r.header.Get("Cache-Control") != "no-store" ||
		r.header.Get("Content-Length") != strconv.Itoa(4*wire.ReadRecordSize(e.bs)) {
		t.Fatalf("headers %v", r.header)
	}
	datas, etags, errs := e.records(t, r.body, 4)
	for i, w := range []struct {
		b    *block
		etag string
	}{{b, etagB}, {nil, ""}, {a, etagA}, {b, etagB}} {
		if w.b == nil {
			if wire.KindOf(errs[i]) != wire.KindNotFound || etags[i] != (wire.ETag{}) {
				t.Fatalf("record %d: %v, ETag %v; want not found, zero", i, errs[i], etags[i])
			}
			continue
		}
		if errs[i] != nil || !bytes.Equal(datas[i], w.b.data) || etags[i].String() != w.etag {
			t.Fatalf("record %d: err %v, ETag %s (want %s), data equal %v", i, errs[i], etags[i], w.etag, bytes.Equal(datas[i], w.b.data))
		}
	}
	// The missing block's record is zero throughout.
	rec := wire.ReadRecordSize(e.bs)
	if r.body[rec] != wire.ReadMissing || bytes.Count(r.body[rec+1:2*rec], []byte{0}) != rec-1 {
		t.Fatal("a missing block's record is not a status byte and zeros")
	}

	// The Content-Type may be left out, as on POST /v1/renew.
	e.do("POST", "/v1/read", readBody(a), nil).wantStatus(t, http.StatusOK)

	// /v1/config publishes the batch and the body cap.
	var cfg wire.Config
	if err := json.Unmarshal(e.do("GET", "/v1/config", nil, nil).body, &cfg); err != nil {
		t.Fatal(err)
	}
	full := make([]*block, cfg.Limits.ReadBatch)
	for i := range full {
		full[i] = a
	}
	if cfg.Limits.ReadBatch != wire.ReadBatchFor(e.bs) || cfg.Limits.MaxReadBodyBytes < int64(len(readBody(full...))) {
		t.Fatalf("config limits: read_batch %d, max_read_body_bytes %d", cfg.Limits.ReadBatch, cfg.Limits.MaxReadBodyBytes)
	}
	// A request of read_batch ids is taken whole.
	r = e.do("POST", "/v1/read", readBody(full...), nil)
	r.wantStatus(t, http.StatusOK)
	if datas, _, _ := e.records(t, r.body, len(full)); !bytes.Equal(datas[len(full)-1], a.data) {
		t.Fatal("the last record of a full read is not the block")
	}
}

func TestReadBatchFor(t *testing.T) {
	for _, c := range []struct{ bs, want int }{{1024, 256}, {4096, 256}, {16384, 256}, {65536, 64}, {1 << 20, 4}, {4 << 20, 1}} {
		if got := wire.ReadBatchFor(c.bs); got != c.want {
			t.Errorf("ReadBatchFor(%d) = %d, want %d", c.bs, got, c.want)
		}
	}
}

func TestReadManyBadRequests(t *testing.T) {
	e := newEnv(t)
	a := e.newBlock()
	e.mustPut(a)
	most := wire.ReadBatchFor(e.bs)
	many := make([]string, most+1)
	for i := range many {
		many[i] = a.id
	}
	tooMany, _ := json.Marshal(wire.ReadRequest{IDs: many})
	huge := []byte(`{"ids":["` + a.id + `"` + strings.Repeat(" ", 256+most*readBytesPerID) + `]}`)
	js := hdr{"Content-Type", "application/json"}
	for _, c := range []struct {
		name   string
		body   []byte
		h      hdr
		status int
		code   string
	}{
		{"no ids", []byte(`{"ids":[]}`), js, 400, wire.CodeBadRequest},
		{"no member", []byte(`{}`), js, 400, wire.CodeBadRequest},
		{"unknown member", []byte(`{"ids":["` + a.id + `"],"x":1}`), js, 400, wire.CodeBadRequest},
		{"not json", []byte(`ids=` + a.id), js, 400, wire.CodeBadRequest},
		{"bad id", []byte(`{"ids":["` + a.id + `","nope"]}`), js, 400, wire.CodeBadID},
		{"too many", tooMany, js, 400, wire.CodeBatchTooLarge},
		{"body too large", huge, js, 413, wire.CodeBodyTooLarge},
		{"media type", readBody(a), hdr{"Content-Type", "application/octet-stream"}, 415, wire.CodeUnsupportedMedia},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.do("POST", "/v1/read", c.body, c.h).wantProblem(t, c.status, c.code)
		})
	}
	e.do("GET", "/v1/read", nil, nil).wantProblem(t, http.StatusMethodNotAllowed, wire.CodeMethodNotAllowed)
}

// failingStore fails every read after the first ok ones, as a store whose
// database went away in the middle of an answer.
type failingStore struct {
	blobstore.Store
	ok atomic.Int32
}

func (f *failingStore) Read(ctx context.Context, id wire.ID, dst []byte) ([]byte, wire.ETag, error) {
	if f.ok.Add(-1) < 0 {
		return nil, wire.ETag{}, errors.New("database connection lost")
	}
	return f.Store.Read(ctx, id, dst)
}

// TestReadManyStoreFailsMidAnswer: a failure once records are out cannot
// become a problem answer; the connection is cut, so that the client
// reads fewer bytes than the Content-Length promised. A failure before
// the first record is a 503 as for GET.
func TestReadManyStoreFailsMidAnswer(t *testing.T) {
	fs := &failingStore{}
	e := newEnv(t, func(c *envConfig) {
		c.hook = func(a *api) {
			fs.Store = a.svc.Store()
			svc, err := blobstore.NewService(blobstore.ServiceConfig{Store: fs, Bucketer: a.svc.Bucketer(), BlockSize: a.svc.BlockSize(), Limits: a.svc.Limits()})
			if err != nil {
				t.Fatal(err)
			}
			a.svc = svc
		}
	})
	a, b := e.newBlock(), e.newBlock()
	fs.ok.Store(1 << 20)
	e.mustPut(a)
	e.mustPut(b)

	fs.ok.Store(1)
	req, _ := http.NewRequest("POST", e.url+"/v1/read", bytes.NewReader(readBody(a, b)))
	res, err := e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || err == nil || len(body) >= 2*wire.ReadRecordSize(e.bs) {
		t.Fatalf("status %d, %d bytes read, err %v: want 200 cut short", res.StatusCode, len(body), err)
	}
	// What the client parses of it is an error, never a second block.
	rd := io.MultiReader(bytes.NewReader(body), errReader{})
	buf := make([]byte, wire.ReadRecordSize(e.bs))
	if data, _, err := wire.ReadRecord(rd, buf, e.bs); err != nil || !bytes.Equal(data, a.data) {
		t.Fatalf("first record: %v", err)
	}
	if _, _, err := wire.ReadRecord(bytes.NewReader(body[wire.ReadRecordSize(e.bs):]), buf, e.bs); wire.KindOf(err) != wire.KindNetwork {
		t.Fatalf("a cut answer parses as %v, want a network error", err)
	}

	fs.ok.Store(0)
	e.do("POST", "/v1/read", readBody(a, b), nil).wantProblem(t, http.StatusServiceUnavailable, wire.CodeUnavailable)
	if !strings.Contains(e.logs.String(), "read failed after its answer started") {
		t.Fatalf("the cut answer is not logged:\n%s", e.logs.String())
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }
