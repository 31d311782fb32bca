// Package indexfile is the format of an account's index: the list of the
// user's files and, for each, the blocks that hold it (docs/spec.md "The
// index file"). It encodes and strictly decodes the index, pads its length
// (Padmé, then whole blocks), splits it into block payloads and joins them
// back, and merges two indexes updated at once on two devices.
//
// The package works on plaintext only. Encryption is the client's job
// (client.EncryptIndex), so this package never sees a key other than the file
// keys it stores, never does I/O, and never logs: an index names every
// block and file of an account.
package indexfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/blindstore/blindstore/wire"
)

// Version is the index format version Encode writes and Decode accepts.
const Version = 1

// Limits of the format.
const (
	// MaxNameLen bounds a file name in bytes; longer names are refused.
	MaxNameLen = 4096
	// MaxDecodedSize bounds the decompressed index, so that a small
	// encoding cannot expand into an allocation bomb.
	MaxDecodedSize = 1 << 30
	// MaxInline bounds a file's inline content. Which files a client
	// keeps inline is its choice, below this.
	MaxInline = 1 << 16
)

// HashSize is the size of plaintext hashes (SHA-256) and file keys.
const HashSize = 32

// Ref names one version of one block.
type Ref struct {
	ID   wire.ID
	ETag wire.ETag // of the ciphertext as written; a read must match
}

// Chunk is one piece of a file, stored alone in one block. Its plaintext
// length and hash let a later put find the chunks that did not change
// without reading them back.
type Chunk struct {
	Ref
	Size uint32         // plaintext bytes, at least 1
	Hash [HashSize]byte // SHA-256 of the chunk's plaintext
	// Mark is the chunker's hash of the chunk's last bytes, with which
	// a later put finds the old chunk boundaries again after an edit
	// (client/chunker.go). Format 1 has none (zero).
	Mark uint64
}

// File is one entry of the index.
type File struct {
	// Name is a slash-separated relative path (see ValidName).
	Name string
	// Size is the plaintext length; the chunks' sizes add up to it.
	Size uint64
	// Mode holds permission bits only (fs.ModePerm); an index lists
	// regular files.
	Mode fs.FileMode
	// ModTime is the file's modification time, to the nanosecond.
	ModTime time.Time
	// Hash is SHA-256 of the whole plaintext.
	Hash [HashSize]byte
	// Key is the file's own random key: its blocks are encrypted with it,
	// so one file can be shared without sharing anything else. Never zero.
	Key [HashSize]byte
	// Chunks are the file's blocks, in file order.
	Chunks []Chunk
	// Inline holds the whole content of a small file kept in the index
	// rather than in blocks of its own (then Chunks is empty). Empty
	// files have neither. Format 1 has none. Its bytes are never changed
	// in place (a new version gets a new slice): clones share them, and
	// a decoded leaf's files share the leaf's buffer, which for an index
	// of small files is most of its size.
	Inline []byte
	// KeyShared records that Key was handed out in a share manifest: a
	// new version then gets a new key (and all new blocks), so that an
	// old capability's holder cannot read it. Format 1 has none.
	KeyShared bool
	// Manifest lists the blocks of the file's share manifest, if the
	// file is shared, so that the owner's renewals keep them alive.
	Manifest []Ref
	// Renewed is the last period in which every block of the file was
	// renewed (or written).
	Renewed uint64
}

// Index is an account's index.
type Index struct {
	// Generation counts the index's versions; each write increments it,
	// so a client can notice an index older than one it has seen.
	Generation uint64
	// Files are sorted by name (byte order), names unique. Put, Remove
	// and Rename keep them so; Encode sorts a copy before validating.
	Files []File
	// Renewed is a period in which every block the account refers to
	// was renewed or written: its roots, its head, every index block and
	// every file's blocks (a file's own Renewed may be later). A login in
	// that period need not renew anything, and recording a renewal of
	// the whole account changes this one field, not every file (which
	// would rewrite every leaf). Zero says nothing is known. Format 1 has
	// none, and a format 2 tree without files has no dir to hold it.
	Renewed uint64
}

// Errors of validation and decoding. Callers branch on them with errors.Is.
// An index that does not decode came from the server, which must not be
// able to alter one: ErrCorrupt and ErrVersion are of wire.KindTampered
// wherever they end up.
var (
	ErrBadName   = errors.New("indexfile: bad file name")
	ErrCorrupt   = wire.Sentinel(wire.KindTampered, "indexfile: index is malformed")
	ErrVersion   = wire.Sentinel(wire.KindTampered, "indexfile: unsupported index version")
	ErrDuplicate = errors.New("indexfile: duplicate file name")
)

