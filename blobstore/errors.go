package blobstore

import (
	"errors"
	"net/http"
)

// Kind classifies errors so that callers branch on what happened, not on
// message strings. Each kind maps to one HTTP status and one CLI exit code.
type Kind uint8

// Error kinds.
const (
	KindInternal     Kind = iota // a bug or an unexpected failure
	KindInvalid                  // malformed request: 400
	KindForbidden                // proof mismatch: 403
	KindNotFound                 // no such block or route: 404
	KindMethod                   // method not allowed: 405
	KindPrecondition             // conditional request failed: 412
	KindTooLarge                 // body over the cap: 413
	KindMediaType                // wrong Content-Type: 415
	KindHeaderTooBig             // headers over the cap: 431
	KindRateLimited              // too many failed probes: 429
	KindUnavailable              // store or a dependency is down: 503
	KindFull                     // store at capacity: 507
	KindTimeout                  // the client was too slow: 408
	KindUnauthorized             // a write that must be paid carries no valid token: 401
)

// HTTPStatus returns the status a kind is answered with.
func (k Kind) HTTPStatus() int {
	switch k {
	case KindInvalid:
		return http.StatusBadRequest
	case KindForbidden:
		return http.StatusForbidden
	case KindNotFound:
		return http.StatusNotFound
	case KindMethod:
		return http.StatusMethodNotAllowed
	case KindPrecondition:
		return http.StatusPreconditionFailed
	case KindTooLarge:
		return http.StatusRequestEntityTooLarge
	case KindMediaType:
		return http.StatusUnsupportedMediaType
	case KindHeaderTooBig:
		return http.StatusRequestHeaderFieldsTooLarge
	case KindRateLimited:
		return http.StatusTooManyRequests
	case KindUnavailable:
		return http.StatusServiceUnavailable
	case KindFull:
		return http.StatusInsufficientStorage
	case KindTimeout:
		return http.StatusRequestTimeout
	case KindUnauthorized:
		return http.StatusUnauthorized
	}
	return http.StatusInternalServerError
}

// Stable problem codes: the `code` member of problem+json bodies. Clients
// and scripts rely on them; never rename one.
const (
	CodeBadID              = "bad_id"
	CodeBadSize            = "bad_size"
	CodeBadProof           = "bad_proof"
	CodeBadETag            = "bad_etag"
	CodeBadRequest         = "bad_request"
	CodeProofMismatch      = "proof_mismatch"
	CodeNotFound           = "not_found"
	CodeNoRoute            = "no_route"
	CodeMethodNotAllowed   = "method_not_allowed"
	CodePreconditionFailed = "precondition_failed"
	CodeBodyTooLarge       = "body_too_large"
	CodeHeaderTooLarge     = "header_too_large"
	CodeUnsupportedMedia   = "unsupported_media_type"
	CodeRateLimited        = "rate_limited"
	CodeUnavailable        = "unavailable"
	CodeFull               = "store_full"
	CodeTimeout            = "request_timeout"
	CodeInternal           = "internal"
	CodeBatchTooLarge      = "batch_too_large"
	CodeAborted            = "aborted" // an atomic batch's entry not applied because another failed
	// Privacy Pass (DESIGN.md §11): a write that must be paid came with
	// no token, with one that is not valid here, or with a spent one.
	CodeTokenRequired = "token_required"
	CodeTokenInvalid  = "token_invalid"
	CodeTokenSpent    = "token_spent"
)

// Error is a blobstore error: a kind, a stable code and a message safe to
// show to the client (it never contains an ID, proof or ETag), optionally
// wrapping a cause that stays server-side.
type Error struct {
	Kind Kind
	Code string
	Msg  string
	Err  error
}

// E builds an *Error.
func E(kind Kind, code, msg string) *Error { return &Error{Kind: kind, Code: code, Msg: msg} }

// Wrap builds an *Error around a cause.
func Wrap(kind Kind, code, msg string, err error) *Error {
	return &Error{Kind: kind, Code: code, Msg: msg, Err: err}
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the kind of the first *Error in err's chain, or
// KindInternal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// IsNotFound reports whether err is of KindNotFound.
func IsNotFound(err error) bool { return err != nil && KindOf(err) == KindNotFound }

// ErrNotFound is returned by stores for a missing block.
var ErrNotFound = E(KindNotFound, CodeNotFound, "no such block")
