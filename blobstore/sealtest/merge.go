package sealtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/internal/attack"
	"github.com/blindstore/blindstore/wire"
)

// Merger is a sealing store with the period merge (docs/design.md §6):
// blobstore/bolt and blobstore/postgres both are.
type Merger interface {
	Store
	Merge(ctx context.Context, live bucketer.LiveSet) (blobstore.MergeReport, error)
	MergeState(ctx context.Context) (blobstore.MergeState, error)
}

// MaxMergedAdvantage is what the design tolerates of an attacker holding
// a copy of the store after the period merge, comparing blocks of one
// period (docs/design.md §6).
const MaxMergedAdvantage = 0.02

// SmallScaleConfig shapes SmallScale.
type SmallScaleConfig struct {
	Users     int // 5 to 50
	PerWindow int // users active in one seal window
	Seed      uint64
}

// SmallScaleConfigs are the shapes the stores' tests run SmallScale in:
// one, two and five users writing or renewing in each seal window.
var SmallScaleConfigs = []SmallScaleConfig{
	{Users: 5, PerWindow: 1, Seed: 1},
	{Users: 10, PerWindow: 2, Seed: 2},
	{Users: 50, PerWindow: 5, Seed: 3},
}

// SmallScaleFigures are what SmallScale measured, for a benchmark row.
type SmallScaleFigures struct {
	// AfterSeal is the largest advantage seen after any seal of a
	// period, comparing blocks of one period: what the merge erases.
	AfterSeal float64
	// Renewal is that figure in the period of whole-account renewals.
	Renewal float64
	// AfterMerge is the largest advantage after a merge.
	AfterMerge float64
	// Chance is the largest chance level after a merge.
	Chance float64
	// Cost is the largest merge's bytes rewritten per byte stored.
	Cost float64
}

