package wire

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

const testBlock = MinBlockSize

func testBatch(t testing.TB) (*BatchManifest, [][]byte) {
	t.Helper()
	var w WriteProof
	w[0] = 7
	a, b := make([]byte, testBlock), make([]byte, testBlock)
	a[0], b[testBlock-1] = 1, 2
	m := &BatchManifest{Atomic: true, Blocks: []BatchEntry{
		{ID: NewID().String(), Proof: EncodeProof(w), CreateOnly: true},
		{ID: NewID().String(), Proof: EncodeProof(w), Delete: true, IfMatch: ETagOf(nil).String()},
		{ID: NewID().String(), Proof: EncodeProof(w), IfMatch: ETagOf(a).String()},
		{ID: NewID().String(), Proof: EncodeProof(w), Check: true, IfMatch: ETagOf(b).String()},
	}}
	return m, [][]byte{a, b}
}

func TestBatchRoundTrip(t *testing.T) {
	m, blocks := testBatch(t)
	body, err := NewBatchBody(m, blocks)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(body.Reader())
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(raw)) != body.Len() || body.Len() != int64(4+body.ManifestLen()+2*testBlock) {
		t.Fatalf("body of %d bytes, Len %d, manifest %d", len(raw), body.Len(), body.ManifestLen())
	}
	// A second reader sends the same bytes: a retry.
	again, _ := io.ReadAll(body.Reader())
	if !bytes.Equal(raw, again) {
		t.Fatal("a second reader of the body differs")
	}
	for _, declared := range []int64{int64(len(raw)), -1} {
		got, data, err := DecodeBatch(bytes.NewReader(raw), declared, testBlock)
		if err != nil {
			t.Fatalf("declared %d: %v", declared, err)
		}
		if !got.Atomic || len(got.Blocks) != len(m.Blocks) || len(data) != 2 {
			t.Fatalf("decoded %+v with %d blocks", got, len(data))
		}
		for i := range m.Blocks {
			if got.Blocks[i] != m.Blocks[i] {
				t.Fatalf("entry %d: %+v, sent %+v", i, got.Blocks[i], m.Blocks[i])
			}
		}
		for i := range blocks {
			if !bytes.Equal(data[i], blocks[i]) {
				t.Fatalf("block %d differs", i)
			}
		}
	}
}

func TestBatchRequest(t *testing.T) {
	m, blocks := testBatch(t)
	body, err := NewBatchBody(m, blocks)
	if err != nil {
		t.Fatal(err)
	}
	req, err := body.NewRequest(context.Background(), "http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != http.MethodPost || req.URL.Path != PathBlocks || req.ContentLength != body.Len() || req.Header.Get("Content-Type") != MediaBatch {
		t.Fatalf("request %s %s, length %d, type %q", req.Method, req.URL.Path, req.ContentLength, req.Header.Get("Content-Type"))
	}
	rc, err := req.GetBody()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := DecodeBatch(rc, req.ContentLength, testBlock); err != nil {
		t.Fatalf("GetBody's body does not decode: %v", err)
	}
}

func TestBatchEncodeRefusesMismatch(t *testing.T) {
	m, blocks := testBatch(t)
	if _, err := NewBatchBody(m, blocks[:1]); err == nil {
		t.Error("a manifest of two writes framed with one block")
	}
	if _, err := NewBatchBody(m, [][]byte{blocks[0], blocks[1][:10]}); err == nil {
		t.Error("blocks of two sizes framed")
	}
}

// Malformed bodies are refused with an *Error of the kind and code the
// API documents, declared length or not.
func TestBatchDecodeRejects(t *testing.T) {
	m, blocks := testBatch(t)
	body, _ := NewBatchBody(m, blocks)
	good, _ := io.ReadAll(body.Reader())
	frame := func(manifest string, data int) []byte {
		out := binary.BigEndian.AppendUint32(nil, uint32(len(manifest)))
		return append(append(out, manifest...), make([]byte, data)...)
	}
	big := make([]byte, 4)
	binary.BigEndian.PutUint32(big, MaxManifestBytes+1)
	cases := []struct {
		name     string
		in       []byte
		declared int64
		kind     Kind
		code     string
	}{
		{"empty body", nil, -1, KindInvalid, CodeBadSize},
		{"short prefix", []byte{0, 0}, -1, KindInvalid, CodeBadSize},
		{"empty manifest", []byte{0, 0, 0, 0}, -1, KindInvalid, CodeBadRequest},
		{"manifest over the cap", big, -1, KindTooLarge, CodeBodyTooLarge},
		{"cut in the manifest", good[:20], -1, KindInvalid, CodeBadSize},
		{"cut in transit", good[:20], int64(len(good)), KindInvalid, CodeBadRequest},
		{"not JSON", frame("{", 0), -1, KindInvalid, CodeBadRequest},
		{"unknown field", frame(`{"blocks":[],"x":1}`, 0), -1, KindInvalid, CodeBadRequest},
		{"data after the JSON", frame(`{"blocks":[]} {}`, 0), -1, KindInvalid, CodeBadRequest},
		{"declared length wrong", good, int64(len(good)) + 1, KindInvalid, CodeBadSize},
		{"a block short", good[:len(good)-1], -1, KindInvalid, CodeBadSize},
		{"a byte too many", append(append([]byte(nil), good...), 0), -1, KindInvalid, CodeBadSize},
	}
	for _, c := range cases {
		_, _, err := DecodeBatch(bytes.NewReader(c.in), c.declared, testBlock)
		var e *Error
		if err == nil || !errors.As(err, &e) || e.Kind != c.kind || e.Code != c.code {
			t.Errorf("%s: %v, want kind %v code %s", c.name, err, c.kind, c.code)
		}
	}
	// A message never repeats the body: it holds ids and proofs.
	_, _, err := DecodeBatch(bytes.NewReader(frame(`{"blocks":[{"id":"`+m.Blocks[0].ID+`","zz":1}]}`, 0)), -1, testBlock)
	if err == nil || strings.Contains(err.Error(), m.Blocks[0].ID) {
		t.Errorf("an unknown field's error: %v", err)
	}
}

// The JSON of a manifest is the API's: the names clients and the OpenAPI
// document use.
func TestBatchManifestJSON(t *testing.T) {
	b, err := json.Marshal(BatchManifest{Blocks: []BatchEntry{{ID: "i", Proof: "p", CreateOnly: true, IfMatch: "e", Delete: true, Check: true}}, Atomic: true})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"blocks":[{"id":"i","proof":"p","create_only":true,"if_match":"e","delete":true,"check":true}],"atomic":true}`
	if string(b) != want {
		t.Fatalf("manifest JSON %s, want %s", b, want)
	}
	b, _ = json.Marshal(BatchManifest{Blocks: []BatchEntry{{ID: "i", Proof: "p"}}})
	if string(b) != `{"blocks":[{"id":"i","proof":"p"}]}` {
		t.Fatalf("a plain write's manifest %s carries defaults", b)
	}
}
