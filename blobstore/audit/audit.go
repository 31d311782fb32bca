// Package audit is the report of `blindstored audit`: what a copy of a
// store would reveal. Each store reads its own layout (bolt.Audit,
// postgres.Audit) into a Report; this package holds what is common to
// them, so that the command knows no store's schema.
//
// A Report holds counts only: it names tables, columns, settings and meta
// keys, never a block, a proof, an ETag or a bucket.
package audit

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
)

// Report is what an audit found.
type Report struct {
	Store          string               `json:"store"` // "embedded" or "postgresql"
	Blocks         int64                `json:"blocks"`
	Buckets        int                  `json:"buckets"`         // distinct buckets holding blocks
	LiveBuckets    int                  `json:"live_buckets"`    // of them, in the live set
	ExpiredBlocks  int64                `json:"expired_blocks"`  // in buckets of past periods: the next purge deletes them
	ExpiredBuckets int                  `json:"expired_buckets"` // past periods' buckets
	UnknownBlocks  int64                `json:"unknown_blocks"`  // in buckets of no period of this key
	UnknownBuckets int                  `json:"unknown_buckets"`
	OtherSize      int64                `json:"blocks_of_another_size"`
	AwaitingSeal   *blobstore.SealStats `json:"awaiting_seal,omitempty"`
	FreePages      *FreePages           `json:"free_pages,omitempty"`
	Settings       map[string]string    `json:"settings,omitempty"` // PostgreSQL settings read
	// ClosedPeriods says, for each closed period of the live set, newest
	// first, whether the period merge rewrote it (docs/design.md §6).
	ClosedPeriods []ClosedPeriod `json:"closed_periods,omitempty"`
	// AwaitingMerge counts the rows or records that seals placed since
	// the last period merge.
	AwaitingMerge int64    `json:"awaiting_merge"`
	Findings      []string `json:"findings"`
	Notes         []string `json:"notes"`
	// ByBucket counts the blocks of each bucket for Classify. Never
	// encoded: bucket values are not printed.
	ByBucket map[bucketer.Bucket]int64 `json:"-"`
}

// FreePages is the embedded store's free pages: bbolt keeps what a freed
// page held until it is reused, and a seal overwrites them with zeros.
type FreePages struct {
	Free    int `json:"free"`
	NonZero int `json:"not_scrubbed"` // still holding old bytes
}

// ClosedPeriod is one closed period of the live set. It is named by its
// age, never by its bucket.
type ClosedPeriod struct {
	Age    int   `json:"age"`    // periods before the current one
	Blocks int64 `json:"blocks"` // blocks in its bucket
	Merged bool  `json:"merged"`
}

// Merges reports, per closed period of the live set, whether it was
// merged, from the store's merge state (nil: the store has none yet, a
// file from before the merge). A closed period that holds blocks and
// was not merged is a finding: its seal windows still show in a copy.
// So are blocks awaiting a merge while the period just closed was not
// merged; in the current period they are a note.
func (r *Report) Merges(bk *bucketer.Bucketer, st *blobstore.MergeState) {
	if st == nil {
		st = &blobstore.MergeState{}
	}
	cur := bk.Current()
	r.AwaitingMerge = st.Pending
	var unmerged []string
	for age := 1; age < bk.Retention() && uint64(age) <= cur; age++ {
		b := bk.Bucket(cur - uint64(age))
		p := ClosedPeriod{Age: age, Blocks: r.ByBucket[b], Merged: st.Merged[b]}
		r.ClosedPeriods = append(r.ClosedPeriods, p)
		if !p.Merged && p.Blocks > 0 {
			unmerged = append(unmerged, fmt.Sprintf("%d", age))
		}
	}
	if len(unmerged) > 0 {
		r.Finding("closed periods %s (periods ago) hold blocks and were not merged: a copy shows their seal windows, which on a small store say whose blocks are whose (blindstored merge merges the last one; is blindstored serve's scheduler running?)",
			strings.Join(unmerged, ", "))
	}
	switch prev := bk.Bucket(cur - 1); {
	case st.Pending == 0:
	case cur > 0 && !st.Merged[prev]:
		r.Finding("%d rows or records placed by seals await a merge, and the period just closed was not merged: run blindstored merge", st.Pending)
	default:
		r.Note("%d rows or records placed by this period's seals await its merge, after it closes: until then a copy shows which seal placed them", st.Pending)
	}
}

