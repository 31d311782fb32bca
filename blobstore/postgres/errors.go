package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/blindstore/blindstore/wire"
	"github.com/jackc/pgx/v5/pgconn"
)

// SQLSTATE codes the store acts on.
const (
	codeUniqueViolation    = "23505" // two creators of one new block
	codeCheckViolation     = "23514" // also: no partition for a row's bucket
	codeDeadlock           = "40P01"
	codeSerialization      = "40001"
	codeLockNotAvailable   = "55P03" // lock_timeout
	codeQueryCanceled      = "57014" // statement_timeout or a cancel request
	codeAdminShutdown      = "57P01"
	codeCrashShutdown      = "57P02"
	codeCannotConnectNow   = "57P03"
	codeTooManyConnections = "53300"
	codeDiskFull           = "53100"
	codeUndefinedTable     = "42P01"
)

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// retryable reports whether a transaction failed only because another one
// raced it, so that running it again will decide it afresh.
func retryable(err error) bool {
	switch pgCode(err) {
	case codeUniqueViolation, codeDeadlock, codeSerialization:
		return true
	}
	return false
}

// missingPartition reports whether a lease was routed to a bucket whose
// partition does not exist (another instance's purge dropped it).
func missingPartition(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == codeCheckViolation && strings.Contains(pe.Message, "no partition")
}

// unavailable reports whether err means the database could not be reached
// or could not answer now, as opposed to a bug: the caller should retry
// later, and the API answers 503 with Retry-After.
func unavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	// A server error, also one met while connecting, says by its code
	// whether it will pass: a server starting up will, a wrong password
	// or a missing database will not.
	if code := pgCode(err); code != "" {
		if strings.HasPrefix(code, "08") { // connection_exception class
			return true
		}
		switch code {
		case codeDeadlock, codeSerialization, codeLockNotAvailable, codeQueryCanceled,
			codeAdminShutdown, codeCrashShutdown, codeCannotConnectNow, codeTooManyConnections:
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true // could not reach the server
	}
	if pgconn.Timeout(err) || pgconn.SafeToRetry(err) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	// pgx reports use of a connection it closed after a failure this way.
	return strings.Contains(err.Error(), "conn closed") || strings.Contains(err.Error(), "closed pool")
}

// classify turns a database error into a blobstore error: of
// KindUnavailable when the database is unreachable or busy, KindFull when
// its disk is full, and otherwise a plain error (KindInternal) that says
// what the store was doing. PgError texts never include the DETAIL field,
// which is where PostgreSQL would echo key values such as block IDs.
func classify(what string, err error) error {
	if err == nil {
		return nil
	}
	var be *wire.Error
	if errors.As(err, &be) {
		return err
	}
	cause := fmt.Errorf("postgres: %s: %w", what, err)
	if pgCode(err) == codeDiskFull {
		return wire.Wrap(wire.KindFull, wire.CodeFull, "the database's disk is full", cause)
	}
	if unavailable(err) {
		return wire.Wrap(wire.KindUnavailable, wire.CodeUnavailable, "store unavailable, retry later", cause)
	}
	return cause
}
