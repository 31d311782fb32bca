package wire

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
)

// codeOf returns the problem code of err, or "".
func codeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// FuzzParseIDProofETag: the parsers of what URLs, headers and manifests
// carry accept only what their canonical forms round-trip to.
func FuzzParseIDProofETag(f *testing.F) {
	id := NewID()
	var w WriteProof
	_, _ = rand.Read(w[:])
	f.Add(id.String())
	f.Add(strings.ToUpper(id.String()))
	f.Add(EncodeProof(w))
	f.Add(EncodeProof(w) + "=")
	f.Add(ETagOf(nil).String())
	f.Add(`W/` + ETagOf(nil).String())
	f.Add("01890a5d-ac96-774b-bcce-b302099a8057")
	f.Fuzz(func(t *testing.T, s string) {
		if id, err := ParseID(s); err == nil {
			if id.Validate() != nil || !strings.EqualFold(id.String(), s) {
				t.Fatalf("ParseID(%q) = %s", s, id)
			}
		} else if codeOf(err) != CodeBadID {
			t.Fatalf("ParseID error %v", err)
		}
		if p, err := ParseProof(s); err == nil {
			again, err := ParseProof(EncodeProof(p))
			if err != nil || again != p {
				t.Fatalf("ParseProof(%q) does not round-trip", s)
			}
		} else if codeOf(err) != CodeBadProof {
			t.Fatalf("ParseProof error %v", err)
		}
		if e, err := ParseETag(s); err == nil {
			again, err := ParseETag(e.String())
			if err != nil || again != e {
				t.Fatalf("ParseETag(%q) does not round-trip", s)
			}
		} else if codeOf(err) != CodeBadETag {
			t.Fatalf("ParseETag error %v", err)
		}
	})
}

// FuzzDecodeBatch: what the decoder accepts encodes again to the same
// bytes, and what it refuses it refuses with a code.
func FuzzDecodeBatch(f *testing.F) {
	m, blocks := testBatch(f)
	body, _ := NewBatchBody(m, blocks)
	good := new(bytes.Buffer)
	_, _ = good.ReadFrom(body.Reader())
	f.Add(good.Bytes(), true)
	f.Add(good.Bytes(), false)
	f.Add(good.Bytes()[:40], false)
	f.Add([]byte{0, 0, 0, 2, '{', '}'}, true)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, '{'}, false)
	f.Fuzz(func(t *testing.T, in []byte, declared bool) {
		cl := int64(-1)
		if declared {
			cl = int64(len(in))
		}
		got, data, err := DecodeBatch(bytes.NewReader(in), cl, testBlock)
		if err != nil {
			if k := KindOf(err); (k != KindInvalid && k != KindTooLarge) || codeOf(err) == "" {
				t.Fatalf("refused with kind %v, code %q: %v", k, codeOf(err), err)
			}
			return
		}
		l := int(uint32(in[0])<<24 | uint32(in[1])<<16 | uint32(in[2])<<8 | uint32(in[3]))
		if len(in) != 4+l+len(data)*testBlock {
			t.Fatalf("accepted %d bytes for %d blocks and a %d-byte manifest", len(in), len(data), l)
		}
		for i, d := range data {
			if !bytes.Equal(d, in[4+l+i*testBlock:4+l+(i+1)*testBlock]) {
				t.Fatalf("block %d is not its place in the body", i)
			}
		}
		again, err := NewBatchBody(got, data)
		if err != nil {
			t.Fatalf("an accepted batch does not encode: %v", err)
		}
		if again.Len() != int64(4+again.ManifestLen()+len(data)*testBlock) {
			t.Fatalf("re-encoded length %d", again.Len())
		}
		back, data2, err := DecodeBatch(again.Reader(), again.Len(), testBlock)
		if err != nil || len(back.Blocks) != len(got.Blocks) || back.Atomic != got.Atomic || len(data2) != len(data) {
			t.Fatalf("a re-encoded batch does not decode alike: %v", err)
		}
		for i := range got.Blocks {
			if back.Blocks[i] != got.Blocks[i] {
				t.Fatalf("entry %d changed in a round trip", i)
			}
		}
	})
}
