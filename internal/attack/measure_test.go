package attack

import (
	"math/rand/v2"
	"testing"

	"github.com/blindstore/blindstore/wire"
)

func TestKS(t *testing.T) {
	cases := []struct {
		same, diff []float64
		want       float64
	}{
		{[]float64{0, 0, 0}, []float64{5, 6, 7}, 1},
		{[]float64{1, 2, 3}, []float64{1, 2, 3}, 0},
		{[]float64{0, 10}, []float64{5, 10}, 0.5},
		{[]float64{0, 0}, []float64{0, 0}, 0},
	}
	for i, c := range cases {
		if got := ks(append([]float64(nil), c.same...), append([]float64(nil), c.diff...)); got != c.want {
			t.Errorf("case %d: ks = %v, want %v", i, got, c.want)
		}
	}
}

// population makes users × per blocks in one window, with features made
// by obs(user, k) for the k-th block.
func population(users, per int, obs func(rng *rand.Rand, user, k int) []Obs) (Features, map[wire.ID]Owner) {
	rng := rand.New(rand.NewPCG(1, 2))
	feat, truth := Features{}, map[wire.ID]Owner{}
	for u := 0; u < users; u++ {
		for k := 0; k < per; k++ {
			id := wire.NewID()
			truth[id] = Owner{User: u}
			feat[id] = obs(rng, u, k)
		}
	}
	return feat, truth
}

// A copy where each user's blocks share a transaction is read at once;
// one where rows lie in a random order and carry one transaction says
// nothing beyond chance.
func TestMeasureSeesAndDoesNotInvent(t *testing.T) {
	const users, per = 10, 40
	leaky, truth := population(users, per, func(rng *rand.Rand, u, k int) []Obs {
		return []Obs{{Kind: "blocks", Rel: "blocks", Xmin: uint64(1000 + u), Page: int64(u*per + k), Pos: int64(u*per+k) + 1}}
	})
	rep := Measure(leaky, truth, rand.New(rand.NewPCG(3, 4)))
	t.Logf("leaky copy: %s", rep)
	if rep.Best.Advantage < 0.95 {
		t.Errorf("a copy with one transaction per user gives advantage %.3f, want about 1", rep.Best.Advantage)
	}
	if rep.Chance > 0.1 {
		t.Errorf("chance level %.3f on shuffled labels; want near 0", rep.Chance)
	}

	sealed, truth := population(users, per, func(rng *rand.Rand, u, k int) []Obs {
		p := rng.Int64N(users * per)
		return []Obs{{Kind: "blocks", Rel: "blocks", Xmin: 7, Page: p / 8, Pos: p + 1}, {Kind: "leases", Rel: "leases", Xmin: 7, Page: rng.Int64N(20), Pos: rng.Int64N(1000) + 1}}
	})
	rep = Measure(sealed, truth, rand.New(rand.NewPCG(5, 6)))
	t.Logf("sealed copy: %s", rep)
	if rep.Best.Advantage > 0.05 {
		t.Errorf("a copy in random order gives advantage %.3f, want below 0.05", rep.Best.Advantage)
	}
	if rep.Same != users*per*(per-1)/2 || rep.Diff != diffPerSame*rep.Same {
		t.Errorf("%d same and %d other pairs", rep.Same, rep.Diff)
	}
}

// Blocks of different windows are never compared: a copy that tells
// windows apart (the design allows it) gives no advantage by that alone.
func TestMeasureComparesWithinWindows(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	feat, truth := Features{}, map[wire.ID]Owner{}
	for w := 0; w < 2; w++ {
		for u := 0; u < 8; u++ {
			// User u writes 10 blocks in window 0 when u is even, 30
			// when odd, and the other way round in window 1: "same window"
			// would say something about the user if pairs crossed windows.
			n := 10 + 20*((u+w)%2)
			for k := 0; k < n; k++ {
				id := wire.NewID()
				truth[id] = Owner{User: u, Window: w}
				feat[id] = []Obs{{Kind: "blocks", Rel: "blocks", Xmin: uint64(100 + w), Pos: rng.Int64N(1e6) + 1, Page: rng.Int64N(1e4)}}
			}
		}
	}
	rep := Measure(feat, truth, rand.New(rand.NewPCG(9, 10)))
	t.Logf("%s", rep)
	if rep.Best.Advantage > 0.05 {
		t.Errorf("advantage %.3f from windows alone", rep.Best.Advantage)
	}
}

// Seal windows of a few users each: blocks of one window compared, the
// seal's transaction says nothing; blocks of one period compared, it says
// whose they are, which is what the period merge must erase. ByPeriod
// turns the first measurement into the second.
func TestMeasureByPeriodSeesWindows(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	feat, truth := Features{}, map[wire.ID]Owner{}
	for w := 0; w < 8; w++ {
		for u := 2 * w; u < 2*w+2; u++ { // two users a window
			for k := 0; k < 20; k++ {
				id := wire.NewID()
				truth[id] = Owner{User: u, Window: w, Period: 1, Lease: 1}
				feat[id] = []Obs{{Kind: "blocks", Rel: "blocks", Xmin: uint64(100 + w), Pos: rng.Int64N(1e6) + 1}}
			}
		}
	}
	byWindow := Measure(feat, truth, rand.New(rand.NewPCG(13, 14)))
	byPeriod := Measure(feat, ByPeriod(truth), rand.New(rand.NewPCG(13, 14)))
	t.Logf("by window: %s", byWindow)
	t.Logf("by period: %s", byPeriod)
	if byWindow.Best.Advantage > 0.1 {
		t.Errorf("by window: advantage %.3f from the windows alone", byWindow.Best.Advantage)
	}
	if byPeriod.Best.Advantage < 0.5 {
		t.Errorf("by period: advantage %.3f; the seal windows should show", byPeriod.Best.Advantage)
	}
}
