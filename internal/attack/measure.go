// Package attack is blindstore's own adversary against a copy of a store
// (docs/design.md §2 and §6): someone who holds the database files, or the
// bbolt file, and wants to know which blocks belong to the same user.
//
// It has three parts:
//
//   - Sim drives simulated users through a blobstore.Service, as the
//     client does (all of them at once, or a few per seal window with
//     WriteFilesOf and RenewAllOf, as on a small store): files written in overlapping bursts (one batch write
//     per file, then a compare-and-swap of the user's root block; a few
//     users at a time, SimConfig.Overlap), some files deleted, files read
//     back by half of the users, and, after the clock moves to the next
//     period, a login that renews every block in shuffled batches. It
//     knows which user owns each live block and in which seal window the
//     block's data was last written.
//   - Copy readers turn a store's files into observations per block, the
//     way a copy holder would read them, not through the store's API:
//     PostgresCopy reads every heap page of every table, partition and
//     TOAST table with pageinspect (dead row versions included) and
//     records each tuple's xmin, xmax, hint bits, page, position and TOAST
//     value id;
//     BoltCopy parses the raw bbolt file page by page (freed pages
//     included) and records the page id and kind of every page that
//     holds a block's id.
//   - Measure computes the attacker's advantage.
//
// What Measure computes, exactly: the blocks are split into strata by
// seal window (the design allows a copy to show which seal wrote a row,
// so only blocks last written in the same window are compared); after
// the period merge, ByPeriod makes the strata the periods instead (a
// merged copy may show in which period a block's data was placed and its
// bucket, nothing finer), and on a small store the seal windows within a
// period are what the attacker then reads before the merge. Every
// pair of blocks of one user in one stratum is a "same" pair; "different"
// pairs are drawn uniformly from the pairs of two users in one stratum
// (at most diffPerSame times as many). Each strategy s gives a pair a
// distance d_s, or +Inf when the two blocks have no observations s can
// compare:
//
//   - for each kind of row (sealed blocks, hot blocks, sealed leases, hot
//     leases, the TOAST chunks of each, or a bbolt page kind) and each
//     quantity — transaction id (xmin), its rank among all transaction
//     ids, the deleter or locker (xmax), TOAST value id, page number and
//     position within one relation, hint bits (which a reader's
//     visibility check sets: "read since written") — the smallest
//     difference between an observation of one block and one of the
//     other;
//   - "file-page", for bbolt: the smallest difference of page numbers
//     across the whole file, whatever the kind;
//   - "linked": 0 when the two blocks are connected through shared
//     transaction ids (blocks are joined when any of their rows share an
//     xmin or xmax, ignoring ids that a third or more of all blocks share,
//     which is what a seal leaves and what a copy may show), 1 otherwise.
//     It links a user's files through a login's renewal batches.
//   - "successor": an index update's shape. A block rewritten in place
//     (a user's root, overwritten after each file) leaves row versions
//     whose xmax is the next version's xmin: a chain of transactions, one
//     per user. Each block is put in the chain of the first transaction
//     of any chain that follows its own first xmin (a file's blocks are
//     written just before the root is swapped); 0 when two blocks land in
//     the same chain, 1 otherwise.
//
// The attacker guesses "same user" when d_s ≤ t (or when d_s > t, if that
// does better). Its advantage is the best, over thresholds t, of
// |TPR(t) − FPR(t)|, where TPR and FPR are the fractions of same and of
// different pairs that d_s ≤ t: the Kolmogorov–Smirnov distance between
// the two distributions of d_s, which is also 2·accuracy − 1 of the best
// threshold test on a balanced set of pairs. The report gives every strategy's figure and the
// best, and Chance: the best figure again with the users' labels shuffled
// among the blocks, which is what sampling noise alone reaches.
//
// The package is for tests. It never logs block IDs, and nothing in it
// reaches a production binary.
package attack

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"

	"github.com/blindstore/blindstore/wire"
)

