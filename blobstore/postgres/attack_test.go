package postgres

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/internal/attack"
	"github.com/blindstore/blindstore/internal/pgtest"
)

// maxAdvantage is what the design tolerates of an attacker holding a copy
// of the store, after a seal: how much better than chance it may link two
// blocks to one user (DESIGN.md §5).
const maxAdvantage = 0.05

// TestSealingErasesWriteOrder runs simulated users through the service
// (files written in overlapping bursts, index updates, deletes; then,
// in the next period, logins that renew everything and more files), and
// reads the database as a copy holder would (every heap and TOAST page,
// dead row versions included). Before a seal the copy links a user's
// blocks by their transactions and places; after it, no strategy of the
// attacker does better than chance by more than maxAdvantage.
func TestSealingErasesWriteOrder(t *testing.T) {
	url := pgtest.URL(t)
	ctx := context.Background()
	clock := bucketer.NewFakeClock(time.Date(2031, 3, 4, 5, 0, 0, 0, time.UTC))
	key, err := bucketer.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	bk, err := bucketer.New(bucketer.Config{Key: key, Period: 24 * time.Hour, Retention: 3, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	const blockSize = 4096 // large enough to be stored in TOAST chunks
	s := openTest(t, url, blobstore.Params{BlockSize: blockSize, Fingerprint: bk.Fingerprint()})
	svc, err := blobstore.NewService(blobstore.ServiceConfig{Store: s, Bucketer: bk, BlockSize: blockSize})
	if err != nil {
		t.Fatal(err)
	}
	sim := attack.NewSim(svc, attack.SimConfig{Seed: 1, Overlap: 3})
	rng := rand.New(rand.NewPCG(2, 3))
	measureNoVerify := func(when string) attack.Report {
		t.Helper()
		feat, err := attack.PostgresCopy(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		rep := attack.Measure(feat, sim.Owners(), rng)
		t.Logf("PostgreSQL, %s: %s", when, rep)
		if rep.Unseen > 0 || rep.Same == 0 {
			t.Fatalf("%s: the copy shows %d of the live blocks, %d same-user pairs", when, rep.Blocks, rep.Same)
		}
		return rep
	}
	// measure reads every block back first (a measurement of a store that
	// lost blocks would mean nothing); reading them all sets every hint
	// bit alike.
	measure := func(when string) attack.Report {
		t.Helper()
		if err := sim.Verify(ctx); err != nil {
			t.Fatal(err)
		}
		return measureNoVerify(when)
	}
	seal := func() {
		t.Helper()
		rep := mustSeal(t, s)
		t.Logf("seal: %d blocks, %d leases, %d deleted, %d bytes in %v", rep.Blocks, rep.Leases, rep.Deleted, rep.Bytes, rep.Duration)
		sim.NextWindow()
	}

	if err := sim.WriteFiles(ctx); err != nil {
		t.Fatal(err)
	}
	before := measure("first period, before its seal")
	if before.Best.Advantage < 0.3 {
		t.Errorf("before any seal the attacker links blocks with advantage %.3f only: it should see the write order", before.Best.Advantage)
	}
	seal()
	if after := measureNoVerify("first period, after its seal"); after.Best.Advantage > maxAdvantage {
		t.Errorf("after the seal the attacker links blocks with advantage %.3f (%s), more than %.2f", after.Best.Advantage, after.Best.Strategy, maxAdvantage)
	}
	// Reads leave nothing to link by either.
	if err := sim.ReadFiles(ctx); err != nil {
		t.Fatal(err)
	}
	if after := measureNoVerify("first period, after its seal, when half the users read their files"); after.Best.Advantage > maxAdvantage {
		t.Errorf("after the seal and reads the attacker links blocks with advantage %.3f (%s), more than %.2f", after.Best.Advantage, after.Best.Strategy, maxAdvantage)
	}

	clock.Advance(24 * time.Hour)
	if err := sim.RenewAll(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sim.WriteFiles(ctx); err != nil {
		t.Fatal(err)
	}
	before = measure("second period (renewals, more files), before its seal")
	if before.Best.Advantage < 0.3 {
		t.Errorf("before the second seal the attacker links blocks with advantage %.3f only", before.Best.Advantage)
	}
	seal()
	if after := measureNoVerify("second period, after its seal"); after.Best.Advantage > maxAdvantage {
		t.Errorf("after the second seal the attacker links blocks with advantage %.3f (%s), more than %.2f", after.Best.Advantage, after.Best.Strategy, maxAdvantage)
	}
	checkSealed(t, connect(t, url))
}
