package httpapi

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/wire"
)

// getBlock serves GET and HEAD. A HEAD, or a GET with If-None-Match,
// asks the store for the ETag first, so a 304 never reads the data.
func (a *api) getBlock(x *exchange) {
	ctx := x.r.Context()
	id, err := wire.ParseID(x.ps.ByName("id"))
	if err != nil {
		x.fail(a, err)
		return
	}
	inm, err := parseIfNoneMatchRead(x.r.Header.Values("If-None-Match"))
	if err != nil {
		x.fail(a, err)
		return
	}
	head := x.r.Method == http.MethodHead
	if inm != nil || head {
		etag, err := a.svc.Head(ctx, id)
		if err != nil {
			a.readFailed(x, err)
			return
		}
		if inm.matches(etag) {
			notModified(x.w, etag)
			return
		}
		if head {
			blockHeaders(x.w, etag, a.svc.BlockSize())
			x.w.WriteHeader(http.StatusOK)
			return
		}
	}
	// Straight from the store's pages when it can lend them and the
	// answer fits in the connection's send buffer, so that writing it
	// never waits on the client inside the store's read transaction
	// (room.go); otherwise through a copy, which the client may take as
	// slowly as the write timeout lets it. The kernel copies the block
	// before the write returns, inside the transaction: sendfile(2)
	// would leave it references to the file's pages, which a commit may
	// rewrite with another block once the transaction has ended, while
	// the answer still waits in a socket buffer.
	if roomFor(ctx, a.svc.BlockSize()) {
		answered := false
		lent, err := a.svc.Lend(ctx, id, func(data []byte, etag wire.ETag) error {
			answered = true
			answerBlock(x.w, inm, etag, data)
			return nil
		})
		if lent {
			if err != nil && !answered {
				a.readFailed(x, err)
			}
			return
		}
	}
	bufp := a.blocks.Get().(*[]byte)
	defer a.blocks.Put(bufp)
	data, etag, err := a.svc.Get(ctx, id, (*bufp)[:0])
	if err != nil {
		a.readFailed(x, err)
		return
	}
	answerBlock(x.w, inm, etag, data)
}

// answerBlock writes a block read for a GET. The block may have changed
// since a Head that the request's If-None-Match asked for: the answer is
// for the version actually read.
func answerBlock(w http.ResponseWriter, inm *noneMatch, etag wire.ETag, data []byte) {
	if inm.matches(etag) {
		notModified(w, etag)
		return
	}
	blockHeaders(w, etag, len(data))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}

func (a *api) readFailed(x *exchange, err error) {
	switch wire.KindOf(err) {
	case wire.KindNotFound:
		x.failed++
	case wire.KindInternal:
		// As the service does for writes: the cause goes to the log, the
		// client learns only that the store cannot answer now.
		err = wire.Wrap(wire.KindUnavailable, wire.CodeUnavailable, "store unavailable, retry later", err)
	}
	x.fail(a, err)
}

// The values of a block answer's fixed headers, shared by every answer:
// net/http only reads them, and Set would allocate a slice per header
// per request. Keys are in canonical form.
var (
	valBlockType = []string{wire.MediaBlock}
	valNoStore   = []string{"no-store"}
)

func blockHeaders(w http.ResponseWriter, etag wire.ETag, n int) {
	h := w.Header()
	h["Content-Type"] = valBlockType
	h["Content-Length"] = []string{strconv.Itoa(n)}
	h["Etag"] = []string{etag.String()}
	// Ciphertext by ID is useless to a shared cache and would tell its
	// operator which blocks are read; the client keeps ETags itself.
	h["Cache-Control"] = valNoStore
}

func notModified(w http.ResponseWriter, etag wire.ETag) {
	h := w.Header()
	h["Etag"] = []string{etag.String()}
	h["Cache-Control"] = valNoStore
	w.WriteHeader(http.StatusNotModified)
}

