package indexfile

// Format 2: an index that costs what changed (docs/spec.md "An index
// change costs what changed, not the account").
//
// The files, sorted by name, are cut into runs, the leaves; each leaf is
// encoded alone and stored in as many index blocks as it needs (one,
// unless a single file's entry is larger than a block's payload). Dir
// nodes list the leaves, in order, each dir in one block; the account's
// head lists the dirs. Changing one file re-encodes its leaf and the dir
// that lists it: two blocks, whatever the account's size. A leaf that
// outgrows a block is split (greedily, so files added in name order fill
// leaves); one that shrinks below a quarter of a block takes in the files
// of the leaf after it.
//
// Padding. The count of index blocks (dirs and leaf blocks) is all a
// server sees of an index; it is padded to a Padmé value with padding
// leaves (leaves of no file) listed by the last dir. The padded count
// grows to Padmé(n) as soon as n real blocks no longer fit, and shrinks
// only once it is more than twice what is needed, so that adding and
// removing one file at a Padmé step does not write and delete a step's
// worth of padding each time.
//
// Encodings (integers: uvarint = unsigned LEB128 as encoding/binary,
// varint = zig-zag; every varint minimal; ref = id[16] ‖ etag[16]):
//
//	leaf  = uint8 2 (format) ‖ uint8 1 (leaf) ‖ uvarint file_count ‖ file × file_count
//	file  = uvarint prefix ‖ uvarint suffix_len ‖ suffix
//	            name = (previous name in the leaf)[:prefix] ‖ suffix,
//	            prefix = the longest common prefix of the two (0 for the first)
//	      ‖ uvarint size ‖ uvarint mode ‖ varint mtime_sec ‖ uvarint mtime_nsec
//	      ‖ uvarint renewed_period ‖ uint8 flags (bit 0 inline, bit 1 key_shared)
//	      ‖ hash[32] ‖ key[32]
//	      ‖ inline: content[size]
//	        else:   uvarint chunk_count ‖ chunk × chunk_count
//	      ‖ uvarint manifest_count ‖ ref × manifest_count
//	chunk = ref ‖ uvarint size ‖ hash[32] ‖ uint64be mark
//	dir   = uint8 2 ‖ uint8 2 (dir) ‖ uvarint leaf_count ‖ entry × leaf_count
//	      | uint8 2 ‖ uint8 3 (dir with renewal) ‖ uvarint renewed (≥ 1)
//	        ‖ uvarint leaf_count ‖ entry × leaf_count
//	entry = uvarint leaf_len ‖ ref × ⌈leaf_len / payload⌉
//
// The first dir records the index's Renewed (a period in which every
// block of the account, its files' included, was renewed) when it is not
// zero: then a login in that period, on any device, knows it need not
// renew anything.
// Only the first dir holds it, so that recording a renewal rewrites one
// dir. Indexes written before that field existed have only kind 2 dirs
// and read as Renewed zero: renew, which is what they did.
//
// A leaf of leaf_len bytes is stored in ⌈leaf_len/payload⌉ blocks, every
// one full but the last. No compression: the bulk of an index (keys,
// hashes, IDs, inline content that is often compressed already) does not
// compress, and an uncompressed leaf's size is known while it is built.
//
// DecodeLeaf and DecodeDir refuse anything but the one canonical encoding
// of what they return: other format or node bytes, non-minimal varints,
// a prefix that is not the longest common one, flags other than those
// above, truncation, trailing bytes, counts the input cannot hold, and
// whatever File validation refuses. Assemble checks what spans leaves:
// names sorted and unique across the whole index, no file also a
// directory, no leaf block listed twice.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"time"

	"github.com/blindstore/blindstore/wire"
)

// FormatTree is the format byte of leaves and dirs.
const FormatTree = 2

const (
	kindLeaf       = 1
	kindDir        = 2
	kindDirRenewed = 3

	flagInline    = 1
	flagKeyShared = 2
)

// Sizes of fixed records in format 2.
const (
	chunkLen2   = refLen + 1 + HashSize + 8
	minFileLen2 = 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + HashSize + HashSize + 1 + 1
)

// ErrTree is wrapped by errors about a tree that does not hold together.
var ErrTree = errors.New("indexfile: index tree is malformed")

// LeafRef is one leaf as a dir lists it.
type LeafRef struct {
	Len    int   // bytes of the leaf's encoding
	Blocks []Ref // ⌈Len/payload⌉ blocks holding it, in order
	// Files is how many files the leaf holds (0: a padding leaf; -1:
	// not known, the leaf not read, see AssembleDirs). It is not in the
	// dir: Assemble and Update set it.
	Files int
}

