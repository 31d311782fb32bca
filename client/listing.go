package client

// The listing cache: what ls shows of every file (name, size, mode, time,
// hash, block count, shared, renewal), kept between commands beside the
// block cache, so that listing an account of 100,000 small files does
// not decrypt and decode its 110 MB of index, most of it inline content.
//
// It is kept by leaf: each segment holds the entries of one leaf of the
// index, named by a digest of that leaf's length and blocks (their IDs
// and ETags, which fix every byte of it). A listing takes the segment of
// each leaf the authenticated dirs list, and decrypts only the leaves it
// has none for (those another device wrote); it then keeps exactly the
// segments of the index as it is. A one-file put (lazyindex.go) appends
// the segments of the leaves it wrote to a log beside the listing (a few
// kilobytes) rather than sealing the whole listing again; the next
// listing takes them from there and folds them in.
//
// It never holds plaintext on disk: the listing and each record of the
// log are sealed with XChaCha20-Poly1305 under a key derived from the
// account key (HKDF-SHA256, an info of its own), so that only the
// account's sessions can open them; anything that does not open, or
// parse, is ignored and built again from the index. What it reveals to
// whoever holds the configuration directory is what the session file
// beside it already reveals: the session's key opens the index itself.

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io/fs"
	"slices"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/blindstore/blindstore/indexfile"
)

// ListingCache keeps the sealed listing between commands. A BlockCache
// that implements it is used for both.
type ListingCache interface {
	// Listing returns the sealed listing kept, or nil.
	Listing() []byte
	// KeepListing replaces it, and empties the log.
	KeepListing(sealed []byte) error
	// ListingLog returns the records appended since, each as
	// AppendListingLog was given it, in order; a torn last record is
	// left out.
	ListingLog() [][]byte
	// AppendListingLog appends a sealed record to the log.
	AppendListingLog(record []byte) error
}

// Listed is what a listing shows of one file.
type Listed struct {
	Name    string
	Size    uint64
	Mode    fs.FileMode
	ModTime time.Time
	Hash    [indexfile.HashSize]byte
	Blocks  int  // chunks in blocks of their own (0: inline or empty)
	Shared  bool // the file has a share manifest
	// Renewed is the last period in which all its blocks were renewed
	// (as Files gives it).
	Renewed uint64
}

const (
	listingVersion  = 2
	listingInfo     = "blindstore/v1/client-listing-cache"
	listingAD       = "blindstore listing cache v2"
	listingRecordAD = "blindstore listing cache record v2"
)

// segments are leaves' entries by leafKey.
type segments map[[32]byte][]Listed

// List returns what a listing shows of every file, sorted by name. A
// lazy account takes it from the listing cache, reading only the leaves
// the cache lacks, and keeps it there.
func (a *Account) List(ctx context.Context) ([]Listed, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Listed
	if a.index == nil && a.tree != nil {
		segs, logged := a.cachedSegments()
		at := a.tree.DataLeaves()
		var missing []*indexfile.LeafRef
		for _, p := range at {
			if l := a.leafAt(p); !hasKey(segs, leafKey(l)) {
				missing = append(missing, l)
			}
		}
		files, err := a.openLeaves(ctx, missing) // lazyindex.go
		if err != nil {
			return nil, err
		}
		for i, l := range missing {
			segs[leafKey(l)] = listedAll(files[i])
		}
		keep := make([][32]byte, len(at))
		n := 0
		for k, p := range at {
			keep[k] = leafKey(a.leafAt(p))
			n += len(segs[keep[k]])
		}
		out = make([]Listed, 0, n)
		for _, key := range keep {
			out = append(out, segs[key]...)
		}
		if len(missing) > 0 || logged || len(segs) != len(keep) {
			a.keepListing(keep, segs)
		}
	} else {
		out = listedAll(a.index.Files)
	}
	r := a.indexRenewed()
	for i := range out {
		out[i].Renewed = max(out[i].Renewed, r)
	}
	return out, nil
}

func hasKey(segs segments, k [32]byte) bool {
	_, ok := segs[k]
	return ok
}

// KeepListing writes the listing cache from the index the account has
// read whole (a login): the first listing then decrypts nothing. It does
// nothing for an account without a listing cache or with the index
// unread.
func (a *Account) KeepListing() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.index == nil || a.tree == nil || a.listingCache() == nil {
		return
	}
	segs := a.indexSegments()
	at := a.tree.DataLeaves()
	keys := make([][32]byte, len(at))
	for k, p := range at {
		keys[k] = leafKey(a.leafAt(p))
	}
	a.keepListing(keys, segs)
}

