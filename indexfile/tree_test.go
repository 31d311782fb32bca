package indexfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/blindstore/blindstore/internal/goldenfile"
	"github.com/blindstore/blindstore/internal/seeded"
)

// memStore stands for the blocks a client would encrypt and write: it keeps
// payloads by ref and counts what was written.
type memStore struct {
	blocks  map[Ref][]byte
	written int
	n       int
}

func newMemStore() *memStore { return &memStore{blocks: map[Ref][]byte{}} }

func (m *memStore) encrypt(p []byte) (Ref, error) {
	m.n++
	seed := fmt.Sprintf("block %d", m.n)
	r := Ref{ID: seeded.BlockID(seed), ETag: testETag(seed)}
	m.blocks[r] = bytes.Clone(p)
	m.written++
	return r, nil
}

// load reads the tree back the way a client does: dirs, then leaves.
func (m *memStore) load(t *testing.T, dirBlocks []Ref, payload int) (*Index, *Tree) {
	t.Helper()
	var dirs []Dir
	var files [][][]File
	for _, d := range dirBlocks {
		dir, err := DecodeDir(m.blocks[d], payload)
		if err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
		var fl [][]File
		for _, l := range dir.Leaves {
			var ps [][]byte
			for _, b := range l.Blocks {
				p, ok := m.blocks[b]
				if !ok {
					t.Fatal("a listed block was deleted")
				}
				ps = append(ps, p)
			}
			enc, err := JoinLeaf(ps, l.Len, payload)
			if err != nil {
				t.Fatal(err)
			}
			f, err := DecodeLeaf(enc)
			if err != nil {
				t.Fatal(err)
			}
			fl = append(fl, f)
		}
		files = append(files, fl)
	}
	x, tr, err := Assemble(7, dirBlocks, dirs, files)
	if err != nil {
		t.Fatal(err)
	}
	return x, tr
}

// commit applies an update and deletes what it obsoletes, checking that
// the result reads back as next and that the count of blocks is padded.
func (m *memStore) commit(t *testing.T, tr *Tree, old, next *Index, payload int) *Tree {
	t.Helper()
	nt, obsolete, err := tr.Update(old, next, payload, m.encrypt)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range obsolete {
		if _, ok := m.blocks[r]; !ok {
			t.Fatal("obsolete lists a block that is not there")
		}
		delete(m.blocks, r)
	}
	if got, want := len(m.blocks), nt.Count(); got != want {
		t.Fatalf("%d blocks stored, the tree has %d: leaked or lost", got, want)
	}
	if c := uint64(nt.Count()); Padme(c) != c {
		t.Fatalf("%d index blocks is not a Padmé value", c)
	}
	x, back := m.load(t, nt.DirBlocks(), payload)
	if !reflect.DeepEqual(x.Files, next.Files) && !(len(x.Files) == 0 && len(next.Files) == 0) {
		t.Fatal("the tree does not read back as the index it was built for")
	}
	if !reflect.DeepEqual(back.Dirs, nt.Dirs) && len(nt.Dirs) > 0 {
		t.Fatal("the tree read back differs")
	}
	if len(nt.Dirs) > 0 && (x.Renewed != next.Renewed || back.Renewed != next.Renewed || nt.Renewed != next.Renewed) {
		t.Fatalf("the renewal reads back as %d (tree %d, built %d), want %d", x.Renewed, back.Renewed, nt.Renewed, next.Renewed)
	}
	return nt
}

