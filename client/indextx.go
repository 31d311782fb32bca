package client

// The index transaction, docs/spec.md "The index file": reading the head
// and the index, and updating the index so that two devices writing at
// once both land. account.go opens and closes accounts; this file is
// what every change of an open one goes through.
//
// An index update is:
//
//  1. encrypt the leaves and dirs of the index tree that changed
//     (indexfile.Tree.Update) into fresh blocks and write them, create-only;
//  2. write the new head with If-Match: the head's ETag as last read
//     (compare-and-swap);
//  3. delete the index blocks the new tree no longer uses, and the data
//     blocks the new index no longer refers to (indexfile.Unreferenced).
//
// A crash at any point leaves a valid head; what was written and is not
// referenced is never renewed and expires. When the compare-and-swap
// fails (412), another device got there first: the new index blocks are
// deleted, the head and index re-read, indexfile.Merge(base, ours,
// theirs) combines both changes, and the update is tried again, a
// bounded number of times. A merge that keeps a block of base the other
// device no longer refers to (our edit reused a chunk of a file it then
// replaced or removed, so it may have deleted that block) fails instead,
// with KindConflict: nothing may refer to a block that may be gone.
//
// An account whose head is of version 1 (one index blob, the first
// clients) is upgraded when it is opened: its index is written as a tree
// and the head swapped to version 2, then the old blob's blocks deleted.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"

	"github.com/blindstore/blindstore/wire"

	"github.com/blindstore/blindstore/client/format"
	"github.com/blindstore/blindstore/indexfile"
)

// maxUpdateAttempts bounds the compare-and-swap loop of an index update.
const maxUpdateAttempts = 8

func (a *Account) encryptHead(h *format.Head) ([]byte, error) {
	p, err := format.MarshalHead(h)
	if err != nil {
		return nil, err
	}
	if len(p) > format.PayloadCapacity(a.cfg.BlockSize) {
		return nil, fmt.Errorf("client: the account's index needs more blocks than one head can list")
	}
	return format.Encrypt(a.headLoc.Key, a.headLoc.ID, p, a.cfg.BlockSize)
}

// readHead reads and authenticates the head, and refuses one older than
// a generation already seen.
func (a *Account) readHead(ctx context.Context) (*format.Head, wire.ETag, error) {
	data, etag, err := a.remote.Get(ctx, a.headLoc.ID, nil)
	if err != nil {
		if KindOf(err) == KindNotFound {
			return nil, etag, &Error{Kind: KindAuth, Msg: "the account no longer exists (deleted, or expired unrenewed): log in again or sign up"}
		}
		return nil, etag, wrap(KindNetwork, "reading the account's head", err)
	}
	p, err := format.Decrypt(a.headLoc.Key, a.headLoc.ID, data, a.cfg.BlockSize)
	if err != nil {
		return nil, etag, wrap(KindTampered, "the account's head block", err)
	}
	h, err := format.UnmarshalHead(p)
	if err != nil {
		return nil, etag, wrap(KindTampered, "the account's head block", err)
	}
	if h.Generation < a.seenGen {
		return nil, etag, &Error{Kind: KindTampered, Msg: fmt.Sprintf("the server returned an older version of the account than this device has seen (generation %d, seen %d). If its operator restored the server from a backup, run 'blind logout' and 'blind login' to accept that version, then store again what changed since (copy synced folders aside first: a sync would take the missing files for deletions); if not, the server is rolling the account back: keep this session, which refuses the old version, and tell the operator", h.Generation, a.seenGen)}
	}
	return h, etag, nil
}

