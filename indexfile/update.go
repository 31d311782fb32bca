package indexfile

// Planning an index update in format 2 (tree.go): which leaves and dirs
// to write, which blocks become unused. Pure: encrypting and writing are the
// caller's (the EncryptFunc), so this file does no I/O and sees no key.

import (
	"errors"
	"fmt"
	"slices"
)

// slot is one leaf of the tree being built.
type slot struct {
	dir   int     // dir of the old tree it comes from (-1: none existed)
	leaf  LeafRef // its blocks once encrypted (kept leaves: already)
	enc   []byte  // a leaf to encrypt (fresh)
	fresh bool
}

// Update returns the tree holding next, given that t holds old: only the
// leaves whose files changed are encoded again (with a neighbour, when a
// leaf outgrows a block or shrinks below a quarter of one), then the dirs
// that list changed leaves (and the first, when next's Renewed is not
// what it records), and the padding is adjusted (see the file
// comment of tree.go). Every new block is encrypted with encrypt. It returns
// the new tree and the blocks of t it no longer uses, to delete once the
// new tree is committed.
func (t *Tree) Update(old, next *Index, payload int, encrypt EncryptFunc) (*Tree, []Ref, error) {
	if payload < 512 {
		return nil, nil, fmt.Errorf("indexfile: payload of %d bytes is too small for an index", payload)
	}
	if err := next.Validate(); err != nil {
		return nil, nil, err
	}
	// The old leaves, with their files.
	var data []oldLeaf
	var pads []slot
	off := 0
	for i, d := range t.Dirs {
		for _, l := range d.Leaves {
			if l.Files == 0 {
				pads = append(pads, slot{dir: i, leaf: l})
				continue
			}
			if l.Files < 0 || off+l.Files > len(old.Files) {
				return nil, nil, fmt.Errorf("%w: the tree does not hold the index it is updated from", ErrTree)
			}
			data = append(data, oldLeaf{dir: i, leaf: l, files: old.Files[off : off+l.Files]})
			off += l.Files
		}
	}
	if off != len(old.Files) {
		return nil, nil, fmt.Errorf("%w: the tree does not hold the index it is updated from", ErrTree)
	}
	lastDir := len(t.Dirs) - 1
	if len(data) == 0 {
		data = append(data, oldLeaf{dir: max(0, lastDir)})
		if lastDir < 0 {
			data[0].dir = -1
		}
	}
	// Which of next's files fall in each old leaf's name range.
	pos := 0
	for k := range data {
		end := len(next.Files)
		if k+1 < len(data) {
			end = pos + searchFrom(next.Files[pos:], data[k+1].files[0].Name)
		}
		data[k].next = next.Files[pos:end]
		pos = end
	}
	return t.update(data, pads, next.Renewed, payload, encrypt)
}

// ErrOutsideRange is returned by UpdateRange for a change that reaches
// beyond the leaves it was given: the caller updates the whole index
// instead.
var ErrOutsideRange = errors.New("indexfile: the change reaches beyond the leaves read")

// DataLeaves returns the leaves of t that hold files, in order, as
// (dir, leaf) positions: padding leaves, whose encoding is that of no
// file, are left out. A tree read without its leaves (Files unknown)
// tells them apart by length alone, which is exact: a leaf of one file
// or more is longer than an empty one.
func (t *Tree) DataLeaves() [][2]int {
	var out [][2]int
	for i, d := range t.Dirs {
		for j, l := range d.Leaves {
			if l.Len != len(emptyLeaf) {
				out = append(out, [2]int{i, j})
			}
		}
	}
	return out
}

// EmptyLeafLen is the length of a leaf of no file (a padding leaf).
func EmptyLeafLen() int { return len(emptyLeaf) }

