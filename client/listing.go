package client

// The listing cache: what ls shows of every file (name, size, mode, time,
// hash, block count, shared, renewal), kept between commands beside the
// block cache, so that listing an account of 100,000 small files does
// not decrypt and decode its 110 MB of index, most of it inline content.
//
// It never holds plaintext on disk: it is sealed with XChaCha20-Poly1305
// under a key derived from the account key (HKDF-SHA256, an info of its
// own), so that only the account's sessions can open it, and it names
// the index it was built from by a digest of the dirs the head listed
// (their IDs and ETags, which fix every byte of the index). It is used
// only when that digest is the one of the dirs the head lists as just
// read and authenticated; a listing of another index, damaged, or of
// another account does not open or does not match, and is built again
// from the index. A one-file put (lazyindex.go) updates it in place.
// What it reveals to whoever holds the configuration directory is what
// the session file beside it already reveals: the session's key opens
// the index itself.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"time"
	"unsafe"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"

	"github.com/blindstore/blindstore/indexfile"
)

// ListingCache keeps the sealed listing between commands. A BlockCache
// that implements it is used for both.
type ListingCache interface {
	// Listing returns the sealed listing kept, or nil.
	Listing() []byte
	// KeepListing replaces it.
	KeepListing(sealed []byte) error
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
	listingVersion = 1
	listingInfo    = "blindstore/v1/client-listing-cache"
	listingAD      = "blindstore listing cache v1"
)

// List returns what a listing shows of every file, sorted by name: from
// the listing cache when it matches the index the head lists, else from
// the index (which a lazy account then reads), keeping the listing for
// the next time.
func (a *Account) List(ctx context.Context) ([]Listed, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	keep := false
	if a.index == nil && a.tree != nil {
		if l, ok := a.cachedListing(); ok {
			return l.files(a.indexRenewed()), nil
		}
		if err := a.needIndex(ctx); err != nil {
			return nil, err
		}
		keep = true
	}
	l := &listing{files0: make([]Listed, len(a.index.Files))}
	for i := range a.index.Files {
		l.files0[i] = listed(&a.index.Files[i])
	}
	if keep {
		a.keepListing(l)
	}
	return l.files(a.indexRenewed()), nil
}

// listing is a decoded listing: files0 hold each file's own Renewed.
type listing struct{ files0 []Listed }

func (l *listing) files(indexRenewed uint64) []Listed {
	out := slices.Clone(l.files0)
	for i := range out {
		out[i].Renewed = max(out[i].Renewed, indexRenewed)
	}
	return out
}

func listed(f *indexfile.File) Listed {
	return Listed{Name: f.Name, Size: f.Size, Mode: f.Mode, ModTime: f.ModTime, Hash: f.Hash, Blocks: len(f.Chunks), Shared: len(f.Manifest) > 0, Renewed: f.Renewed}
}

// listingCache returns the account's listing cache, if any.
func (a *Account) listingCache() ListingCache {
	lc, _ := a.cache.(ListingCache)
	return lc
}