func listed(f *indexfile.File) Listed {
	return Listed{Name: f.Name, Size: f.Size, Mode: f.Mode, ModTime: f.ModTime, Hash: f.Hash, Blocks: len(f.Chunks), Shared: len(f.Manifest) > 0, Renewed: f.Renewed}
}

func listedAll(files []indexfile.File) []Listed {
	out := make([]Listed, len(files))
	for i := range files {
		out[i] = listed(&files[i])
	}
	return out
}

// leafKey names a leaf by its length and blocks, which fix its content.
func leafKey(l *indexfile.LeafRef) [32]byte {
	h := sha256.New()
	h.Write([]byte(listingAD))
	h.Write(binary.AppendUvarint(nil, uint64(l.Len)))
	for _, r := range l.Blocks {
		h.Write(r.ID[:])
		h.Write(r.ETag[:])
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// indexSegments cuts the read index into its leaves' segments.
func (a *Account) indexSegments() segments {
	segs := segments{}
	off := 0
	for _, p := range a.tree.DataLeaves() {
		l := a.leafAt(p)
		segs[leafKey(l)] = listedAll(a.index.Files[off : off+l.Files])
		off += l.Files
	}
	return segs
}

// listingCache returns the account's listing cache, if any.
func (a *Account) listingCache() ListingCache {
	lc, _ := a.cache.(ListingCache)
	return lc
}

// cachedSegments returns the segments of the kept listing and of its
// log, and whether the log held any.
func (a *Account) cachedSegments() (segments, bool) {
	segs := segments{}
	lc := a.listingCache()
	if lc == nil {
		return segs, false
	}
	aead := a.listingAEAD()
	if sealed := lc.Listing(); sealed != nil {
		if p, err := openListing(aead, sealed, listingAD); err == nil {
			_ = decodeSegments(p, segs)
		}
	}
	logged := false
	for _, rec := range lc.ListingLog() {
		if p, err := openListing(aead, rec, listingRecordAD); err == nil {
			logged = decodeSegments(p, segs) == nil || logged
		}
	}
	return segs, logged
}

// keepListing seals the segments of keys, in order, as the listing. A
// listing not kept is only built again next time.
func (a *Account) keepListing(keys [][32]byte, segs segments) {
	lc := a.listingCache()
	if lc == nil {
		return
	}
	if sealed := a.seal(encodeSegments(keys, segs), listingAD); sealed != nil {
		_ = lc.KeepListing(sealed)
	}
}

// logListing appends the segments of the leaves a range update wrote
// (lazyindex.go): the data leaves lo to lo+n-1 of the tree, which hold
// files, in order, but for those it kept (had: their keys).
func (a *Account) logListing(lo, n int, files []indexfile.File, had map[[32]byte]bool) {
	lc := a.listingCache()
	if lc == nil {
		return
	}
	at := a.tree.DataLeaves()
	if lo < 0 || n < 0 || lo+n > len(at) {
		return
	}
	keys := make([][32]byte, n)
	segs := segments{}
	off := 0
	for k := range n {
		l := a.leafAt(at[lo+k])
		if l.Files < 0 || off+l.Files > len(files) {
			return
		}
		keys[k] = leafKey(l)
		segs[keys[k]] = listedAll(files[off : off+l.Files])
		off += l.Files
	}
	if off != len(files) {
		return
	}
	keys = slices.DeleteFunc(keys, func(k [32]byte) bool { return had[k] })
	if sealed := a.seal(encodeSegments(keys, segs), listingRecordAD); sealed != nil {
		_ = lc.AppendListingLog(sealed)
	}
}

// listingAEAD is the listing's cipher, under the account's listing key.
func (a *Account) listingAEAD() cipher.AEAD {
	k := a.localKey(listingInfo)
	aead, err := chacha20poly1305.NewX(k[:])
	if err != nil {
		panic("client: a 32-byte key refused: " + err.Error()) // KeySize is 32
	}
	return aead
}

// seal seals p under the listing key with ad, or returns nil.
func (a *Account) seal(p []byte, ad string) []byte {
	aead := a.listingAEAD()
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(p)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil
	}
	return aead.Seal(nonce, nonce, p, []byte(ad))
}

// openListing opens what seal sealed with ad, under aead (listingAEAD, made
// once for all the records of a read).
func openListing(aead cipher.AEAD, sealed []byte, ad string) ([]byte, error) {
	ns := aead.NonceSize()
	if len(sealed) < ns {
		return nil, errors.New("client: listing cache too short")
	}
	return aead.Open(nil, sealed[:ns], sealed[ns:], []byte(ad))
}

// The encoding of a listing and of a record (integers as in the index):
//
//	listing = uint8 version ‖ uvarint segment_count ‖ segment × segment_count
//	segment = key[32] ‖ uvarint entry_count ‖ entry × entry_count
//	entry   = uvarint name_len ‖ name ‖ uvarint size ‖ uvarint mode
//	        ‖ varint mtime_sec ‖ uvarint mtime_nsec ‖ hash[32]
//	        ‖ uvarint blocks ‖ uint8 shared ‖ uvarint renewed
func encodeSegments(keys [][32]byte, segs segments) []byte {
	n := 0
	for _, k := range keys {
		n += len(segs[k])
	}
	b := make([]byte, 0, 16+len(keys)*40+n*80)
	b = append(b, listingVersion)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = append(b, k[:]...)
		b = binary.AppendUvarint(b, uint64(len(segs[k])))
		for i := range segs[k] {
			b = appendEntry(b, &segs[k][i])
		}
	}
	return b
}