// DirRef is one dir block and the leaves it lists.
type DirRef struct {
	Block  Ref
	Leaves []LeafRef
}

// Dir is the content of one dir block.
type Dir struct {
	// Renewed is the index's Renewed in the first dir, zero in the others.
	Renewed uint64
	Leaves  []LeafRef
}

// Tree says where an index's files are: the dirs, in order, whose leaves
// in order hold the files in name order. The zero Tree is an empty index.
type Tree struct {
	Dirs []DirRef
	// Renewed is what the first dir records (see Index.Renewed).
	Renewed uint64
}

// Blocks returns every index block of t: dirs first, then leaf blocks.
func (t *Tree) Blocks() []Ref {
	var out []Ref
	for _, d := range t.Dirs {
		out = append(out, d.Block)
	}
	for _, d := range t.Dirs {
		for _, l := range d.Leaves {
			out = append(out, l.Blocks...)
		}
	}
	return out
}

// DirBlocks returns the dir blocks, which the head lists.
func (t *Tree) DirBlocks() []Ref {
	out := make([]Ref, len(t.Dirs))
	for i, d := range t.Dirs {
		out[i] = d.Block
	}
	return out
}

// Count returns the number of index blocks.
func (t *Tree) Count() int {
	n := len(t.Dirs)
	for _, d := range t.Dirs {
		for _, l := range d.Leaves {
			n += len(l.Blocks)
		}
	}
	return n
}

// EncryptFunc encrypts one payload into a new block and returns its ref.
type EncryptFunc func(payload []byte) (Ref, error)

// --- encoding ---

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func appendRef(b []byte, r Ref) []byte { return append(append(b, r.ID[:]...), r.ETag[:]...) }

func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// appendFile2 appends f's entry, prev being the name of the file before
// it in the leaf ("" for the first).
func appendFile2(b []byte, prev string, f *File) []byte {
	p := commonPrefix(prev, f.Name)
	b = appendUvarint(b, uint64(p))
	b = appendUvarint(b, uint64(len(f.Name)-p))
	b = append(b, f.Name[p:]...)
	b = appendUvarint(b, f.Size)
	b = appendUvarint(b, uint64(f.Mode))
	b = binary.AppendVarint(b, f.ModTime.Unix())
	b = appendUvarint(b, uint64(f.ModTime.Nanosecond()))
	b = appendUvarint(b, f.Renewed)
	var flags byte
	if len(f.Inline) > 0 {
		flags |= flagInline
	}
	if f.KeyShared {
		flags |= flagKeyShared
	}
	b = append(b, flags)
	b = append(b, f.Hash[:]...)
	b = append(b, f.Key[:]...)
	if len(f.Inline) > 0 {
		b = append(b, f.Inline...)
	} else {
		b = appendUvarint(b, uint64(len(f.Chunks)))
		for _, c := range f.Chunks {
			b = appendRef(b, c.Ref)
			b = appendUvarint(b, uint64(c.Size))
			b = append(b, c.Hash[:]...)
			b = binary.BigEndian.AppendUint64(b, c.Mark)
		}
	}
	b = appendUvarint(b, uint64(len(f.Manifest)))
	for _, r := range f.Manifest {
		b = appendRef(b, r)
	}
	return b
}

// EncodeLeaf returns the leaf holding files, which must be valid and in
// strictly increasing name order.
func EncodeLeaf(files []File) ([]byte, error) {
	for i := range files {
		if err := files[i].validate(); err != nil {
			return nil, err
		}
		if i > 0 && files[i-1].Name >= files[i].Name {
			return nil, fmt.Errorf("%w: leaf files are not sorted", ErrCorrupt)
		}
	}
	return encodeLeaf(files), nil
}

func encodeLeaf(files []File) []byte {
	b := []byte{FormatTree, kindLeaf}
	b = appendUvarint(b, uint64(len(files)))
	prev := ""
	for i := range files {
		b = appendFile2(b, prev, &files[i])
		prev = files[i].Name
	}
	return b
}

// EncodeDir returns the dir block of d, whose leaves' blocks hold
// payloads of payload bytes.
func EncodeDir(d Dir, payload int) ([]byte, error) {
	b := []byte{FormatTree, kindDir}
	if d.Renewed != 0 {
		b[1] = kindDirRenewed
		b = appendUvarint(b, d.Renewed)
	}
	b = appendUvarint(b, uint64(len(d.Leaves)))
	for _, l := range d.Leaves {
		if l.Len <= 0 || len(l.Blocks) != blocksFor(l.Len, payload) {
			return nil, fmt.Errorf("%w: a leaf of %d bytes in %d blocks", ErrTree, l.Len, len(l.Blocks))
		}
		b = appendUvarint(b, uint64(l.Len))
		for _, r := range l.Blocks {
			b = appendRef(b, r)
		}
	}
	return b, nil
}