// Obs is one thing a copy shows about a block: one row version (or TOAST
// chunk, or page) that holds it. Zero fields are unknown.
type Obs struct {
	Kind string // the kind of row or page: what its numbers may be compared with
	Rel  string // the physical relation (PostgreSQL) or file (bbolt): pages and positions compare within one
	Xmin uint64 // transaction that wrote the row
	Xmax uint64 // transaction that deleted, updated or locked it
	Page int64  // page number within Rel
	Pos  int64  // position in Rel's physical order: page and item
	OID  uint64 // TOAST value id of the block's data
	// Hint is 1 + the row's hint bits (xmin/xmax committed or invalid):
	// a reader's visibility check sets them on the rows it reads, so they
	// say which rows were read since they were written. 0 is unknown.
	Hint uint16
}

// Features are a copy's observations per block.
type Features map[wire.ID][]Obs

// Owner is the ground truth of one block.
type Owner struct {
	User   int
	Window int // seal window in which the block's data was last written
	Period int // period in which the block's data was last written
	Lease  int // period in which the block was last written or renewed: its bucket
}

// ByPeriod returns owners with each block's Window replaced by its
// period stratum: the period of its data and that of its bucket. After
// the period merge a copy may show these (which merge rewrote the data,
// which bucket and merge the lease), and nothing finer, so a measurement
// compares blocks within one stratum only.
func ByPeriod(owners map[wire.ID]Owner) map[wire.ID]Owner {
	out := make(map[wire.ID]Owner, len(owners))
	for id, o := range owners {
		o.Window = o.Period<<16 | o.Lease
		out[id] = o
	}
	return out
}

// Result is one strategy's figure.
type Result struct {
	Strategy  string
	Advantage float64
}

// Report is what Measure found.
type Report struct {
	Best       Result
	All        []Result
	Chance     float64 // best advantage with user labels shuffled
	Blocks     int     // blocks measured (with observations)
	Unseen     int     // live blocks the copy showed nothing of
	Same, Diff int     // pairs of each kind
}

func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "advantage %.3f (%s), chance level %.3f; %d blocks, %d same-user and %d other pairs",
		r.Best.Advantage, r.Best.Strategy, r.Chance, r.Blocks, r.Same, r.Diff)
	if r.Unseen > 0 {
		fmt.Fprintf(&b, ", %d live blocks not found in the copy", r.Unseen)
	}
	// The strategies that found anything at all, strongest first.
	found := slices.Clone(r.All)
	slices.SortStableFunc(found, func(a, b Result) int { return cmpFloat(b.Advantage, a.Advantage) })
	b.WriteString("; by strategy:")
	n := 0
	for _, x := range found {
		if x.Advantage < 0.005 || n == 8 {
			break
		}
		fmt.Fprintf(&b, " %s %.3f", x.Strategy, x.Advantage)
		n++
	}
	if n == 0 {
		b.WriteString(" none above 0.005")
	}
	return b.String()
}

// diffPerSame bounds the different-user pairs drawn per same-user pair.
const diffPerSame = 3

// strategy gives a pair of blocks a distance, +Inf when it cannot
// compare them.
type strategy struct {
	name string
	dist func(a, b int) float64
}

// quantity turns two observations of one kind into a distance, ok false
// when they are not comparable.
type quantity struct {
	name string
	dist func(a, b *Obs) (float64, bool)
}