// UpdateRange is Update for a change confined to the data leaves lo to
// hi-1 (positions in DataLeaves), whose files old holds in order and
// which become next: the other leaves are neither read nor needed, and
// stay as they are. Every name of next must sort at or after the first
// name of leaf lo (when lo > 0) and before upper, the first name of leaf
// hi (when there is one: hasUpper). A change that would reshape a leaf
// outside the range (a shrunk leaf taking in the files of the one after
// the range) returns ErrOutsideRange, having encrypted nothing.
// The leaves of the range must have their Files counts set (those of
// the rest may be unknown: -1).
func (t *Tree) UpdateRange(lo, hi int, old, next []File, upper string, hasUpper bool, renewed uint64, payload int, encrypt EncryptFunc) (*Tree, []Ref, error) {
	if payload < 512 {
		return nil, nil, fmt.Errorf("indexfile: payload of %d bytes is too small for an index", payload)
	}
	at := t.DataLeaves()
	if lo < 0 || hi > len(at) || lo >= hi {
		return nil, nil, fmt.Errorf("%w: leaves %d to %d of %d", ErrTree, lo, hi, len(at))
	}
	nx := &Index{Files: next}
	if err := nx.Validate(); err != nil {
		return nil, nil, err
	}
	if len(next) > 0 {
		if lo > 0 && len(old) > 0 && next[0].Name < old[0].Name {
			return nil, nil, ErrOutsideRange
		}
		if hasUpper && next[len(next)-1].Name >= upper {
			return nil, nil, ErrOutsideRange
		}
	}
	var data []oldLeaf
	var pads []slot
	off, k := 0, 0
	for i, d := range t.Dirs {
		for _, l := range d.Leaves {
			if l.Len == len(emptyLeaf) {
				pads = append(pads, slot{dir: i, leaf: l})
				continue
			}
			ol := oldLeaf{dir: i, leaf: l, opaque: k < lo || k >= hi}
			if !ol.opaque {
				if l.Files <= 0 || off+l.Files > len(old) {
					return nil, nil, fmt.Errorf("%w: the leaves given do not hold the files given", ErrTree)
				}
				ol.files = old[off : off+l.Files]
				off += l.Files
			}
			data = append(data, ol)
			k++
		}
	}
	if off != len(old) {
		return nil, nil, fmt.Errorf("%w: the leaves given do not hold the files given", ErrTree)
	}
	pos := 0
	for k := lo; k < hi; k++ {
		end := len(next)
		if k+1 < hi {
			end = pos + searchFrom(next[pos:], data[k+1].files[0].Name)
		}
		data[k].next = next[pos:end]
		pos = end
	}
	return t.update(data, pads, renewed, payload, encrypt)
}

// oldLeaf is one data leaf of the tree being updated: its files before
// (files) and after (next) the change, or neither when it is opaque
// (not read, and unchanged).
type oldLeaf struct {
	dir    int
	leaf   LeafRef
	files  []File
	next   []File
	opaque bool
}

// update is the part of Update and UpdateRange that follows the split of
// the new files over the old leaves.
func (t *Tree) update(data []oldLeaf, pads []slot, renewed uint64, payload int, encrypt EncryptFunc) (*Tree, []Ref, error) {
	lastDir := len(t.Dirs) - 1
	var obsolete []Ref
	var out []slot
	var carry []File
	for k, ol := range data {
		if ol.opaque {
			if carry != nil {
				return nil, nil, ErrOutsideRange
			}
			out = append(out, slot{dir: ol.dir, leaf: ol.leaf})
			continue
		}
		files := ol.next
		if carry == nil && ol.leaf.Files > 0 && sameFiles(ol.files, files) {
			out = append(out, slot{dir: ol.dir, leaf: ol.leaf})
			continue
		}
		obsolete = append(obsolete, ol.leaf.Blocks...)
		received := carry != nil
		if received {
			files = append(carry, files...)
			carry = nil
		}
		if len(files) == 0 {
			continue
		}
		pieces := pack(files, payload)
		if last := pieces[len(pieces)-1]; !received && k+1 < len(data) && len(last.enc) < payload/4 {
			carry = last.files
			pieces = pieces[:len(pieces)-1]
		}
		for _, p := range pieces {
			out = append(out, slot{dir: ol.dir, enc: p.enc, fresh: true, leaf: LeafRef{Len: len(p.enc), Files: len(p.files)}})
		}
	}
	if carry != nil {
		enc := encodeLeaf(carry)
		out = append(out, slot{dir: data[len(data)-1].dir, enc: enc, fresh: true, leaf: LeafRef{Len: len(enc), Files: len(carry)}})
	}
	dataBlocks := 0
	for _, s := range out {
		dataBlocks += blocksFor(s.leaf.Len, payload)
	}

	// Padding: how many padding leaves, so that the count is a Padmé value.
	padDir := lastDir
	if len(out) > 0 {
		padDir = max(padDir, out[len(out)-1].dir)
	}
	withPads := func(n int) []slot {
		s := slices.Clone(out)
		for i := range n {
			if i < len(pads) {
				s = append(s, pads[i])
			} else {
				s = append(s, slot{dir: padDir, fresh: true, leaf: LeafRef{Len: len(emptyLeaf)}})
			}
		}
		// Padding leaves go at the end of their dir; data leaves are
		// in dir order already.
		slices.SortStableFunc(s, func(a, b slot) int { return a.dir - b.dir })
		return s
	}
	count := func(n int) int { return dataBlocks + n + len(groupDirs(withPads(n), t, payload)) }
	npads := 0
	if len(out) > 0 {
		need := count(0)
		target := Padme(uint64(need))
		if cur := uint64(t.Count()); cur >= uint64(need) && Padme(cur) == cur && cur <= 2*uint64(need) {
			target = cur
		}
		for {
			n := int(target) - need
			for n >= 0 && count(n) > int(target) {
				n--
			}
			if n >= 0 && count(n) == int(target) {
				npads = n
				break
			}
			target = Padme(target + 1)
		}
	}
	for _, p := range pads[min(npads, len(pads)):] {
		obsolete = append(obsolete, p.leaf.Blocks...)
	}
	all := withPads(npads)

	// Encrypt the new leaves, then the dirs that changed.
	for i := range all {
		s := &all[i]
		if !s.fresh {
			continue
		}
		enc := s.enc
		if enc == nil {
			enc = emptyLeaf
		}
		for _, p := range SplitLeaf(enc, payload) {
			ref, err := encrypt(p)
			if err != nil {
				return nil, nil, err
			}
			s.leaf.Blocks = append(s.leaf.Blocks, ref)
		}
	}
	nt := &Tree{}
	usedOld := map[int]bool{}
	for gi, g := range groupDirs(all, t, payload) {
		// Only the first dir records the renewal (see Index.Renewed).
		var rn uint64
		if gi == 0 {
			rn, nt.Renewed = renewed, renewed
		}
		if g.from >= 0 && !g.split && sameLeaves(t.Dirs[g.from].Leaves, g.leaves) && t.dirRenewed(g.from) == rn {
			nt.Dirs = append(nt.Dirs, t.Dirs[g.from])
			usedOld[g.from] = true
			continue
		}
		enc, err := EncodeDir(Dir{Renewed: rn, Leaves: g.leaves}, payload)
		if err != nil {
			return nil, nil, err
		}
		ref, err := encrypt(enc)
		if err != nil {
			return nil, nil, err
		}
		nt.Dirs = append(nt.Dirs, DirRef{Block: ref, Leaves: g.leaves})
	}
	for i, d := range t.Dirs {
		if !usedOld[i] {
			obsolete = append(obsolete, d.Block)
		}
	}
	return nt, obsolete, nil
}