func blocksFor(n, payload int) int { return (n + payload - 1) / payload }

// dirHeaderMax bounds the bytes of a dir before its entries, for a dir of
// n leaves: format, kind, the longest renewal and the count.
func dirHeaderMax(n int) int { return 2 + binary.MaxVarintLen64 + uvarintLen(uint64(n)) }

func dirEntryLen(l LeafRef) int {
	return uvarintLen(uint64(l.Len)) + refLen*len(l.Blocks)
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// --- decoding ---

// reader reads format 2 fields; after the first error every read
// returns zeros and the error sticks.
type reader struct{ decoder }

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || n != uvarintLen(v) {
		r.fail("bad or non-minimal varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	ux := uint64(v) << 1
	if v < 0 {
		ux = ^ux
	}
	if n <= 0 || n != uvarintLen(ux) {
		r.fail("bad or non-minimal varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a count of records of at least minLen bytes each.
func (r *reader) count(minLen int) int {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b))/uint64(minLen) {
		r.fail("count exceeds the remaining bytes")
		return 0
	}
	return int(n)
}

func (r *reader) ref() Ref {
	var x Ref
	copy(x.ID[:], r.bytes(16))
	copy(x.ETag[:], r.bytes(wire.ETagSize))
	return x
}

// header reads a node's format and kind, which must be one of kinds, and
// returns the kind.
func (r *reader) header(kinds ...byte) byte {
	b := r.bytes(2)
	if r.err != nil {
		return 0
	}
	if b[0] != FormatTree || !slices.Contains(kinds, b[1]) {
		r.err = fmt.Errorf("%w: format %d node %d, want format %d node %v", ErrVersion, b[0], b[1], FormatTree, kinds)
		r.b = nil
		return 0
	}
	return b[1]
}

// DecodeLeaf parses a leaf strictly (see the file comment). The files'
// Inline content is b's: b must not change while they are in use.
func DecodeLeaf(b []byte) ([]File, error) {
	r := &reader{decoder{b: b}}
	r.header(kindLeaf)
	n := r.count(minFileLen2)
	if r.err != nil {
		return nil, r.err
	}
	files := make([]File, n)
	prev := ""
	for i := range files {
		f := &files[i]
		p := r.uvarint()
		sl := r.uvarint()
		suffix := r.bytes(int(min(sl, uint64(len(r.b)+1))))
		if r.err != nil {
			return nil, r.err
		}
		if p > uint64(len(prev)) {
			return nil, fmt.Errorf("%w: name prefix beyond the previous name", ErrCorrupt)
		}
		f.Name = prev[:p] + string(suffix)
		if i > 0 && uint64(commonPrefix(prev, f.Name)) != p {
			return nil, fmt.Errorf("%w: name prefix is not the longest common one", ErrCorrupt)
		}
		f.Size = r.uvarint()
		mode := r.uvarint()
		if mode > math.MaxUint32 {
			r.fail("mode out of range")
		}
		f.Mode = fs.FileMode(mode)
		sec, nsec := r.varint(), r.uvarint()
		if nsec >= 1e9 {
			r.fail("nanoseconds out of range")
		}
		f.ModTime = time.Unix(sec, int64(nsec)).UTC()
		f.Renewed = r.uvarint()
		flags := r.bytes(1)
		copy(f.Hash[:], r.bytes(HashSize))
		copy(f.Key[:], r.bytes(HashSize))
		if r.err != nil {
			return nil, r.err
		}
		if flags[0]&^(flagInline|flagKeyShared) != 0 {
			return nil, fmt.Errorf("%w: unknown flags %#x", ErrCorrupt, flags[0])
		}
		f.KeyShared = flags[0]&flagKeyShared != 0
		if flags[0]&flagInline != 0 {
			if f.Size == 0 || f.Size > MaxInline {
				return nil, fmt.Errorf("%w: inline content of %d bytes", ErrCorrupt, f.Size)
			}
			in := r.bytes(int(f.Size))
			f.Inline = in[:len(in):len(in)]
		} else if nc := r.count(chunkLen2); nc > 0 {
			f.Chunks = make([]Chunk, nc)
			for j := range f.Chunks {
				c := &f.Chunks[j]
				c.Ref = r.ref()
				size := r.uvarint()
				if size > math.MaxUint32 {
					r.fail("chunk size out of range")
				}
				c.Size = uint32(size)
				copy(c.Hash[:], r.bytes(HashSize))
				if m := r.bytes(8); len(m) == 8 {
					c.Mark = binary.BigEndian.Uint64(m)
				}
			}
		}
		if nm := r.count(refLen); nm > 0 {
			f.Manifest = make([]Ref, nm)
			for j := range f.Manifest {
				f.Manifest[j] = r.ref()
			}
		}
		if r.err != nil {
			return nil, r.err
		}
		if err := f.validate(); err != nil {
			return nil, err
		}
		if i > 0 && prev >= f.Name {
			return nil, fmt.Errorf("%w: leaf files are not sorted", ErrCorrupt)
		}
		prev = f.Name
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last file", ErrCorrupt, len(r.b))
	}
	return files, nil
}

// LeafFirstName returns the name of the first file of the leaf whose
// first block's payload is b (ok false for a leaf of no file): what
// finding a name's leaf needs, without decrypting the rest of the leaf.
// It checks only what it reads; DecodeLeaf checks the whole leaf.
func LeafFirstName(b []byte) (name string, ok bool, err error) {
	r := &reader{decoder{b: b}}
	r.header(kindLeaf)
	n := r.uvarint()
	if r.err != nil {
		return "", false, r.err
	}
	if n == 0 {
		return "", false, nil
	}
	if p := r.uvarint(); r.err == nil && p != 0 {
		return "", false, fmt.Errorf("%w: the first name of a leaf has a prefix", ErrCorrupt)
	}
	sl := r.uvarint()
	suffix := r.bytes(int(min(sl, uint64(len(r.b)+1))))
	if r.err != nil {
		return "", false, r.err
	}
	name = string(suffix)
	if err := ValidName(name); err != nil {
		return "", false, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return name, true, nil
}

// DecodeDir parses a dir strictly, for leaves stored in payloads of
// payload bytes.
func DecodeDir(b []byte, payload int) (Dir, error) {
	if payload <= 0 {
		return Dir{}, fmt.Errorf("indexfile: payload size %d", payload)
	}
	r := &reader{decoder{b: b}}
	var d Dir
	if r.header(kindDir, kindDirRenewed) == kindDirRenewed {
		if d.Renewed = r.uvarint(); r.err == nil && d.Renewed == 0 {
			return Dir{}, fmt.Errorf("%w: a dir with a renewal of zero", ErrCorrupt)
		}
	}
	n := r.count(1 + refLen)
	if r.err != nil {
		return Dir{}, r.err
	}
	leaves := make([]LeafRef, n)
	for i := range leaves {
		l := &leaves[i]
		ln := r.uvarint()
		if r.err == nil && (ln == 0 || ln > MaxDecodedSize) {
			r.fail("leaf length out of range")
		}
		if r.err != nil {
			return Dir{}, r.err
		}
		l.Len = int(ln)
		nb := blocksFor(l.Len, payload)
		if nb > len(r.b)/refLen {
			return Dir{}, fmt.Errorf("%w: truncated", ErrCorrupt)
		}
		l.Blocks = make([]Ref, nb)
		for j := range l.Blocks {
			l.Blocks[j] = r.ref()
			if err := l.Blocks[j].ID.Validate(); err != nil {
				return Dir{}, fmt.Errorf("%w: leaf block id: %v", ErrCorrupt, err)
			}
		}
	}
	if len(r.b) != 0 {
		return Dir{}, fmt.Errorf("%w: %d bytes after the last leaf", ErrCorrupt, len(r.b))
	}
	d.Leaves = leaves
	return d, nil
}

// SplitLeaf cuts a leaf's encoding into the payloads of its blocks.
func SplitLeaf(enc []byte, payload int) [][]byte {
	var out [][]byte
	for len(enc) > 0 {
		n := min(len(enc), payload)
		out = append(out, enc[:n:n])
		enc = enc[n:]
	}
	return out
}

// JoinLeaf puts a leaf's payloads back together, refusing payloads whose
// lengths are not those SplitLeaf makes for a leaf of n bytes. A leaf of
// one block is that block's payload itself, not a copy.
func JoinLeaf(payloads [][]byte, n, payload int) ([]byte, error) {
	if len(payloads) != blocksFor(n, payload) {
		return nil, fmt.Errorf("%w: a leaf of %d bytes in %d blocks", ErrTree, n, len(payloads))
	}
	for i, p := range payloads {
		want := payload
		if i == len(payloads)-1 {
			want = n - payload*(len(payloads)-1)
		}
		if len(p) != want {
			return nil, fmt.Errorf("%w: leaf block %d holds %d bytes, want %d", ErrTree, i, len(p), want)
		}
	}
	if len(payloads) == 1 {
		return payloads[0], nil
	}
	out := make([]byte, 0, n)
	for _, p := range payloads {
		out = append(out, p...)
	}
	return out, nil
}

// Assemble builds the index and its tree from decoded dirs (in head
// order) and the files of each of their leaves (leafFiles[i][j]: dir i,
// leaf j), and checks what spans leaves.
func Assemble(generation uint64, dirBlocks []Ref, dirs []Dir, leafFiles [][][]File) (*Index, *Tree, error) {
	if len(dirBlocks) != len(dirs) || len(dirs) != len(leafFiles) {
		return nil, nil, fmt.Errorf("%w: %d dir blocks, %d dirs, %d leaf lists", ErrTree, len(dirBlocks), len(dirs), len(leafFiles))
	}
	total := 0
	for _, d := range leafFiles {
		for _, fs := range d {
			total += len(fs)
		}
	}
	x := &Index{Generation: generation, Files: make([]File, 0, total)}
	t := &Tree{Dirs: make([]DirRef, len(dirs))}
	if len(dirs) > 0 {
		x.Renewed, t.Renewed = dirs[0].Renewed, dirs[0].Renewed
	}
	seen := map[wire.ID]struct{}{}
	for i := range dirs {
		leaves := dirs[i].Leaves
		if i > 0 && dirs[i].Renewed != 0 {
			return nil, nil, fmt.Errorf("%w: dir %d records a renewal, which only the first may", ErrTree, i)
		}
		if len(leafFiles[i]) != len(leaves) {
			return nil, nil, fmt.Errorf("%w: dir %d lists %d leaves, got %d", ErrTree, i, len(leaves), len(leafFiles[i]))
		}
		if len(leaves) == 0 {
			return nil, nil, fmt.Errorf("%w: dir %d lists no leaf", ErrTree, i)
		}
		d := DirRef{Block: dirBlocks[i], Leaves: make([]LeafRef, len(leaves))}
		for _, r := range append([]Ref{dirBlocks[i]}, blocksOf(leaves)...) {
			if _, dup := seen[r.ID]; dup {
				return nil, nil, fmt.Errorf("%w: a block is listed twice", ErrTree)
			}
			seen[r.ID] = struct{}{}
		}
		for j, l := range leaves {
			l.Files = len(leafFiles[i][j])
			d.Leaves[j] = l
			x.Files = append(x.Files, leafFiles[i][j]...)
		}
		t.Dirs[i] = d
	}
	if err := x.Validate(); err != nil {
		return nil, nil, err
	}
	return x, t, nil
}

// AssembleDirs builds the tree of decoded dirs (in head order) without
// their leaves, checking what Assemble checks of the dirs: only the
// first records a renewal, none is empty, no block is listed twice. The
// leaves' Files are unknown (-1), but for padding leaves (0), told apart
// by their length (see DataLeaves).
func AssembleDirs(dirBlocks []Ref, dirs []Dir) (*Tree, error) {
	if len(dirBlocks) != len(dirs) {
		return nil, fmt.Errorf("%w: %d dir blocks, %d dirs", ErrTree, len(dirBlocks), len(dirs))
	}
	t := &Tree{Dirs: make([]DirRef, len(dirs))}
	if len(dirs) > 0 {
		t.Renewed = dirs[0].Renewed
	}
	seen := map[wire.ID]struct{}{}
	for i := range dirs {
		leaves := dirs[i].Leaves
		if i > 0 && dirs[i].Renewed != 0 {
			return nil, fmt.Errorf("%w: dir %d records a renewal, which only the first may", ErrTree, i)
		}
		if len(leaves) == 0 {
			return nil, fmt.Errorf("%w: dir %d lists no leaf", ErrTree, i)
		}
		for _, r := range append([]Ref{dirBlocks[i]}, blocksOf(leaves)...) {
			if _, dup := seen[r.ID]; dup {
				return nil, fmt.Errorf("%w: a block is listed twice", ErrTree)
			}
			seen[r.ID] = struct{}{}
		}
		d := DirRef{Block: dirBlocks[i], Leaves: slices.Clone(leaves)}
		for j := range d.Leaves {
			if d.Leaves[j].Len == len(emptyLeaf) {
				d.Leaves[j].Files = 0
			} else {
				d.Leaves[j].Files = -1
			}
		}
		t.Dirs[i] = d
	}
	return t, nil
}

func blocksOf(leaves []LeafRef) []Ref {
	var out []Ref
	for _, l := range leaves {
		out = append(out, l.Blocks...)
	}
	return out
}
