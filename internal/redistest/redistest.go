// Package redistest gives tests a real Redis and a key space of their own
// on it.
//
// It is for tests only. It never flushes a database: each test gets a
// random key prefix (Prefix), and only keys under that prefix are deleted
// when the test ends, so tests of several packages can share one server in
// parallel. When no server is reachable it skips the test with a message
// naming the variable to set, unless the environment says services are
// required (CI non-empty or BLINDSTORE_REQUIRE_SERVICES=1): then it fails,
// so that a missing Redis never passes for a green run.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/blindstore/blindstore/internal/testenv"
	"github.com/redis/go-redis/v9"
)

// EnvURL names the variable holding the URL of the test Redis.
const EnvURL = "BLINDSTORE_TEST_REDIS"

// DefaultURL is tried when EnvURL is unset.
const DefaultURL = "redis://127.0.0.1:6379/0"

// Required reports whether a missing service must fail the test instead
// of skipping it.
func Required() bool { return testenv.Required() }

func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	testenv.Unavailable(t, format, args...)
}

// URL returns the URL of a reachable test Redis: $BLINDSTORE_TEST_REDIS,
// else DefaultURL. If none answers a PING, it skips or fails t as Required
// says. Tests sharing the server must keep to their own Prefix.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		u = DefaultURL
	}
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("redistest: %s is not a Redis URL: %v", EnvURL, err)
	}
	opt.DialTimeout = 2 * time.Second
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		unavailable(t, "redistest: no Redis at %s (%v); set %s to a reachable redis:// URL", opt.Addr, err, EnvURL)
	}
	return u
}

// Client returns a client of the test Redis, closed when t ends.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(URL(t))
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// Prefix returns a random key prefix for t ("test:<hex>:") and deletes
// every key under it when t ends. It is the test's whole key space: no
// other test can collide with it, and nothing outside it is touched.
func Prefix(t testing.TB, c redis.UniversalClient) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	p := "test:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := DeleteUnder(ctx, c, p); err != nil {
			t.Errorf("redistest: clean up keys under %s: %v", p, err)
		}
	})
	return p
}

// DeleteUnder deletes every key that starts with prefix, by SCAN, so it
// never blocks the server and never touches another key.
func DeleteUnder(ctx context.Context, c redis.UniversalClient, prefix string) error {
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, prefix+"*", 500).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			if err := c.Del(ctx, keys...).Err(); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}
