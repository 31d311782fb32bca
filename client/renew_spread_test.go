package client

import (
	"context"
	"fmt"
	"testing"

	"github.com/blindstore/blindstore/client/format"
)

// With a retention that leaves room, a login renews the files renewed
// one period ago by a keyed coin, and the rest at the next period's first
// login: the renewal of a long-lived account spreads over two periods,
// no file is ever two periods stale after a login, a second login in a
// period sends nothing, and SafeUntil reads the oldest renewal.
func TestRenewSpreadsOverTwoPeriods(t *testing.T) {
	s := newTestServer(t)
	a, loc := newTestAccount(t, s)
	c := format.PayloadCapacity(testBlockSize)
	const files = 24
	for i := range files {
		putBytes(t, a, fmt.Sprintf("f%02d", i), randomBytes(c))
	}
	ctx := context.Background()
	var total int
	for round := 1; round <= 3; round++ {
		s.advance()
		b, err := login(ctx, s.remote(t), "", loc)
		if err != nil {
			t.Fatal(err)
		}
		b.cfg.RetentionPeriods = 13 // the default: room to spread
		cur := b.cfg.CurrentPeriod
		rep, err := b.Renew(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ages := map[uint64]int{}
		for i := range b.index.Files {
			ages[cur-b.fileRenewed(&b.index.Files[i])]++
		}
		t.Logf("period +%d: %d files renewed of %d; files by periods since renewal: %v", round, rep.Stale, files, ages)
		if ages[0]+ages[1] != files || ages[0] == 0 {
			t.Fatalf("after the login of period +%d, files by age: %v; want every file renewed this period or the last", round, ages)
		}
		// 24 fair coins all alike: once in 2^23.
		total += rep.Stale
		if ages[1] == 0 || rep.Stale == files {
			t.Errorf("period +%d: the renewal did not spread (%d of %d files)", round, rep.Stale, files)
		}
		if want := b.cfg.SafeUntil(b.oldestRenewal()); !rep.Safe.Equal(want) || (ages[1] > 0 && b.oldestRenewal() != cur-1) {
			t.Errorf("safe until %v, want %v", rep.Safe, want)
		}
		if again, err := b.Renew(ctx); err != nil || again.Sent != 0 {
			t.Fatalf("a second login in the period: %+v, %v; want nothing sent", again, err)
		}
	}
	// Each file is renewed at least every other period.
	if total < files {
		t.Errorf("%d file renewals in three periods, want at least %d", total, files)
	}
}
