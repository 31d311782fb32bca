package wire

import (
	"errors"
	"fmt"
	"net/http"
)

// Kind classifies errors so that callers branch on what happened, not on
// message strings. The server's kinds each answer one HTTP status; the
// client's (KindAuth and after) never travel over HTTP. Every kind has one
// exit code of the command-line tools. The table below is the only place
// that says which.
type Kind uint8

// Error kinds. The numbers are not part of the API (codes are); never
// rely on them outside this process.
const (
	// KindInternal is a bug or an unexpected failure; a client calls it
	// "other".
	KindInternal     Kind = iota
	KindInvalid           // malformed request or input: 400
	KindForbidden         // proof mismatch: 403
	KindNotFound          // no such block or route: 404
	KindMethod            // method not allowed: 405
	KindPrecondition      // conditional request failed: 412
	KindTooLarge          // body over the cap: 413
	KindMediaType         // wrong Content-Type: 415
	KindHeaderTooBig      // headers over the cap: 431
	KindRateLimited       // too many failed probes: 429
	KindUnavailable       // store or a dependency is down: 503
	KindFull              // store at capacity: 507
	KindTimeout           // the client was too slow: 408
	KindUnauthorized      // a write that must be paid carries no valid token: 401
	// KindAborted is an atomic batch's entry that was not applied because
	// another entry failed: 424, in a batch's results and in a problem
	// alike.
	KindAborted

	// Kinds a client meets: they describe its own failures and are never
	// answered by a server.

	// KindAuth: wrong password, unknown account, or credentials that no
	// longer open the account (indistinguishable on purpose), or a block
	// whose write proof the server refuses.
	KindAuth
	// KindConflict: the name is taken, the account exists, a
	// compare-and-swap lost, or a file changed while it was read.
	KindConflict
	// KindNetwork: the server is unreachable, unavailable, rate limiting,
	// or answers something that is not the API.
	KindNetwork
	// KindTampered: the server returned data that was not written under
	// this ID and key, an older version of a block, or blocks out of order.
	KindTampered
	// KindLocalIO: reading or writing a local file failed.
	KindLocalIO
	// KindQuota: the server charges for writes with tokens and none is
	// left (or none can be fetched).
	KindQuota

	numKinds
)

// Exit codes of the command-line tools (blind, blindstored). Scripts rely
// on them: never renumber one.
const (
	ExitOK       = 0
	ExitOther    = 1 // any failure without a better code
	ExitUsage    = 2 // bad usage, malformed input
	ExitAuth     = 3
	ExitNotFound = 4
	ExitConflict = 5
	ExitNetwork  = 6 // unreachable or unavailable server, store or dependency
	ExitTampered = 7
	ExitLocalIO  = 8
	ExitQuota    = 9
)

// kindInfo is one row of the kind table.
type kindInfo struct {
	name   string // as a client reports it ("kind" in blind --json)
	status int    // the HTTP status a server answers; 0: never answered
	exit   int    // exit code of a command that fails with it
}

// kinds is the table of kinds: kind → HTTP status → exit code.
var kinds = [numKinds]kindInfo{
	KindInternal:     {"other", http.StatusInternalServerError, ExitOther},
	KindInvalid:      {"invalid", http.StatusBadRequest, ExitUsage},
	KindForbidden:    {"forbidden", http.StatusForbidden, ExitAuth},
	KindNotFound:     {"not found", http.StatusNotFound, ExitNotFound},
	KindMethod:       {"method not allowed", http.StatusMethodNotAllowed, ExitOther},
	KindPrecondition: {"precondition failed", http.StatusPreconditionFailed, ExitConflict},
	KindTooLarge:     {"too large", http.StatusRequestEntityTooLarge, ExitOther},
	KindMediaType:    {"unsupported media type", http.StatusUnsupportedMediaType, ExitOther},
	KindHeaderTooBig: {"headers too large", http.StatusRequestHeaderFieldsTooLarge, ExitOther},
	KindRateLimited:  {"rate limited", http.StatusTooManyRequests, ExitNetwork},
	KindUnavailable:  {"unavailable", http.StatusServiceUnavailable, ExitNetwork},
	KindFull:         {"full", http.StatusInsufficientStorage, ExitNetwork},
	KindTimeout:      {"timeout", http.StatusRequestTimeout, ExitNetwork},
	KindUnauthorized: {"unauthorized", http.StatusUnauthorized, ExitQuota},
	KindAborted:      {"aborted", http.StatusFailedDependency, ExitConflict},
	KindAuth:         {"auth", 0, ExitAuth},
	KindConflict:     {"conflict", 0, ExitConflict},
	KindNetwork:      {"network", 0, ExitNetwork},
	KindTampered:     {"tampered", 0, ExitTampered},
	KindLocalIO:      {"local i/o", 0, ExitLocalIO},
	KindQuota:        {"quota", 0, ExitQuota},
}

func (k Kind) info() kindInfo {
	if k >= numKinds {
		return kinds[KindInternal]
	}
	return kinds[k]
}

// String names the kind as a client reports it.
func (k Kind) String() string {
	if k >= numKinds {
		return fmt.Sprintf("kind(%d)", uint8(k))
	}
	return k.info().name
}