func quantities(xminRank map[uint64]int) []quantity {
	abs := func(x int64) float64 { return math.Abs(float64(x)) }
	return []quantity{
		{"xmin", func(a, b *Obs) (float64, bool) {
			return abs(int64(a.Xmin) - int64(b.Xmin)), a.Xmin != 0 && b.Xmin != 0
		}},
		{"xmin-order", func(a, b *Obs) (float64, bool) {
			return abs(int64(xminRank[a.Xmin] - xminRank[b.Xmin])), a.Xmin != 0 && b.Xmin != 0
		}},
		{"xmax", func(a, b *Obs) (float64, bool) {
			return abs(int64(a.Xmax) - int64(b.Xmax)), a.Xmax != 0 && b.Xmax != 0
		}},
		{"toast-oid", func(a, b *Obs) (float64, bool) {
			return abs(int64(a.OID) - int64(b.OID)), a.OID != 0 && b.OID != 0
		}},
		{"hint", func(a, b *Obs) (float64, bool) {
			if a.Hint == b.Hint {
				return 0, a.Hint != 0
			}
			return 1, a.Hint != 0 && b.Hint != 0
		}},
		{"page", func(a, b *Obs) (float64, bool) {
			return abs(a.Page - b.Page), a.Rel == b.Rel
		}},
		{"position", func(a, b *Obs) (float64, bool) {
			return abs(a.Pos - b.Pos), a.Rel == b.Rel && a.Pos != 0 && b.Pos != 0
		}},
	}
}

// buildStrategies makes the strategies over the blocks' observations.
func buildStrategies(obs [][]Obs) []strategy {
	xmins := map[uint64]bool{}
	kinds := map[string]bool{}
	bolt := false
	for _, os := range obs {
		for _, o := range os {
			if o.Xmin != 0 {
				xmins[o.Xmin] = true
			}
			kinds[o.Kind] = true
			bolt = bolt || strings.HasPrefix(o.Kind, "bolt:")
		}
	}
	sorted := make([]uint64, 0, len(xmins))
	for x := range xmins {
		sorted = append(sorted, x)
	}
	slices.Sort(sorted)
	xminRank := make(map[uint64]int, len(sorted))
	for i, x := range sorted {
		xminRank[x] = i + 1
	}
	kindList := make([]string, 0, len(kinds))
	for k := range kinds {
		kindList = append(kindList, k)
	}
	sort.Strings(kindList)
	byKind := make([]map[string][]Obs, len(obs))
	for i, os := range obs {
		byKind[i] = map[string][]Obs{}
		for _, o := range os {
			byKind[i][o.Kind] = append(byKind[i][o.Kind], o)
		}
	}
	// Which quantities each kind has at all: the others could only give
	// +Inf to every pair.
	has := map[string]map[string]bool{}
	for _, os := range obs {
		for _, o := range os {
			h := has[o.Kind]
			if h == nil {
				h = map[string]bool{}
				has[o.Kind] = h
			}
			h["xmin"] = h["xmin"] || o.Xmin != 0
			h["xmin-order"] = h["xmin"]
			h["xmax"] = h["xmax"] || o.Xmax != 0
			h["toast-oid"] = h["toast-oid"] || o.OID != 0
			h["hint"] = h["hint"] || o.Hint != 0
			h["page"] = true
			h["position"] = h["position"] || o.Pos != 0
		}
	}
	var out []strategy
	for _, k := range kindList {
		for _, q := range quantities(xminRank) {
			if !has[k][q.name] {
				continue
			}
			out = append(out, strategy{q.name + "[" + k + "]", func(a, b int) float64 {
				return minDist(byKind[a][k], byKind[b][k], q.dist)
			}})
		}
	}
	if bolt {
		out = append(out, strategy{"file-page", func(a, b int) float64 {
			return minDist(obs[a], obs[b], func(x, y *Obs) (float64, bool) { return math.Abs(float64(x.Page - y.Page)), true })
		}})
	}
	comp := linked(obs)
	out = append(out, strategy{"linked", func(a, b int) float64 {
		if comp[a] == comp[b] {
			return 0
		}
		return 1
	}})
	succ := successors(obs)
	out = append(out, strategy{"successor", func(a, b int) float64 {
		if succ[a] >= 0 && succ[a] == succ[b] {
			return 0
		}
		return 1
	}})
	return out
}

