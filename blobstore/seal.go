package blobstore

import (
	"bytes"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"github.com/blindstore/blindstore/bucketer"
)

// Sealing (docs/design.md §6) is optional for a Store: a store whose copy
// would show which blocks were written together keeps what was written
// since its last seal apart, and a seal rewrites it into the sealed part
// in a random order. The scheduler finds it by type assertion; these are
// the figures it and the audit get back. They are counts only and never
// name a block.

// SealReport says what one seal did.
type SealReport struct {
	Blocks   int64         // blocks whose data the seal rewrote into the sealed part
	Leases   int64         // lease records the seal rewrote (written and renewed blocks)
	Deleted  int64         // blocks deleted or purged since the last seal whose rows it removed
	Bytes    int64         // bytes of block data it rewrote
	Resumed  bool          // it first finished a seal that had been interrupted
	Duration time.Duration // how long it took
}

// SealStats says how much awaits the next seal.
type SealStats struct {
	Blocks int64 // blocks with a change (write, renewal, delete) not sealed yet
	Rows   int64 // rows or records the store holds apart for the next seal
}

// Writers counts the Applies a store begins and remembers when the last
// began, so that its seal can tell whether writers are busy: a seal
// takes smaller steps while they are, and after a step during which one
// began it pauses as long as the step took, so that writers never wait
// on a seal for long.
type Writers struct {
	n, last atomic.Int64 // Applies begun; when the last began (Unix ns)
}

// Began records that an Apply begins now.
func (w *Writers) Began() {
	w.n.Add(1)
	w.last.Store(time.Now().UnixNano())
}

// Count is the number of Applies begun: a seal compares it before and
// after a step.
func (w *Writers) Count() int64 { return w.n.Load() }

// Active reports whether an Apply began in the last 100 ms.
func (w *Writers) Active() bool {
	last := w.last.Load()
	return last != 0 && time.Since(time.Unix(0, last)) < 100*time.Millisecond
}

// The period merge (docs/design.md §6): a seal leaves its own trace (the
// rows it wrote share its transaction, its pages lie together), and on a
// small store one seal window may hold one user's writes only. So once a
// period closes, everything that the period's seals placed is rewritten
// once more, in one random order, and a copy shows of it nothing finer
// than "placed in that period". A store that merges records which closed
// periods it merged, as a set of their buckets, never in order.

// MergeReport says what one period merge did.
type MergeReport struct {
	Blocks   int64         // blocks whose data the merge rewrote
	Leases   int64         // lease rows or records it rewrote
	Bytes    int64         // bytes it rewrote: block data and lease rows or records
	Stored   int64         // bytes of block data the store holds, for the cost
	Resumed  bool          // it finished a merge that had been interrupted (never on PostgreSQL: a merge is one transaction)
	Duration time.Duration // how long it took
}

// Cost is the merge's bytes rewritten per byte stored.
func (r MergeReport) Cost() float64 {
	if r.Stored == 0 {
		return 0
	}
	return float64(r.Bytes) / float64(r.Stored)
}

// MergeState says where a store stands with the period merge.
type MergeState struct {
	// Merged holds the buckets of the closed periods merged, among those
	// of the live set the store was last merged under.
	Merged map[bucketer.Bucket]bool
	// Pending counts the blocks (data or lease) that seals placed since
	// the last merge: the current period's, unless a merge is owed.
	Pending int64
}

// MergedSet is a store's merged set after merging live's previous
// period: the buckets of old still live, and that one, sorted by value
// so that the set says nothing of the order periods were merged in. A
// store's first merge rewrites everything it holds (all), and so merges
// every closed period of the live set.
func MergedSet(old []bucketer.Bucket, live bucketer.LiveSet, all bool) []bucketer.Bucket {
	var out []bucketer.Bucket
	for _, b := range old {
		if live.Contains(b) {
			out = append(out, b)
		}
	}
	closed := live.Buckets[min(1, len(live.Buckets)):]
	if !all {
		closed = closed[:min(1, len(closed))]
	}
	for _, b := range closed {
		if !slices.Contains(out, b) {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(a, b bucketer.Bucket) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// EncodeBuckets is how a store keeps a merged set: the buckets one after
// the other.
func EncodeBuckets(bs []bucketer.Bucket) []byte {
	out := make([]byte, 0, len(bs)*bucketer.BucketSize)
	for _, b := range bs {
		out = append(out, b[:]...)
	}
	return out
}

// DecodeBuckets reads what EncodeBuckets wrote.
func DecodeBuckets(v []byte) ([]bucketer.Bucket, error) {
	if len(v)%bucketer.BucketSize != 0 {
		return nil, errors.New("the merged set is damaged")
	}
	out := make([]bucketer.Bucket, 0, len(v)/bucketer.BucketSize)
	for i := 0; i < len(v); i += bucketer.BucketSize {
		out = append(out, bucketer.Bucket(v[i:i+bucketer.BucketSize]))
	}
	return out, nil
}
