package client

// Reading an index by the leaves a command needs (WithLazyIndex). The
// head and the dirs it lists are read as always; a leaf is read when a
// name in it is looked up or changed. A leaf's first name is in its first
// block, so the leaf of a name is found by a binary search over the
// leaves' first blocks: a dozen blocks of an index of thousands. A
// one-file change then encodes its leaf (and the next, which a shrunk
// leaf may take in) and the dirs that list them (indexfile.UpdateRange),
// exactly the blocks a change of the whole index writes.
//
// Everything read is authenticated as the whole index is: each block by
// the ETag its dir or the head lists and by its AEAD under the account
// key, each leaf decoded strictly. What spans leaves is checked for the
// name that changes: its parent folders are not files, it is not a
// folder of other files, the leaves read hold their names in order.
// Whatever the range cannot do alone (a change that drops blocks, which
// another file may share; a lost compare-and-swap, merged by name; a
// reshaping beyond the range) reads the whole index and goes the usual
// way.

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"

	"github.com/blindstore/blindstore/client/format"
	"github.com/blindstore/blindstore/indexfile"
)

// WithLazyIndex makes the account read the index's leaves when a method
// needs them rather than when it opens: a command that looks up or puts
// one file reads the head, the dirs and a few leaves. Methods that need
// the whole index read it then; those without a context (Files,
// FilesUnder, Lookup, SafeUntil, ExportRenewals) read it with the
// context the account was opened with, and call LoadIndex first to
// handle its errors.
func WithLazyIndex() Option {
	return func(a *Account) { a.lazy = true }
}

// LoadIndex reads the whole index if the account has not read it yet.
func (a *Account) LoadIndex(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.needIndex(ctx)
}

// readDirs reads the dirs the head lists, not their leaves.
func (a *Account) readDirs(ctx context.Context, h *format.Head) (*indexfile.Tree, error) {
	payload := format.PayloadCapacity(a.cfg.BlockSize)
	ps, err := a.readBlocks(ctx, h.Index, true)
	if err != nil {
		return nil, err
	}
	dirs := make([]indexfile.Dir, len(ps))
	for i, p := range ps {
		if dirs[i], err = indexfile.DecodeDir(p, payload); err != nil {
			return nil, wrap(KindTampered, "the account's index", err)
		}
	}
	t, err := indexfile.AssembleDirs(h.Index, dirs)
	if err != nil {
		return nil, wrap(KindTampered, "the account's index", err)
	}
	return t, nil
}

// needIndex reads the whole index, if only its dirs were read.
func (a *Account) needIndex(ctx context.Context) error {
	if a.index != nil {
		return nil
	}
	idx, tree, err := a.readTree(ctx, a.head)
	if err == nil {
		a.index, a.tree, a.leafFiles, a.leafFirst = idx, tree, nil, nil
		return nil
	}
	if KindOf(err) != KindNotFound {
		return err
	}
	// Another device replaced a leaf meanwhile: the head again.
	return a.loadFull(ctx)
}

// loadFull is load, then the whole index.
func (a *Account) loadFull(ctx context.Context) error {
	if err := a.load(ctx); err != nil {
		return err
	}
	return a.needIndex(ctx)
}

// mustIndex is needIndex for the methods without a context, with the
// account's opening one; they cannot report an error, so a lazy
// account's caller calls LoadIndex before them.
func (a *Account) mustIndex() {
	if a.index != nil {
		return
	}
	if err := a.needIndex(a.openCtx); err != nil {
		panic(fmt.Sprintf("client: the account's index could not be read (call LoadIndex first to handle this): %v", err))
	}
}

