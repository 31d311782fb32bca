package httpapi

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/blindstore/blindstore/wire"
)

func TestBlockLifecycle(t *testing.T) {
	e := newEnv(t)
	b := e.newBlock()
	path := "/v1/blocks/" + b.id

	r := e.put(b, "If-None-Match", "*")
	r.wantStatus(t, http.StatusCreated)
	etag1 := r.header.Get("ETag")
	if want := wire.ETagOf(b.data).String(); etag1 != want {
		t.Fatalf("ETag %q, want %q", etag1, want)
	}

	r = e.do("GET", path, nil, nil)
	r.wantStatus(t, http.StatusOK)
	if !bytes.Equal(r.body, b.data) {
		t.Fatal("GET returned other data than was put")
	}
	if r.header.Get("ETag") != etag1 || r.header.Get("Content-Type") != "application/octet-stream" || r.header.Get("Content-Length") != strconv.Itoa(e.bs) {
		t.Fatalf("GET headers %v", r.header)
	}

	r = e.do("HEAD", path, nil, nil)
	r.wantStatus(t, http.StatusOK)
	if len(r.body) != 0 || r.header.Get("ETag") != etag1 || r.header.Get("Content-Length") != strconv.Itoa(e.bs) {
		t.Fatalf("HEAD: body %d bytes, headers %v", len(r.body), r.header)
	}

	// Overwrite, then compare-and-swap with the new ETag.
	b.data = e.randomData()
	r = e.put(b)
	r.wantStatus(t, http.StatusNoContent)
	etag2 := r.header.Get("ETag")
	if etag2 == etag1 || etag2 != wire.ETagOf(b.data).String() {
		t.Fatalf("overwrite ETag %q (before %q)", etag2, etag1)
	}
	b.data = e.randomData()
	r = e.put(b, "If-Match", etag2)
	r.wantStatus(t, http.StatusNoContent)
	etag3 := r.header.Get("ETag")
	if r = e.do("GET", path, nil, nil); !bytes.Equal(r.body, b.data) || r.header.Get("ETag") != etag3 {
		t.Fatal("GET after compare-and-swap does not return the new version")
	}

	r = e.do("DELETE", path, nil, hdr{"Blind-Proof", b.proof, "If-Match", etag3})
	r.wantStatus(t, http.StatusNoContent)
	e.do("GET", path, nil, nil).wantProblem(t, http.StatusNotFound, wire.CodeNotFound)
	e.do("HEAD", path, nil, nil).wantProblem(t, http.StatusNotFound, wire.CodeNotFound)
	e.do("DELETE", path, nil, hdr{"Blind-Proof", b.proof}).wantProblem(t, http.StatusNotFound, wire.CodeNotFound)
	if s := e.snapshot(b.id); s.blocks != 0 || s.of[b.id] != "" {
		t.Fatal("the block is still in the store after DELETE")
	}
}

func TestDefaultBlockSize(t *testing.T) {
	e := newEnv(t, func(c *envConfig) { c.blockSize = wire.DefaultBlockSize })
	b := e.newBlock()
	etag := e.mustPut(b)
	r := e.do("GET", "/v1/blocks/"+b.id, nil, nil)
	r.wantStatus(t, http.StatusOK)
	if !bytes.Equal(r.body, b.data) || r.header.Get("ETag") != etag || len(r.body) != 65536 {
		t.Fatalf("GET returned %d bytes, ETag %q", len(r.body), r.header.Get("ETag"))
	}
	short := &block{id: b.id, proof: b.proof, data: b.data[:4096]}
	e.put(short).wantProblem(t, http.StatusBadRequest, wire.CodeBadSize)
	if r := e.do("GET", "/v1/blocks/"+b.id, nil, nil); r.header.Get("ETag") != etag {
		t.Fatal("a short put changed the block")
	}
}

func TestConditionalRead(t *testing.T) {
	e := newEnv(t)
	b := e.newBlock()
	etag := e.mustPut(b)
	path := "/v1/blocks/" + b.id
	other := wire.ETagOf([]byte("other")).String()
	e.secretETag(other)

	for _, method := range []string{"GET", "HEAD"} {
		for _, inm := range []string{etag, other + ", " + etag, "W/" + etag, "*", `"never-issued", ` + etag} {
			r := e.do(method, path, nil, hdr{"If-None-Match", inm})
			r.wantStatus(t, http.StatusNotModified)
			if r.header.Get("ETag") != etag || len(r.body) != 0 {
				t.Fatalf("%s If-None-Match %q: 304 with ETag %q and %d body bytes", method, inm, r.header.Get("ETag"), len(r.body))
			}
		}
		r := e.do(method, path, nil, hdr{"If-None-Match", other})
		r.wantStatus(t, http.StatusOK)
		if method == "GET" && !bytes.Equal(r.body, b.data) {
			t.Fatal("GET with a stale If-None-Match did not return the data")
		}
		e.do(method, path, nil, hdr{"If-None-Match", "not-quoted"}).wantProblem(t, http.StatusBadRequest, wire.CodeBadETag)
	}
	// If-None-Match: * on a missing block is true, so the answer is 404.
	missing := e.newBlock()
	e.do("GET", "/v1/blocks/"+missing.id, nil, hdr{"If-None-Match", "*"}).wantProblem(t, http.StatusNotFound, wire.CodeNotFound)
}

