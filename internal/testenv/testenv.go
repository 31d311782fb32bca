// Package testenv decides, for tests that need a real service (PostgreSQL,
// Redis), whether a missing service skips the test or fails it. Under CI
// the service tests must run, never skip.
package testenv

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// Required reports whether a missing service must fail the test instead
// of skipping it: under CI, or with BLINDSTORE_REQUIRE_SERVICES=1.
func Required() bool {
	return os.Getenv("CI") != "" || os.Getenv("BLINDSTORE_REQUIRE_SERVICES") == "1"
}

// Unavailable skips t with the message, or fails it when services are
// required.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("%s (services are required here: CI or BLINDSTORE_REQUIRE_SERVICES=1 is set)", msg)
	}
	recordSkip(t.Name(), msg)
	t.Skip(msg)
}

// recordSkip appends the skip to the file named by BLINDSTORE_SKIP_LOG, so
// that `make test` can list the skipped tests at the end even though go
// test prints skips only with -v. Test binaries of several packages append
// to it at once: each line is one write to a file opened O_APPEND.
func recordSkip(name, msg string) {
	path := os.Getenv("BLINDSTORE_SKIP_LOG")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	// One line per test: the reason up to its first line break (drivers
	// put their dial errors on the lines after).
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = strings.TrimSpace(msg[:i]) + " …"
	}
	fmt.Fprintf(f, "%s: %s\n", name, msg)
}
