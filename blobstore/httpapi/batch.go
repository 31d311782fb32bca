package httpapi

import (
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/wire"
)

// maxBatchBody is the largest body POST /v1/blocks accepts: the length
// prefix, the largest manifest and WriteBatch blocks.
func (a *api) maxBatchBody() int64 {
	return 4 + MaxManifestBytes + int64(a.svc.Limits().WriteBatch)*int64(a.svc.BlockSize())
}

// maxRenewBody is the largest body POST /v1/renew accepts.
func (a *api) maxRenewBody() int64 {
	return renewBytesSlack + int64(a.svc.Limits().RenewBatch)*renewBytesPerBlock
}

// BatchResult and BatchResponse are the answer of POST /v1/blocks (wire's).
type (
	BatchResult   = wire.BatchResult
	BatchResponse = wire.BatchResponse
)

// putBatch is POST /v1/blocks, framed as package wire says (batch.go
// there). Every block is read and checked before any reaches the
// service, and the service commits them in one batch.
func (a *api) putBatch(x *exchange) {
	if err := checkMediaType(x.r, wire.MediaBatch, false); err != nil {
		x.fail(a, err)
		return
	}
	limit := a.maxBatchBody()
	if x.r.ContentLength > limit {
		x.fail(a, wire.E(wire.KindTooLarge, wire.CodeBodyTooLarge, "request body exceeds "+strconv.FormatInt(limit, 10)+" bytes"))
		return
	}
	pay, ok := a.tokenFrom(x)
	if !ok {
		return
	}
	body := http.MaxBytesReader(x.w, x.r.Body, limit)
	items, atomic, bufs, err := a.readBatch(body, x.r.ContentLength)
	release := func() {
		for _, b := range bufs {
			a.blocks.Put(b)
		}
	}
	if err != nil {
		release()
		x.fail(a, err)
		return
	}
	// Paying (tokens.go): one token for the batch if any entry may
	// create a block; deletions and checks are free, as DELETE and HEAD
	// are.
	creates, writes := 0, 0
	for _, it := range items {
		if it.MayCreate() {
			creates++
		}
		if it.HasData() {
			writes++
		}
	}
	if !a.needToken(x, pay, creates > 0) || !a.pay(x, pay, writes, creates) {
		release()
		return
	}
	if a.keepBucket(pay) {
		for i := range items {
			items[i].KeepBucket = true
		}
	}
	results, err := a.svc.Batch(x.r.Context(), items, atomic)
	if settled(err) {
		release()
	}
	if err != nil {
		x.fail(a, err)
		return
	}
	out := BatchResponse{Results: make([]BatchResult, len(results))}
	for i, res := range results {
		br := BatchResult{ID: items[i].ID.String()}
		br.Status = res.Status.HTTPStatus()
		switch res.Status {
		case blobstore.StatusCreated, blobstore.StatusReplaced, blobstore.StatusDeleted, blobstore.StatusChecked:
		case blobstore.StatusNotFound, blobstore.StatusForbidden, blobstore.StatusPrecondition, blobstore.StatusAborted:
			// A failed entry answers the status and code its error
			// would as a problem of its own, from wire's one table.
			br.Code = res.Status.Err().(*wire.Error).Code
			if res.Status == blobstore.StatusNotFound || res.Status == blobstore.StatusForbidden {
				// Only a deletion or check is not found: a probe, as
				// a DELETE's or HEAD's 404 is; a refused proof is one
				// everywhere.
				x.failed++
			}
		default:
			// A write or deletion has no other outcome; a store that
			// says otherwise is broken, and the panic handler answers
			// 500.
			panic(fmt.Sprintf("httpapi: batch entry answered %v", res.Status))
		}
		if res.ETag != (wire.ETag{}) {
			br.ETag = res.ETag.String()
		}
		out.Results[i] = br
	}
	writeJSON(x.w, http.StatusOK, out)
}

// readBatch parses a batch body with wire's decoder. It returns the
// pooled buffers it took, even on error, for the caller to give back.
func (a *api) readBatch(body io.Reader, declared int64) ([]blobstore.PutItem, bool, []*[]byte, error) {
	d, err := wire.NewBatchDecoder(body, declared)
	if err != nil {
		return nil, false, nil, err
	}
	m := &d.Manifest
	items := make([]blobstore.PutItem, len(m.Blocks))
	for i, e := range m.Blocks {
		it, err := item(e)
		if err != nil {
			return nil, false, nil, fmt.Errorf("block %d of the batch: %w", i, err)
		}
		items[i] = it
	}
	n := d.Writes()
	limits := a.svc.Limits()
	switch {
	case len(m.Blocks) == 0:
		return nil, false, nil, invalid(wire.CodeBadRequest, "batch is empty")
	case n > limits.WriteBatch:
		return nil, false, nil, invalid(wire.CodeBatchTooLarge, fmt.Sprintf("batch holds %d blocks, the limit is %d", n, limits.WriteBatch))
	case len(m.Blocks)-n > limits.RenewBatch:
		return nil, false, nil, invalid(wire.CodeBatchTooLarge, fmt.Sprintf("batch deletes or checks %d blocks, the limit is %d", len(m.Blocks)-n, limits.RenewBatch))
	}
	bs := a.svc.BlockSize()
	if err := d.CheckSize(bs); err != nil {
		return nil, false, nil, err
	}
	bufs := make([]*[]byte, 0, n)
	for i := range items {
		if !items[i].HasData() {
			continue
		}
		bp := a.blocks.Get().(*[]byte)
		bufs = append(bufs, bp)
		buf := (*bp)[:bs]
		if err := d.ReadBlock(buf); err != nil {
			return nil, false, bufs, err
		}
		items[i].Data = buf
	}
	if err := d.End(); err != nil {
		return nil, false, bufs, err
	}
	return items, m.Atomic, bufs, nil
}

