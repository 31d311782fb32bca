package pool

import (
	"math"
	"slices"
	"testing"
)

// ranks returns the ranks (1-based) of xs, ties sharing their mean rank.
func ranks(xs []float64) []float64 {
	idx := make([]int, len(xs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case xs[a] < xs[b]:
			return -1
		case xs[a] > xs[b]:
			return 1
		}
		return 0
	})
	r := make([]float64, len(xs))
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && xs[idx[j+1]] == xs[idx[i]] {
			j++
		}
		mean := float64(i+j)/2 + 1
		for k := i; k <= j; k++ {
			r[idx[k]] = mean
		}
		i = j + 1
	}
	return r
}

// spearman is Spearman's rank correlation of x and y: Pearson's
// correlation of their ranks.
func spearman(x, y []float64) float64 {
	rx, ry := ranks(x), ranks(y)
	n := float64(len(x))
	var mx, my float64
	for i := range rx {
		mx += rx[i]
		my += ry[i]
	}
	mx, my = mx/n, my/n
	var sxy, sxx, syy float64
	for i := range rx {
		dx, dy := rx[i]-mx, ry[i]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	if sxx == 0 || syy == 0 {
		return 0
	}
	return sxy / math.Sqrt(sxx*syy)
}

// pooledRho combines per-group Spearman correlations. Under the null
// hypothesis (each group's order independent of arrival), Spearman's rho
// of n pairs has mean 0 and variance exactly 1/(n-1), and is close to
// normal from n ≈ 10 on. Weighting each group by n-1,
//
//	rho = Σ (n_b-1)·rho_b / Σ (n_b-1)
//
// has variance 1/Σ(n_b-1), so z = rho·√Σ(n_b-1) is close to a standard
// normal. Tests assert |z| < zLimit: a false alarm once in about 150 000
// runs, while any real dependence on arrival order over hundreds of rows
// gives z in the tens.
func pooledRho(groups [][2][]float64) (rho, z float64, df int) {
	var sum float64
	for _, g := range groups {
		n := len(g[0])
		if n < 3 {
			continue
		}
		sum += float64(n-1) * spearman(g[0], g[1])
		df += n - 1
	}
	if df == 0 {
		return 0, 0, 0
	}
	rho = sum / float64(df)
	return rho, rho * math.Sqrt(float64(df)), df
}

const zLimit = 4.5

func TestSpearman(t *testing.T) {
	x := []float64{1, 2, 3, 4, 5}
	if r := spearman(x, []float64{10, 20, 30, 40, 50}); math.Abs(r-1) > 1e-12 {
		t.Errorf("monotone: %v", r)
	}
	if r := spearman(x, []float64{5, 4, 3, 2, 1}); math.Abs(r+1) > 1e-12 {
		t.Errorf("reversed: %v", r)
	}
	// Ties take mean ranks: x ranks 1..5, y ranks 1.5 1.5 3 4 5.
	if r := spearman(x, []float64{1, 1, 2, 3, 4}); math.Abs(r-0.9746794344808963) > 1e-9 {
		t.Errorf("ties: %v", r)
	}
}
