package httpapi

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/blindstore/blindstore/blobstore"
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

// batchManifest is the JSON part of a batch write.
type batchManifest struct {
	Blocks []batchEntry `json:"blocks"`
	// Atomic: the writes apply all together or none does, and the
	// deletions only with them (blobstore.Service.Batch).
	Atomic bool `json:"atomic,omitempty"`
}

type batchEntry struct {
	ID         string `json:"id"`
	Proof      string `json:"proof"`                 // write proof, base64url
	CreateOnly bool   `json:"create_only,omitempty"` // as If-None-Match: *
	IfMatch    string `json:"if_match,omitempty"`    // as If-Match: an entity tag; one this server never issued fails the entry (412)
	Delete     bool   `json:"delete,omitempty"`      // a deletion: no data in the body
	Check      bool   `json:"check,omitempty"`       // a check (blobstore.OpCheck): no data in the body
}

// BatchResult is one block's outcome in the answer of POST /v1/blocks.
type BatchResult struct {
	ID     string `json:"id"`             // canonical lower-case form
	Status int    `json:"status"`         // 200 (check held), 201, 204, 403, 404 (deletion, check), 412 or 424 (atomic batch aborted)
	Code   string `json:"code,omitempty"` // for 403 and 412
	ETag   string `json:"etag,omitempty"` // after the write; for 412, the block's current one
}

// BatchResponse is the answer of POST /v1/blocks.
type BatchResponse struct {
	Results []BatchResult `json:"results"`
}

// putBatch is POST /v1/blocks. Body framing (Content-Type
// application/vnd.blindstore.batch): a 4-byte big-endian length L, L
// bytes of JSON manifest, then exactly n×block_size bytes of data for the
// n entries that are writes (not deletions or checks), in manifest order. Every block is
// read and checked before any reaches the service, and the service
// commits them in one batch.
func (a *api) putBatch(x *exchange) {
	if err := checkMediaType(x.r, mediaBatch, false); err != nil {
		x.fail(a, err)
		return
	}
	limit := a.maxBatchBody()
	if x.r.ContentLength > limit {
		x.fail(a, blobstore.E(blobstore.KindTooLarge, blobstore.CodeBodyTooLarge, "request body exceeds "+strconv.FormatInt(limit, 10)+" bytes"))
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
		switch res.Status {
		case blobstore.StatusCreated:
			br.Status = http.StatusCreated
		case blobstore.StatusReplaced, blobstore.StatusDeleted:
			br.Status = http.StatusNoContent
		case blobstore.StatusChecked:
			br.Status = http.StatusOK
		case blobstore.StatusNotFound:
			// Only a deletion or check: a probe, as a DELETE's or
			// HEAD's 404 is.
			br.Status, br.Code = http.StatusNotFound, blobstore.CodeNotFound
			x.failed++
		case blobstore.StatusForbidden:
			br.Status, br.Code = http.StatusForbidden, blobstore.CodeProofMismatch
			x.failed++
		case blobstore.StatusPrecondition:
			br.Status, br.Code = http.StatusPreconditionFailed, blobstore.CodePreconditionFailed
		case blobstore.StatusAborted:
			br.Status, br.Code = http.StatusFailedDependency, blobstore.CodeAborted
		default:
			// A write or deletion has no other outcome; a store that
			// says otherwise is broken, and the panic handler answers
			// 500.
			panic(fmt.Sprintf("httpapi: batch entry answered %v", res.Status))
		}
		if res.ETag != (blobstore.ETag{}) {
			br.ETag = res.ETag.String()
		}
		out.Results[i] = br
	}
	writeJSON(x.w, http.StatusOK, out)
}

// readBatch parses a batch body. It returns the pooled buffers it took,
// even on error, for the caller to give back.
func (a *api) readBatch(body io.Reader, declared int64) ([]blobstore.PutItem, bool, []*[]byte, error) {
	var prefix [4]byte
	if _, err := io.ReadFull(body, prefix[:]); err != nil {
		return nil, false, nil, framingError(err, declared, "the body must start with the manifest's 4-byte length")
	}
	l := binary.BigEndian.Uint32(prefix[:])
	switch {
	case l == 0:
		return nil, false, nil, invalid(blobstore.CodeBadRequest, "the manifest is empty")
	case l > MaxManifestBytes:
		return nil, false, nil, blobstore.E(blobstore.KindTooLarge, blobstore.CodeBodyTooLarge, "the manifest exceeds "+strconv.Itoa(MaxManifestBytes)+" bytes")
	}
	raw := make([]byte, l)
	if _, err := io.ReadFull(body, raw); err != nil {
		return nil, false, nil, framingError(err, declared, "the body ended inside the manifest")
	}
	var m batchManifest
	if err := decodeStrict(raw, &m); err != nil {
		return nil, false, nil, err
	}
	items := make([]blobstore.PutItem, len(m.Blocks))
	n := 0 // entries with data
	for i, e := range m.Blocks {
		it, err := e.item()
		if err != nil {
			return nil, false, nil, fmt.Errorf("block %d of the batch: %w", i, err)
		}
		items[i] = it
		if it.HasData() {
			n++
		}
	}
	limits := a.svc.Limits()
	switch {
	case len(m.Blocks) == 0:
		return nil, false, nil, invalid(blobstore.CodeBadRequest, "batch is empty")
	case n > limits.WriteBatch:
		return nil, false, nil, invalid(blobstore.CodeBatchTooLarge, fmt.Sprintf("batch holds %d blocks, the limit is %d", n, limits.WriteBatch))
	case len(m.Blocks)-n > limits.RenewBatch:
		return nil, false, nil, invalid(blobstore.CodeBatchTooLarge, fmt.Sprintf("batch deletes or checks %d blocks, the limit is %d", len(m.Blocks)-n, limits.RenewBatch))
	}
	bs := a.svc.BlockSize()
	if want := 4 + int64(l) + int64(n)*int64(bs); declared >= 0 && declared != want {
		return nil, false, nil, invalid(blobstore.CodeBadSize, fmt.Sprintf("a batch of %d blocks with this manifest must be %d bytes, not %d", n, want, declared))
	}
	bufs := make([]*[]byte, 0, n)
	for i := range items {
		if !items[i].HasData() {
			continue
		}
		bp := a.blocks.Get().(*[]byte)
		bufs = append(bufs, bp)
		buf := (*bp)[:bs]
		if _, err := io.ReadFull(body, buf); err != nil {
			return nil, false, bufs, framingError(err, declared, fmt.Sprintf("the body holds less than %d blocks of %d bytes", n, bs))
		}
		items[i].Data = buf
	}
	var one [1]byte
	switch k, err := io.ReadFull(body, one[:]); {
	case k > 0:
		return nil, false, bufs, invalid(blobstore.CodeBadSize, fmt.Sprintf("the body holds more than %d blocks of %d bytes", n, bs))
	case !errors.Is(err, io.EOF):
		return nil, false, bufs, bodyError(err)
	}
	return items, m.Atomic, bufs, nil
}