// hubs returns the transaction ids that a third or more of the blocks
// share: a seal's, which say nothing beyond the window.
func hubs(obs [][]Obs) map[uint64]bool {
	holders := map[uint64]int{}
	for _, os := range obs {
		seen := map[uint64]bool{}
		for _, o := range os {
			for _, x := range []uint64{o.Xmin, o.Xmax} {
				if x != 0 && !seen[x] {
					seen[x] = true
					holders[x]++
				}
			}
		}
	}
	out := map[uint64]bool{}
	for x, n := range holders {
		if 3*n >= len(obs) {
			out[x] = true
		}
	}
	return out
}

// successors puts each block in an update chain (see the package doc);
// -1 when there is none after it.
func successors(obs [][]Obs) []int {
	hub := hubs(obs)
	parent := map[uint64]uint64{}
	var find func(uint64) uint64
	find = func(x uint64) uint64 {
		p, ok := parent[x]
		if !ok || p == x {
			return x
		}
		r := find(p)
		parent[x] = r
		return r
	}
	inChain := map[uint64]bool{}
	for _, os := range obs {
		for _, o := range os {
			if o.Xmin == 0 || o.Xmax == 0 || hub[o.Xmin] || hub[o.Xmax] || o.Xmin == o.Xmax {
				continue
			}
			inChain[o.Xmin], inChain[o.Xmax] = true, true
			if find(o.Xmin) != find(o.Xmax) {
				parent[find(o.Xmin)] = find(o.Xmax)
			}
		}
	}
	chainXids := make([]uint64, 0, len(inChain))
	for x := range inChain {
		chainXids = append(chainXids, x)
	}
	slices.Sort(chainXids)
	label := map[uint64]int{}
	out := make([]int, len(obs))
	for i, os := range obs {
		out[i] = -1
		var first uint64
		for _, o := range os {
			if o.Xmin != 0 && !hub[o.Xmin] && (first == 0 || o.Xmin < first) {
				first = o.Xmin
			}
		}
		if first == 0 {
			continue
		}
		k, _ := slices.BinarySearch(chainXids, first)
		if k == len(chainXids) {
			continue
		}
		r := find(chainXids[k])
		if _, ok := label[r]; !ok {
			label[r] = len(label)
		}
		out[i] = label[r]
	}
	return out
}

func minDist(as, bs []Obs, dist func(a, b *Obs) (float64, bool)) float64 {
	d := math.Inf(1)
	for i := range as {
		for j := range bs {
			if x, ok := dist(&as[i], &bs[j]); ok && x < d {
				d = x
			}
		}
	}
	return d
}

// linked joins blocks whose rows share a transaction id (xmin or xmax),
// ignoring ids shared by a third or more of the blocks, and returns each
// block's component.
func linked(obs [][]Obs) []int {
	holders := map[uint64][]int{}
	for i, os := range obs {
		seen := map[uint64]bool{}
		for _, o := range os {
			for _, x := range []uint64{o.Xmin, o.Xmax} {
				if x != 0 && !seen[x] {
					seen[x] = true
					holders[x] = append(holders[x], i)
				}
			}
		}
	}
	parent := make([]int, len(obs))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	for _, hs := range holders {
		if 3*len(hs) >= len(obs) {
			continue
		}
		for _, h := range hs[1:] {
			parent[find(h)] = find(hs[0])
		}
	}
	comp := make([]int, len(obs))
	for i := range comp {
		comp[i] = find(i)
	}
	return comp
}

type pair struct{ a, b int }