// indexDigest names the index the head lists by its dirs' IDs and
// ETags, which fix every byte of it.
func (a *Account) indexDigest() [32]byte {
	h := sha256.New()
	h.Write([]byte("blindstore index digest v1"))
	for _, r := range a.head.Index {
		h.Write(r.ID[:])
		h.Write(r.ETag[:])
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// indexRenewed is the index's Renewed, known from the first dir alone.
func (a *Account) indexRenewed() uint64 {
	if a.index == nil && a.tree != nil {
		return a.tree.Renewed
	}
	return a.index.Renewed
}

// leafAt returns the leaf at a position of DataLeaves.
func (a *Account) leafAt(p [2]int) *indexfile.LeafRef { return &a.tree.Dirs[p[0]].Leaves[p[1]] }

// firstName returns the first name of a data leaf, from its first block.
func (a *Account) firstName(ctx context.Context, l *indexfile.LeafRef) (string, error) {
	if n, ok := a.leafFirst[l.Blocks[0]]; ok {
		return n, nil
	}
	if fs, ok := a.leafFiles[l.Blocks[0]]; ok {
		return fs[0].Name, nil
	}
	ps, err := a.readBlocks(ctx, l.Blocks[:1], true)
	if err != nil {
		return "", err
	}
	n, ok, err := indexfile.LeafFirstName(ps[0])
	if err == nil && !ok {
		err = fmt.Errorf("%w: a leaf of %d bytes holds no file", indexfile.ErrCorrupt, l.Len)
	}
	if err != nil {
		return "", wrap(KindTampered, "the account's index", err)
	}
	if a.leafFirst == nil {
		a.leafFirst = map[indexfile.Ref]string{}
	}
	a.leafFirst[l.Blocks[0]] = n
	return n, nil
}

// openLeaf reads and decodes a data leaf, and records its file count in
// the tree.
func (a *Account) openLeaf(ctx context.Context, l *indexfile.LeafRef) ([]indexfile.File, error) {
	fs, err := a.openLeaves(ctx, []*indexfile.LeafRef{l})
	if err != nil {
		return nil, err
	}
	return fs[0], nil
}

// openLeaves is openLeaf of several leaves, whose blocks are read in
// parallel and decoded on every core.
func (a *Account) openLeaves(ctx context.Context, ls []*indexfile.LeafRef) ([][]indexfile.File, error) {
	out := make([][]indexfile.File, len(ls))
	var refs []indexfile.Ref
	var todo []int
	first := make([]int, len(ls))
	for i, l := range ls {
		if fs, ok := a.leafFiles[l.Blocks[0]]; ok {
			out[i] = fs
			continue
		}
		todo = append(todo, i)
		first[i] = len(refs)
		refs = append(refs, l.Blocks...)
	}
	ps, err := a.readBlocks(ctx, refs, true)
	if err != nil {
		return nil, err
	}
	payload := format.PayloadCapacity(a.cfg.BlockSize)
	err = parallel(ctx, len(todo), runtime.GOMAXPROCS(0), func(_ context.Context, k int) error {
		i := todo[k]
		l := ls[i]
		enc, err := indexfile.JoinLeaf(ps[first[i]:first[i]+len(l.Blocks)], l.Len, payload)
		if err == nil {
			out[i], err = indexfile.DecodeLeaf(enc)
		}
		if err == nil && len(out[i]) == 0 {
			err = fmt.Errorf("%w: a leaf of %d bytes holds no file", indexfile.ErrCorrupt, l.Len)
		}
		if err != nil {
			return wrap(KindTampered, "the account's index", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if a.leafFiles == nil {
		a.leafFiles = map[indexfile.Ref][]indexfile.File{}
	}
	for i, l := range ls {
		a.leafFiles[l.Blocks[0]] = out[i]
		l.Files = len(out[i])
	}
	return out, nil
}

// leafOf returns the position in at (DataLeaves) of the leaf that holds
// name or would: the last whose first name is at most name, or the first.
func (a *Account) leafOf(ctx context.Context, at [][2]int, name string) (int, error) {
	var ferr error
	k := sort.Search(len(at), func(i int) bool {
		if ferr != nil {
			return true
		}
		n, err := a.firstName(ctx, a.leafAt(at[i]))
		if err != nil {
			ferr = err
			return true
		}
		return n > name
	})
	if ferr != nil {
		return 0, ferr
	}
	return max(0, k-1), nil
}

// lookupLazy finds a file by reading its leaf.
func (a *Account) lookupLazy(ctx context.Context, name string) (*indexfile.File, error) {
	at := a.tree.DataLeaves()
	if len(at) == 0 {
		return nil, nil
	}
	k, err := a.leafOf(ctx, at, name)
	if err != nil {
		return nil, err
	}
	files, err := a.openLeaf(ctx, a.leafAt(at[k]))
	if err != nil {
		return nil, err
	}
	if i, ok := slices.BinarySearchFunc(files, name, func(f indexfile.File, n string) int { return strings.Compare(f.Name, n) }); ok {
		return &files[i], nil
	}
	return nil, nil
}

// ceilingLazy returns the first name at or after s, if any.
func (a *Account) ceilingLazy(ctx context.Context, s string) (string, bool, error) {
	at := a.tree.DataLeaves()
	if len(at) == 0 {
		return "", false, nil
	}
	k, err := a.leafOf(ctx, at, s)
	if err != nil {
		return "", false, err
	}
	files, err := a.openLeaf(ctx, a.leafAt(at[k]))
	if err != nil {
		return "", false, err
	}
	if i, _ := slices.BinarySearchFunc(files, s, func(f indexfile.File, n string) int { return strings.Compare(f.Name, n) }); i < len(files) {
		return files[i].Name, true, nil
	}
	if k+1 < len(at) {
		n, err := a.firstName(ctx, a.leafAt(at[k+1]))
		return n, err == nil, err
	}
	return "", false, nil
}

// lookupCtx is lookup, reading the file's leaf on a lazy account.
func (a *Account) lookupCtx(ctx context.Context, name string) (indexfile.File, error) {
	if a.index != nil || a.tree == nil {
		return a.lookup(name)
	}
	p, err := a.lookupLazy(ctx, name)
	if err != nil {
		return indexfile.File{}, err
	}
	return a.fileCopy(name, p)
}

// leafRange is the run of data leaves a change of one name is confined
// to: the leaf of the name and the one after it.
type leafRange struct {
	lo, hi   int
	files    []indexfile.File // of leaves lo to hi-1, in order
	upper    string           // the first name of leaf hi
	hasUpper bool
}

func (a *Account) leafRange(ctx context.Context, name string) (*leafRange, error) {
	at := a.tree.DataLeaves()
	k, err := a.leafOf(ctx, at, name)
	if err != nil {
		return nil, err
	}
	r := &leafRange{lo: k, hi: min(len(at), k+2)}
	for i := r.lo; i < r.hi; i++ {
		fs, err := a.openLeaf(ctx, a.leafAt(at[i]))
		if err != nil {
			return nil, err
		}
		if len(r.files) > 0 && r.files[len(r.files)-1].Name >= fs[0].Name {
			return nil, &Error{Kind: KindTampered, Msg: "the account's index: leaves out of order"}
		}
		r.files = append(r.files, fs...)
	}
	if r.hi < len(at) {
		if r.upper, err = a.firstName(ctx, a.leafAt(at[r.hi])); err != nil {
			return nil, err
		}
		r.hasUpper = true
		if r.files[len(r.files)-1].Name >= r.upper {
			return nil, &Error{Kind: KindTampered, Msg: "the account's index: leaves out of order"}
		}
	}
	return r, nil
}

// holds reports whether name falls in the range's names.
func (r *leafRange) holds(name string) bool {
	return (r.lo == 0 || name >= r.files[0].Name) && (!r.hasUpper || name < r.upper)
}

// errWholeIndex says that a change needs the whole index.
var errWholeIndex = errors.New("client: the change needs the whole index")

// updateNamed is updateChecked of a change to the file name alone: on a
// lazy account, it reads only the leaves of name's range.
func (a *Account) updateNamed(ctx context.Context, name string, change changeFunc, unacked []indexfile.Ref) (*indexfile.Index, error) {
	if a.index == nil && a.tree != nil && len(a.tree.DataLeaves()) > 0 {
		x, err := a.updateRange(ctx, name, change, unacked)
		if !errors.Is(err, errWholeIndex) {
			return x, err
		}
	}
	return a.updateChecked(ctx, change, unacked)
}

func (a *Account) updateRange(ctx context.Context, name string, change changeFunc, unacked []indexfile.Ref) (*indexfile.Index, error) {
	r, err := a.leafRange(ctx, name)
	if err != nil {
		return nil, err
	}
	if !r.holds(name) {
		return nil, errWholeIndex
	}
	// What Index.Put checks beyond the range, for a new name (a file of
	// a valid index is neither): no parent folder of name is a file
	// (parents sort before it), name is no folder of others (they sort
	// right after name+"/").
	_, exists := slices.BinarySearchFunc(r.files, name, func(f indexfile.File, n string) int { return strings.Compare(f.Name, n) })
	for i := 0; i < len(name) && !exists; i++ {
		if name[i] != '/' || r.holds(name[:i]) {
			continue
		}
		p, err := a.lookupLazy(ctx, name[:i])
		if err != nil {
			return nil, err
		}
		if p != nil {
			return nil, wrap(KindConflict, "put", fmt.Errorf("%w: %q is a file", indexfile.ErrBadName, name[:i]))
		}
	}
	if !exists {
		n, ok, err := a.ceilingLazy(ctx, name+"/")
		if err != nil {
			return nil, err
		}
		if ok && strings.HasPrefix(n, name+"/") && !r.holds(n) {
			return nil, wrap(KindConflict, "put", fmt.Errorf("%w: %q is a directory", indexfile.ErrBadName, name))
		}
	}
	base := &indexfile.Index{Generation: a.head.Generation, Files: r.files, Renewed: a.tree.Renewed}
	ours := base.Clone()
	if err := change(ours); err != nil {
		return nil, err
	}
	ours.Generation = base.Generation + 1
	if !onlyNameChanged(base, ours, name) || len(indexfile.Unreferenced(base, ours)) > 0 {
		// Another file may share a block this change drops (a merge
		// of a rename and an edit leaves them so): only the whole
		// index tells.
		return nil, errWholeIndex
	}
	s, err := a.encryptRange(r, ours)
	if errors.Is(err, indexfile.ErrOutsideRange) {
		return nil, errWholeIndex
	}
	if err != nil {
		return nil, err
	}
	s.unacked = unacked
	at := a.tree.DataLeaves()
	had := map[[32]byte]bool{}
	for k := r.lo; k < r.hi; k++ {
		had[leafKey(a.leafAt(at[k]))] = true
	}
	before := a.indexDigest()
	err = a.swap(ctx, s, nil)
	if err == nil {
		// The range's leaves are now the data leaves from lo on, as
		// many more or fewer as the update made (listing.go).
		a.logListing(r.lo, len(a.tree.DataLeaves())-len(at)+r.hi-r.lo, ours.Files, had)
		a.keepQuiet(before, ours.Files) // renew.go
		return ours, nil
	}
	var pe *PreconditionError
	if !errors.As(err, &pe) {
		return nil, err
	}
	// Another device committed first. Outside the range ours is base,
	// so merging the range against the whole of theirs is the merge
	// of the whole indexes (indexfile.Merge goes by name).
	if err := a.loadFull(ctx); err != nil {
		return nil, err
	}
	merged := indexfile.Merge(base, ours, a.index)
	if mayBeDeleted(base, a.index, merged) {
		return nil, &Error{Kind: KindConflict, Msg: "another device changed or removed the same file meanwhile: try again"}
	}
	return a.updateFrom(ctx, base, ours, merged, nil, unacked)
}

// onlyNameChanged reports whether ours holds base's names, but for name.
func onlyNameChanged(base, ours *indexfile.Index, name string) bool {
	i, j := 0, 0
	for i < len(base.Files) || j < len(ours.Files) {
		switch {
		case i < len(base.Files) && base.Files[i].Name == name:
			i++
		case j < len(ours.Files) && ours.Files[j].Name == name:
			j++
		case i < len(base.Files) && j < len(ours.Files) && base.Files[i].Name == ours.Files[j].Name:
			i, j = i+1, j+1
		default:
			return false
		}
	}
	return true
}

// encryptRange is encryptIndex of a change confined to r.
func (a *Account) encryptRange(r *leafRange, ours *indexfile.Index) (*staged, error) {
	var items []BatchItem
	t, gone, err := a.tree.UpdateRange(r.lo, r.hi, r.files, ours.Files, r.upper, r.hasUpper, ours.Renewed, format.PayloadCapacity(a.cfg.BlockSize), a.encryptInto(&items))
	if err != nil {
		if errors.Is(err, indexfile.ErrOutsideRange) {
			return nil, err
		}
		return nil, wrap(KindOther, "encrypting the index", err)
	}
	return &staged{tree: t, pending: items, blocks: items, obsolete: gone}, nil
}