// SmallScale is the attack on a small store: short seal windows, each
// holding the writes of cfg.PerWindow users only; in the next period,
// windows where those users log in, renew their whole account at once
// and write more files. After each seal the attacker compares blocks of
// one period (what the design promises once the period is merged) and
// reads the seal windows; after each period's merge it must not do
// better than MaxMergedAdvantage. Every block reads back after each
// merge, and the store holds nothing awaiting a merge.
func SmallScale(t testing.TB, ac AttackConfig, cfg SmallScaleConfig) SmallScaleFigures {
	ctx := context.Background()
	st, svc, clock, bk := attackStore(t, ac, 4)
	s, ok := st.(Merger)
	if !ok {
		t.Fatal("the store has no period merge")
	}
	// Larger accounts for fewer users, so that a period holds about as
	// many blocks (and the measurement as many pairs) whatever the count.
	files := max(3, 120/cfg.Users)
	sim := attack.NewSim(svc, attack.SimConfig{Users: cfg.Users, Overlap: cfg.PerWindow, MinFiles: files, MaxFiles: files + 2, Seed: cfg.Seed})
	rng := rand.New(rand.NewPCG(cfg.Seed, 7))
	var fig SmallScaleFigures

	measure := func(when string, byPeriod, verify bool) attack.Report {
		t.Helper()
		var strata func(map[wire.ID]attack.Owner) map[wire.ID]attack.Owner
		if byPeriod {
			strata = attack.ByPeriod
		}
		return measureCopy(t, ac, sim, rng, fmt.Sprintf("%s, %d users, %d per window, %s", ac.Name, cfg.Users, cfg.PerWindow, when), verify, strata)
	}
	// windows runs one period: the users in a random order, PerWindow at
	// a time, each group doing fn in a window of its own, then a seal.
	windows := func(period string, fn func(which []int) error) float64 {
		order := rng.Perm(cfg.Users)
		var worst float64
		for len(order) > 0 {
			n := min(cfg.PerWindow, len(order))
			if err := fn(order[:n]); err != nil {
				t.Fatal(err)
			}
			order = order[n:]
			mustSeal(t, s)
			sim.NextWindow()
			if len(order) == 0 {
				// After the period's last seal, when every window shows:
				// each measurement reads the whole copy.
				rep := measure(period+", after its last seal, blocks of one period compared", true, ac.VerifyAfterSeal)
				worst = max(worst, rep.Best.Advantage)
			}
		}
		return worst
	}
	merge := func(when string) {
		t.Helper()
		clock.Advance(24 * time.Hour)
		sim.NextPeriod()
		mustSeal(t, s)
		rep, err := s.Merge(ctx, bk.Live())
		if err != nil {
			t.Fatalf("Merge: %v", err)
		}
		t.Logf("merge: %d blocks, %d leases, %d bytes rewritten, %.3f per byte stored, in %v", rep.Blocks, rep.Leases, rep.Bytes, rep.Cost(), rep.Duration)
		fig.Cost = max(fig.Cost, rep.Cost())
		st, err := s.MergeState(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Pending != 0 || !st.Merged[bk.Bucket(bk.Current()-1)] {
			t.Fatalf("after the merge: %d rows await a merge, the closed period merged: %v", st.Pending, st.Merged[bk.Bucket(bk.Current()-1)])
		}
		r := measure(when+", after the period merge", true, true)
		fig.AfterMerge, fig.Chance = max(fig.AfterMerge, r.Best.Advantage), max(fig.Chance, r.Chance)
		if r.Best.Advantage > MaxMergedAdvantage {
			t.Errorf("%s, after the period merge: the attacker links blocks with advantage %.3f (%s), more than %.2f",
				when, r.Best.Advantage, r.Best.Strategy, MaxMergedAdvantage)
		}
	}

	fig.AfterSeal = windows("first period", func(which []int) error { return sim.WriteFilesOf(ctx, which) })
	merge("first period")
	fig.Renewal = windows("second period (whole-account renewals, more files)", func(which []int) error {
		if err := sim.RenewAllOf(ctx, which); err != nil {
			return err
		}
		return sim.WriteFilesOf(ctx, which)
	})
	fig.AfterSeal = max(fig.AfterSeal, fig.Renewal)
	if ac.WindowsVisible && fig.AfterSeal < minAdvantageBefore/3 {
		t.Errorf("after the seals, the attacker links blocks of one period with advantage %.3f only: it should see the seal windows", fig.AfterSeal)
	}
	merge("second period")
	checkAllSealed(t, s, "after the merges")
	return fig
}

// mergeLive is the live set the kill test's child merges under: a
// bucket it never writes as the current one, so that everything sealed
// is merged, and killBuckets[0] as the period that closed.
var mergeLive = bucketer.LiveSet{Current: 2, Buckets: []bucketer.Bucket{{3}, killBuckets[0], killBuckets[1]}}

// Marks of a child that merges.
const (
	markMergeStart = "g"
	markMergeEnd   = "G"
)

// merge is the child's merge after a seal, when its store merges.
func (c *Child) merge(ctx context.Context, s Store) {
	m, ok := s.(Merger)
	if !ok {
		return
	}
	c.Say(markMergeStart)
	if _, err := m.Merge(ctx, mergeLive); err != nil {
		c.Say("e %v", err)
	}
	c.Say(markMergeEnd)
}

// afterKillMerge finishes the merge a kill may have interrupted and
// checks that it left nothing awaiting one.
func afterKillMerge(t *testing.T, s Store, acked map[wire.ID]byte) (blobstore.MergeReport, bool) {
	m, ok := s.(Merger)
	if !ok {
		return blobstore.MergeReport{}, false
	}
	rep, err := m.Merge(context.Background(), mergeLive)
	if err != nil {
		t.Fatalf("Merge after the kill: %v", err)
	}
	checkAcked(t, s, acked)
	st, err := m.MergeState(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != 0 || !st.Merged[mergeLive.Buckets[1]] {
		t.Fatalf("after a merge: %d rows await a merge, the closed period merged: %v", st.Pending, st.Merged[mergeLive.Buckets[1]])
	}
	return rep, true
}

// BenchMerge merges a period of SealBlocks new blocks per round, sealed
// in four windows untimed, and in the same rounds has the raw engine do
// cfg.Raw's rewrite of as many blocks (the same baseline as BenchSeal).
// It reports both rates, their ratio merge/raw (also as the median of
// the rounds' ratios) and the merge's bytes rewritten per byte stored.
func BenchMerge(b *testing.B, cfg SealBench) {
	ctx := context.Background()
	s, ok := cfg.Store.(Merger)
	if !ok {
		b.Fatal("the store has no period merge")
	}
	blocks := newBlockSet(64, cfg.BlockSize)
	var mergeTime, rawTime time.Duration
	var ratios []float64
	var cost float64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		bucket := randBucket()
		ops := make([]blobstore.Op, SealBlocks)
		for j := range ops {
			ops[j] = blocks.create(j, bucket)
		}
		for w := 0; w < 4; w++ {
			part := ops[w*len(ops)/4 : (w+1)*len(ops)/4]
			for j := 0; j < len(part); j += 64 {
				if _, err := s.Apply(ctx, part[j:min(j+64, len(part))]); err != nil {
					b.Fatal(err)
				}
			}
			mustSeal(b, s)
		}
		cfg.Raw.Fill(b, ops)
		if cfg.Settle != nil {
			cfg.Settle(b)
		}
		live := bucketer.LiveSet{Current: uint64(i + 1), Buckets: []bucketer.Bucket{randBucket(), bucket}}
		b.StartTimer()
		merge := func() time.Duration {
			t0 := time.Now()
			rep, err := s.Merge(ctx, live)
			if err != nil {
				b.Fatal(err)
			}
			if rep.Blocks < SealBlocks {
				b.Fatalf("the merge rewrote %d blocks, want %d", rep.Blocks, SealBlocks)
			}
			cost = rep.Cost()
			return time.Since(t0)
		}
		rewrite := func() time.Duration {
			t0 := time.Now()
			cfg.Raw.Rewrite(b)
			return time.Since(t0)
		}
		var m, r time.Duration
		if i%2 == 0 {
			m, r = merge(), rewrite()
		} else {
			r, m = rewrite(), merge()
		}
		mergeTime, rawTime = mergeTime+m, rawTime+r
		ratios = append(ratios, float64(r)/float64(m))
	}
	b.StopTimer()
	data := float64(SealBlocks*cfg.BlockSize) * float64(b.N)
	mergeRate, rawRate := data/1e6/mergeTime.Seconds(), data/1e6/rawTime.Seconds()
	b.ReportMetric(mergeRate, "merge-MB/s")
	b.ReportMetric(rawRate, "raw-MB/s")
	b.ReportMetric(mergeRate/rawRate, "merge/raw")
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "merge/raw-median-round")
	b.ReportMetric(cost, "bytes-per-byte-stored")
}