// dirRenewed is what dir i of t records of the renewal.
func (t *Tree) dirRenewed(i int) uint64 {
	if i == 0 {
		return t.Renewed
	}
	return 0
}

// emptyLeaf is the encoding of a padding leaf.
var emptyLeaf = encodeLeaf(nil)

// searchFrom returns how many of files (sorted) have names below bound.
func searchFrom(files []File, bound string) int {
	i, _ := slices.BinarySearchFunc(files, bound, func(f File, n string) int {
		switch {
		case f.Name < n:
			return -1
		case f.Name > n:
			return 1
		}
		return 0
	})
	return i
}

type piece struct {
	files []File
	enc   []byte
}

// pack cuts files into leaves of at most payload bytes each, greedily; a
// file whose entry alone is larger gets a leaf of its own.
func pack(files []File, payload int) []piece {
	var out []piece
	var scratch []byte
	start, size := 0, 0
	for i := range files {
		prev := ""
		if i > start {
			prev = files[i-1].Name
		}
		scratch = appendFile2(scratch[:0], prev, &files[i])
		e := len(scratch)
		n := i - start
		if n > 0 && 2+uvarintLen(uint64(n+1))+size+e > payload {
			out = append(out, piece{files: files[start:i], enc: encodeLeaf(files[start:i])})
			start = i
			size = len(appendFile2(scratch[:0], "", &files[i]))
			continue
		}
		size += e
	}
	out = append(out, piece{files: files[start:], enc: encodeLeaf(files[start:])})
	return out
}

// dirGroup is one dir of the tree being built.
type dirGroup struct {
	from   int // the old dir it continues (-1: new)
	split  bool
	leaves []LeafRef
}

// groupDirs lists the slots' leaves by the dir they come from, splitting
// a dir that outgrows a block and dropping one left empty.
func groupDirs(slots []slot, t *Tree, payload int) []dirGroup {
	var out []dirGroup
	for i := 0; i < len(slots); {
		j := i
		for j < len(slots) && slots[j].dir == slots[i].dir {
			j++
		}
		from := slots[i].dir
		size := dirHeaderMax(j - i)
		g := dirGroup{from: from}
		for _, s := range slots[i:j] {
			l := s.leaf
			if l.Blocks == nil {
				l.Blocks = make([]Ref, blocksFor(l.Len, payload)) // sized for counting; encrypted later
			}
			e := dirEntryLen(l)
			if len(g.leaves) > 0 && size+e > payload {
				out = append(out, g)
				g = dirGroup{from: from, split: true}
				size = dirHeaderMax(j - i)
			}
			g.leaves = append(g.leaves, l)
			size += e
		}
		if len(out) > 0 && out[len(out)-1].from == from && from >= 0 {
			g.split = true
			out[len(out)-1].split = true
		}
		out = append(out, g)
		i = j
	}
	return out
}

func sameLeaves(a, b []LeafRef) bool {
	return slices.EqualFunc(a, b, func(x, y LeafRef) bool {
		return x.Len == y.Len && x.Files == y.Files && slices.Equal(x.Blocks, y.Blocks)
	})
}

// sameFiles reports whether two runs of files are identical, renewal
// included: a leaf is rewritten for any change.
func sameFiles(a, b []File) bool {
	return len(a) == len(b) && slices.EqualFunc(a, b, func(x, y File) bool {
		return sameVersion(&x, &y) && x.Renewed == y.Renewed
	})
}