// HTTPStatus returns the status a server answers a kind with. A client's
// kind is never answered: should one reach a server's handler, it is a
// bug, answered 500.
func (k Kind) HTTPStatus() int {
	if s := k.info().status; s != 0 {
		return s
	}
	return http.StatusInternalServerError
}

// ExitCode returns the exit code of a command that fails with an error of
// this kind.
func (k Kind) ExitCode() int { return k.info().exit }

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
	// Privacy Pass: a write that must be paid came with no token, with
	// one that is not valid here, or with a spent one.
	CodeTokenRequired = "token_required"
	CodeTokenInvalid  = "token_invalid"
	CodeTokenSpent    = "token_spent"
)

// ProblemCode is one row of the code table: a problem code, the kind a
// server gives it (and so its HTTP status), and the kind a client makes
// of it (and so the exit code of blind). A client's kind differs where
// the client reads the problem its own way: a refused proof is an
// authentication failure to it, a full store a server it cannot use now,
// and a malformed request a bug of its own ("other").
type ProblemCode struct {
	Code   string
	Kind   Kind // the server's
	Client Kind // the client's
}

// Status is the HTTP status a problem with this code is answered with.
func (p ProblemCode) Status() int { return p.Kind.HTTPStatus() }

// ExitCode is the exit code of blind when a request fails with this code.
func (p ProblemCode) ExitCode() int { return p.Client.ExitCode() }

// problemCodes is the table of codes: code → kind → status, and code →
// the client's kind → exit code.
var problemCodes = []ProblemCode{
	{CodeBadID, KindInvalid, KindInternal},
	{CodeBadSize, KindInvalid, KindInternal},
	{CodeBadProof, KindInvalid, KindInternal},
	{CodeBadETag, KindInvalid, KindInternal},
	{CodeBadRequest, KindInvalid, KindInternal},
	{CodeBatchTooLarge, KindInvalid, KindInternal},
	{CodeProofMismatch, KindForbidden, KindAuth},
	{CodeNotFound, KindNotFound, KindNotFound},
	{CodeNoRoute, KindNotFound, KindInternal},
	{CodeMethodNotAllowed, KindMethod, KindInternal},
	{CodePreconditionFailed, KindPrecondition, KindConflict},
	{CodeBodyTooLarge, KindTooLarge, KindInternal},
	{CodeHeaderTooLarge, KindHeaderTooBig, KindInternal},
	{CodeUnsupportedMedia, KindMediaType, KindInternal},
	{CodeRateLimited, KindRateLimited, KindNetwork},
	{CodeUnavailable, KindUnavailable, KindNetwork},
	{CodeFull, KindFull, KindNetwork},
	{CodeTimeout, KindTimeout, KindInternal},
	{CodeInternal, KindInternal, KindInternal},
	{CodeAborted, KindAborted, KindInternal},
	{CodeTokenRequired, KindUnauthorized, KindQuota},
	{CodeTokenInvalid, KindUnauthorized, KindQuota},
	{CodeTokenSpent, KindUnauthorized, KindQuota},
}

var codeIndex = func() map[string]ProblemCode {
	m := make(map[string]ProblemCode, len(problemCodes))
	for _, p := range problemCodes {
		m[p.Code] = p
	}
	return m
}()

// ProblemCodes returns the code table, in a fresh slice.
func ProblemCodes() []ProblemCode { return append([]ProblemCode(nil), problemCodes...) }

// LookupCode returns the row of a problem code; ok is false for a code
// this version does not know (a newer server's, or not the API's).
func LookupCode(code string) (p ProblemCode, ok bool) {
	p, ok = codeIndex[code]
	return p, ok
}

// StatusOf returns the HTTP status of a problem code (500 for an unknown
// one).
func StatusOf(code string) int {
	p, ok := LookupCode(code)
	if !ok {
		return http.StatusInternalServerError
	}
	return p.Status()
}

// Error is an API error: a kind, a stable code and a message safe to
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

// ErrorKind returns e.Kind: an *Error is a Kinded error.
func (e *Error) ErrorKind() Kind { return e.Kind }

// Kinded is an error that knows its kind. KindOf finds it in a chain, so
// an error is given its kind where it is made, not by its callers.
type Kinded interface {
	error
	ErrorKind() Kind
}

// sentinel is an error value of a fixed kind, compared with errors.Is.
type sentinel struct {
	kind Kind
	msg  string
}

func (s *sentinel) Error() string   { return s.msg }
func (s *sentinel) ErrorKind() Kind { return s.kind }

// Sentinel returns a new error value of the given kind, for a package's
// exported sentinel errors: callers compare it with errors.Is, and KindOf
// finds its kind wherever it ends up wrapped.
func Sentinel(kind Kind, msg string) error { return &sentinel{kind: kind, msg: msg} }

// KindOf returns the kind of the first Kinded error in err's chain whose
// kind is not KindInternal, or KindInternal: an outer error that knows no
// more than "other" defers to the cause it wraps.
func KindOf(err error) Kind {
	for err != nil {
		var k Kinded
		if !errors.As(err, &k) {
			break
		}
		if kind := k.ErrorKind(); kind != KindInternal {
			return kind
		}
		err = errors.Unwrap(k)
	}
	return KindInternal
}