// The index's Renewed lives in the first dir only: recording it rewrites
// that dir and nothing else, also when the first dir changes for other
// reasons; a tree written before it existed reads as zero.
func TestTreeRecordsRenewal(t *testing.T) {
	const payload = 4096 - 44
	m := newMemStore()
	x := &Index{}
	for i := range 3000 {
		x.Files = append(x.Files, smallFile(i))
	}
	tr := m.commit(t, &Tree{}, &Index{}, x, payload)
	if len(tr.Dirs) < 2 || tr.Renewed != 0 {
		t.Fatalf("want a tree of several dirs and no renewal, got %d dirs, renewal %d", len(tr.Dirs), tr.Renewed)
	}
	if b := m.blocks[tr.Dirs[0].Block]; !bytes.HasPrefix(b, []byte{FormatTree, kindDir}) {
		t.Fatalf("a dir without a renewal starts % x, want the format 2 dir of before", b[:2])
	}
	for _, renewed := range []uint64{671, 672, 1 << 40} {
		next := x.Clone()
		next.Renewed = renewed
		before := m.written
		old := tr
		tr = m.commit(t, tr, x, next, payload)
		if n := m.written - before; n != 1 {
			t.Fatalf("recording renewal %d wrote %d blocks, want the first dir alone", renewed, n)
		}
		if tr.Dirs[0].Block == old.Dirs[0].Block || !reflect.DeepEqual(tr.Dirs[1:], old.Dirs[1:]) {
			t.Fatal("recording a renewal did not rewrite exactly the first dir")
		}
		want := binary.AppendUvarint([]byte{FormatTree, kindDirRenewed}, renewed)
		if b := m.blocks[tr.Dirs[0].Block]; !bytes.HasPrefix(b, want) {
			t.Fatalf("the first dir starts % x, want % x", b[:len(want)], want)
		}
		for _, d := range tr.Dirs[1:] {
			if b := m.blocks[d.Block]; b[1] != kindDir {
				t.Fatal("a dir other than the first records the renewal")
			}
		}
		x = next
	}
	// A change of the first leaf keeps the renewal; a change elsewhere
	// leaves the first dir alone.
	next := x.Clone()
	next.Files[0].Renewed++
	tr = m.commit(t, tr, x, next, payload)
	x = next
	next = x.Clone()
	next.Files[len(next.Files)-1].Renewed++
	first := tr.Dirs[0].Block
	tr = m.commit(t, tr, x, next, payload)
	if tr.Dirs[0].Block != first {
		t.Fatal("a change in the last dir rewrote the first")
	}
	x = next
	// Removing every file of the first dir makes the next dir first: it
	// then records the renewal.
	next = x.Clone()
	next.Files = next.Files[len(next.Files)-50:]
	tr = m.commit(t, tr, x, next, payload)
	// Back to unknown: the first dir is the format 2 dir of before.
	x = next
	next = x.Clone()
	next.Renewed = 0
	tr = m.commit(t, tr, x, next, payload)
	if b := m.blocks[tr.Dirs[0].Block]; b[1] != kindDir {
		t.Fatal("a renewal of zero is recorded")
	}
}

// Only the first dir may record a renewal, and a recorded renewal is
// never zero (that is the dir without one).
func TestTreeRenewalRefused(t *testing.T) {
	const payload = 512
	leaf := encodeLeaf([]File{file("a", t0, 3)})
	leafRef := func(s string) LeafRef {
		return LeafRef{Len: len(leaf), Blocks: []Ref{{ID: seeded.BlockID(s), ETag: testETag(s)}}}
	}
	leaves := [][]File{{file("a", t0, 3)}}
	if _, err := DecodeDir([]byte{FormatTree, kindDirRenewed, 0, 0}, payload); err == nil {
		t.Error("DecodeDir accepted a renewal of zero")
	}
	if _, err := DecodeDir([]byte{FormatTree, kindDirRenewed, 0x80, 0x00, 0}, payload); err == nil {
		t.Error("DecodeDir accepted a non-minimal renewal")
	}
	if _, err := DecodeDir([]byte{FormatTree, 4, 0}, payload); err == nil {
		t.Error("DecodeDir accepted an unknown node kind")
	}
	d := Dir{Renewed: 9, Leaves: []LeafRef{leafRef("l")}}
	enc, err := EncodeDir(d, payload)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DecodeDir(enc, payload); err != nil || !reflect.DeepEqual(got, d) {
		t.Fatalf("DecodeDir of a dir with a renewal: %+v, %v", got, err)
	}
	blocks := []Ref{{ID: seeded.BlockID("d1")}, {ID: seeded.BlockID("d2")}}
	second := Dir{Leaves: []LeafRef{leafRef("m")}}
	files := [][]File{{file("b", t0, 3)}}
	if x, _, err := Assemble(1, blocks, []Dir{d, second}, [][][]File{leaves, files}); err != nil || x.Renewed != 9 {
		t.Fatalf("Assemble with the renewal in the first dir: %v, renewed %v", err, x)
	}
	second.Renewed = 9
	if _, _, err := Assemble(1, blocks, []Dir{{Leaves: d.Leaves}, second}, [][][]File{leaves, files}); err == nil {
		t.Error("Assemble accepted a renewal in the second dir")
	}
}

func smallFile(i int) File {
	name := fmt.Sprintf("photos/2025/%06d.txt", i)
	f := File{Name: name, Mode: 0o644, ModTime: t0.Add(time.Duration(i) * time.Second), Key: testHash("k" + name), Hash: testHash(name), Renewed: 670}
	f.Inline = bytes.Repeat([]byte{byte(i)}, 100+i%50)
	f.Size = uint64(len(f.Inline))
	return f
}

