package client

// Renewal, docs/spec.md "Periods" and "Login". A block written or
// renewed in period p is purged at the start of period p+R. Login renews
// every block the account refers to whose last renewal is older than the
// current period: the roots, the head and the index blocks (cheap: a
// handful; the server answers "current" without writing for those already
// stamped this period) and the blocks of every file renewed before,
// data and share manifest alike. The requests go in shuffled batches,
// sent concurrently, so that their order says nothing about which blocks
// are one file's.
//
// The renewal is then recorded in the index, where the first dir holds a
// period in which every block of the account was renewed
// (indexfile.Index.Renewed): one field, so recording it rewrites one dir
// block however many files the account has, where setting every file's
// Renewed would rewrite every leaf (and delete as many old blocks, one
// request each through the server's pool). A file's renewal is the later
// of its own Renewed (its last write) and the index's. Only when some
// file's blocks are gone is the renewal recorded file by file, for the
// others, so that the damaged ones stay stale and are reported again.
//
// A login in a period already recorded, on any device, sends nothing at
// all: every renewal goes through the server's write pool, which holds it
// for its window (250 ms by default) to mix it with others, and renewing
// blocks already current would buy that wait for nothing.
//
// The date until which the account is safe without another login is the
// purge time of its oldest renewal: SafeUntil.
//
// Spread (docs/design.md §9): a login's renewal names the whole account
// at once, and until the period merge a copy of the store shows it as
// one seal's rows. Where the retention leaves room (R ≥ spreadMinRetention),
// a file renewed one period ago is renewed now or at the next period's
// first login, by a coin keyed from the account's secret, the file and
// the period (every device tosses the same); older files always now. So
// a login renews about half of a long-lived account, its blocks spread
// over two buckets, and no block waits more than one period longer: an
// account left alone after its last login lives at least R−2 periods
// instead of R−1, and SafeUntil, which the warnings read, tells the truth
// throughout. Spreading further (later, or over more periods) would
// shrink that margin more for a small gain, so it stops there.

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/blindstore/blindstore/indexfile"
	"github.com/blindstore/blindstore/wire"
)

// RenewReport says what a renewal did.
type RenewReport struct {
	Period  uint64    `json:"period"`  // the server's current period
	Sent    int       `json:"sent"`    // blocks named in renew requests
	Renewed int       `json:"renewed"` // moved to the current period: they were stale
	Current int       `json:"current"` // already current: nothing written
	Stale   int       `json:"stale_files"`
	Damaged []string  `json:"damaged,omitempty"` // files with blocks the server no longer has
	Missing int       `json:"missing"`           // blocks the server no longer has
	Safe    time.Time `json:"safe_until"`
}