// ValidName reports whether name can name a file in an index: valid
// UTF-8 of at most MaxNameLen bytes, slash-separated, relative (no leading
// slash), with no empty, "." or ".." element and no trailing slash, and
// without NUL, other control characters or backslashes — so that no name
// can escape the folder it is written into, on any system, or rewrite a
// terminal when listed.
func ValidName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("%w: length must be 1 to %d bytes", ErrBadName, MaxNameLen)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: not valid UTF-8", ErrBadName)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return fmt.Errorf("%w: contains a control character or backslash", ErrBadName)
		}
	}
	if name == "." || !fs.ValidPath(name) {
		return fmt.Errorf("%w: must be a relative path without empty, \".\" or \"..\" elements", ErrBadName)
	}
	return nil
}

// Validate checks everything Decode checks: names valid, sorted and
// unique, no file also a directory of another, permission bits only,
// chunk sizes adding up to the file size, non-zero file keys, v4 block IDs.
func (x *Index) Validate() error {
	for i := range x.Files {
		f := &x.Files[i]
		if err := f.validate(); err != nil {
			return err
		}
		if i > 0 {
			switch c := strings.Compare(x.Files[i-1].Name, f.Name); {
			case c == 0:
				return fmt.Errorf("%w: %q", ErrDuplicate, f.Name)
			case c > 0:
				return fmt.Errorf("%w: files are not sorted by name", ErrCorrupt)
			}
		}
	}
	return checkTree(x.Files)
}

func (f *File) validate() error {
	if err := ValidName(f.Name); err != nil {
		return err
	}
	if f.Mode&^fs.ModePerm != 0 {
		return fmt.Errorf("%w: %q: mode %v is not permission bits only", ErrCorrupt, f.Name, f.Mode)
	}
	if f.Key == [HashSize]byte{} {
		return fmt.Errorf("%w: %q: file key is zero", ErrCorrupt, f.Name)
	}
	if len(f.Inline) > 0 {
		if len(f.Chunks) > 0 || uint64(len(f.Inline)) != f.Size {
			return fmt.Errorf("%w: %q: inline content of %d bytes with %d chunks, file size %d", ErrCorrupt, f.Name, len(f.Inline), len(f.Chunks), f.Size)
		}
		if len(f.Inline) > MaxInline {
			return fmt.Errorf("%w: %q: %d bytes inline, more than %d", ErrCorrupt, f.Name, len(f.Inline), MaxInline)
		}
	}
	var sum uint64 = uint64(len(f.Inline))
	for i := range f.Chunks {
		c := &f.Chunks[i]
		if c.Size == 0 {
			return fmt.Errorf("%w: %q: empty chunk", ErrCorrupt, f.Name)
		}
		if err := c.ID.Validate(); err != nil {
			return fmt.Errorf("%w: %q: chunk id: %v", ErrCorrupt, f.Name, err)
		}
		sum += uint64(c.Size)
	}
	if sum != f.Size {
		return fmt.Errorf("%w: %q: chunks hold %d bytes, file size is %d", ErrCorrupt, f.Name, sum, f.Size)
	}
	for _, r := range f.Manifest {
		if err := r.ID.Validate(); err != nil {
			return fmt.Errorf("%w: %q: manifest id: %v", ErrCorrupt, f.Name, err)
		}
	}
	return nil
}

// checkTree refuses a file whose name is also a directory of another
// file ("a" and "a/b"): no file system can hold both.
func checkTree(files []File) error {
	names := make(map[string]struct{}, len(files))
	for i := range files {
		names[files[i].Name] = struct{}{}
	}
	for i := range files {
		if dir, ok := blockingDir(files[i].Name, names); ok {
			return fmt.Errorf("%w: %q is both a file and a directory", ErrCorrupt, dir)
		}
	}
	return nil
}

// blockingDir returns the first parent directory of name that is a file
// in names.
func blockingDir(name string, names map[string]struct{}) (string, bool) {
	for i := 0; i < len(name); i++ {
		if name[i] == '/' {
			if _, ok := names[name[:i]]; ok {
				return name[:i], true
			}
		}
	}
	return "", false
}

func compareFiles(a, b File) int { return strings.Compare(a.Name, b.Name) }

func (x *Index) search(name string) (int, bool) {
	return slices.BinarySearchFunc(x.Files, name, func(f File, n string) int { return strings.Compare(f.Name, n) })
}

// Lookup returns the file named name, or nil. The pointer is into
// x.Files and valid until the next change.
func (x *Index) Lookup(name string) *File {
	if i, ok := x.search(name); ok {
		return &x.Files[i]
	}
	return nil
}