// An index of many files, changed one file at a time, writes a couple of
// blocks per change; adding and removing runs of files keeps the count
// padded and nothing leaks.
func TestTreeChangesCostWhatChanged(t *testing.T) {
	const payload = 4096 - 44
	m := newMemStore()
	x := &Index{}
	for i := range 3000 {
		x.Files = append(x.Files, smallFile(2*i))
	}
	tr := m.commit(t, &Tree{}, &Index{}, x, payload)
	t.Logf("3000 files: %d index blocks (%d dirs)", tr.Count(), len(tr.Dirs))
	if len(tr.Dirs) < 2 {
		t.Fatalf("want an index that spans dirs, got %d", len(tr.Dirs))
	}
	worst, steps := 0, 0
	for step := range 100 {
		next := x.Clone()
		i := (step * 7919) % len(next.Files)
		switch step % 4 {
		case 0: // change a file
			next.Files[i].Renewed++
		case 1: // add one
			if err := next.Put(smallFile(2*i + 1)); err != nil {
				t.Fatal(err)
			}
		case 2: // remove one
			next.Remove(next.Files[i].Name)
		case 3: // grow one a lot
			f := next.Files[i]
			f.Inline = bytes.Repeat([]byte("x"), 3000)
			f.Size = 3000
			next.Files[i] = f
		}
		before, count := m.written, tr.Count()
		tr = m.commit(t, tr, x, next, payload)
		// A change that takes the count to the next Padmé step writes
		// that step's padding leaves once; any other writes a few.
		n := m.written - before
		if grown := tr.Count() - count; grown > 0 {
			steps++
			n -= grown
		}
		worst = max(worst, n)
		x = next
	}
	t.Logf("worst blocks written by a one-file change: %d, besides padding for %d Padmé steps", worst, steps)
	if worst > 8 {
		t.Fatalf("a one-file change wrote %d index blocks", worst)
	}
	// Remove almost everything, then everything.
	next := &Index{Files: x.Files[:10]}
	tr = m.commit(t, tr, x, next, payload)
	tr = m.commit(t, tr, next, &Index{}, payload)
	if tr.Count() != 0 || len(m.blocks) != 0 {
		t.Fatalf("an empty index kept %d blocks", len(m.blocks))
	}
}

// Files added in name order fill leaves; a file larger than a block gets
// a leaf of several blocks.
func TestTreeFillAndBigFiles(t *testing.T) {
	const payload = 4096 - 44
	m := newMemStore()
	x := &Index{}
	tr := &Tree{}
	for i := range 500 {
		next := x.Clone()
		if err := next.Put(smallFile(i)); err != nil {
			t.Fatal(err)
		}
		tr = m.commit(t, tr, x, next, payload)
		x = next
	}
	var bytesUsed, leaves int
	for _, d := range tr.Dirs {
		for _, l := range d.Leaves {
			if l.Files > 0 {
				bytesUsed += l.Len
				leaves++
			}
		}
	}
	if fill := float64(bytesUsed) / float64(leaves*payload); fill < 0.85 {
		t.Fatalf("leaves filled in name order are %.0f%% full", 100*fill)
	}
	big := file("zz/big", t0, make([]uint32, 300)...)
	for i := range big.Chunks {
		big.Chunks[i].Size = 1000
		big.Chunks[i].Mark = uint64(i)
	}
	big.Size = 300 * 1000
	next := x.Clone()
	if err := next.Put(big); err != nil {
		t.Fatal(err)
	}
	m.commit(t, tr, x, next, payload)
}

