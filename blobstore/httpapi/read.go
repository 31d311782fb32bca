package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/blindstore/blindstore/wire"
)

// readBytesPerID bounds the JSON of one id in a read request: a quoted
// UUID and its comma, with room for whitespace.
const readBytesPerID = 64

// maxReadBody is the largest body POST /v1/read accepts.
func (a *api) maxReadBody() int64 {
	return 256 + int64(a.svc.ReadBatch())*readBytesPerID
}

// readMany is POST /v1/read: several blocks in one answer, framed as
// package wire says (read.go there). A browser pays several milliseconds
// of CPU per request whatever its size, so a download of many blocks
// costs far less this way than by GET, and so do other clients, less.
//
// The answer's length is known before any block is read, so its status
// line goes out with the first record. A store that fails after that
// aborts the connection: the client sees an answer shorter than its
// Content-Length, never a whole-looking one with a block missing.
func (a *api) readMany(x *exchange) {
	limit := a.maxReadBody()
	var req wire.ReadRequest
	if !a.jsonBodyFits(x, limit) || !a.decodeJSONBody(x, limit, &req) {
		return
	}
	n := len(req.IDs)
	if !a.countFits(x, "read", n, a.svc.ReadBatch()) {
		return
	}
	ids := make([]wire.ID, n)
	var err error
	for i, s := range req.IDs {
		if ids[i], err = wire.ParseID(s); err != nil {
			x.fail(a, fmt.Errorf("block %d of the request: %w", i, err))
			return
		}
	}
	bs := a.svc.BlockSize()
	bufp := a.blocks.Get().(*[]byte)
	defer a.blocks.Put(bufp)
	var (
		head    [1 + wire.ETagSize]byte
		zeros   []byte
		started bool
		werr    error // the client's connection failed
	)
	err = a.svc.ReadMany(x.r.Context(), ids, (*bufp)[:0], func(_ int, data []byte, etag wire.ETag, err error) error {
		found := err == nil
		if !found {
			x.failed++
			if zeros == nil {
				zeros = make([]byte, bs)
			}
			data = zeros
		} else if len(data) != bs {
			return fmt.Errorf("the store read a block of %d bytes, the block size is %d", len(data), bs)
		}
		if !started {
			started = true
			h := x.w.Header()
			h["Content-Type"] = valBlocksType
			h["Content-Length"] = []string{strconv.FormatInt(int64(n)*int64(wire.ReadRecordSize(bs)), 10)}
			h["Cache-Control"] = valNoStore
			x.w.WriteHeader(http.StatusOK)
		}
		if _, werr = x.w.Write(wire.ReadRecordHeader(head[:], found, etag)); werr == nil {
			_, werr = x.w.Write(data)
		}
		return werr
	})
	switch {
	case err == nil, werr != nil:
		// Done, or the client hung up: nothing more can reach it.
	case !started:
		a.readFailed(x, err)
	default:
		if x.r.Context().Err() == nil {
			a.log.LogAttrs(context.WithoutCancel(x.r.Context()), slog.LevelWarn, "read failed after its answer started; connection aborted",
				slog.String("route", x.route), slog.String("err", causeOf(err)))
		}
		panic(http.ErrAbortHandler)
	}
}

var valBlocksType = []string{wire.MediaBlocks}
