package blobstore

import "github.com/blindstore/blindstore/wire"

// Errors are wire's: a kind, a stable problem code and a message safe to
// show to the client. These names re-export them for the server's code.
type (
	Kind  = wire.Kind
	Error = wire.Error
)

// Error kinds a server answers (wire's table gives each its HTTP status).
const (
	KindInternal     = wire.KindInternal
	KindInvalid      = wire.KindInvalid
	KindForbidden    = wire.KindForbidden
	KindNotFound     = wire.KindNotFound
	KindMethod       = wire.KindMethod
	KindPrecondition = wire.KindPrecondition
	KindTooLarge     = wire.KindTooLarge
	KindMediaType    = wire.KindMediaType
	KindHeaderTooBig = wire.KindHeaderTooBig
	KindRateLimited  = wire.KindRateLimited
	KindUnavailable  = wire.KindUnavailable
	KindFull         = wire.KindFull
	KindTimeout      = wire.KindTimeout
	KindUnauthorized = wire.KindUnauthorized
	KindAborted      = wire.KindAborted
)

// Stable problem codes (wire's).
const (
	CodeBadID              = wire.CodeBadID
	CodeBadSize            = wire.CodeBadSize
	CodeBadProof           = wire.CodeBadProof
	CodeBadETag            = wire.CodeBadETag
	CodeBadRequest         = wire.CodeBadRequest
	CodeProofMismatch      = wire.CodeProofMismatch
	CodeNotFound           = wire.CodeNotFound
	CodeNoRoute            = wire.CodeNoRoute
	CodeMethodNotAllowed   = wire.CodeMethodNotAllowed
	CodePreconditionFailed = wire.CodePreconditionFailed
	CodeBodyTooLarge       = wire.CodeBodyTooLarge
	CodeHeaderTooLarge     = wire.CodeHeaderTooLarge
	CodeUnsupportedMedia   = wire.CodeUnsupportedMedia
	CodeRateLimited        = wire.CodeRateLimited
	CodeUnavailable        = wire.CodeUnavailable
	CodeFull               = wire.CodeFull
	CodeTimeout            = wire.CodeTimeout
	CodeInternal           = wire.CodeInternal
	CodeBatchTooLarge      = wire.CodeBatchTooLarge
	CodeAborted            = wire.CodeAborted
	CodeTokenRequired      = wire.CodeTokenRequired
	CodeTokenInvalid       = wire.CodeTokenInvalid
	CodeTokenSpent         = wire.CodeTokenSpent
)

// Constructors and the kind of an error chain (wire's).
var (
	E      = wire.E
	Wrap   = wire.Wrap
	KindOf = wire.KindOf
)

// IsNotFound reports whether err is of KindNotFound.
func IsNotFound(err error) bool { return err != nil && KindOf(err) == KindNotFound }

// ErrNotFound is returned by stores for a missing block.
var ErrNotFound = E(KindNotFound, CodeNotFound, "no such block")