// Renew renews what is stale (see the file comment) and records the
// renewal in the index.
func (a *Account) Renew(ctx context.Context) (*RenewReport, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	cur, err := a.remote.CurrentPeriod(ctx)
	if err != nil {
		return nil, err
	}
	rep := &RenewReport{Period: cur}
	if a.index == nil && a.due(cur) {
		if err := a.needIndex(ctx); err != nil {
			return nil, err
		}
	}
	if !a.due(cur) {
		rep.Safe = a.safeUntil()
		return rep, nil
	}
	var items []RenewItem
	owner := make(map[wire.ID]string) // block → file name, for the report
	for _, r := range a.head.Roots {
		items = append(items, RenewItem{ID: r.ID, Proof: r.Proof.Renew()})
	}
	items = append(items, RenewItem{ID: a.headLoc.ID, Proof: a.headLoc.Proof.Renew()})
	for _, r := range a.indexBlocks() {
		items = append(items, RenewItem{ID: r.ID, Proof: a.root.OwnerSecret.RenewProof(r.ID)})
	}
	stale := map[string]bool{}
	deferred := false
	for i := range a.index.Files {
		f := &a.index.Files[i]
		if a.fileRenewed(f) >= cur {
			continue
		}
		if a.deferRenewal(f, cur) {
			deferred = true
			continue
		}
		stale[f.Name] = true
		for _, r := range f.Refs() {
			items = append(items, RenewItem{ID: r.ID, Proof: a.root.OwnerSecret.RenewProof(r.ID)})
			owner[r.ID] = f.Name
		}
	}
	rep.Stale = len(stale)
	// The record of a whole-account renewal, the likely outcome, is
	// written beside the renewal (its index blocks, not the head: the
	// head may list it only once the renewal has been answered), which
	// spares a login a round trip through the server's pool.
	recordAll := func(x *indexfile.Index) error {
		x.Renewed = max(x.Renewed, cur)
		return nil
	}
	var recorded *indexfile.Index
	var pre *staged
	staging := make(chan struct{})
	if len(a.index.Files) > 0 && !deferred {
		if recorded, err = a.changed(recordAll); err != nil {
			return nil, err
		}
		go func() {
			defer close(staging)
			// A failure leaves pre nil: the record is then staged
			// again after the renewal, as when nothing was staged.
			pre, _ = a.stage(ctx, recorded)
		}()
	} else {
		close(staging)
	}
	res, err := renewShuffled(ctx, a.remote, items)
	<-staging
	unstage := func() {
		if pre != nil {
			a.deleteRefs(ctx, pre.written)
		}
	}
	if err != nil {
		unstage()
		return nil, wrap(KindNetwork, "renewing", err)
	}
	rep.Sent, rep.Renewed, rep.Current = len(items), res.Renewed, res.Current
	damaged := map[string]bool{}
	accountMissing := false
	for _, id := range append(res.Missing, res.Refused...) {
		rep.Missing++
		if name, ok := owner[id]; ok {
			damaged[name] = true
		} else {
			accountMissing = true
		}
	}
	for name := range damaged {
		rep.Damaged = append(rep.Damaged, name)
	}
	a.renewed = cur
	switch {
	case len(damaged) == 0 && !accountMissing && recorded != nil && !deferred:
		// The record's index blocks and head are written in this period
		// or later: recording cur stays true of them.
		_, err = a.updateTo(ctx, recorded, pre, nil)
	case len(stale) > len(damaged):
		unstage()
		_, err = a.update(ctx, func(x *indexfile.Index) error {
			for i := range x.Files {
				f := &x.Files[i]
				if stale[f.Name] && !damaged[f.Name] && f.Renewed < cur {
					f.Renewed = cur
				}
			}
			return nil
		})
	default:
		unstage()
	}
	if err != nil {
		return nil, wrap(KindOther, "recording the renewal in the index", err)
	}
	// With files deferred to the next period, the index does not say
	// that nothing is left to renew in this one: the quiet record does,
	// for the commands that follow.
	_ = a.due(cur)
	rep.Safe = a.safeUntil()
	return rep, nil
}

// Stale reports whether the account has something to renew in period cur.
func (a *Account) Stale(cur uint64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.due(cur)
}

// spreadMinRetention is the least retention at which renewal is spread
// over two periods: below it, one period of the margin is too much of it.
const spreadMinRetention = 6

// due reports whether a renewal in period cur would send anything: the
// account's own blocks are stale, or a file is and is not deferred.
func (a *Account) due(cur uint64) bool {
	if a.renewed < cur {
		return true
	}
	if a.index == nil {
		// Unread leaves: every file was renewed when the index was, or
		// a reading of this index found none due in this period, or
		// they must be read (Renew does).
		return a.indexRenewed() < cur && !(a.quietPeriod == cur && a.quietIndex == a.indexDigest())
	}
	for i := range a.index.Files {
		f := &a.index.Files[i]
		if a.fileRenewed(f) < cur && !a.deferRenewal(f, cur) {
			return true
		}
	}
	if a.tree != nil {
		a.quietPeriod, a.quietIndex = cur, a.indexDigest()
	}
	return false
}

// quietRecord is State.Quiet.
func (a *Account) quietRecord() *QuietRecord {
	if a.quietPeriod == 0 {
		return nil
	}
	return &QuietRecord{Period: a.quietPeriod, Index: hex.EncodeToString(a.quietIndex[:])}
}

// keepQuiet carries the quiet record over a range update of this
// device's (lazyindex.go) from the index of digest before: true still if
// no file of the range's new version is due.
func (a *Account) keepQuiet(before [32]byte, files []indexfile.File) {
	if a.quietIndex != before || a.quietPeriod == 0 {
		return
	}
	for i := range files {
		if f := &files[i]; a.fileRenewed(f) < a.quietPeriod && !a.deferRenewal(f, a.quietPeriod) {
			a.quietPeriod = 0
			return
		}
	}
	a.quietIndex = a.indexDigest()
}

// deferRenewal reports whether f, stale in period cur, waits for the next
// period's renewal (see the file comment): it was renewed in the period
// before cur, and the coin keyed from the account's secret, its first
// block and cur says so.
func (a *Account) deferRenewal(f *indexfile.File, cur uint64) bool {
	refs := f.Refs()
	if a.cfg.RetentionPeriods < spreadMinRetention || a.fileRenewed(f)+1 != cur || len(refs) == 0 {
		return false
	}
	p := a.root.OwnerSecret.RenewProof(refs[0].ID)
	h := sha256.New()
	h.Write([]byte("blindstore/v1/renew-spread"))
	h.Write(p[:])
	h.Write(binary.BigEndian.AppendUint64(nil, cur))
	return h.Sum(nil)[0]&1 == 1
}