// item turns a manifest entry into the service's item.
func item(e wire.BatchEntry) (blobstore.PutItem, error) {
	id, err := wire.ParseID(e.ID)
	if err != nil {
		return blobstore.PutItem{}, err
	}
	proof, err := wire.ParseProof(e.Proof)
	if err != nil {
		return blobstore.PutItem{}, err
	}
	switch {
	case (e.Delete || e.Check) && e.CreateOnly:
		return blobstore.PutItem{}, invalid(wire.CodeBadRequest, "a deletion or check cannot be create_only")
	case e.Delete && e.Check:
		return blobstore.PutItem{}, invalid(wire.CodeBadRequest, "an entry is a deletion or a check, not both")
	}
	it := blobstore.PutItem{ID: id, Proof: wire.WriteProof(proof), Cond: blobstore.Cond{IfNoneMatchAny: e.CreateOnly}, Delete: e.Delete, Check: e.Check}
	if e.IfMatch != "" {
		etag, err := parseIfMatch([]string{e.IfMatch}, "if_match")
		if err != nil {
			return blobstore.PutItem{}, err
		}
		it.Cond.IfMatch = &etag
	}
	return it, nil
}

// jsonBodyFits checks, before the body is read, that a request's
// Content-Type is JSON (or missing) and its length within limit; it
// answers the problem and reports false when not.
func (a *api) jsonBodyFits(x *exchange, limit int64) bool {
	if err := checkMediaType(x.r, wire.MediaJSON, true); err != nil {
		x.fail(a, err)
		return false
	}
	if x.r.ContentLength > limit {
		x.fail(a, wire.E(wire.KindTooLarge, wire.CodeBodyTooLarge, "request body exceeds "+strconv.FormatInt(limit, 10)+" bytes"))
		return false
	}
	return true
}

// countFits answers the problem of a request (renew, read) that names no
// blocks or more than most, and reports whether its n blocks fit.
func (a *api) countFits(x *exchange, what string, n, most int) bool {
	switch {
	case n == 0:
		x.fail(a, invalid(wire.CodeBadRequest, what+" request names no blocks"))
		return false
	case n > most:
		x.fail(a, invalid(wire.CodeBatchTooLarge, fmt.Sprintf("%s request names %d blocks, the limit is %d", what, n, most)))
		return false
	}
	return true
}

// decodeJSONBody reads a body of at most limit bytes into v, strictly;
// it answers the problem and reports false when it cannot.
func (a *api) decodeJSONBody(x *exchange, limit int64, v any) bool {
	raw, err := io.ReadAll(http.MaxBytesReader(x.w, x.r.Body, limit))
	if err != nil {
		x.fail(a, wire.BodyError(err))
		return false
	}
	if err := wire.DecodeStrict(raw, v); err != nil {
		x.fail(a, err)
		return false
	}
	return true
}

// RenewResponse is the answer of POST /v1/renew (wire's).
type RenewResponse = wire.RenewResponse

// renew is POST /v1/renew. Each missing or refused block counts as one
// failed probe, so that renewing is no faster a way to probe than reading.
func (a *api) renew(x *exchange) {
	limit := a.maxRenewBody()
	if !a.jsonBodyFits(x, limit) {
		return
	}
	// Paying (tokens.go): every renewal, one token for the request.
	pay, ok := a.tokenFrom(x)
	if !ok || !a.needToken(x, pay, true) {
		return
	}
	var req wire.RenewRequest
	if !a.decodeJSONBody(x, limit, &req) {
		return
	}
	n, most := len(req.Blocks), a.svc.Limits().RenewBatch
	if a.opt.Tokens != nil {
		// A token pays for write_batch blocks.
		most = min(most, a.svc.Limits().WriteBatch)
	}
	if !a.countFits(x, "renew", n, most) {
		return
	}
	items := make([]blobstore.RenewItem, n)
	for i, e := range req.Blocks {
		id, err := wire.ParseID(e.ID)
		if err == nil {
			var p [wire.HashSize]byte
			p, err = wire.ParseProof(e.Proof)
			items[i] = blobstore.RenewItem{ID: id, Proof: wire.RenewProof(p)}
		}
		if err != nil {
			x.fail(a, fmt.Errorf("block %d of the request: %w", i, err))
			return
		}
	}
	if !a.pay(x, pay, 0, 0) {
		return
	}
	results, err := a.svc.Renew(x.r.Context(), items)
	if err != nil {
		x.fail(a, err)
		return
	}
	out := RenewResponse{Missing: []string{}, Refused: []string{}}
	for i, res := range results {
		switch res.Status {
		case blobstore.StatusRenewed:
			out.Renewed++
		case blobstore.StatusCurrent:
			out.Current++
		case blobstore.StatusNotFound:
			out.Missing = append(out.Missing, items[i].ID.String())
		case blobstore.StatusForbidden:
			out.Refused = append(out.Refused, items[i].ID.String())
		default:
			panic(fmt.Sprintf("httpapi: renew answered %v", res.Status))
		}
	}
	x.failed += len(out.Missing) + len(out.Refused)
	writeJSON(x.w, http.StatusOK, out)
}