// load reads the head and the index, and upgrades a version 1 account.
// An index block that is gone may have been replaced by another device
// between the two reads: the head is read again, a bounded number of
// times.
func (a *Account) load(ctx context.Context) error {
	var lastErr error
	for range 4 {
		h, etag, err := a.readHead(ctx)
		if err != nil {
			return err
		}
		var idx *indexfile.Index
		var tree *indexfile.Tree
		switch {
		case h.FormatVersion() == format.HeadV1:
			idx, err = a.readIndexV1(ctx, h)
		case a.lazy:
			tree, err = a.readDirs(ctx, h) // lazyindex.go
			if err == nil && len(tree.DataLeaves()) == 0 {
				idx = &indexfile.Index{Generation: h.Generation, Renewed: tree.Renewed}
			}
		default:
			idx, tree, err = a.readTree(ctx, h)
		}
		if err != nil {
			if KindOf(err) == KindNotFound {
				lastErr = err
				continue
			}
			return err
		}
		a.head, a.etag, a.index, a.tree = h, etag, idx, tree
		a.seenGen = max(a.seenGen, h.Generation)
		// Whichever device renewed the account's own blocks recorded it
		// in the index: a login in that period need not renew them.
		a.renewed = max(a.renewed, a.indexRenewed())
		if tree == nil {
			return a.upgrade(ctx)
		}
		a.retainTree()
		return nil
	}
	return lastErr
}

// upgrade writes a version 1 account's index as a tree under a version 2
// head. Losing the race to another device that upgraded (or changed the
// account) first is fine: what it committed is read instead.
func (a *Account) upgrade(ctx context.Context) error {
	err := a.commit(ctx, a.index, nil, nil)
	var pe *PreconditionError
	if err != nil && errors.As(err, &pe) {
		return a.load(ctx)
	}
	if err != nil {
		return wrap(KindOf(err), "upgrading the account's index to format 2", err)
	}
	return nil
}

func (a *Account) readIndexV1(ctx context.Context, h *format.Head) (*indexfile.Index, error) {
	blocks, err := a.readBlocks(ctx, h.Index, false)
	if err != nil {
		return nil, err
	}
	idx, err := h.IndexRoot(a.root).DecryptIndex(blocks, a.cfg.BlockSize)
	if err != nil {
		return nil, wrap(KindTampered, "the account's index", err)
	}
	return idx, nil
}

// readBlocks reads blocks in parallel, checking each one's ETag, and
// returns their data (open: their payloads under the account key).
func (a *Account) readBlocks(ctx context.Context, refs []indexfile.Ref, open bool) ([][]byte, error) {
	out := make([][]byte, len(refs))
	err := parallel(ctx, len(refs), a.remote.parallelism(), func(ctx context.Context, i int) error {
		if open {
			if p := a.cached(refs[i]); p != nil {
				out[i] = p
				return nil
			}
		}
		data, etag, err := a.remote.Get(ctx, refs[i].ID, nil)
		if err != nil {
			if KindOf(err) == KindNotFound {
				return &Error{Kind: KindNotFound, Msg: "a block of the account's index is missing (the index changed meanwhile, or expired)"}
			}
			return wrap(KindNetwork, "reading the account's index", err)
		}
		if !open {
			out[i] = data
			return nil
		}
		if etag != refs[i].ETag {
			return &Error{Kind: KindTampered, Msg: "the server returned an index block that is not the version the account refers to"}
		}
		p, err := format.Decrypt(a.root.AccountKey, refs[i].ID, data, a.cfg.BlockSize)
		if err != nil {
			return wrap(KindTampered, "an index block", err)
		}
		if a.cache != nil {
			a.fetched.Add(1)
			a.keep(refs[i], data)
		}
		out[i] = p
		return nil
	})
	return out, err
}