// Golden vectors: a leaf and a dir, byte for byte.
func TestTreeGolden(t *testing.T) {
	a := file("docs/a.txt", t0, 11, 22)
	a.Chunks[1].Mark = 0x0102030405060708
	a.KeyShared = true
	b := file("docs/b.txt", time.Unix(-5, 999).UTC())
	b.Inline, b.Size = []byte("hello"), 5
	b.Manifest = []Ref{{ID: seeded.BlockID("m"), ETag: testETag("m")}}
	leaf, err := EncodeLeaf([]File{a, b})
	if err != nil {
		t.Fatal(err)
	}
	golden := goldenfile.Read(t, "testdata/leaf-v2.bin", leaf)
	if !bytes.Equal(leaf, golden) {
		t.Fatal("leaf encoding drifted from testdata/leaf-v2.bin")
	}
	// By hand: format 2, leaf, 2 files, then "docs/a.txt" with no prefix,
	// and the second name as prefix 5 ("docs/") and suffix "b.txt".
	if !bytes.HasPrefix(leaf, append([]byte{2, 1, 2, 0, 10}, "docs/a.txt"...)) {
		t.Fatalf("leaf starts % x", leaf[:16])
	}
	if !bytes.Contains(leaf, append([]byte{5, 5}, "b.txt"...)) {
		t.Fatal("the second name is not prefix-compressed")
	}
	dir, err := EncodeDir(Dir{Leaves: []LeafRef{{Len: len(leaf), Blocks: []Ref{{ID: seeded.BlockID("l"), ETag: testETag("l")}}}, {Len: 5000, Blocks: []Ref{{ID: seeded.BlockID("x"), ETag: testETag("x")}, {ID: seeded.BlockID("y"), ETag: testETag("y")}}}}}, 4052)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dir, goldenfile.Read(t, "testdata/dir-v2.bin", dir)) {
		t.Fatal("dir encoding drifted from testdata/dir-v2.bin")
	}
	want := binary.AppendUvarint([]byte{2, 2, 2}, uint64(len(leaf)))
	if !bytes.HasPrefix(dir, want) {
		t.Fatalf("dir starts % x", dir[:8])
	}
	if d, err := DecodeDir(goldenfile.Read(t, "testdata/dir-v2.bin", dir), 4052); err != nil || d.Renewed != 0 || len(d.Leaves) != 2 {
		t.Fatalf("the format 2 dir of before decodes to %+v, %v", d, err)
	}
	got, err := DecodeLeaf(golden)
	if err != nil || !reflect.DeepEqual(got, []File{a, b}) {
		t.Fatalf("golden leaf decodes to %+v, %v", got, err)
	}
}

// DecodeLeaf and DecodeDir refuse what is not canonical.
func TestTreeDecodeRefuses(t *testing.T) {
	a := file("a", t0, 3)
	leaf := encodeLeaf([]File{a, file("b", t0, 4)})
	cases := map[string][]byte{
		"empty":       {},
		"format 1":    append([]byte{1}, leaf[1:]...),
		"dir as leaf": {2, 2, 0},
		"truncated":   leaf[:len(leaf)-1],
		"trailing":    append(bytes.Clone(leaf), 0),
		"bad flags": func() []byte {
			b := encodeLeaf([]File{a})
			b[bytes.Index(b, a.Hash[:])-1] |= 0x80 // the flags come just before the hash
			return b
		}(),
		"non-minimal count": append([]byte{2, 1, 0x82, 0x00}, leaf[3:]...),
		"unsorted":          encodeLeaf([]File{file("b", t0, 4), a}),
	}
	for name, b := range cases {
		if _, err := DecodeLeaf(b); err == nil {
			t.Errorf("%s: DecodeLeaf accepted it", name)
		}
	}
	dir, _ := EncodeDir(Dir{Leaves: []LeafRef{{Len: 10, Blocks: []Ref{{ID: seeded.BlockID("l")}}}}}, 100)
	for name, b := range map[string][]byte{
		"truncated":                dir[:len(dir)-1],
		"trailing":                 append(bytes.Clone(dir), 0),
		"zero length":              {2, 2, 1, 0},
		"blocks for a longer leaf": append([]byte{2, 2, 1, 201, 1}, dir[4:]...),
	} {
		if _, err := DecodeDir(b, 100); err == nil {
			t.Errorf("%s: DecodeDir accepted it", name)
		}
	}
}

func treeSeeds(f *testing.F) {
	a := file("docs/a.txt", t0, 11, 22)
	b := file("docs/b.txt", t0)
	b.Inline, b.Size = []byte("hi"), 2
	f.Add(encodeLeaf([]File{a, b}), true)
	f.Add(encodeLeaf(nil), true)
	d, _ := EncodeDir(Dir{Leaves: []LeafRef{{Len: 5000, Blocks: []Ref{{ID: seeded.BlockID("x")}, {ID: seeded.BlockID("y")}}}}}, 4052)
	f.Add(d, false)
	d, _ = EncodeDir(Dir{Renewed: 300, Leaves: []LeafRef{{Len: 5000, Blocks: []Ref{{ID: seeded.BlockID("x")}, {ID: seeded.BlockID("y")}}}}}, 4052)
	f.Add(d, false)
	h := sha256.Sum256(nil)
	f.Add(h[:], false)
}

// FuzzDecodeTree feeds arbitrary bytes to DecodeLeaf and DecodeDir: no
// panic, and what they accept is canonical (encodes back to the input).
func FuzzDecodeTree(f *testing.F) {
	treeSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte, leaf bool) {
		if leaf {
			files, err := DecodeLeaf(b)
			if err != nil {
				return
			}
			if enc, err := EncodeLeaf(files); err != nil || !bytes.Equal(enc, b) {
				t.Fatalf("accepted a leaf that is not canonical: %v", err)
			}
			return
		}
		dir, err := DecodeDir(b, 4052)
		if err != nil {
			return
		}
		if enc, err := EncodeDir(dir, 4052); err != nil || !bytes.Equal(enc, b) {
			t.Fatalf("accepted a dir that is not canonical: %v", err)
		}
	})
}