// TestBadRequestsChangeNothing sends every kind of bad or refused write
// and checks each answer, and that the store is exactly as before.
func TestBadRequestsChangeNothing(t *testing.T) {
	e := newEnv(t)
	b := e.newBlock()
	etag := e.mustPut(b)
	fresh := e.newBlock() // never written
	stranger := e.newBlock()
	otherTag := wire.ETagOf([]byte("x")).String()
	e.secretETag(otherTag)

	const (
		v1        = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
		v7        = "01890a5d-ac96-774b-bcce-b302099a8057"
		badHex    = "0b5e3a6e-8c1f-4d5a-9b7e-2f1a3c4d5e6g"
		badVarian = "0b5e3a6e-8c1f-4d5a-cb7e-2f1a3c4d5e6f"
	)
	for _, s := range []string{v1, v7, badHex, badVarian} {
		e.secretID(s)
	}
	put := func(id string) string { return "/v1/blocks/" + id }
	ok := hdr{"Blind-Proof", b.proof}
	with := func(h hdr, more ...string) hdr { return append(append(hdr{}, h...), more...) }
	full := b.data

	cases := []struct {
		name    string
		method  string
		path    string
		body    []byte
		chunked bool
		h       hdr
		status  int
		code    string
	}{
		{"not a uuid", "PUT", put("not-a-uuid"), full, false, ok, 400, wire.CodeBadID},
		{"v1 uuid", "PUT", put(v1), full, false, ok, 400, wire.CodeBadID},
		{"v7 uuid", "PUT", put(v7), full, false, ok, 400, wire.CodeBadID},
		{"malformed uuid", "PUT", put(badHex), full, false, ok, 400, wire.CodeBadID},
		{"wrong variant", "PUT", put(badVarian), full, false, ok, 400, wire.CodeBadID},
		{"get v1", "GET", put(v1), nil, false, nil, 400, wire.CodeBadID},
		{"head v7", "HEAD", put(v7), nil, false, nil, 400, wire.CodeBadID},
		{"delete malformed", "DELETE", put(badHex), nil, false, ok, 400, wire.CodeBadID},
		{"short body", "PUT", put(b.id), full[:e.bs-1], false, ok, 400, wire.CodeBadSize},
		{"short body, new block", "PUT", put(fresh.id), full[:100], false, hdr{"Blind-Proof", fresh.proof}, 400, wire.CodeBadSize},
		{"short chunked body", "PUT", put(b.id), full[:e.bs/2], true, ok, 400, wire.CodeBadSize},
		{"empty body", "PUT", put(fresh.id), []byte{}, false, hdr{"Blind-Proof", fresh.proof}, 400, wire.CodeBadSize},
		{"long body", "PUT", put(b.id), append(bytes.Clone(full), 0), false, ok, 413, wire.CodeBodyTooLarge},
		{"long chunked body", "PUT", put(fresh.id), append(bytes.Clone(full), make([]byte, 100)...), true, hdr{"Blind-Proof", fresh.proof}, 413, wire.CodeBodyTooLarge},
		{"missing proof", "PUT", put(b.id), full, false, nil, 400, wire.CodeBadProof},
		{"malformed proof", "PUT", put(b.id), full, false, hdr{"Blind-Proof", "!!not*base64!!"}, 400, wire.CodeBadProof},
		{"short proof", "PUT", put(b.id), full, false, hdr{"Blind-Proof", b.proof[:20]}, 400, wire.CodeBadProof},
		{"unquoted if-match", "PUT", put(b.id), full, false, with(ok, "If-Match", strings.Trim(etag, `"`)), 400, wire.CodeBadETag},
		{"if-match star", "PUT", put(b.id), full, false, with(ok, "If-Match", "*"), 400, wire.CodeBadETag},
		{"if-match list", "PUT", put(b.id), full, false, with(ok, "If-Match", etag+", "+otherTag), 400, wire.CodeBadETag},
		{"if-none-match tag on put", "PUT", put(b.id), full, false, with(ok, "If-None-Match", etag), 400, wire.CodeBadETag},
		{"wrong content type", "PUT", put(b.id), full, false, with(ok, "Content-Type", "text/plain"), 415, wire.CodeUnsupportedMedia},
		{"delete without proof", "DELETE", put(b.id), nil, false, nil, 400, wire.CodeBadProof},
		{"delete if-none-match", "DELETE", put(b.id), nil, false, with(ok, "If-None-Match", "*"), 400, wire.CodeBadRequest},
		{"delete malformed if-match", "DELETE", put(b.id), nil, false, with(ok, "If-Match", "nope"), 400, wire.CodeBadETag},
		{"delete if-match star", "DELETE", put(b.id), nil, false, with(ok, "If-Match", "*"), 400, wire.CodeBadETag},
		{"put with wrong proof", "PUT", put(b.id), full, false, hdr{"Blind-Proof", stranger.proof}, 403, wire.CodeProofMismatch},
		{"create-only with wrong proof", "PUT", put(b.id), full, false, hdr{"Blind-Proof", stranger.proof, "If-None-Match", "*"}, 403, wire.CodeProofMismatch},
		{"delete with wrong proof", "DELETE", put(b.id), nil, false, hdr{"Blind-Proof", stranger.proof}, 403, wire.CodeProofMismatch},
		{"delete missing", "DELETE", put(fresh.id), nil, false, hdr{"Blind-Proof", fresh.proof}, 404, wire.CodeNotFound},
		{"get missing", "GET", put(fresh.id), nil, false, nil, 404, wire.CodeNotFound},
		{"create-only on existing", "PUT", put(b.id), e.randomData(), false, with(ok, "If-None-Match", "*"), 412, wire.CodePreconditionFailed},
		{"if-match mismatch", "PUT", put(b.id), e.randomData(), false, with(ok, "If-Match", otherTag), 412, wire.CodePreconditionFailed},
		{"if-match on missing", "PUT", put(fresh.id), fresh.data, false, hdr{"Blind-Proof", fresh.proof, "If-Match", etag}, 412, wire.CodePreconditionFailed},
		{"delete if-match mismatch", "DELETE", put(b.id), nil, false, with(ok, "If-Match", otherTag), 412, wire.CodePreconditionFailed},
		// RFC 9110 §13.1.1: well-formed tags that are not this block's
		// are non-matches, not errors.
		{"weak if-match", "PUT", put(b.id), e.randomData(), false, with(ok, "If-Match", "W/"+etag), 412, wire.CodePreconditionFailed},
		{"if-match foreign tag", "PUT", put(b.id), e.randomData(), false, with(ok, "If-Match", `"abc"`), 412, wire.CodePreconditionFailed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.snapshot(b.id, fresh.id)
			if before.of[b.id] == "" || before.of[fresh.id] != "" {
				t.Fatal("test setup: the store is not as expected")
			}
			r := e.doReader(c.method, c.path, c.body, c.chunked, c.h)
			r.wantProblem(t, c.status, c.code)
			e.unchanged(before, b.id, fresh.id)
			if c.status == http.StatusPreconditionFailed {
				// The owner learns the current ETag of an existing block
				// so it can re-read and retry; of a missing one, nothing.
				want := etag
				if c.path == put(fresh.id) {
					want = ""
				}
				if got := r.header.Get("ETag"); got != want {
					t.Fatalf("412 ETag %q, want %q", got, want)
				}
			}
		})
	}
	// Create-only of a new block works, with or without Content-Type.
	fresh.data = e.randomData()
	e.do("PUT", put(fresh.id), fresh.data, hdr{"Blind-Proof", fresh.proof, "If-None-Match", "*"}).wantStatus(t, http.StatusCreated)
}

