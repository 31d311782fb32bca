package pool

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/wire"
)

// The binary forms a request takes in Redis: its ops while it waits, and
// its answer for a minute at most. Only what an Op or a Result holds, in
// a fixed layout; nothing about the client.

const codecVersion = 1

// Op flags.
const (
	flagIfNoneMatch = 1 << iota
	flagIfMatch
	flagData
	flagGroup
)

// encodeOps lays ops out as: version, then per op kind(1) id(16)
// proof_hash(32) bucket(16) flags(1) [if_match(16)] [group(8)]
// [etag(16) len(4) data].
func encodeOps(ops []blobstore.Op) []byte {
	n := 1
	for i := range ops {
		n += 1 + 16 + 32 + 16 + 1 + 16 + 8 + 16 + 4 + len(ops[i].Data)
	}
	b := make([]byte, 0, n)
	b = append(b, codecVersion)
	for i := range ops {
		op := &ops[i]
		b = append(b, byte(op.Kind))
		b = append(b, op.ID[:]...)
		b = append(b, op.ProofHash[:]...)
		b = append(b, op.Bucket[:]...)
		var f byte
		if op.Cond.IfNoneMatchAny {
			f |= flagIfNoneMatch
		}
		if op.Cond.IfMatch != nil {
			f |= flagIfMatch
		}
		if op.Data != nil {
			f |= flagData
		}
		if op.Group != 0 {
			f |= flagGroup
		}
		b = append(b, f)
		if op.Cond.IfMatch != nil {
			b = append(b, op.Cond.IfMatch[:]...)
		}
		if op.Group != 0 {
			b = binary.BigEndian.AppendUint64(b, op.Group)
		}
		if op.Data != nil {
			b = append(b, op.ETag[:]...)
			b = binary.BigEndian.AppendUint32(b, uint32(len(op.Data)))
			b = append(b, op.Data...)
		}
	}
	return b
}

var errMalformed = errors.New("pool: a queued request is malformed")

// decodeOps is encodeOps' inverse. Op data points into b.
func decodeOps(b []byte) ([]blobstore.Op, error) {
	if len(b) < 1 || b[0] != codecVersion {
		return nil, errMalformed
	}
	b = b[1:]
	var ops []blobstore.Op
	take := func(n int) ([]byte, bool) {
		if len(b) < n {
			return nil, false
		}
		v := b[:n:n]
		b = b[n:]
		return v, true
	}
	for len(b) > 0 {
		head, ok := take(1 + 16 + 32 + 16 + 1)
		if !ok {
			return nil, errMalformed
		}
		var op blobstore.Op
		op.Kind = blobstore.OpKind(head[0])
		copy(op.ID[:], head[1:17])
		copy(op.ProofHash[:], head[17:49])
		copy(op.Bucket[:], head[49:65])
		f := head[65]
		if op.Kind < blobstore.OpPut || op.Kind > blobstore.OpCheck || f&^(flagIfNoneMatch|flagIfMatch|flagData|flagGroup) != 0 {
			return nil, errMalformed
		}
		op.Cond.IfNoneMatchAny = f&flagIfNoneMatch != 0
		if f&flagIfMatch != 0 {
			v, ok := take(wire.ETagSize)
			if !ok {
				return nil, errMalformed
			}
			var e wire.ETag
			copy(e[:], v)
			op.Cond.IfMatch = &e
		}
		if f&flagGroup != 0 {
			v, ok := take(8)
			if !ok {
				return nil, errMalformed
			}
			if op.Group = binary.BigEndian.Uint64(v); op.Group == 0 {
				return nil, errMalformed
			}
		}
		if f&flagData != 0 {
			v, ok := take(wire.ETagSize + 4)
			if !ok {
				return nil, errMalformed
			}
			copy(op.ETag[:], v)
			if op.Data, ok = take(int(binary.BigEndian.Uint32(v[wire.ETagSize:]))); !ok {
				return nil, errMalformed
			}
		}
		ops = append(ops, op)
	}
	if len(ops) == 0 {
		return nil, errMalformed
	}
	return ops, nil
}

// Answer tags.
const (
	answerResults = iota // results follow
	answerUnknown        // the outcome is unknown: 503, retry
	answerError          // the batch was refused: kind, code and message follow
)

// encodeResults answers a request with its results: rid, tag, then per
// op status(1) etag(16).
func encodeResults(rid []byte, rs []blobstore.Result) []byte {
	b := make([]byte, 0, len(rid)+1+len(rs)*(1+wire.ETagSize))
	b = append(append(b, rid...), answerResults)
	for _, r := range rs {
		b = append(b, byte(r.Status))
		b = append(b, r.ETag[:]...)
	}
	return b
}

// encodeUnknown answers a request whose outcome is unknown.
func encodeUnknown(rid []byte) []byte { return append(append([]byte(nil), rid...), answerUnknown) }

// encodeError answers a request whose batch the store refused. Only an
// error's kind, code and client-safe message travel, never its cause.
func encodeError(rid []byte, err error) []byte {
	kind, code, msg := wire.KindInternal, wire.CodeInternal, "the store refused the batch"
	var be *wire.Error
	if errors.As(err, &be) {
		kind, code, msg = be.Kind, be.Code, be.Msg
	}
	if len(code) > 255 {
		code = code[:255]
	}
	b := append(append([]byte(nil), rid...), answerError, byte(kind), byte(len(code)))
	return append(append(b, code...), msg...)
}

// errUnknown is a request's answer when its outcome is unknown.
var errUnknown = wire.E(wire.KindUnavailable, wire.CodeUnavailable, "write outcome unknown (a part of the service is down), retry later")

// decodeAnswer turns an answer (without its rid) into results for n ops.
func decodeAnswer(b []byte, n int) ([]blobstore.Result, error) {
	if len(b) < 1 {
		return nil, errMalformed
	}
	switch b[0] {
	case answerResults:
		b = b[1:]
		if len(b) != n*(1+wire.ETagSize) {
			return nil, fmt.Errorf("pool: an answer holds %d bytes of results for %d ops", len(b), n)
		}
		rs := make([]blobstore.Result, n)
		for i := range rs {
			rs[i].Status = blobstore.Status(b[0])
			copy(rs[i].ETag[:], b[1:1+wire.ETagSize])
			b = b[1+wire.ETagSize:]
		}
		return rs, nil
	case answerUnknown:
		return nil, errUnknown
	case answerError:
		if len(b) < 3 || len(b) < 3+int(b[2]) {
			return nil, errMalformed
		}
		code := string(b[3 : 3+int(b[2])])
		return nil, wire.E(wire.Kind(b[1]), code, string(b[3+int(b[2]):]))
	}
	return nil, errMalformed
}
