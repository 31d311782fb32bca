// Package pgtest gives tests real PostgreSQL: a fresh, empty database of
// their own on a shared server (URL), or a private server they may
// configure, stop and restart (StartCluster).
//
// It is for tests only. It never touches a database or a data directory it
// did not create, and it drops or removes what it created when the test
// ends. When no server is reachable it skips the test with a message
// saying what to set, unless the environment says services are required
// (CI non-empty or BLINDSTORE_REQUIRE_SERVICES=1): then it fails, so that
// a missing service never passes for a green run.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/blindstore/blindstore/internal/testenv"
	"github.com/jackc/pgx/v5"
)

// EnvURL names the variable holding the URL of a database on the shared
// test server; the tests connect to it only to create and drop their own
// databases.
const EnvURL = "BLINDSTORE_TEST_POSTGRES"

// DefaultURL is tried when EnvURL is unset: a local server with trust auth.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Required reports whether a missing service must fail the test instead
// of skipping it.
func Required() bool { return testenv.Required() }

func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	testenv.Unavailable(t, format, args...)
}

// ServerURL returns the URL of the shared test server's admin database.
func ServerURL() string {
	if u := os.Getenv(EnvURL); u != "" {
		return u
	}
	return DefaultURL
}

// URL creates a fresh, empty database for t on the shared test server and
// returns its URL. The database is dropped when t ends.
func URL(t testing.TB) string {
	t.Helper()
	admin := ServerURL()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		unavailable(t, "pgtest: PostgreSQL is not reachable at %s (%v); set %s to the URL of a database from which the tests may create databases",
			redact(admin), err, EnvURL)
	}
	defer conn.Close(context.Background())

	name := "blindstore_test_" + randomHex(8)
	// template0: nobody connects to it, so concurrent CREATE DATABASEs do
	// not fail with "source database is being accessed by other users".
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE template0"); err != nil {
		t.Fatalf("pgtest: create database on %s: %v", redact(admin), err)
	}
	t.Cleanup(func() { dropDatabase(t, admin, name) })
	u, err := withDatabase(admin, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return u
}

func dropDatabase(t testing.TB, admin, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Errorf("pgtest: drop test database: %v", err)
		return
	}
	defer conn.Close(context.Background())
	// FORCE ends connections a test left open (a pool not yet closed).
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		t.Errorf("pgtest: drop test database: %v", err)
	}
}

// withDatabase returns connection string base pointing at database name.
func withDatabase(base, name string) (string, error) {
	if strings.HasPrefix(base, "postgres://") || strings.HasPrefix(base, "postgresql://") {
		u, err := url.Parse(base)
		if err != nil {
			return "", fmt.Errorf("parse %s: %w", EnvURL, err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// Keyword/value form: a later keyword overrides an earlier one.
	return base + " dbname=" + name, nil
}

// redact hides a password in a URL so it never reaches test logs.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