// clone copies what commit changes, so that one state can be updated
// twice.
func (m *memStore) clone() *memStore {
	c := &memStore{blocks: make(map[Ref][]byte, len(m.blocks)), written: m.written, n: m.n}
	for r, b := range m.blocks {
		c.blocks[r] = b
	}
	return c
}

// UpdateRange, given only the leaf a one-file change falls in and the one
// after it (the other leaves' file counts unknown, as in a tree read
// without its leaves), writes exactly the blocks Update writes; the range
// is found by the leaves' first names (LeafFirstName), and a change
// outside the range is refused.
func TestUpdateRangeMatchesUpdate(t *testing.T) {
	const payload = 4096 - 44
	m := newMemStore()
	x := &Index{Renewed: 5}
	for i := range 3000 {
		x.Files = append(x.Files, smallFile(2*i))
	}
	tr := m.commit(t, &Tree{}, &Index{}, x, payload)
	for step := range 60 {
		next := x.Clone()
		i := (step * 7919) % len(next.Files)
		name := next.Files[i].Name
		switch step % 4 {
		case 0:
			next.Files[i].Renewed++
		case 1:
			name = smallFile(2*i + 1).Name
			if err := next.Put(smallFile(2*i + 1)); err != nil {
				t.Fatal(err)
			}
		case 2:
			next.Remove(name)
		case 3:
			f := next.Files[i]
			f.Inline = bytes.Repeat([]byte("x"), 3000)
			f.Size = 3000
			next.Files[i] = f
		}
		// The leaves, as a lazy reader sees them.
		at := tr.DataLeaves()
		first := make([]string, len(at))
		lazy := &Tree{Renewed: tr.Renewed}
		for _, d := range tr.Dirs {
			lazy.Dirs = append(lazy.Dirs, DirRef{Block: d.Block, Leaves: slices.Clone(d.Leaves)})
		}
		for k, p := range at {
			n, ok, err := LeafFirstName(m.blocks[tr.Dirs[p[0]].Leaves[p[1]].Blocks[0]])
			if err != nil || !ok {
				t.Fatalf("leaf %d: first name: %v %v", k, ok, err)
			}
			first[k] = n
		}
		lo := max(0, sort.SearchStrings(first, name+"\x00")-1)
		hi := min(len(at), lo+2)
		upper, hasUpper := "", hi < len(at)
		if hasUpper {
			upper = first[hi]
		}
		var old []File
		off := 0
		for k, p := range at {
			l := &lazy.Dirs[p[0]].Leaves[p[1]]
			if k >= lo && k < hi {
				old = append(old, x.Files[off:off+l.Files]...)
			}
			off += l.Files
			if k < lo || k >= hi {
				l.Files = -1
			}
		}
		lowName := old[0].Name
		var win []File
		for _, f := range next.Files {
			if (lo == 0 || f.Name >= lowName) && (!hasUpper || f.Name < upper) {
				win = append(win, f)
			}
		}
		b := m.clone()
		want := m.commit(t, tr, x, next, payload)
		got, obsolete, err := lazy.UpdateRange(lo, hi, old, win, upper, hasUpper, next.Renewed, payload, b.encrypt)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		for _, r := range obsolete {
			delete(b.blocks, r)
		}
		if !reflect.DeepEqual(got.DirBlocks(), want.DirBlocks()) || len(b.blocks) != len(m.blocks) {
			t.Fatalf("step %d: UpdateRange wrote another tree than Update", step)
		}
		if back, _ := b.load(t, got.DirBlocks(), payload); !reflect.DeepEqual(back.Files, next.Files) {
			t.Fatalf("step %d: the range update does not read back as the index", step)
		}
		tr, x = want, next
	}
	// A name beyond the range is refused before anything is written.
	at := tr.DataLeaves()
	l := tr.Dirs[at[0][0]].Leaves[at[0][1]]
	old := x.Files[:l.Files]
	beyond := append(slices.Clone(old), smallFile(2*2999+1))
	n := m.n
	if _, _, err := tr.UpdateRange(0, 1, old, beyond, x.Files[l.Files].Name, true, x.Renewed, payload, m.encrypt); !errors.Is(err, ErrOutsideRange) || m.n != n {
		t.Fatalf("a change beyond the range: %v, %d blocks encrypted", err, m.n-n)
	}
}
