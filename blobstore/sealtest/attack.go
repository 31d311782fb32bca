package sealtest

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/internal/attack"
	"github.com/blindstore/blindstore/wire"
)

// MaxAdvantage is what the design tolerates of an attacker holding a copy
// of the store, after a seal: how much better than chance it may link two
// blocks to one user (docs/design.md §6).
const MaxAdvantage = 0.05

// minAdvantageBefore is what the attacker must achieve before a seal, or
// the measurement could not tell a seal that erases the write order from
// a copy reader that sees nothing.
const minAdvantageBefore = 0.3

// AttackBlockSize is the block size Attack opens its store with.
const AttackBlockSize = 4096

// AttackConfig is what Attack needs of a store.
type AttackConfig struct {
	// Name names the store in the log.
	Name string
	// Open opens a fresh store with p.
	Open func(t testing.TB, p blobstore.Params) Store
	// Copy reads the store as a copy holder would, everything it leaves
	// on disk included, and returns what it observes of each block.
	Copy func(ctx context.Context, owners map[wire.ID]attack.Owner) (attack.Features, error)
	// VerifyAfterSeal reads every block back before each measurement
	// after a seal too, not only before the seals; a store whose reads
	// leave traces on disk (PostgreSQL's hint bits) measures after a
	// seal what the seal left.
	VerifyAfterSeal bool
	// LinkedAfterRenewals requires the copy to link blocks before the
	// second seal too, as well as before the first. Where renewals
	// rewrite the pages of blocks of every user (bbolt's lease records)
	// they blur what the second period's commits show, and the figure is
	// only logged.
	LinkedAfterRenewals bool
	// WindowsVisible requires the copy to show the seal windows before
	// the period merge (SmallScale): where a seal's rows carry its
	// transaction id, blocks of one period split by window.
	WindowsVisible bool
}

// Attack runs simulated users through the service (files written in
// overlapping bursts, index updates, deletes; then, in the next period,
// logins that renew everything and more files) and measures what a copy
// of the store links. Before each seal the copy links a user's blocks (by
// their commits, transactions, places); after it, and after half the
// users read their files, no strategy of the attacker does better than
// chance by more than MaxAdvantage. It returns the store, all sealed, for
// the store's test to check its own state.
func Attack(t *testing.T, cfg AttackConfig) Store {
	ctx := context.Background()
	s, svc, clock, _ := attackStore(t, cfg, 3)
	sim := attack.NewSim(svc, attack.SimConfig{Seed: 1, Overlap: 3})
	rng := rand.New(rand.NewPCG(2, 3))
	// measure reads every block back first when asked (a measurement of
	// a store that lost blocks would mean nothing).
	measure := func(when string, verify bool) attack.Report {
		t.Helper()
		return measureCopy(t, cfg, sim, rng, cfg.Name+", "+when, verify, nil)
	}
	before := func(when string, check bool) {
		t.Helper()
		if rep := measure(when+", before its seal", true); check && rep.Best.Advantage < minAdvantageBefore {
			t.Errorf("%s, before its seal: the attacker links blocks with advantage %.3f only: it should see the write order", when, rep.Best.Advantage)
		}
	}
	after := func(when string) {
		t.Helper()
		if rep := measure(when, cfg.VerifyAfterSeal); rep.Best.Advantage > MaxAdvantage {
			t.Errorf("%s: the attacker links blocks with advantage %.3f (%s), more than %.2f", when, rep.Best.Advantage, rep.Best.Strategy, MaxAdvantage)
		}
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
	before("first period", true)
	seal()
	after("first period, after its seal")
	if err := sim.ReadFiles(ctx); err != nil {
		t.Fatal(err)
	}
	after("first period, after its seal, when half the users read their files")

	clock.Advance(24 * time.Hour)
	if err := sim.RenewAll(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sim.WriteFiles(ctx); err != nil {
		t.Fatal(err)
	}
	before("second period (renewals, more files)", cfg.LinkedAfterRenewals)
	seal()
	after("second period, after its seal")
	checkAllSealed(t, s, "after the second seal")
	return s
}

// measureCopy reads every block back first when verify is set (a
// measurement of a store that lost blocks would mean nothing), then
// measures the attacker on ac's copy of the store sim writes to, with
// the blocks compared within the strata of sim's owners, or of what
// strata makes of them.
func measureCopy(t testing.TB, ac AttackConfig, sim *attack.Sim, rng *rand.Rand, when string, verify bool,
	strata func(map[wire.ID]attack.Owner) map[wire.ID]attack.Owner) attack.Report {
	t.Helper()
	ctx := context.Background()
	if verify {
		if err := sim.Verify(ctx); err != nil {
			t.Fatal(err)
		}
	}
	owners := sim.Owners()
	feat, err := ac.Copy(ctx, owners)
	if err != nil {
		t.Fatal(err)
	}
	truth := owners
	if strata != nil {
		truth = strata(owners)
	}
	rep := attack.Measure(feat, truth, rng)
	t.Logf("%s: %s", when, rep)
	if rep.Unseen > 0 || rep.Same == 0 {
		t.Fatalf("%s: the copy shows %d of the live blocks, %d same-user pairs", when, rep.Blocks, rep.Same)
	}
	return rep
}

// attackStore opens ac's store with a bucket key of its own, periods of a
// day on a fake clock and the given retention, and the service over it.
func attackStore(t testing.TB, ac AttackConfig, retention int) (Store, *blobstore.Service, *bucketer.FakeClock, *bucketer.Bucketer) {
	t.Helper()
	clock := bucketer.NewFakeClock(time.Date(2031, 3, 4, 5, 0, 0, 0, time.UTC))
	key, err := bucketer.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	bk, err := bucketer.New(bucketer.Config{Key: key, Period: 24 * time.Hour, Retention: retention, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	s := ac.Open(t, blobstore.Params{BlockSize: AttackBlockSize, Fingerprint: bk.Fingerprint()})
	svc, err := blobstore.NewService(blobstore.ServiceConfig{Store: s, Bucketer: bk, BlockSize: AttackBlockSize})
	if err != nil {
		t.Fatal(err)
	}
	return s, svc, clock, bk
}
