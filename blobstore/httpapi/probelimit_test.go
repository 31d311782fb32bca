package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// fakeNow is a settable clock for the limiter.
type fakeNow struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeNow) now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeNow) add(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = f.t.Add(d)
}

func TestMemoryProbeLimiter(t *testing.T) {
	ctx := context.Background()
	clock := &fakeNow{t: time.Unix(1_700_000_000, 0)}
	m := newMemoryProbeLimiter(2, 3, clock.now)

	if _, blocked := m.Blocked(ctx, "a"); blocked {
		t.Fatal("an unknown key is blocked")
	}
	for i := range 3 {
		if _, blocked := m.Blocked(ctx, "a"); blocked {
			t.Fatalf("blocked after %d failures, burst is 3", i)
		}
		m.Failed(ctx, "a")
	}
	wait, blocked := m.Blocked(ctx, "a")
	if !blocked || wait != 500*time.Millisecond {
		t.Fatalf("after the burst: blocked %v for %v, want 500ms", blocked, wait)
	}
	if _, blocked := m.Blocked(ctx, "b"); blocked {
		t.Fatal("another key is blocked too")
	}
	clock.add(499 * time.Millisecond)
	if _, blocked := m.Blocked(ctx, "a"); !blocked {
		t.Fatal("unblocked early")
	}
	clock.add(time.Millisecond)
	if _, blocked := m.Blocked(ctx, "a"); blocked {
		t.Fatal("still blocked once a token is back")
	}

	// Failures beyond the burst in one call are owed: 10 more at 2/s.
	m.FailedN(ctx, "c", 13)
	if wait, _ := m.Blocked(ctx, "c"); wait != 5500*time.Millisecond {
		t.Fatalf("after 13 failures: wait %v, want 5.5s", wait)
	}
	// Debt is bounded: a key is never blocked much beyond 15 minutes.
	m.FailedN(ctx, "d", 1_000_000)
	if wait, _ := m.Blocked(ctx, "d"); wait > memoryProbeMaxDebt+2*time.Second || wait < memoryProbeMaxDebt-time.Second {
		t.Fatalf("after a million failures: wait %v, want about %v", wait, memoryProbeMaxDebt)
	}
	if r, b := m.ProbeLimits(); r != 2 || b != 3 {
		t.Fatalf("ProbeLimits %v %v", r, b)
	}
}

func TestMemoryProbeLimiterForgets(t *testing.T) {
	ctx := context.Background()
	clock := &fakeNow{t: time.Unix(1_700_000_000, 0)}
	m := newMemoryProbeLimiter(1, 2, clock.now)
	m.maxKeys = 100
	for i := range 50 {
		m.Failed(ctx, "k"+strconv.Itoa(i))
	}
	// Once their allowance is whole again, keys are swept.
	clock.add(memoryProbeSweep)
	m.Failed(ctx, "new")
	if n := len(m.keys); n != 1 {
		t.Fatalf("%d keys remembered after the sweep, want 1", n)
	}
	// Many addresses at once: memory stays bounded.
	for i := range 1000 {
		m.FailedN(ctx, "flood"+strconv.Itoa(i), 5)
	}
	if n := len(m.keys); n > m.maxKeys {
		t.Fatalf("%d keys remembered, the bound is %d", n, m.maxKeys)
	}
}

func TestDefaultsOfNewMemoryProbeLimiter(t *testing.T) {
	r, b := NewMemoryProbeLimiter(0, 0).(ProbeLimitDescriber).ProbeLimits()
	if r != DefaultProbeRate || b != DefaultProbeBurst {
		t.Fatalf("defaults %v %v", r, b)
	}
}

func TestClientKey(t *testing.T) {
	cases := []struct {
		remote, header, value, want string
	}{
		{"192.0.2.1:5555", "", "", "192.0.2.1"},
		{"[2001:db8:1:2:3:4:5:6]:5555", "", "", "2001:db8:1:2::/64"},
		{"[::ffff:192.0.2.9]:1", "", "", "192.0.2.9"},
		{"[fe80::1%eth0]:1", "", "", "fe80::/64"},
		{"192.0.2.1:5555", "", "", "192.0.2.1"},
		// A forged header is ignored unless it is the trusted one.
		{"192.0.2.1:5555", "X-Real-IP", "", "192.0.2.1"},
		{"192.0.2.1:5555", "X-Forwarded-For", "198.51.100.7", "198.51.100.7"},
		{"192.0.2.1:5555", "X-Forwarded-For", "203.0.113.1, 198.51.100.7", "198.51.100.7"},
		{"192.0.2.1:5555", "X-Forwarded-For", "203.0.113.1,2001:db8::9", "2001:db8::/64"},
		{"192.0.2.1:5555", "X-Forwarded-For", "not an address", "192.0.2.1"},
		{"192.0.2.1:5555", "X-Forwarded-For", "198.51.100.7:4711", "198.51.100.7"},
		{"192.0.2.1:5555", "Forwarded", `for=203.0.113.1, for="[2001:db8:cafe::17]:4711";proto=https`, "2001:db8:cafe::/64"},
		{"192.0.2.1:5555", "Forwarded", "for=198.51.100.8;by=203.0.113.43", "198.51.100.8"},
		{"192.0.2.1:5555", "Forwarded", "for=unknown", "192.0.2.1"},
		{"@", "", "", "local"},
	}
	for _, c := range cases {
		r := &http.Request{RemoteAddr: c.remote, Header: http.Header{}}
		trusted := c.header
		if c.value != "" {
			r.Header.Set(c.header, c.value)
		} else if c.header == "X-Real-IP" {
			r.Header.Set("X-Forwarded-For", "10.0.0.1")
		}
		if got := clientKey(r, trusted); got != c.want {
			t.Errorf("remote %q, %s: %q → %q, want %q", c.remote, c.header, c.value, got, c.want)
		}
	}
}

// quiet, which lets block reads skip the limiter (fast.go), holds again
// once every key that failed is whole, without waiting for a sweep: one
// failed probe must not turn the fast path off for good.
func TestMemoryProbeLimiterQuietAgain(t *testing.T) {
	ctx := context.Background()
	clock := &fakeNow{t: time.Unix(1_700_000_000, 0)}
	m := newMemoryProbeLimiter(2, 3, clock.now)
	if !m.quiet() {
		t.Fatal("a new limiter is not quiet")
	}
	m.Failed(ctx, "a")
	if m.quiet() {
		t.Fatal("quiet right after a failure")
	}
	// 1 spent token of 3 is back after 500 ms at 2/s.
	clock.add(499 * time.Millisecond)
	if m.quiet() {
		t.Fatal("quiet before the key is whole")
	}
	clock.add(time.Millisecond)
	if !m.quiet() {
		t.Fatal("not quiet once the only key is whole")
	}
	// The latest of several keys decides: 13 failures at 2/s are whole
	// after 6.5 s (blocked for 5.5 s, then the burst comes back).
	m.FailedN(ctx, "c", 13)
	clock.add(time.Second)
	m.Failed(ctx, "b")
	clock.add(5499 * time.Millisecond)
	if m.quiet() {
		t.Fatal("quiet while a key still owes")
	}
	clock.add(time.Millisecond)
	if !m.quiet() {
		t.Fatal("not quiet once every key is whole")
	}
	if _, blocked := m.Blocked(ctx, "c"); blocked {
		t.Fatal("quiet while a key is blocked")
	}
}
