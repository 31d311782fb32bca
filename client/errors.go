package client

import (
	"errors"
	"fmt"

	"github.com/blindstore/blindstore/indexfile"
)

// Kind says what went wrong, so that callers (the CLI's exit codes, an
// app's retry logic) branch on a kind, never on a message.
type Kind uint8

// Kinds of client errors.
const (
	// KindOther: anything not below, usually a bug.
	KindOther Kind = iota
	// KindAuth: wrong password, unknown account, or credentials that no
	// longer open the account. The two are indistinguishable on purpose:
	// a wrong password locates a root that does not exist.
	KindAuth
	// KindNotFound: no such file in the index, or a block (a shared
	// file's manifest, a file's data) that the server no longer has.
	KindNotFound
	// KindConflict: the name is taken, the account exists, a
	// compare-and-swap lost too many races, or a file changed while it
	// was read.
	KindConflict
	// KindNetwork: the server is unreachable, unavailable, rate limits
	// us beyond our patience, or answers something that is not the API.
	KindNetwork
	// KindTampered: the server returned data that was not written under
	// this ID and key, an older version of a block, or blocks out of
	// order. Never written out as a file.
	KindTampered
	// KindLocalIO: reading or writing a local file failed (a full disk).
	KindLocalIO
	// KindInvalid: the caller's input is malformed (a capability, a
	// file name).
	KindInvalid
	// KindQuota: the server charges for writes with tokens and none is
	// left (or none can be fetched): the write was not made.
	KindQuota
)

func (k Kind) String() string {
	switch k {
	case KindAuth:
		return "auth"
	case KindNotFound:
		return "not found"
	case KindConflict:
		return "conflict"
	case KindNetwork:
		return "network"
	case KindTampered:
		return "tampered"
	case KindLocalIO:
		return "local i/o"
	case KindInvalid:
		return "invalid"
	case KindQuota:
		return "quota"
	}
	return "other"
}

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

// KindOf returns the kind of the first *Error in err's chain that has
// one. Authentication failures of blocks (ErrTampered) and bad frames are
// tampering wherever they come from.
func KindOf(err error) Kind {
	if err == nil {
		return KindOther
	}
	for e := err; e != nil; {
		var ce *Error
		if !errors.As(e, &ce) {
			break
		}
		if ce.Kind != KindOther {
			return ce.Kind
		}
		e = ce.Err
	}
	if errors.Is(err, ErrTampered) || errors.Is(err, ErrBadFrame) || errors.Is(err, ErrBlockSize) || errors.Is(err, ErrBadRoot) || errors.Is(err, ErrBadHead) || errors.Is(err, indexfile.ErrCorrupt) || errors.Is(err, indexfile.ErrVersion) {
		return KindTampered
	}
	return KindOther
}
