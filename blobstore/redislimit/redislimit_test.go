package redislimit

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/bolt"
	"github.com/blindstore/blindstore/blobstore/httpapi"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/internal/redistest"
	"github.com/blindstore/blindstore/wire"
	"github.com/redis/go-redis/v9"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func secret(t *testing.T) []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func newLimiter(t *testing.T, rc redis.UniversalClient, sec []byte, prefix string, rate float64, burst int) *Limiter {
	l, err := New(rc, sec, prefix, rate, burst, quiet())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// rateKeys lists the limiter's keys in Redis (redis_rate adds "rate:").
func rateKeys(t *testing.T, rc redis.UniversalClient, prefix string) []string {
	keys, err := rc.Keys(context.Background(), "rate:"+prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if len(keys) > 0 {
			rc.Del(context.Background(), keys...)
		}
	})
	return keys
}

// Two instances with the same bucket key share one allowance per
// address: failures counted by one block the client on the other.
func TestInstancesShareTheAllowance(t *testing.T) {
	rc := redistest.Client(t)
	prefix := redistest.Prefix(t, rc)
	sec := secret(t)
	a := newLimiter(t, rc, sec, prefix, 1, 3)
	b := newLimiter(t, rc, sec, prefix, 1, 3)
	ctx := context.Background()
	const addr = "192.0.2.7"
	for i := range 3 {
		if _, blocked := b.Blocked(ctx, addr); blocked {
			t.Fatalf("blocked after %d of 3 allowed failures", i)
		}
		a.Failed(ctx, addr)
	}
	wait, blocked := b.Blocked(ctx, addr)
	if !blocked || wait <= 0 || wait > time.Second {
		t.Fatalf("after the burst, on the other instance: blocked=%v wait=%v; want blocked about 1 s", blocked, wait)
	}
	if _, blocked := b.Blocked(ctx, "192.0.2.8"); blocked {
		t.Fatalf("another address is blocked too")
	}
	// A deployment with another bucket key does not see these failures.
	c := newLimiter(t, rc, secret(t), prefix, 1, 3)
	if _, blocked := c.Blocked(ctx, addr); blocked {
		t.Fatalf("a limiter with another key shares the allowance")
	}
}

// What Redis holds: keyed hashes that neither contain nor equal any
// form of the address, with a TTL no longer than the block.
func TestRedisHoldsNoAddress(t *testing.T) {
	rc := redistest.Client(t)
	prefix := redistest.Prefix(t, rc)
	l := newLimiter(t, rc, secret(t), prefix, 5, 10)
	ctx := context.Background()
	addrs := []string{"203.0.113.9", "2001:db8:1:2::/64"}
	for _, a := range addrs {
		l.FailedN(ctx, a, 100)
	}
	keys := rateKeys(t, rc, prefix)
	if len(keys) != 2 {
		t.Fatalf("%d keys for 2 addresses", len(keys))
	}
	for _, k := range keys {
		for _, a := range addrs {
			for _, form := range []string{a, strings.Split(a, "/")[0], "203.0.113", "2001:db8"} {
				if strings.Contains(k, form) {
					t.Fatalf("key %q contains the address", k)
				}
			}
		}
		v, err := rc.Get(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := strconv.ParseFloat(v, 64); err != nil {
			t.Fatalf("value %q is not a bare number", v)
		}
		ttl, err := rc.TTL(ctx, k).Result()
		if err != nil || ttl <= 0 || ttl > maxDebt+3*time.Second {
			t.Fatalf("TTL %v (err %v): want positive and at most the longest block", ttl, err)
		}
	}
}

// Failures beyond the allowance are owed: 100 failures at 5 a second with
// a burst of 10 block the client for about (100-10+1)/5 = 18.2 s, and
// the debt is bounded: a million failures block for 15 minutes, no more.
func TestFailuresBeyondTheBurstAreOwed(t *testing.T) {
	rc := redistest.Client(t)
	prefix := redistest.Prefix(t, rc)
	l := newLimiter(t, rc, secret(t), prefix, 5, 10)
	ctx := context.Background()
	l.FailedN(ctx, "198.51.100.1", 100)
	wait, blocked := l.Blocked(ctx, "198.51.100.1")
	if !blocked || wait < 17*time.Second || wait > 19*time.Second {
		t.Fatalf("after 100 failures: blocked=%v for %v, want about 18.2 s", blocked, wait)
	}
	l.FailedN(ctx, "198.51.100.2", 1_000_000)
	wait, blocked = l.Blocked(ctx, "198.51.100.2")
	if !blocked || wait < maxDebt || wait > maxDebt+3*time.Second {
		t.Fatalf("after a million failures: blocked=%v for %v, want about %v", blocked, wait, maxDebt)
	}
	rateKeys(t, rc, prefix)
}

// With Redis unreachable the limiter still limits, in this process.
func TestRedisDownLimitsInProcess(t *testing.T) {
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer rc.Close()
	l := newLimiter(t, rc, secret(t), "x:", 1, 2)
	ctx := context.Background()
	l.FailedN(ctx, "192.0.2.1", 5)
	if _, blocked := l.Blocked(ctx, "192.0.2.1"); !blocked {
		t.Fatalf("with Redis down, failures went unlimited")
	}
}

// Through the HTTP API: reads of missing blocks are 404 until the burst
// is spent, then 429 with Retry-After, on every instance.
func TestHTTPAnswers429WithRetryAfter(t *testing.T) {
	rc := redistest.Client(t)
	prefix := redistest.Prefix(t, rc)
	key, err := bucketer.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	bk, err := bucketer.New(bucketer.Config{Key: key, Period: bucketer.DefaultPeriod, Retention: bucketer.DefaultRetention})
	if err != nil {
		t.Fatal(err)
	}
	st, err := bolt.Open(filepath.Join(t.TempDir(), "b.db"), blobstore.Params{BlockSize: wire.MinBlockSize, Fingerprint: bk.Fingerprint()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, err := blobstore.NewService(blobstore.ServiceConfig{Store: st, Bucketer: bk, BlockSize: wire.MinBlockSize})
	if err != nil {
		t.Fatal(err)
	}
	var servers []*httptest.Server
	for range 2 {
		lim := newLimiter(t, rc, key, prefix, 0.5, 4)
		s := httptest.NewServer(httpapi.New(svc, httpapi.Options{Logger: quiet(), ProbeLimit: lim}))
		defer s.Close()
		servers = append(servers, s)
	}
	get := func(i int) *http.Response {
		resp, err := http.Get(servers[i%2].URL + "/v1/blocks/" + wire.NewID().String())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for i := range 4 {
		if r := get(i); r.StatusCode != http.StatusNotFound {
			t.Fatalf("probe %d: %d, want 404", i, r.StatusCode)
		}
	}
	r := get(4)
	if r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("probe past the burst: %d, want 429", r.StatusCode)
	}
	ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 3 {
		t.Fatalf("Retry-After %q, want 1 to 3 seconds at 0.5 a second", r.Header.Get("Retry-After"))
	}
	rateKeys(t, rc, prefix)
}