// indexDigest names the index the head lists: its dirs' IDs and ETags.
func (a *Account) indexDigest() [32]byte {
	h := sha256.New()
	h.Write([]byte(listingAD))
	for _, r := range a.head.Index {
		h.Write(r.ID[:])
		h.Write(r.ETag[:])
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}

func (a *Account) listingAEAD() (cipherAEAD, error) {
	key := make([]byte, chacha20poly1305.KeySize)
	if _, err := io.ReadFull(hkdf.New(sha256.New, a.root.AccountKey[:], nil, []byte(listingInfo)), key); err != nil {
		return nil, err
	}
	return chacha20poly1305.NewX(key)
}

type cipherAEAD interface {
	Seal(dst, nonce, plaintext, additionalData []byte) []byte
	Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
	NonceSize() int
	Overhead() int
}

// cachedListing opens the kept listing if it is that of the index the
// head lists.
func (a *Account) cachedListing() (*listing, bool) {
	lc := a.listingCache()
	if lc == nil {
		return nil, false
	}
	sealed := lc.Listing()
	if sealed == nil {
		return nil, false
	}
	l, err := a.openListing(sealed, a.indexDigest())
	if err != nil {
		return nil, false
	}
	return l, true
}

func (a *Account) openListing(sealed []byte, digest [32]byte) (*listing, error) {
	p, err := a.openPlain(sealed, digest)
	if err != nil {
		return nil, err
	}
	return decodeListing(p, digest)
}

// openPlain opens a sealed listing and checks that it is of the index
// digest names.
func (a *Account) openPlain(sealed []byte, digest [32]byte) ([]byte, error) {
	aead, err := a.listingAEAD()
	if err != nil {
		return nil, err
	}
	ns := aead.NonceSize()
	if len(sealed) < ns {
		return nil, errors.New("client: listing cache too short")
	}
	p, err := aead.Open(nil, sealed[:ns], sealed[ns:], []byte(listingAD))
	if err != nil {
		return nil, err
	}
	if len(p) < 1+32 || p[0] != listingVersion || [32]byte(p[1:33]) != digest {
		return nil, fmt.Errorf("client: listing cache of another index")
	}
	return p, nil
}

// keepListing seals l as the listing of the index the head lists. A
// listing not kept is only built again next time.
func (a *Account) keepListing(l *listing) { a.sealListing(encodeListing(l, a.indexDigest())) }

func (a *Account) sealListing(p []byte) {
	lc := a.listingCache()
	if lc == nil {
		return
	}
	aead, err := a.listingAEAD()
	if err != nil {
		return
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(p)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return
	}
	_ = lc.KeepListing(aead.Seal(nonce, nonce, p, []byte(listingAD)))
}

// updateListing applies a range update (lazyindex.go) to the kept
// listing, if it was that of the index before it (digest before): its
// entries of the range's names become those of next. The entries are
// spliced as encoded, not decoded: a put into a large account pays for
// one pass over the listing's bytes, not for every file's fields.
func (a *Account) updateListing(before [32]byte, r *leafRange, next []indexfile.File) {
	lc := a.listingCache()
	if lc == nil {
		return
	}
	sealed := lc.Listing()
	if sealed == nil {
		return
	}
	p, err := a.openPlain(sealed, before)
	if err != nil {
		return
	}
	c := cursor{b: p[1+32:]}
	count := c.uv()
	entries := c.b
	below := func(n string) bool { return r.lo > 0 && n < r.files[0].Name }
	above := func(n string) bool { return r.hasUpper && n >= r.upper }
	start, end, removed := -1, -1, uint64(0)
	for range count {
		at := len(entries) - len(c.b)
		name, ok := c.entry(nil)
		if !ok {
			return
		}
		if start < 0 && !below(name) {
			start = at
		}
		if start >= 0 && above(name) {
			end = at
			break
		}
		if start >= 0 {
			removed++
		}
	}
	if c.bad {
		return
	}
	at := len(entries) - len(c.b)
	if start < 0 {
		start = at
	}
	if end < 0 {
		end = at
	}
	out := listingHeader(make([]byte, 0, len(p)+len(next)*96), a.indexDigest(), count-removed+uint64(len(next)))
	out = append(out, entries[:start]...)
	for i := range next {
		l := listed(&next[i])
		out = appendEntry(out, &l)
	}
	out = append(out, entries[end:]...)
	a.sealListing(out)
}

func listingHeader(b []byte, digest [32]byte, count uint64) []byte {
	b = append(b, listingVersion)
	b = append(b, digest[:]...)
	return binary.AppendUvarint(b, count)
}

func encodeListing(l *listing, digest [32]byte) []byte {
	b := listingHeader(make([]byte, 0, 64+len(l.files0)*80), digest, uint64(len(l.files0)))
	for i := range l.files0 {
		b = appendEntry(b, &l.files0[i])
	}
	return b
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

// entry reads one entry into f (nil: skips it) and returns its name, as
// a string only when f is set (else aliasing the listing's bytes).
func (c *cursor) entry(f *Listed) (string, bool) {
	nb := c.bytes(c.uv())
	var name string
	if f != nil {
		name = string(nb)
	} else {
		name = unsafeString(nb)
	}
	size, mode := c.uv(), c.uv()
	sec, n := binary.Varint(c.b)
	if n <= 0 {
		c.bad, c.b = true, nil
		return "", false
	}
	c.b = c.b[n:]
	nsec := c.uv()
	hash := c.bytes(indexfile.HashSize)
	blocks := c.uv()
	shared := c.bytes(1)
	renewed := c.uv()
	if c.bad {
		return "", false
	}
	if f != nil {
		*f = Listed{Name: name, Size: size, Mode: fs.FileMode(mode), ModTime: time.Unix(sec, int64(nsec)).UTC(), Hash: [indexfile.HashSize]byte(hash), Blocks: int(blocks), Shared: shared[0] == 1, Renewed: renewed}
	}
	return name, true
}

// decodeListing parses a listing this client sealed; any mismatch is an
// error, and the listing is built again.
func decodeListing(p []byte, digest [32]byte) (*listing, error) {
	if len(p) < 1+32 || p[0] != listingVersion || [32]byte(p[1:33]) != digest {
		return nil, fmt.Errorf("client: listing cache of another index")
	}
	c := cursor{b: p[33:]}
	n := c.uv()
	if n > uint64(len(c.b)) {
		return nil, errors.New("client: listing cache does not parse")
	}
	l := &listing{files0: make([]Listed, n)}
	for i := range l.files0 {
		if _, ok := c.entry(&l.files0[i]); !ok {
			return nil, errors.New("client: listing cache does not parse")
		}
	}
	if len(c.b) != 0 {
		return nil, errors.New("client: listing cache does not parse")
	}
	return l, nil
}

// unsafeString views b as a string without copying, for comparisons
// while b is not changed.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
