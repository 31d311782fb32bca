package pool

import (
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"slices"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/wire"
)

// newRand returns a ChaCha8 generator seeded from crypto/rand: a
// cryptographically secure stream, cheap enough to draw a permutation of
// thousands of ops. Each batch gets a fresh seed, so whoever learns one
// generator's state learns one batch's order and nothing more.
func newRand() (*mrand.Rand, error) {
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("pool: seed the batch permutation: %w", err)
	}
	return mrand.New(mrand.NewChaCha8(seed)), nil
}

// permute lays the ops of a batch's requests out in a uniformly random
// order among those that keep, within each request, the order of its ops
// on one block: a request that writes a block and then deletes it means
// that order. Ops of different requests, and one request's ops on
// different blocks, were concurrent and take any order.
//
// It returns the ops in their new order and, for each request, where each
// of its ops went: at[r][i] is the position of reqs[r][i].
//
// How: a uniform permutation of all positions, then, for each request's
// ops on one block, the positions they drew are handed out again in
// ascending order. Every admissible order is reached from the same number
// of permutations (the product of the factorials of the group sizes), so
// the result is uniform over the admissible orders.
func permute(rng *mrand.Rand, reqs [][]blobstore.Op) (ops []blobstore.Op, at [][]int) {
	n := 0
	for _, r := range reqs {
		n += len(r)
	}
	perm := rng.Perm(n)
	at = make([][]int, len(reqs))
	k := 0
	for ri, r := range reqs {
		at[ri] = perm[k : k+len(r) : k+len(r)]
		k += len(r)
		if len(r) > 1 {
			keepOrderPerBlock(r, at[ri])
		}
	}
	ops = make([]blobstore.Op, n)
	for ri, r := range reqs {
		for i := range r {
			ops[at[ri][i]] = r[i]
		}
	}
	return ops, at
}

// keepOrderPerBlock reassigns the positions pos of one request's ops so
// that ops on the same block keep their relative order.
func keepOrderPerBlock(ops []blobstore.Op, pos []int) {
	var groups map[wire.ID][]int // op indexes per block, only for repeated blocks
	first := make(map[wire.ID]int, len(ops))
	for i := range ops {
		id := ops[i].ID
		j, seen := first[id]
		if !seen {
			first[id] = i
			continue
		}
		if groups == nil {
			groups = make(map[wire.ID][]int)
		}
		if groups[id] == nil {
			groups[id] = []int{j}
		}
		groups[id] = append(groups[id], i)
	}
	var drawn []int
	for _, idx := range groups {
		drawn = drawn[:0]
		for _, i := range idx {
			drawn = append(drawn, pos[i])
		}
		slices.Sort(drawn)
		for j, i := range idx {
			pos[i] = drawn[j]
		}
	}
}