func TestRoutingProblems(t *testing.T) {
	e := newEnv(t)
	b := e.newBlock()
	cases := []struct {
		method, path string
		status       int
		code         string
		allow        string
	}{
		{"POST", "/v1/blocks/" + b.id, 405, wire.CodeMethodNotAllowed, "DELETE, GET, HEAD, PUT"},
		{"PATCH", "/v1/blocks/" + b.id, 405, wire.CodeMethodNotAllowed, "DELETE, GET, HEAD, PUT"},
		{"OPTIONS", "/v1/blocks/" + b.id, 405, wire.CodeMethodNotAllowed, "DELETE, GET, HEAD, PUT"},
		{"PUT", "/v1/config", 405, wire.CodeMethodNotAllowed, "GET, HEAD"},
		{"GET", "/v1/renew", 405, wire.CodeMethodNotAllowed, "POST"},
		{"GET", "/v1/nothing", 404, wire.CodeNoRoute, ""},
		{"GET", "/v1/blocks/", 404, wire.CodeNoRoute, ""},
		{"GET", "/v1/blocks/" + b.id + "/", 404, wire.CodeNoRoute, ""},
		{"GET", "/V1/CONFIG", 404, wire.CodeNoRoute, ""},
		{"GET", "/", 404, wire.CodeNoRoute, ""},
	}
	for _, c := range cases {
		r := e.do(c.method, c.path, nil, nil)
		r.wantProblem(t, c.status, c.code)
		if got := r.header.Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
		if r.header.Get("Location") != "" {
			t.Errorf("%s %s: redirected", c.method, c.path)
		}
	}
}
