package httpapi

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestNewServer(t *testing.T) {
	logs := &logBuffer{}
	opt := Options{Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), ReadTimeout: 7 * time.Second}
	srv := NewServer(nil, opt)
	if srv.ReadHeaderTimeout != DefaultReadHeaderTimeout || srv.ReadTimeout != 7*time.Second || srv.WriteTimeout != DefaultWriteTimeout ||
		srv.IdleTimeout != DefaultIdleTimeout || srv.MaxHeaderBytes != HardMaxHeaderBytes {
		t.Fatalf("server %+v", srv)
	}
	// net/http's own error lines name the client; they reach the log
	// reduced to what happened.
	lines := []string{
		"http: TLS handshake error from 192.0.2.44:51234: EOF",
		"http: panic serving 192.0.2.44:51234: lost block 0b5e3a6e-8c1f-4d5a-9b7e-2f1a3c4d5e6f\ngoroutine 7 [running]:",
		"http2: server connection error from 192.0.2.44:51234: connection error: PROTOCOL_ERROR",
		"http: Accept error: accept tcp 127.0.0.1:7878: too many open files; retrying in 5ms",
	}
	for _, l := range lines {
		srv.ErrorLog.Print(l)
	}
	got := logs.String()
	for _, secret := range []string{"192.0.2.44", "0b5e3a6e", "goroutine"} {
		if strings.Contains(got, secret) {
			t.Errorf("server error log kept %q:\n%s", secret, got)
		}
	}
	for _, want := range []string{"TLS handshake failed", "panic outside the API's handler", "details withheld", "too many open files"} {
		if !strings.Contains(got, want) {
			t.Errorf("server error log lacks %q:\n%s", want, got)
		}
	}
}