func (e batchEntry) item() (blobstore.PutItem, error) {
	id, err := blobstore.ParseID(e.ID)
	if err != nil {
		return blobstore.PutItem{}, err
	}
	proof, err := blobstore.ParseProof(e.Proof)
	if err != nil {
		return blobstore.PutItem{}, err
	}
	switch {
	case (e.Delete || e.Check) && e.CreateOnly:
		return blobstore.PutItem{}, invalid(blobstore.CodeBadRequest, "a deletion or check cannot be create_only")
	case e.Delete && e.Check:
		return blobstore.PutItem{}, invalid(blobstore.CodeBadRequest, "an entry is a deletion or a check, not both")
	}
	it := blobstore.PutItem{ID: id, Proof: blobstore.WriteProof(proof), Cond: blobstore.Cond{IfNoneMatchAny: e.CreateOnly}, Delete: e.Delete, Check: e.Check}
	if e.IfMatch != "" {
		etag, err := parseIfMatch([]string{e.IfMatch}, "if_match")
		if err != nil {
			return blobstore.PutItem{}, err
		}
		it.Cond.IfMatch = &etag
	}
	return it, nil
}

// framingError reports a body that ended where its framing says it must
// go on: with no declared length the client sent too little (400
// bad_size); with one, the body was cut off in transit.
func framingError(err error, declared int64, what string) error {
	if declared < 0 && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
		return invalid(blobstore.CodeBadSize, what)
	}
	return bodyError(err)
}

// decodeStrict parses one JSON value with no unknown fields and nothing
// after it: a misspelt field must not silently become a default.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalid(blobstore.CodeBadRequest, "body is not the expected JSON: "+err.Error())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return invalid(blobstore.CodeBadRequest, "body has data after its JSON value")
	}
	return nil
}

type renewRequest struct {
	Blocks []renewEntry `json:"blocks"`
}

type renewEntry struct {
	ID    string `json:"id"`
	Proof string `json:"proof"` // renew proof, base64url
}

// RenewResponse is the answer of POST /v1/renew. Missing and Refused
// list ids in canonical lower-case form; they go to the caller only.
type RenewResponse struct {
	Renewed int      `json:"renewed"` // moved to the current bucket
	Current int      `json:"current"` // already in it: nothing written
	Missing []string `json:"missing"` // no such block
	Refused []string `json:"refused"` // proof does not match
}

// renew is POST /v1/renew. Each missing or refused block counts as one
// failed probe, so that renewing is no faster a way to probe than reading.
func (a *api) renew(x *exchange) {
	if err := checkMediaType(x.r, mediaJSON, true); err != nil {
		x.fail(a, err)
		return
	}
	limit := a.maxRenewBody()
	if x.r.ContentLength > limit {
		x.fail(a, blobstore.E(blobstore.KindTooLarge, blobstore.CodeBodyTooLarge, "request body exceeds "+strconv.FormatInt(limit, 10)+" bytes"))
		return
	}
	// Paying (tokens.go): every renewal, one token for the request.
	pay, ok := a.tokenFrom(x)
	if !ok || !a.needToken(x, pay, true) {
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(x.w, x.r.Body, limit))
	if err != nil {
		x.fail(a, bodyError(err))
		return
	}
	var req renewRequest
	if err := decodeStrict(raw, &req); err != nil {
		x.fail(a, err)
		return
	}
	n, most := len(req.Blocks), a.svc.Limits().RenewBatch
	if a.opt.Tokens != nil {
		// A token pays for write_batch blocks.
		most = min(most, a.svc.Limits().WriteBatch)
	}
	switch {
	case n == 0:
		x.fail(a, invalid(blobstore.CodeBadRequest, "renew request names no blocks"))
		return
	case n > most:
		x.fail(a, invalid(blobstore.CodeBatchTooLarge, fmt.Sprintf("renew request names %d blocks, the limit is %d", n, most)))
		return
	}
	items := make([]blobstore.RenewItem, n)
	for i, e := range req.Blocks {
		id, err := blobstore.ParseID(e.ID)
		if err == nil {
			var p [blobstore.HashSize]byte
			p, err = blobstore.ParseProof(e.Proof)
			items[i] = blobstore.RenewItem{ID: id, Proof: blobstore.RenewProof(p)}
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