func (a *Account) oldestRenewal() uint64 {
	oldest := a.renewed
	if a.index == nil && a.indexRenewed() >= oldest {
		return oldest // no file's is older: no leaf need be read
	}
	a.mustIndex()
	for i := range a.index.Files {
		oldest = min(oldest, a.fileRenewed(&a.index.Files[i]))
	}
	return oldest
}

// fileRenewed is the last period in which every block of f was renewed
// or written: its own record, or the index's of the whole account.
func (a *Account) fileRenewed(f *indexfile.File) uint64 { return max(f.Renewed, a.indexRenewed()) }

// SafeUntil returns when the account's oldest renewal expires: its data
// is safe until then without another login or renewal.
func (a *Account) SafeUntil() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.safeUntil()
}

func (a *Account) safeUntil() time.Time { return a.cfg.SafeUntil(a.oldestRenewal()) }

// ExpiryNear reports whether safe is within two periods of now: the
// point at which a user must be told to log in.
func (c *ServerConfig) ExpiryNear(safe, now time.Time) bool {
	return safe.Sub(now) < 2*c.Period()
}

// RenewList is an export of renew proofs (docs/spec.md "Unattended
// renewal"): whoever holds it can keep the account's blocks alive, but
// cannot read, change or delete them.
type RenewList struct {
	Format     string       `json:"format"` // "blindstore-renew-v1"
	Server     string       `json:"server"`
	Generation uint64       `json:"generation"` // the head's, when exported
	Blocks     []RenewEntry `json:"blocks"`
}

// RenewEntry is one block of a RenewList.
type RenewEntry struct {
	ID    string `json:"id"`
	Proof string `json:"proof"` // renew proof, base64url
}

const renewListFormat = "blindstore-renew-v1"

// ExportRenewals returns the renew proofs of every block the account
// refers to now.
func (a *Account) ExportRenewals() *RenewList {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mustIndex()
	l := &RenewList{Format: renewListFormat, Server: a.remote.URL(), Generation: a.head.Generation}
	add := func(id wire.ID, p wire.RenewProof) {
		l.Blocks = append(l.Blocks, RenewEntry{ID: id.String(), Proof: wire.EncodeProof(p)})
	}
	for _, r := range a.head.Roots {
		add(r.ID, r.Proof.Renew())
	}
	add(a.headLoc.ID, a.headLoc.Proof.Renew())
	for _, r := range a.indexBlocks() {
		add(r.ID, a.root.OwnerSecret.RenewProof(r.ID))
	}
	for i := range a.index.Files {
		for _, r := range a.index.Files[i].Refs() {
			add(r.ID, a.root.OwnerSecret.RenewProof(r.ID))
		}
	}
	return l
}

// ReadRenewList parses an export strictly.
func ReadRenewList(r io.Reader) (*RenewList, []RenewItem, error) {
	var l RenewList
	dec := json.NewDecoder(io.LimitReader(r, 1<<30))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil || l.Format != renewListFormat {
		return nil, nil, &Error{Kind: KindInvalid, Msg: "not a blindstore renewal export"}
	}
	items := make([]RenewItem, len(l.Blocks))
	for i, e := range l.Blocks {
		id, err := wire.ParseID(e.ID)
		if err != nil {
			return nil, nil, &Error{Kind: KindInvalid, Msg: fmt.Sprintf("renewal export: entry %d has a malformed id", i)}
		}
		p, err := wire.ParseProof(e.Proof)
		if err != nil {
			return nil, nil, &Error{Kind: KindInvalid, Msg: fmt.Sprintf("renewal export: entry %d has a malformed proof", i)}
		}
		items[i] = RenewItem{ID: id, Proof: wire.RenewProof(p)}
	}
	return &l, items, nil
}

// RenewFrom renews the blocks of an export, in shuffled batches.
func RenewFrom(ctx context.Context, remote Store, items []RenewItem) (RenewResult, error) {
	return renewShuffled(ctx, remote, append([]RenewItem(nil), items...))
}

// renewShuffled shuffles items (in place) and renews them: the order of
// a batch would otherwise say which blocks are one file's.
func renewShuffled(ctx context.Context, remote Store, items []RenewItem) (RenewResult, error) {
	shuffle(items)
	return remote.Renew(ctx, items)
}

// Generation returns the head generation the account last read or wrote.
func (a *Account) Generation() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.head.Generation
}