// decodeSegments adds the segments of p to segs, all or none.
func decodeSegments(p []byte, segs segments) error {
	bad := errors.New("client: listing cache does not parse")
	if len(p) < 1 || p[0] != listingVersion {
		return bad
	}
	c := cursor{b: p[1:]}
	n := c.uv()
	if n > uint64(len(c.b))/33 {
		return bad
	}
	got := make(segments, n)
	for range n {
		key := c.bytes(32)
		m := c.uv()
		if c.bad || m > uint64(len(c.b)) {
			return bad
		}
		es := make([]Listed, m)
		for i := range es {
			if !c.entry(&es[i]) {
				return bad
			}
		}
		got[[32]byte(key)] = es
	}
	if len(c.b) != 0 {
		return bad
	}
	for k, es := range got {
		segs[k] = es
	}
	return nil
}

func appendEntry(b []byte, f *Listed) []byte {
	b = binary.AppendUvarint(b, uint64(len(f.Name)))
	b = append(b, f.Name...)
	b = binary.AppendUvarint(b, f.Size)
	b = binary.AppendUvarint(b, uint64(f.Mode))
	b = binary.AppendVarint(b, f.ModTime.Unix())
	b = binary.AppendUvarint(b, uint64(f.ModTime.Nanosecond()))
	b = append(b, f.Hash[:]...)
	b = binary.AppendUvarint(b, uint64(f.Blocks))
	shared := byte(0)
	if f.Shared {
		shared = 1
	}
	b = append(b, shared)
	return binary.AppendUvarint(b, f.Renewed)
}

// cursor reads a listing's fields; after a failure bad is set and every
// read returns zeros.
type cursor struct {
	b   []byte
	bad bool
}

func (c *cursor) uv() uint64 {
	v, n := binary.Uvarint(c.b)
	if n <= 0 {
		c.bad, c.b = true, nil
		return 0
	}
	c.b = c.b[n:]
	return v
}

func (c *cursor) bytes(n uint64) []byte {
	if n > uint64(len(c.b)) {
		c.bad, c.b = true, nil
		return nil
	}
	v := c.b[:n]
	c.b = c.b[n:]
	return v
}

// entry reads one entry into f.
func (c *cursor) entry(f *Listed) bool {
	name := string(c.bytes(c.uv()))
	size, mode := c.uv(), c.uv()
	sec, n := binary.Varint(c.b)
	if n <= 0 {
		c.bad, c.b = true, nil
		return false
	}
	c.b = c.b[n:]
	nsec := c.uv()
	hash := c.bytes(indexfile.HashSize)
	blocks := c.uv()
	shared := c.bytes(1)
	renewed := c.uv()
	if c.bad || nsec >= 1e9 {
		return false
	}
	*f = Listed{Name: name, Size: size, Mode: fs.FileMode(mode), ModTime: time.Unix(sec, int64(nsec)).UTC(), Hash: [indexfile.HashSize]byte(hash), Blocks: int(blocks), Shared: shared[0] == 1, Renewed: renewed}
	return true
}
