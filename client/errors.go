package client

import (
	"fmt"

	"github.com/blindstore/blindstore/wire"
)

// Kind says what went wrong, so that callers (the CLI's exit codes, an
// app's retry logic) branch on a kind, never on a message. It is wire's
// Kind: wire's table gives each kind its exit code, and the errors of
// other packages (indexfile's, say) carry theirs.
type Kind = wire.Kind

// Kinds of client errors.
const (
	// KindOther: anything not below, usually a bug.
	KindOther = wire.KindInternal
	// KindAuth: wrong password, unknown account, or credentials that no
	// longer open the account. The two are indistinguishable on purpose:
	// a wrong password locates a root that does not exist.
	KindAuth = wire.KindAuth
	// KindNotFound: no such file in the index, or a block (a shared
	// file's manifest, a file's data) that the server no longer has.
	KindNotFound = wire.KindNotFound
	// KindConflict: the name is taken, the account exists, a
	// compare-and-swap lost too many races, or a file changed while it
	// was read.
	KindConflict = wire.KindConflict
	// KindNetwork: the server is unreachable, unavailable, rate limits
	// us beyond our patience, or answers something that is not the API.
	KindNetwork = wire.KindNetwork
	// KindTampered: the server returned data that was not written under
	// this ID and key, an older version of a block, or blocks out of
	// order. Never written out as a file.
	KindTampered = wire.KindTampered
	// KindLocalIO: reading or writing a local file failed (a full disk).
	KindLocalIO = wire.KindLocalIO
	// KindInvalid: the caller's input is malformed (a capability, a
	// file name).
	KindInvalid = wire.KindInvalid
	// KindQuota: the server charges for writes with tokens and none is
	// left (or none can be fetched): the write was not made.
	KindQuota = wire.KindQuota
)

// Error is a client error: a kind, a message for the user, and the cause.
// Messages never hold a key, a proof or a block ID.
type Error struct {
	Kind Kind
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	switch {
	case e.Msg == "":
		return e.Err.Error()
	case e.Err == nil:
		return e.Msg
	}
	return e.Msg + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// ErrorKind returns e.Kind: an *Error is a wire.Kinded error.
func (e *Error) ErrorKind() Kind { return e.Kind }

// errorf builds an *Error of kind with a formatted message; a %w in the
// format wraps as fmt.Errorf does.
func errorf(kind Kind, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &Error{Kind: kind, Err: err}
}

// wrap gives err a kind (unless it already has a more telling one) and a
// context message.
func wrap(kind Kind, msg string, err error) error {
	if err == nil {
		return nil
	}
	if k := KindOf(err); k != KindOther {
		kind = k
	}
	return &Error{Kind: kind, Msg: msg, Err: err}
}

// KindOf returns the kind of the first error in err's chain that has
// one (an *Error, or a sentinel such as format.ErrTampered or
// indexfile.ErrCorrupt that carries its kind), skipping KindOther.
func KindOf(err error) Kind { return wire.KindOf(err) }