// BenchWritesDuringMerge times single-block creates (four writers) while
// a merge rewrites SealBlocks blocks sealed before it, then as long again
// with no merge, and reports the median latency of each and their ratio.
func BenchWritesDuringMerge(b *testing.B, s Merger, blockSize int) {
	var n uint64
	seal := func() error {
		_, err := s.Seal(context.Background())
		return err
	}
	merge := func() error {
		n++
		_, err := s.Merge(context.Background(), bucketer.LiveSet{Current: n, Buckets: []bucketer.Bucket{randBucket(), randBucket()}})
		return err
	}
	benchWritesDuring(b, s, blockSize, "merge", seal, merge, func() error {
		if err := seal(); err != nil {
			return err
		}
		return merge()
	})
}

// BenchMergeAttack runs SmallScale once per round (10 users, 2 per seal
// window) and reports what the attacker reached after the seals, in the
// period of whole-account renewals, and after the merges, with the
// chance level and the merges' cost.
func BenchMergeAttack(b *testing.B, ac AttackConfig) {
	var fig SmallScaleFigures
	for i := 0; i < b.N; i++ {
		f := SmallScale(b, ac, SmallScaleConfig{Users: 10, PerWindow: 2, Seed: uint64(i + 1)})
		fig.AfterSeal, fig.Renewal = max(fig.AfterSeal, f.AfterSeal), max(fig.Renewal, f.Renewal)
		fig.AfterMerge, fig.Chance, fig.Cost = max(fig.AfterMerge, f.AfterMerge), max(fig.Chance, f.Chance), max(fig.Cost, f.Cost)
	}
	b.ReportMetric(fig.AfterSeal, "advantage-after-seal")
	b.ReportMetric(fig.Renewal, "advantage-renewals-after-seal")
	b.ReportMetric(fig.AfterMerge, "advantage-after-merge")
	b.ReportMetric(fig.Chance, "chance-after-merge")
	b.ReportMetric(fig.Cost, "merge-bytes-per-byte-stored")
}
