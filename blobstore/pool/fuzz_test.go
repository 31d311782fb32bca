package pool

import (
	"bytes"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/wire"
)

// FuzzDecodeOps feeds what a queued request looks like in Redis, which
// another instance wrote and a restarted or tampered Redis may have
// mangled: a flusher must refuse it, not panic, and what it accepts must
// encode back to the same bytes (nothing is dropped or invented).
func FuzzDecodeOps(f *testing.F) {
	etag := wire.ETagOf([]byte("x"))
	ops := []blobstore.Op{
		{Kind: blobstore.OpPut, ID: wire.NewID(), Data: []byte("data"), ETag: etag, Cond: blobstore.Cond{IfNoneMatchAny: true}},
		{Kind: blobstore.OpDelete, ID: wire.NewID(), Cond: blobstore.Cond{IfMatch: &etag}},
		{Kind: blobstore.OpRenew, ID: wire.NewID()},
		{Kind: blobstore.OpPut, ID: wire.NewID(), Data: []byte{}},
		{Kind: blobstore.OpDelete, ID: wire.NewID(), Group: 1 << 60},
		{Kind: blobstore.OpCheck, ID: wire.NewID(), Cond: blobstore.Cond{IfMatch: &etag}, Group: 7},
	}
	f.Add(encodeOps(ops))
	f.Add(encodeOps(ops[:1]))
	f.Add([]byte{codecVersion})
	f.Add([]byte{codecVersion + 1})
	f.Add(append(encodeOps(ops[3:]), 0xff, 0xff, 0xff, 0xff))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := decodeOps(in)
		if err != nil {
			return
		}
		if len(got) == 0 {
			t.Fatal("accepted a request without ops")
		}
		if again := encodeOps(got); !bytes.Equal(again, in) {
			t.Fatalf("decoded %d ops that encode to other bytes", len(got))
		}
	})
}

// FuzzDecodeAnswer feeds a request's answer as read back from Redis: n
// results exactly, an error, or a refusal; never a panic.
func FuzzDecodeAnswer(f *testing.F) {
	rs := []blobstore.Result{{Status: blobstore.StatusCreated, ETag: wire.ETagOf(nil)}, {Status: blobstore.StatusNotFound}}
	f.Add(encodeResults(nil, rs), uint8(2))
	f.Add(encodeUnknown(nil), uint8(1))
	f.Add(encodeError(nil, wire.E(wire.KindInvalid, wire.CodeBadSize, "too big")), uint8(1))
	f.Add([]byte{answerError, 3, 200, 'a'}, uint8(0))
	f.Fuzz(func(t *testing.T, in []byte, n uint8) {
		got, err := decodeAnswer(in, int(n))
		if err == nil && len(got) != int(n) {
			t.Fatalf("%d results for %d ops", len(got), n)
		}
		if err == nil && len(in) > 0 && in[0] == answerResults {
			if again := encodeResults(nil, got); !bytes.Equal(again, in) {
				t.Fatal("results that encode to other bytes")
			}
		}
	})
}