// New returns an empty report of the store kind named. Findings and
// notes start empty rather than nil, so that JSON shows [] for none.
func New(store string) *Report {
	return &Report{Store: store, ByBucket: map[bucketer.Bucket]int64{}, Findings: []string{}, Notes: []string{}}
}

// Finding records something a copy should not reveal: it fails the audit.
func (r *Report) Finding(format string, args ...any) {
	r.Findings = append(r.Findings, fmt.Sprintf(format, args...))
}

// Note records what awaits a seal or a purge: reported, not failing.
func (r *Report) Note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// Classify sorts the buckets of ByBucket into live, expired (a past
// period of this key), future and unknown.
func (r *Report) Classify(bk *bucketer.Bucketer) {
	cur := bk.Current()
	live := bk.Live()
	// Past periods of this key: as far back as a million periods (30
	// years of hours), which costs a fraction of a second of HMACs.
	past := map[bucketer.Bucket]bool{}
	ret := uint64(bk.Retention())
	if cur >= ret {
		lo := uint64(0)
		if cur > 1<<20 {
			lo = cur - 1<<20
		}
		need := false
		for b := range r.ByBucket {
			if !live.Contains(b) {
				need = true
			}
		}
		for p := cur - ret + 1; need && p > lo; p-- {
			past[bk.Bucket(p-1)] = true
		}
	}
	future := map[bucketer.Bucket]bool{}
	for p := cur + 1; p <= cur+3; p++ {
		future[bk.Bucket(p)] = true
	}
	r.Buckets = len(r.ByBucket)
	var futureBlocks int64
	for b, n := range r.ByBucket {
		switch {
		case live.Contains(b):
			r.LiveBuckets++
		case past[b]:
			r.ExpiredBuckets++
			r.ExpiredBlocks += n
		case future[b]:
			futureBlocks += n
		default:
			r.UnknownBuckets++
			r.UnknownBlocks += n
		}
	}
	if r.ExpiredBlocks > 0 {
		r.Note("%d blocks in %d buckets of past periods await a purge (is the purge running? blindstored purge --dry-run says)", r.ExpiredBlocks, r.ExpiredBuckets)
	}
	if futureBlocks > 0 {
		r.Finding("%d blocks carry the bucket of a future period: a server's clock runs ahead", futureBlocks)
	}
	if r.UnknownBlocks > 0 {
		r.Finding("%d blocks in %d buckets that are no period of this bucket key: written under another key, or planted", r.UnknownBlocks, r.UnknownBuckets)
	}
}

// Print writes the report for a person to read.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "blindstored audit: %s store\n", r.Store)
	fmt.Fprintf(w, "  blocks                  %d\n", r.Blocks)
	fmt.Fprintf(w, "  buckets                 %d (%d in the live set, %d of past periods, %d unknown)\n", r.Buckets, r.LiveBuckets, r.ExpiredBuckets, r.UnknownBuckets)
	fmt.Fprintf(w, "  blocks of another size  %d\n", r.OtherSize)
	if s := r.AwaitingSeal; s != nil {
		fmt.Fprintf(w, "  awaiting a seal         %d blocks (%d rows or records)\n", s.Blocks, s.Rows)
	}
	if f := r.FreePages; f != nil {
		fmt.Fprintf(w, "  free pages              %d (%d still hold old bytes)\n", f.Free, f.NonZero)
	}
	if len(r.Settings) > 0 {
		keys := make([]string, 0, len(r.Settings))
		for k := range r.Settings {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + r.Settings[k]
		}
		fmt.Fprintf(w, "  settings                %s\n", strings.Join(parts, " "))
	}
	if len(r.ClosedPeriods) > 0 {
		parts := make([]string, len(r.ClosedPeriods))
		for i, p := range r.ClosedPeriods {
			m := "merged"
			if !p.Merged {
				m = "not merged"
			}
			parts[i] = fmt.Sprintf("%d ago: %s (%d blocks)", p.Age, m, p.Blocks)
		}
		fmt.Fprintf(w, "  closed periods          %s\n", strings.Join(parts, "; "))
		fmt.Fprintf(w, "  awaiting the merge      %d rows or records\n", r.AwaitingMerge)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if len(r.Findings) == 0 {
		fmt.Fprintln(w, "no findings: a copy of this store holds what the design allows, and nothing else")
		return
	}
	fmt.Fprintf(w, "%d findings:\n", len(r.Findings))
	for _, f := range r.Findings {
		fmt.Fprintf(w, "  - %s\n", f)
	}
}