// parseWrite reads what every single-block write carries: the block ID,
// the write proof, and the preconditions (create-only allowed on PUT only).
func parseWrite(x *exchange, put bool) (wire.ID, wire.WriteProof, blobstore.Cond, error) {
	id, err := wire.ParseID(x.ps.ByName("id"))
	if err != nil {
		return id, wire.WriteProof{}, blobstore.Cond{}, err
	}
	proof, err := wire.ParseProof(x.r.Header.Get(wire.HeaderProof))
	if err != nil {
		return id, wire.WriteProof{}, blobstore.Cond{}, err
	}
	cond, err := parseWriteCond(x.r.Header, put)
	return id, wire.WriteProof(proof), cond, err
}

// putBlock creates or overwrites one block. Everything that can be
// checked without the body is checked first; then the body is read whole
// into a pooled buffer and only a body of exactly block_size bytes goes
// to the service, so a short, long, slow or broken body writes nothing.
func (a *api) putBlock(x *exchange) {
	id, proof, cond, err := parseWrite(x, true)
	if err != nil {
		x.fail(a, err)
		return
	}
	if err := checkMediaType(x.r, wire.MediaBlock, true); err != nil {
		x.fail(a, err)
		return
	}
	bs := a.svc.BlockSize()
	if err := checkLength(x.r.ContentLength, int64(bs)); err != nil {
		x.fail(a, err)
		return
	}
	// Paying (tokens.go): a put without If-Match may create a block.
	creates := 0
	if cond.IfMatch == nil {
		creates = 1
	}
	pay, ok := a.tokenFrom(x)
	if !ok || !a.needToken(x, pay, creates > 0) {
		return
	}
	bufp := a.blocks.Get().(*[]byte)
	data, err := readBlock(x.r.Body, *bufp, bs, x.r.ContentLength)
	if err != nil {
		a.blocks.Put(bufp)
		x.fail(a, err)
		return
	}
	if !a.pay(x, pay, 1, creates) {
		a.blocks.Put(bufp)
		return
	}
	res, err := a.svc.Put(x.r.Context(), blobstore.PutItem{ID: id, Proof: proof, Data: data, Cond: cond, KeepBucket: a.keepBucket(pay)})
	if settled(err) {
		a.blocks.Put(bufp)
	}
	if err != nil {
		if wire.KindOf(err) == wire.KindForbidden {
			x.failed++
		}
		if wire.KindOf(err) == wire.KindPrecondition && res.ETag != (wire.ETag{}) {
			// Only the proof's holder gets this far, and the current
			// ETag lets it re-read and retry its compare-and-swap.
			x.w.Header().Set("ETag", res.ETag.String())
		}
		x.fail(a, err)
		return
	}
	x.w.Header().Set("ETag", res.ETag.String())
	x.w.Header().Set("Cache-Control", "no-store")
	if res.Status == blobstore.StatusCreated {
		x.w.WriteHeader(http.StatusCreated)
	} else {
		x.w.WriteHeader(http.StatusNoContent)
	}
}

// settled reports whether the service is done with a request's data: it
// returned a decided outcome. After a cancelled or failed commit a write
// pool may still hold the op, so its buffer must not be reused.
func settled(err error) bool {
	if err == nil {
		return true
	}
	switch wire.KindOf(err) {
	case wire.KindInvalid, wire.KindForbidden, wire.KindPrecondition, wire.KindNotFound:
		return true
	}
	return false
}

// readBlock reads exactly size bytes of body into buf (len size+1).
// declared is the request's Content-Length (-1 when chunked), already
// checked to be size or unknown.
func readBlock(body io.Reader, buf []byte, size int, declared int64) ([]byte, error) {
	n, err := io.ReadFull(body, buf[:size+1])
	switch {
	case err == nil:
		return nil, wire.E(wire.KindTooLarge, wire.CodeBodyTooLarge, "block data must be exactly "+strconv.Itoa(size)+" bytes")
	case n == size && errors.Is(err, io.ErrUnexpectedEOF):
		return buf[:size], nil
	case declared < 0 && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)):
		return nil, badSize(size, n)
	}
	// A body cut short of its declared length, a timeout, or a broken
	// connection.
	return nil, wire.BodyError(err)
}

func badSize(size, n int) error {
	return invalid(wire.CodeBadSize, "block data must be exactly "+strconv.Itoa(size)+" bytes, got "+strconv.Itoa(n))
}