// readTree reads the dirs the head lists, then every leaf they list.
func (a *Account) readTree(ctx context.Context, h *format.Head) (*indexfile.Index, *indexfile.Tree, error) {
	payload := format.PayloadCapacity(a.cfg.BlockSize)
	dirPayloads, err := a.readBlocks(ctx, h.Index, true)
	if err != nil {
		return nil, nil, err
	}
	dirs := make([]indexfile.Dir, len(dirPayloads))
	var refs []indexfile.Ref
	for i, p := range dirPayloads {
		if dirs[i], err = indexfile.DecodeDir(p, payload); err != nil {
			return nil, nil, wrap(KindTampered, "the account's index", err)
		}
		for _, l := range dirs[i].Leaves {
			refs = append(refs, l.Blocks...)
		}
	}
	leafPayloads, err := a.readBlocks(ctx, refs, true)
	if err != nil {
		return nil, nil, err
	}
	// Decoding a large index (a leaf per ~60 files of 1 KiB) is most of
	// what a login's CPU does: the leaves are decoded on every core.
	type leafAt struct{ dir, leaf, first int }
	var leaves []leafAt
	files := make([][][]indexfile.File, len(dirs))
	k := 0
	for i, d := range dirs {
		files[i] = make([][]indexfile.File, len(d.Leaves))
		for j, l := range d.Leaves {
			leaves = append(leaves, leafAt{i, j, k})
			k += len(l.Blocks)
		}
	}
	err = parallel(ctx, len(leaves), runtime.GOMAXPROCS(0), func(_ context.Context, n int) error {
		at := leaves[n]
		l := dirs[at.dir].Leaves[at.leaf]
		enc, err := indexfile.JoinLeaf(leafPayloads[at.first:at.first+len(l.Blocks)], l.Len, payload)
		if err == nil {
			files[at.dir][at.leaf], err = indexfile.DecodeLeaf(enc)
		}
		if err != nil {
			return wrap(KindTampered, "the account's index", err)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	idx, tree, err := indexfile.Assemble(h.Generation, h.Index, dirs, files)
	if err != nil {
		return nil, nil, wrap(KindTampered, "the account's index", err)
	}
	return idx, tree, nil
}

// indexBlocks returns every index block the head refers to, directly
// (version 1 blocks, dirs) or through dirs (leaves).
func (a *Account) indexBlocks() []indexfile.Ref {
	if a.tree == nil {
		return slices.Clone(a.head.Index)
	}
	return a.tree.Blocks()
}

// IndexBlocks returns the index blocks the account's head refers to
// now, for whoever counts what an index update writes (a benchmark, a
// test); they are as secret as the index itself.
func (a *Account) IndexBlocks() []indexfile.Ref {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.indexBlocks()
}

// Files returns a copy of the index's files, sorted by name, each with
// the last period in which all its blocks were renewed as its Renewed.
func (a *Account) Files() []indexfile.File {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mustIndex()
	files := a.index.Clone().Files
	for i := range files {
		files[i].Renewed = a.fileRenewed(&files[i])
	}
	return files
}

// Lookup returns a copy of the file named name, or an error of
// KindNotFound.
func (a *Account) Lookup(name string) (indexfile.File, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lookup(name)
}

func (a *Account) lookup(name string) (indexfile.File, error) {
	if err := a.needIndex(a.openCtx); err != nil {
		return indexfile.File{}, err
	}
	return a.fileCopy(name, a.index.Lookup(name))
}

// fileCopy returns a copy of the index's entry p for name, with its
// Renewed, or an error of KindNotFound when p is nil.
func (a *Account) fileCopy(name string, p *indexfile.File) (indexfile.File, error) {
	if p == nil {
		return indexfile.File{}, &Error{Kind: KindNotFound, Msg: fmt.Sprintf("no file %q in the account", name)}
	}
	f := *p
	f.Chunks = slices.Clone(p.Chunks)
	f.Manifest = slices.Clone(p.Manifest)
	f.Renewed = a.fileRenewed(p)
	return f, nil
}

// changeFunc changes an index in an update.
type changeFunc func(x *indexfile.Index) error

// update applies change to the index and commits it, merging with
// concurrent updates. change may run more than once (never on the same
// index twice): it must be a function of its argument. It returns the
// committed index.
func (a *Account) update(ctx context.Context, change changeFunc) (*indexfile.Index, error) {
	return a.updateChecked(ctx, change, nil)
}

// updateChecked is update whose commit holds only if the blocks of
// unacked exist with their ETags: blocks the change refers to that were
// sent by requests not yet answered (Put sends its commit while its last
// data batches still wait in the server's write pool). On a server that
// cannot check, or when a check fails, it returns an error of
// errUnacked: the caller waits for those requests and updates again.
func (a *Account) updateChecked(ctx context.Context, change changeFunc, unacked []indexfile.Ref) (*indexfile.Index, error) {
	if err := a.needIndex(ctx); err != nil {
		return nil, err
	}
	ours, err := a.changed(change)
	if err != nil {
		return nil, err
	}
	return a.updateTo(ctx, ours, nil, unacked)
}

// changed returns the index changed by change, one generation on.
func (a *Account) changed(change changeFunc) (*indexfile.Index, error) {
	ours := a.index.Clone()
	if err := change(ours); err != nil {
		return nil, err
	}
	ours.Generation = a.index.Generation + 1
	return ours, nil
}

// updateTo is update of ours, the index as changed (by changed); pre,
// when not nil, is ours staged already, for the first attempt.
func (a *Account) updateTo(ctx context.Context, ours *indexfile.Index, pre *staged, unacked []indexfile.Ref) (*indexfile.Index, error) {
	return a.updateFrom(ctx, a.index, ours, ours, pre, unacked)
}

// updateFrom is updateTo of ours, merged already from firstOurs, a
// change of base (both as whole indexes, or as the same range of
// names: lazyindex.go).
func (a *Account) updateFrom(ctx context.Context, base, firstOurs, ours *indexfile.Index, pre *staged, unacked []indexfile.Ref) (*indexfile.Index, error) {
	var lastErr error
	for range maxUpdateAttempts {
		var err error
		if pre != nil {
			pre.unacked = unacked
			err = a.swap(ctx, pre, nil)
			pre = nil
		} else {
			err = a.commit(ctx, ours, nil, unacked)
		}
		if err == nil {
			// Blocks that our first version referred to and the
			// committed one does not were written by us for a change
			// the merge dropped; nothing else can refer to them.
			a.deleteRefs(ctx, indexfile.Unreferenced(firstOurs, ours))
			return ours, nil
		}
		var pe *PreconditionError
		if !errors.As(err, &pe) {
			return nil, err
		}
		lastErr = err
		// Another device committed first: merge its change with ours.
		theirsBase := a.index
		if err := a.loadFull(ctx); err != nil {
			return nil, err
		}
		ours = indexfile.Merge(theirsBase, ours, a.index)
		if lost := mayBeDeleted(base, a.index, ours); lost {
			return nil, &Error{Kind: KindConflict, Msg: "another device changed or removed the same file meanwhile: try again"}
		}
	}
	return nil, &Error{Kind: KindConflict, Msg: "the index kept changing under this update (other devices are writing): try again", Err: lastErr}
}

// mayBeDeleted reports whether merged refers to a block of base that
// theirs no longer refers to: the device that committed theirs may have
// deleted it.
func mayBeDeleted(base, theirs, merged *indexfile.Index) bool {
	gone := map[wire.ID]struct{}{}
	for _, r := range indexfile.Unreferenced(base, theirs) {
		gone[r.ID] = struct{}{}
	}
	if len(gone) == 0 {
		return false
	}
	for i := range merged.Files {
		for _, r := range merged.Files[i].Refs() {
			if _, ok := gone[r.ID]; ok {
				return true
			}
		}
	}
	return false
}

// commit writes next as the index (nil: keep the index blocks) and roots
// as the head's root list (nil: keep them), by compare-and-swap of the
// head. On success it deletes what the old head referred to and next
// does not; on a lost race it returns an error wrapping
// *PreconditionError and leaves nothing of its own behind.
func (a *Account) commit(ctx context.Context, next *indexfile.Index, roots []format.RootRef, unacked []indexfile.Ref) error {
	var s *staged
	if next != nil {
		var err error
		if s, err = a.encryptIndex(next); err != nil {
			return err
		}
		s.unacked = unacked
	}
	return a.swap(ctx, s, roots)
}

// staged is an index encrypted into fresh index blocks, which no head
// refers to yet: the first half of a commit. Its blocks are written
// (written) or still to write (pending).
type staged struct {
	next    *indexfile.Index // nil for a range update (lazyindex.go)
	tree    *indexfile.Tree
	pending []BatchItem
	written []indexfile.Ref
	// blocks are every block of pending and written, with their data,
	// for the local cache once the head refers to them.
	blocks   []BatchItem
	obsolete []indexfile.Ref // of the current head, once next replaces it
	// unacked are blocks next refers to whose writes are not answered
	// yet: the commit must check them (updateChecked).
	unacked []indexfile.Ref
}

// encryptIndex encrypts the index blocks of next that the account's tree lacks,
// and writes nothing. It reads the account and changes nothing of it.
func (a *Account) encryptIndex(next *indexfile.Index) (*staged, error) {
	var items []BatchItem
	encrypt := a.encryptInto(&items)
	var obsolete []indexfile.Ref
	from, held := a.tree, a.index
	if from == nil { // a version 1 head: everything is written anew
		from, held = &indexfile.Tree{}, &indexfile.Index{}
		obsolete = slices.Clone(a.head.Index)
	}
	t, gone, err := from.Update(held, next, format.PayloadCapacity(a.cfg.BlockSize), encrypt)
	if err != nil {
		return nil, wrap(KindOther, "encrypting the index", err)
	}
	return &staged{next: next, tree: t, pending: items, blocks: items, obsolete: append(obsolete, gone...)}, nil
}

// encryptInto returns the EncryptFunc of index blocks, which adds each
// block to items.
func (a *Account) encryptInto(items *[]BatchItem) indexfile.EncryptFunc {
	return func(p []byte) (indexfile.Ref, error) {
		id := wire.NewID()
		data, err := format.Encrypt(a.root.AccountKey, id, p, a.cfg.BlockSize)
		if err != nil {
			return indexfile.Ref{}, err
		}
		etag := wire.ETagOf(data)
		*items = append(*items, BatchItem{ID: id, Proof: a.root.OwnerSecret.WriteProof(id), Data: data, ETag: etag})
		return indexfile.Ref{ID: id, ETag: etag}, nil
	}
}

// stage is encryptIndex, then writes the index blocks. Like it, it changes
// nothing of the account, so that it may run beside another request of
// the same call (Renew).
func (a *Account) stage(ctx context.Context, next *indexfile.Index) (*staged, error) {
	s, err := a.encryptIndex(next)
	if err != nil {
		return nil, err
	}
	if err := a.writePending(ctx, s); err != nil {
		return nil, err
	}
	return s, nil
}

// writePending writes s's pending index blocks.
func (a *Account) writePending(ctx context.Context, s *staged) error {
	if s == nil || len(s.pending) == 0 {
		return nil
	}
	if err := a.remote.PutBatch(ctx, s.pending); err != nil {
		return wrap(KindNetwork, "writing the index", err)
	}
	for i := range s.pending {
		s.written = append(s.written, indexfile.Ref{ID: s.pending[i].ID, ETag: s.pending[i].etag()})
	}
	s.pending = nil
	return nil
}

// swap is the second half of a commit: the head that lists s's index (s
// nil: the index unchanged) and roots, written by compare-and-swap.
//
// With a server that takes atomic batches, the index blocks still to
// write, the head and the deletion of the blocks the new head no longer
// refers to go in one batch, which applies whole or not at all: one
// wait of the server's write pool instead of three, and a lost race
// leaves nothing behind. What does not fit the server's batch limits
// goes as before: index blocks first, deletions after.
func (a *Account) swap(ctx context.Context, s *staged, roots []format.RootRef) error {
	h := a.head.Clone()
	h.Generation = max(a.head.Generation, a.seenGen) + 1
	if s != nil {
		h.Version, h.IndexLen, h.Index = format.HeadVersion, 0, s.tree.DirBlocks()
	}
	if roots != nil {
		h.Roots = roots
	}
	data, err := a.encryptHead(h)
	if err != nil {
		return err
	}
	cfg, err := a.remote.Config(ctx)
	if err != nil {
		return err
	}
	etag := a.etag
	var gone, obsolete []indexfile.Ref
	if s != nil {
		gone, obsolete = slices.Clip(s.obsolete), s.obsolete
		if s.next != nil { // nil: a range update, which drops no block (lazyindex.go)
			gone = append(gone, indexfile.Unreferenced(a.index, s.next)...)
		}
	}
	head := CommitItem{ID: a.headLoc.ID, Proof: a.headLoc.Proof, Data: data, Cond: Cond{IfMatch: &etag}, ETag: wire.ETagOf(data)}
	var checks []CommitItem
	if s != nil {
		for i, r := range s.unacked {
			checks = append(checks, CommitItem{ID: r.ID, Proof: a.root.OwnerSecret.WriteProof(r.ID), Check: true, Cond: Cond{IfMatch: &s.unacked[i].ETag}})
		}
	}
	if len(checks) > 0 && !cfg.commitFits(append([]CommitItem{head}, checks...)) {
		return errUnacked
	}
	if cfg.CanCommit() {
		items := append([]CommitItem{head}, checks...)
		if s != nil {
			for i, it := range s.pending {
				items = append(items, CommitItem{ID: it.ID, Proof: it.Proof, Data: it.Data, Cond: Cond{CreateOnly: true}, ETag: s.pending[i].etag()})
			}
		}
		if !cfg.commitFits(items) {
			if err = a.writePending(ctx, s); err != nil {
				return err
			}
			items = append([]CommitItem{head}, checks...)
		}
		dels := make([]CommitItem, len(gone))
		for i, r := range gone {
			dels[i] = CommitItem{ID: r.ID, Proof: a.root.OwnerSecret.WriteProof(r.ID), Cond: Cond{IfMatch: &gone[i].ETag}}
		}
		n := cfg.fitDeletions(items, dels)
		items, gone = append(items, dels[:n]...), gone[n:]
		err = a.remote.Commit(ctx, items)
	} else {
		if err = a.writePending(ctx, s); err != nil {
			return err
		}
		_, err = a.remote.Put(ctx, head.ID, head.Proof, data, head.Cond)
	}
	if err != nil {
		var pe *PreconditionError
		if errors.Is(err, errUnacked) {
			return err
		}
		if errors.As(err, &pe) && s != nil {
			// The head was not written: the index blocks written
			// before it are ours alone (an atomic batch wrote none).
			// After any other failure the head may or may not refer
			// to them, so they stay (unreferenced, they expire).
			a.deleteRefs(ctx, s.written)
		}
		if KindOf(err) == KindNotFound {
			return &Error{Kind: KindAuth, Msg: "the account no longer exists"}
		}
		return wrap(KindNetwork, "updating the account's head", err)
	}
	var before [32]byte
	if a.quietPeriod != 0 {
		before = a.indexDigest()
	}
	a.head, a.etag, a.seenGen = h, head.ETag, h.Generation
	if s != nil {
		// s.next nil: a range update; the index stays unread.
		a.index, a.tree = s.next, s.tree
		if s.next != nil && a.quietPeriod != 0 && before == a.quietIndex {
			_ = a.due(a.quietPeriod) // renew.go: the quiet record follows the index
		}
		for i := range s.blocks {
			a.keep(indexfile.Ref{ID: s.blocks[i].ID, ETag: s.blocks[i].etag()}, s.blocks[i].Data)
		}
		a.forget(obsolete)
		// What the batch had no room for, in one parallel round: with
		// a server that gathers writes for a window before committing,
		// every sequential round costs it.
		a.deleteRefs(ctx, gone)
	}
	return nil
}

// deleteRefs deletes blocks no longer referenced, in parallel. Failures
// are ignored: an unreferenced block is never renewed and expires.
func (a *Account) deleteRefs(ctx context.Context, refs []indexfile.Ref) {
	if len(refs) == 0 {
		return
	}
	items := make([]CommitItem, len(refs))
	for i, r := range refs {
		items[i] = CommitItem{ID: r.ID, Proof: a.root.OwnerSecret.WriteProof(r.ID), Cond: Cond{IfMatch: &refs[i].ETag}}
	}
	_ = a.remote.DeleteMany(context.WithoutCancel(ctx), items)
}

// Remove deletes a file from the index, then its blocks.
func (a *Account) Remove(ctx context.Context, name string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, err := a.update(ctx, func(x *indexfile.Index) error {
		if !x.Remove(name) {
			return &Error{Kind: KindNotFound, Msg: fmt.Sprintf("no file %q in the account", name)}
		}
		return nil
	})
	return err
}

// Rename moves a file to a new name, which must be free.
func (a *Account) Rename(ctx context.Context, oldName, newName string) error {
	if err := indexfile.ValidName(newName); err != nil {
		return wrap(KindInvalid, "rename", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	_, err := a.update(ctx, func(x *indexfile.Index) error {
		if x.Lookup(oldName) == nil {
			return &Error{Kind: KindNotFound, Msg: fmt.Sprintf("no file %q in the account", oldName)}
		}
		if x.Lookup(newName) != nil {
			return &Error{Kind: KindConflict, Msg: fmt.Sprintf("a file %q already exists", newName)}
		}
		if err := x.Rename(oldName, newName); err != nil {
			return wrap(KindConflict, "rename", err)
		}
		return nil
	})
	return err
}