// Put adds f or replaces the file of the same name, after checking it.
func (x *Index) Put(f File) error {
	if err := f.validate(); err != nil {
		return err
	}
	i, ok := x.search(f.Name)
	if ok {
		x.Files[i] = f
		return nil
	}
	names := make(map[string]struct{}, len(x.Files))
	for j := range x.Files {
		names[x.Files[j].Name] = struct{}{}
	}
	if dir, ok := blockingDir(f.Name, names); ok {
		return fmt.Errorf("%w: %q is a file", ErrBadName, dir)
	}
	// Names under f.Name+"/" sort together, starting where it would go.
	if j, _ := x.search(f.Name + "/"); j < len(x.Files) && strings.HasPrefix(x.Files[j].Name, f.Name+"/") {
		return fmt.Errorf("%w: %q is a directory", ErrBadName, f.Name)
	}
	x.Files = slices.Insert(x.Files, i, f)
	return nil
}

// Remove deletes the file named name and reports whether it was there.
func (x *Index) Remove(name string) bool {
	i, ok := x.search(name)
	if ok {
		x.Files = slices.Delete(x.Files, i, i+1)
	}
	return ok
}

// Rename moves a file to a new name, which must not exist.
func (x *Index) Rename(oldName, newName string) error {
	i, ok := x.search(oldName)
	if !ok {
		return fmt.Errorf("indexfile: no file %q", oldName)
	}
	if x.Lookup(newName) != nil {
		return fmt.Errorf("%w: %q exists", ErrDuplicate, newName)
	}
	moved := x.Files[i]
	moved.Name = newName
	rest := &Index{Files: slices.Delete(slices.Clone(x.Files), i, i+1)}
	if err := rest.Put(moved); err != nil {
		return err
	}
	x.Files = rest.Files
	return nil
}

// Clone returns a copy of x that shares only the files' Inline bytes,
// which are never changed in place.
func (x *Index) Clone() *Index {
	c := &Index{Generation: x.Generation, Files: make([]File, len(x.Files)), Renewed: x.Renewed}
	for i := range x.Files {
		c.Files[i] = x.Files[i].clone()
	}
	return c
}

func (f File) clone() File {
	f.Chunks = slices.Clone(f.Chunks)
	f.Manifest = slices.Clone(f.Manifest)
	return f
}

// Refs returns every block the file holds: its chunks, then its manifest.
func (f *File) Refs() []Ref {
	refs := make([]Ref, 0, len(f.Chunks)+len(f.Manifest))
	for _, c := range f.Chunks {
		refs = append(refs, c.Ref)
	}
	return append(refs, f.Manifest...)
}

// Unreferenced returns the blocks old refers to and cur does not, sorted
// by ID: what is safe to delete once cur has replaced old. Two files may
// refer to one block (a merge of a rename and an edit can leave them so),
// so deletion must go by this difference, never by one file's blocks.
func Unreferenced(old, cur *Index) []Ref {
	keep := make(map[wire.ID]struct{})
	for i := range cur.Files {
		for _, r := range cur.Files[i].Refs() {
			keep[r.ID] = struct{}{}
		}
	}
	seen := make(map[wire.ID]struct{})
	var out []Ref
	for i := range old.Files {
		for _, r := range old.Files[i].Refs() {
			if _, ok := keep[r.ID]; ok {
				continue
			}
			if _, ok := seen[r.ID]; ok {
				continue
			}
			seen[r.ID] = struct{}{}
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b Ref) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	return out
}

// sortedCopy returns x's files sorted by name, in a new slice.
func sortedCopy(files []File) []File {
	s := slices.Clone(files)
	slices.SortStableFunc(s, compareFiles)
	return s
}

// PutAll adds or replaces several files at once, in O(n log n) rather
// than Put's O(n) per file, and checks the result as Validate does.
func (x *Index) PutAll(files []File) error {
	byName := make(map[string]int, len(files))
	for i := range files {
		if err := files[i].validate(); err != nil {
			return err
		}
		byName[files[i].Name] = i
	}
	out := make([]File, 0, len(x.Files)+len(files))
	for i := range x.Files {
		if _, ok := byName[x.Files[i].Name]; !ok {
			out = append(out, x.Files[i])
		}
	}
	for _, i := range byName {
		out = append(out, files[i])
	}
	slices.SortFunc(out, compareFiles)
	y := &Index{Files: out}
	if err := y.Validate(); err != nil {
		return err
	}
	x.Files = out
	return nil
}