// checkLength refuses a declared Content-Length other than size before
// reading anything.
func checkLength(cl, size int64) error {
	switch {
	case cl > size:
		return wire.E(wire.KindTooLarge, wire.CodeBodyTooLarge, "block data must be exactly "+strconv.FormatInt(size, 10)+" bytes")
	case cl >= 0 && cl < size:
		return invalid(wire.CodeBadSize, "block data must be exactly "+strconv.FormatInt(size, 10)+" bytes, got "+strconv.FormatInt(cl, 10))
	}
	return nil
}

// checkMediaType accepts a Content-Type of want (parameters ignored),
// or none at all when allowMissing.
func checkMediaType(r *http.Request, want string, allowMissing bool) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" && allowMissing {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != want {
		return wire.E(wire.KindMediaType, wire.CodeUnsupportedMedia, "Content-Type must be "+want)
	}
	return nil
}

func (a *api) deleteBlock(x *exchange) {
	id, proof, cond, err := parseWrite(x, false)
	if err != nil {
		x.fail(a, err)
		return
	}
	res, err := a.svc.Delete(x.r.Context(), id, proof, cond)
	if err != nil {
		switch wire.KindOf(err) {
		case wire.KindForbidden, wire.KindNotFound:
			x.failed++
		case wire.KindPrecondition:
			if res.ETag != (wire.ETag{}) {
				x.w.Header().Set("ETag", res.ETag.String())
			}
		}
		x.fail(a, err)
		return
	}
	x.w.Header().Set("Cache-Control", "no-store")
	x.w.WriteHeader(http.StatusNoContent)
}

// parseWriteCond reads the preconditions of a PUT (create) or DELETE.
//
// RFC 9110 §13.1: a header that is not entity-tag syntax is a 400
// bad_etag; a well-formed entity-tag this server never issued (another
// format, a weak tag under If-Match's strong comparison) is no error but
// a tag that matches no block. If-Match carries the client's
// compare-and-swap. "If-Match: *" (the block must exist) is refused with 400
// bad_etag rather than ignored or emulated: the store's conditions cannot
// express it atomically, and a check before the write would race. For
// the same reason If-None-Match takes "*" (create only, PUT only) and
// tags this server never issued, which match nothing and so leave the
// condition true, but not one of its own tags.
func parseWriteCond(h http.Header, put bool) (blobstore.Cond, error) {
	var c blobstore.Cond
	if vs := h.Values("If-None-Match"); len(vs) > 0 {
		tags, star, err := parseEntityTags(vs)
		if err != nil {
			return c, invalid(wire.CodeBadETag, "If-None-Match "+err.Error())
		}
		if star {
			if !put {
				return c, invalid(wire.CodeBadRequest, "If-None-Match: * is not supported on DELETE")
			}
			c.IfNoneMatchAny = true
		}
		for _, t := range tags {
			if _, ours := t.etag(); ours {
				return c, invalid(wire.CodeBadETag, "on a write, If-None-Match takes * (create only); a condition on one of this server's entity tags is not supported")
			}
		}
	}
	if vs := h.Values("If-Match"); len(vs) > 0 {
		e, err := parseIfMatch(vs, "If-Match")
		if err != nil {
			return c, err
		}
		c.IfMatch = &e
	}
	return c, nil
}

// unmatchable stands in the store's compare-and-swap for an If-Match
// (or a batch entry's if_match) that names no tag this server issued:
// RFC 9110 makes such a condition false, not malformed. It is the ETag
// of empty data, which no block has (every block is block_size bytes,
// and finding other data with this hash prefix is a 128-bit preimage),
// so the store's own comparison fails as it does for a stale tag, with
// the same order of checks, status and ETag header.
var unmatchable = wire.ETagOf(nil)

