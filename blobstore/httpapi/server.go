package httpapi

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"runtime"
	"strings"

	"github.com/blindstore/blindstore/wire"
)

// NewServer returns an *http.Server around h with the timeouts of opt and
// HardMaxHeaderBytes as its header cap, whose error log never names a
// client. The caller sets Addr (or calls Serve) and TLS.
func NewServer(h http.Handler, opt Options) *http.Server {
	opt = opt.withDefaults()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: opt.ReadHeaderTimeout,
		ReadTimeout:       opt.ReadTimeout,
		WriteTimeout:      opt.WriteTimeout,
		IdleTimeout:       opt.IdleTimeout,
		MaxHeaderBytes:    HardMaxHeaderBytes,
		ErrorLog:          log.New(serverLog{opt.Logger}, "", 0),
		ConnContext:       withConn,
	}
}

// serverLog receives net/http's own error log, whose lines name the
// client ("TLS handshake error from 192.0.2.1:5555: …") and may hold a
// goroutine dump with request data. Only lines known to carry neither
// are kept whole; the others are reduced to what happened.
type serverLog struct{ log *slog.Logger }

func (s serverLog) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	ctx := context.Background()
	switch {
	case strings.HasPrefix(line, "http: Accept error:"):
		// The listener's own address and an OS error.
		s.log.LogAttrs(ctx, slog.LevelError, "http server: accept failed", slog.String("err", line))
	case strings.HasPrefix(line, "http: superfluous response.WriteHeader"),
		strings.HasPrefix(line, "http: response.Write on hijacked"),
		strings.HasPrefix(line, "http: response.WriteHeader on hijacked"):
		// A function name and a source line: a bug of ours.
		s.log.LogAttrs(ctx, slog.LevelWarn, "http server: "+line)
	case strings.Contains(line, "TLS handshake error"):
		// Scanners and broken clients produce these all day.
		s.log.LogAttrs(ctx, slog.LevelDebug, "http server: TLS handshake failed")
	case strings.Contains(line, "panic serving"):
		s.log.LogAttrs(ctx, slog.LevelError, "http server: panic outside the API's handler")
	default:
		s.log.LogAttrs(ctx, slog.LevelWarn, "http server: connection error (details withheld: they may name the client)")
	}
	return len(p), nil
}

// panicked answers a handler's panic with 500 internal. It logs the
// panic's type (and a runtime error's message, which holds no request
// data) and the stack as function names and lines only: a goroutine dump
// prints arguments, which may be the bytes of a block ID.
func (a *api) panicked(w http.ResponseWriter, r *http.Request, v any) {
	if v == http.ErrAbortHandler {
		panic(v)
	}
	what := fmt.Sprintf("%T", v)
	if re, ok := v.(runtime.Error); ok {
		what = re.Error()
	}
	route := "unknown"
	rec, _ := w.(*recorder)
	if rec != nil {
		route = rec.route
	}
	a.log.LogAttrs(context.WithoutCancel(r.Context()), slog.LevelError, "panic in handler",
		slog.String("method", r.Method), slog.String("route", route),
		slog.String("panic", what), slog.String("stack", callers()))
	if rec != nil && rec.wroteHeader {
		// Part of an answer is out: abort the connection so the client
		// sees a broken response, not a short one that looks whole.
		panic(http.ErrAbortHandler)
	}
	writeCode(w, r, wire.CodeInternal, "internal error")
}

// callers renders the panicking goroutine's stack without arguments.
func callers() string {
	pc := make([]uintptr, 32)
	n := runtime.Callers(4, pc)
	frames := runtime.CallersFrames(pc[:n])
	var b strings.Builder
	for {
		f, more := frames.Next()
		if b.Len() > 0 {
			b.WriteString(" < ")
		}
		fmt.Fprintf(&b, "%s:%d", f.Function, f.Line)
		if !more {
			break
		}
	}
	return b.String()
}