// Measure computes the advantage of the strategies on the blocks of
// truth, from what feat shows of them. rng draws the different-user pairs
// and the shuffled labels.
func Measure(feat Features, truth map[wire.ID]Owner, rng *rand.Rand) Report {
	var rep Report
	ids := make([]wire.ID, 0, len(truth))
	for id := range truth {
		ids = append(ids, id)
	}
	// A stable order, so that a seeded rng gives the same pairs.
	slices.SortFunc(ids, func(a, b wire.ID) int { return strings.Compare(string(a[:]), string(b[:])) })
	var obs [][]Obs
	var owners []Owner
	for _, id := range ids {
		if len(feat[id]) == 0 {
			rep.Unseen++
			continue
		}
		obs = append(obs, feat[id])
		owners = append(owners, truth[id])
	}
	rep.Blocks = len(obs)
	same, diff := drawPairs(owners, rng)
	rep.Same, rep.Diff = len(same), len(diff)
	if len(same) == 0 || len(diff) == 0 {
		return rep
	}
	strats := buildStrategies(obs)
	advantages := func(same, diff []pair) []Result {
		out := make([]Result, len(strats))
		for k, st := range strats {
			out[k] = Result{st.name, ks(distances(same, st), distances(diff, st))}
		}
		return out
	}
	rep.All = advantages(same, diff)
	for _, r := range rep.All {
		if r.Advantage > rep.Best.Advantage || rep.Best.Strategy == "" {
			rep.Best = r
		}
	}
	// The same measurement with labels that mean nothing: users shuffled
	// among the blocks of each window.
	shuffled := slices.Clone(owners)
	byWindow := map[int][]int{}
	for i, o := range owners {
		byWindow[o.Window] = append(byWindow[o.Window], i)
	}
	for _, idx := range byWindow {
		users := make([]int, len(idx))
		for k, i := range idx {
			users[k] = owners[i].User
		}
		rng.Shuffle(len(users), func(i, j int) { users[i], users[j] = users[j], users[i] })
		for k, i := range idx {
			shuffled[i].User = users[k]
		}
	}
	ns, nd := drawPairs(shuffled, rng)
	if len(ns) > 0 && len(nd) > 0 {
		for _, r := range advantages(ns, nd) {
			rep.Chance = max(rep.Chance, r.Advantage)
		}
	}
	return rep
}

// drawPairs returns every same-user pair within a window, and up to
// diffPerSame times as many different-user pairs within a window, drawn
// uniformly without repetition.
func drawPairs(owners []Owner, rng *rand.Rand) (same, diff []pair) {
	byWindow := map[int][]int{}
	for i, o := range owners {
		byWindow[o.Window] = append(byWindow[o.Window], i)
	}
	windows := make([]int, 0, len(byWindow))
	for w := range byWindow {
		windows = append(windows, w)
	}
	sort.Ints(windows)
	var allDiff []pair
	for _, w := range windows {
		idx := byWindow[w]
		for x := 0; x < len(idx); x++ {
			for y := x + 1; y < len(idx); y++ {
				p := pair{idx[x], idx[y]}
				if owners[p.a].User == owners[p.b].User {
					same = append(same, p)
				} else {
					allDiff = append(allDiff, p)
				}
			}
		}
	}
	n := min(len(allDiff), diffPerSame*len(same))
	for i := 0; i < n; i++ {
		j := i + rng.IntN(len(allDiff)-i)
		allDiff[i], allDiff[j] = allDiff[j], allDiff[i]
	}
	return same, allDiff[:n]
}

// distances gives each pair its distance under st.
func distances(pairs []pair, st strategy) []float64 {
	out := make([]float64, len(pairs))
	for k, p := range pairs {
		out[k] = st.dist(p.a, p.b)
	}
	return out
}

// ks is max over t of |F_same(t) − F_diff(t)|, F the fraction of pairs
// with distance ≤ t.
func ks(same, diff []float64) float64 {
	slices.Sort(same)
	slices.Sort(diff)
	var best float64
	i, j := 0, 0
	for i < len(same) || j < len(diff) {
		var t float64
		switch {
		case j >= len(diff) || (i < len(same) && same[i] <= diff[j]):
			t = same[i]
		default:
			t = diff[j]
		}
		for i < len(same) && same[i] <= t {
			i++
		}
		for j < len(diff) && diff[j] <= t {
			j++
		}
		if math.IsInf(t, 1) {
			break
		}
		best = max(best, math.Abs(float64(i)/float64(len(same))-float64(j)/float64(len(diff))))
	}
	return best
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