// parseIfMatch reads If-Match (field names it in errors) for the strong
// comparison RFC 9110 §13.1.1 asks: the one tag of this server's that it
// names, or unmatchable when it names none.
func parseIfMatch(vs []string, field string) (wire.ETag, error) {
	tags, star, err := parseEntityTags(vs)
	if err != nil {
		return wire.ETag{}, invalid(wire.CodeBadETag, field+" "+err.Error())
	}
	if star {
		return wire.ETag{}, invalid(wire.CodeBadETag, field+": * is not supported; send the block's ETag")
	}
	found := false
	var e wire.ETag
	for _, t := range tags {
		if t.weak {
			// A weak tag never matches under strong comparison.
			continue
		}
		te, ours := t.etag()
		if !ours {
			continue
		}
		if found && te != e {
			// A block has one ETag at a time; "either of two versions"
			// is not a condition the store can evaluate atomically.
			return wire.ETag{}, invalid(wire.CodeBadETag, field+" may name only one of this server's entity tags")
		}
		e, found = te, true
	}
	if !found {
		return unmatchable, nil
	}
	return e, nil
}

// entityTag is one entity-tag of a request (RFC 9110 §8.8.3).
type entityTag struct {
	weak   bool
	opaque string // quotes included, W/ removed
}

// etag returns the tag as one this server issued, if it has that format.
func (t entityTag) etag() (wire.ETag, bool) {
	e, err := wire.ParseETag(t.opaque)
	return e, err == nil
}

// errEntityTags is the complaint about a header that is not `"*" /
// #entity-tag`; callers prefix the field's name.
var errEntityTags = errors.New("must be * or a list of quoted entity tags")

// parseEntityTags parses the field values of If-Match or If-None-Match:
// "*" alone, or a comma-separated list of entity tags. It refuses only
// what is not that syntax; what the tags mean is the caller's to decide.
// An opaque tag may hold a comma, so the list is scanned, not split.
func parseEntityTags(vs []string) (tags []entityTag, star bool, err error) {
	stars := 0
	for _, v := range vs {
		for i := 0; i < len(v); {
			switch c := v[i]; {
			case c == ' ' || c == '\t' || c == ',':
				i++
				continue
			case c == '*':
				stars++
				i++
			default:
				t, n, ok := scanEntityTag(v[i:])
				if !ok {
					return nil, false, errEntityTags
				}
				tags = append(tags, t)
				i += n
			}
			// After an element: optional whitespace, then a comma or the end.
			for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
				i++
			}
			if i < len(v) && v[i] != ',' {
				return nil, false, errEntityTags
			}
		}
	}
	switch {
	case stars > 0 && (stars > 1 || len(tags) > 0):
		return nil, false, errEntityTags
	case stars == 0 && len(tags) == 0:
		return nil, false, errors.New("is empty")
	}
	return tags, stars == 1, nil
}

// scanEntityTag reads one entity-tag at the start of s: [ "W/" ] DQUOTE
// *etagc DQUOTE, etagc being %x21 / %x23-7E / obs-text. It returns the
// tag and the bytes it took.
func scanEntityTag(s string) (entityTag, int, bool) {
	var t entityTag
	i := 0
	if strings.HasPrefix(s, "W/") {
		t.weak, i = true, 2
	}
	if i >= len(s) || s[i] != '"' {
		return t, 0, false
	}
	for j := i + 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '"':
			t.opaque = s[i : j+1]
			return t, j + 1, true
		case c < 0x21 || c == 0x7f:
			return t, 0, false
		}
	}
	return t, 0, false
}

// noneMatch is a parsed If-None-Match of a read: nil when absent.
type noneMatch struct {
	any  bool
	tags []string // opaque tags, quotes included, W/ removed
}

// matches applies RFC 9110's weak comparison, which If-None-Match uses.
func (n *noneMatch) matches(e wire.ETag) bool {
	if n == nil {
		return false
	}
	if n.any {
		return true
	}
	s := e.String()
	for _, t := range n.tags {
		if t == s {
			return true
		}
	}
	return false
}

// parseIfNoneMatchRead parses "*" or a list of entity tags (RFC 9110
// §8.8.3). A tag this server never issued is valid and simply never
// matches; a header that is not entity-tag syntax is refused.
func parseIfNoneMatchRead(vs []string) (*noneMatch, error) {
	if len(vs) == 0 {
		return nil, nil
	}
	tags, star, err := parseEntityTags(vs)
	if err != nil {
		return nil, invalid(wire.CodeBadETag, "If-None-Match "+err.Error())
	}
	n := &noneMatch{any: star}
	for _, t := range tags {
		n.tags = append(n.tags, t.opaque)
	}
	return n, nil
}
