package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/blindstore/blindstore/wire"
)

// problemType is the RFC 9457 "type" of every problem this API answers.
// "about:blank" says the status code is the whole meaning and the title is
// its reason phrase; the stable, machine-readable distinction is the
// `code` member, so no problem-type URL has to be hosted and kept alive.
const problemType = "about:blank"

// unavailableRetry is the Retry-After sent with 503: long enough for a
// restarting database, short enough that a client does not give up.
const unavailableRetry = 5 * time.Second

// problem is the body of every error answer: wire's RFC 9457 Problem.
type problem = wire.Problem

// writeProblem answers status with a problem+json body.
func writeProblem(w http.ResponseWriter, r *http.Request, status int, code, detail string) {
	h := w.Header()
	h.Set("Content-Type", wire.MediaProblem)
	h.Set("Cache-Control", "no-store")
	body, err := json.Marshal(problem{Type: problemType, Title: http.StatusText(status), Status: status, Detail: detail, Code: code})
	if err != nil {
		// Marshalling four strings and an int cannot fail; if it ever
		// does, an empty body still carries the status.
		body = nil
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// writeCode answers a problem with its code's status in wire's table.
func writeCode(w http.ResponseWriter, r *http.Request, code, detail string) {
	writeProblem(w, r, wire.StatusOf(code), code, detail)
}

// retryAfter formats a duration as Retry-After seconds, at least 1: a
// client told "0" would retry at once and be refused again.
func retryAfter(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}

// fail answers err as a problem. Client errors are not logged (the access
// line is enough, and their details may echo what the client sent); server
// errors are logged with their cause only, never with request data.
func (a *api) fail(w http.ResponseWriter, r *http.Request, route string, err error) {
	kind := wire.KindOf(err)
	status := kind.HTTPStatus()
	var be *wire.Error
	hasBE := errors.As(err, &be)
	code, detail := wire.CodeInternal, "internal error"
	if hasBE {
		code, detail = be.Code, be.Msg
		// A wrapping prefix such as "block 3 of the batch: " helps the
		// client find its mistake; a hidden cause (be.Err) must not reach
		// it, so the full message is used only when there is none.
		if be.Err == nil && status < 500 {
			detail = err.Error()
		}
	}
	switch {
	case r.Context().Err() != nil && status >= 500:
		// The client went away and its context cancelled the store call:
		// nothing failed on our side, and nobody reads this answer.
		a.log.LogAttrs(r.Context(), slog.LevelDebug, "request abandoned by client", slog.String("route", route))
		status, code, detail = http.StatusServiceUnavailable, wire.CodeUnavailable, "request abandoned"
	case kind == wire.KindUnavailable:
		a.log.LogAttrs(context.WithoutCancel(r.Context()), slog.LevelWarn, "service unavailable",
			slog.String("method", r.Method), slog.String("route", route), slog.String("err", causeOf(err)))
	case kind == wire.KindInternal:
		a.log.LogAttrs(context.WithoutCancel(r.Context()), slog.LevelError, "internal error",
			slog.String("method", r.Method), slog.String("route", route), slog.String("err", causeOf(err)))
		code, detail = wire.CodeInternal, "internal error"
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfter(unavailableRetry))
	}
	writeProblem(w, r, status, code, detail)
}

// causeOf returns what a server log may keep of err: its whole message.
// The service wraps store failures without request data, and stores
// promise causes that never contain ids, proofs or ETags; this package
// never wraps request data into an error it passes here.
func causeOf(err error) string { return err.Error() }

// invalid builds a 400 error with a code.
func invalid(code, msg string) error { return wire.E(wire.KindInvalid, code, msg) }
