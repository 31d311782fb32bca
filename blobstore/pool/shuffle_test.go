package pool

import (
	"fmt"
	"math"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/wire"
)

func opsOn(ids ...wire.ID) []blobstore.Op {
	ops := make([]blobstore.Op, len(ids))
	for i, id := range ids {
		ops[i] = blobstore.Op{Kind: blobstore.OpRenew, ID: id, ProofHash: wire.ProofHash{byte(i)}}
	}
	return ops
}

// Each request's ops on one block keep their order, and at[r][i] says
// where each op went.
func TestPermuteKeepsEachRequestsOrderPerBlock(t *testing.T) {
	rng, err := newRand()
	if err != nil {
		t.Fatal(err)
	}
	x, y, z := wire.NewID(), wire.NewID(), wire.NewID()
	for range 2000 {
		reqs := [][]blobstore.Op{
			opsOn(x, y, x, z, x, y),
			opsOn(x, x), // another request on x: free relative to the first
			opsOn(z),
			opsOn(wire.NewID(), y, y, y),
		}
		ops, at := permute(rng, reqs)
		for r, req := range reqs {
			last := map[wire.ID]int{}
			for i := range req {
				p := at[r][i]
				if ops[p].ID != req[i].ID || ops[p].ProofHash != req[i].ProofHash {
					t.Fatalf("at[%d][%d] = %d does not hold that op", r, i, p)
				}
				if prev, ok := last[req[i].ID]; ok && prev > p {
					t.Fatalf("request %d: ops on one block out of order", r)
				}
				last[req[i].ID] = p
			}
		}
	}
}

// The order is uniform over the admissible ones: request A = (a1 on X,
// a2 on X) and two single-op requests B, C have 4!/2 = 12 admissible
// orders. 24 000 draws, Pearson's chi-square with 11 degrees of freedom:
// the test asserts chi² < 48.9, its 1e-6 upper quantile.
func TestPermuteIsUniform(t *testing.T) {
	rng, err := newRand()
	if err != nil {
		t.Fatal(err)
	}
	x := wire.NewID()
	reqs := [][]blobstore.Op{opsOn(x, x), opsOn(wire.NewID()), opsOn(wire.NewID())}
	const draws = 24000
	counts := map[string]int{}
	for range draws {
		_, at := permute(rng, reqs)
		counts[fmt.Sprint(at)]++
	}
	if len(counts) != 12 {
		t.Fatalf("%d distinct orders, want the 12 admissible ones", len(counts))
	}
	want := float64(draws) / 12
	var chi2 float64
	for _, c := range counts {
		d := float64(c) - want
		chi2 += d * d / want
	}
	if chi2 >= 48.9 {
		t.Fatalf("chi² = %.1f over 11 df: the order is not uniform", chi2)
	}
	t.Logf("chi² = %.1f (11 df, limit 48.9)", chi2)
}

// A batch's commit order is uncorrelated with its arrival order: over 200
// batches of 64 single-op requests, the pooled within-batch Spearman
// correlation between arrival and position in the commit. The same
// statistic on an unshuffled batch would be 1, with z ≈ 112.
func TestPermuteUncorrelatedWithArrival(t *testing.T) {
	rng, err := newRand()
	if err != nil {
		t.Fatal(err)
	}
	var groups [][2][]float64
	for range 200 {
		reqs := make([][]blobstore.Op, 64)
		for i := range reqs {
			reqs[i] = opsOn(wire.NewID())
		}
		_, at := permute(rng, reqs)
		arrival, pos := make([]float64, 64), make([]float64, 64)
		for i := range reqs {
			arrival[i], pos[i] = float64(i), float64(at[i][0])
		}
		groups = append(groups, [2][]float64{arrival, pos})
	}
	rho, z, df := pooledRho(groups)
	if math.Abs(z) >= zLimit {
		t.Fatalf("pooled rho = %.4f, z = %.2f over %d df: order follows arrival", rho, z, df)
	}
	t.Logf("pooled rho = %.4f, z = %.2f (limit |z| < %.1f, |rho| < %.4f)", rho, z, zLimit, zLimit/math.Sqrt(float64(df)))
}
