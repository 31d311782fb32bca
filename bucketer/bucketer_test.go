package bucketer

import (
	"bytes"
	"testing"
	"time"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func newTest(t *testing.T, period time.Duration, r int, c Clock) *Bucketer {
	t.Helper()
	b, err := New(Config{Key: testKey(7), Period: period, Retention: r, Clock: c})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNewRejectsBadConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
	}{
		{"short key", Config{Key: make([]byte, 16), Period: time.Hour, Retention: 3}},
		{"zero period", Config{Key: testKey(1), Period: 0, Retention: 3}},
		{"fractional period", Config{Key: testKey(1), Period: 1500 * time.Millisecond, Retention: 3}},
		{"retention 1", Config{Key: testKey(1), Period: time.Hour, Retention: 1}},
	}
	for _, c := range cases {
		if _, err := New(c.cfg); err == nil {
			t.Errorf("%s: New accepted %+v", c.name, c.cfg)
		}
	}
}

// A block stamped at any instant of period p must survive every purge
// before full periods have passed, and be purged before R periods
// have passed. Walk the clock in steps that do not divide the period so
// stamps land at the start, middle and end of periods.
func TestRetentionBounds(t *testing.T) {
	const period = 100 * time.Second
	for _, r := range []int{2, 3, 13} {
		clock := NewFakeClock(time.Unix(1_000_000_000, 0))
		b := newTest(t, period, r, clock)
		for step := 0; step < 50; step++ {
			stampAt := clock.Now()
			stamped := b.CurrentBucket()
			// Find the first instant (to the second) at which the bucket is no
			// longer live.
			probe := NewFakeClock(stampAt)
			pb := newTest(t, period, r, probe)
			var died time.Duration
			for d := time.Duration(0); d <= time.Duration(r+1)*period; d += time.Second {
				probe.Set(stampAt.Add(d))
				if !pb.Live().Contains(stamped) {
					died = d
					break
				}
			}
			if died == 0 {
				t.Fatalf("R=%d: block stamped at %v never expired", r, stampAt)
			}
			min, max := time.Duration(r-1)*period, time.Duration(r)*period
			if died < min || died > max {
				t.Fatalf("R=%d: block stamped at %v lived %v, want in [%v, %v]", r, stampAt, died, min, max)
			}
			if died == max && stampAt.Unix()%int64(period/time.Second) != 0 {
				t.Fatalf("R=%d: block stamped mid-period at %v lived a full R periods", r, stampAt)
			}
			clock.Advance(37 * time.Second)
		}
	}
}

// Renewing a block is stamping it with the current bucket: within one
// period the stamp does not change, so a renewal there writes nothing.
func TestRenewWithinPeriodChangesNothing(t *testing.T) {
	clock := NewFakeClock(time.Unix(1_700_000_000, 0))
	b := newTest(t, time.Hour, 3, clock)
	p := b.Current()
	first := b.CurrentBucket()
	for clock.Now().Before(b.Start(p + 1)) {
		if got := b.CurrentBucket(); got != first {
			t.Fatalf("bucket changed within period %d", p)
		}
		clock.Advance(7 * time.Minute)
	}
	if b.CurrentBucket() == first {
		t.Fatal("bucket did not change at the period boundary")
	}
	// And a renewal in the next period extends life by exactly one period.
	if got, want := b.ExpiresAt(b.Current()).Sub(b.ExpiresAt(p)), time.Hour; got != want {
		t.Fatalf("renewal in next period extended life by %v, want %v", got, want)
	}
}

func TestLiveSet(t *testing.T) {
	clock := NewFakeClock(time.Unix(10*3600+5, 0))
	b := newTest(t, time.Hour, 4, clock)
	ls := b.Live()
	if ls.Current != 10 || len(ls.Buckets) != 4 {
		t.Fatalf("live set = period %d, %d buckets; want 10, 4", ls.Current, len(ls.Buckets))
	}
	for p := uint64(7); p <= 10; p++ {
		if !ls.Contains(b.Bucket(p)) {
			t.Errorf("period %d should be live", p)
		}
	}
	for _, p := range []uint64{5, 6, 11} {
		if ls.Contains(b.Bucket(p)) {
			t.Errorf("period %d should not be live", p)
		}
	}
	// Near the epoch the live set is shorter rather than wrapping around.
	if got := b.LiveAt(1); len(got.Buckets) != 2 {
		t.Fatalf("LiveAt(1) has %d buckets, want 2", len(got.Buckets))
	}
}

func TestKeysGiveUnrelatedBuckets(t *testing.T) {
	b1, _ := New(Config{Key: testKey(1), Period: time.Hour, Retention: 3})
	b2, _ := New(Config{Key: testKey(2), Period: time.Hour, Retention: 3})
	seen := map[Bucket]bool{}
	for p := uint64(0); p < 1000; p++ {
		x, y := b1.Bucket(p), b2.Bucket(p)
		if x == y {
			t.Fatalf("period %d: same bucket under two keys", p)
		}
		// Unrelated: about half the bits differ, as for independent
		// random strings (128 bits: mean 64, sd 5.7; allow 6 sd).
		diff := 0
		for i := range x {
			diff += popcount(x[i] ^ y[i])
		}
		if diff < 30 || diff > 98 {
			t.Fatalf("period %d: buckets under two keys differ in %d of 128 bits", p, diff)
		}
		if seen[x] {
			t.Fatalf("period %d: bucket repeats", p)
		}
		seen[x] = true
	}
	if b1.Fingerprint() == b2.Fingerprint() {
		t.Fatal("two keys share a fingerprint")
	}
	// A fingerprint is not a bucket of any period (domain separation).
	fp := b1.Fingerprint()
	if seen[Bucket(fp[:16])] {
		t.Fatal("fingerprint collides with a bucket")
	}
}

func TestBucketIsDeterministic(t *testing.T) {
	b := newTest(t, time.Hour, 3, nil)
	if b.Bucket(42) != b.Bucket(42) {
		t.Fatal("bucket of one period differs between calls")
	}
	// Pin the construction against values computed independently
	// (Python's hmac): HMAC-SHA256(key, "bucket" ‖ uint64be(p))[:16] and
	// HMAC-SHA256(key, "fingerprint"). A change here would make every
	// stored block look expired.
	if got, want := b.Bucket(42).String(), "ea9bb59fe9b53e943d6fe32749fd79f2"; got != want {
		t.Fatalf("bucket(42) = %s, want %s", got, want)
	}
	if got, want := b.Fingerprint().String(), "e6579d34737b83529e6d70fa2178c932cb78181f609cb2f8db942aaca2c741c2"; got != want {
		t.Fatalf("fingerprint = %s, want %s", got, want)
	}
}

func popcount(x byte) int {
	n := 0
	for ; x != 0; x &= x - 1 {
		n++
	}
	return n
}
