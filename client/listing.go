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
// from the index. A one-file put (lazyindex.go) appends a sealed record
// of its change to a log beside it ("the index of digest B is that of
// digest A with these entries changed"), rather than sealing the whole
// listing again; the next listing applies the records that chain from
// its digest to the head's, and keeps the result, emptying the log.
// What it reveals to whoever holds the configuration directory is what
// the session file beside it already reveals: the session's key opens
// the index itself.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"

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
		if l, applied, ok := a.cachedListing(); ok {
			if applied {
				a.keepListing(l)
			}
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

// cachedListing opens the kept listing and applies the log's records
// that chain from it, and returns it if it is then that of the index the
// head lists (applied: records were applied, so the listing is worth
// keeping again).
func (a *Account) cachedListing() (l *listing, applied, ok bool) {
	lc := a.listingCache()
	if lc == nil {
		return nil, false, false
	}
	sealed := lc.Listing()
	if sealed == nil {
		return nil, false, false
	}
	p, err := a.openPlain(sealed, nil)
	if err != nil {
		return nil, false, false
	}
	cur := [32]byte(p[1:33])
	want := a.indexDigest()
	var changes map[string]*Listed
	if cur != want {
		// Each record is this client's, sealed after its commit: applying
		// those that chain from cur gives the listing of where they lead.
		changes = map[string]*Listed{}
		for _, rec := range lc.ListingLog() {
			r, err := a.openRecord(rec)
			if err != nil || r.from != cur {
				continue
			}
			maps.Copy(changes, r.changes)
			cur = r.to
		}
		if cur != want {
			return nil, false, false
		}
	}
	if l, err = decodeListing(p, [32]byte(p[1:33])); err != nil {
		return nil, false, false
	}
	if changes != nil {
		l.apply(changes)
	}
	return l, changes != nil, true
}

// apply replaces, adds (an entry) or removes (nil) the files named.
func (l *listing) apply(changes map[string]*Listed) {
	var added []Listed
	out := l.files0[:0:0]
	out = slices.Grow(out, len(l.files0)+len(changes))
	seen := make(map[string]bool, len(changes))
	for _, f := range l.files0 {
		c, ok := changes[f.Name]
		if !ok {
			out = append(out, f)
			continue
		}
		seen[f.Name] = true
		if c != nil {
			out = append(out, *c)
		}
	}
	for n, c := range changes {
		if c != nil && !seen[n] {
			added = append(added, *c)
		}
	}
	if len(added) > 0 {
		out = append(out, added...)
		slices.SortFunc(out, func(a, b Listed) int { return strings.Compare(a.Name, b.Name) })
	}
	l.files0 = out
}

// openPlain opens a sealed listing and checks that it is of the index
// digest names (nil: of any).
func (a *Account) openPlain(sealed []byte, digest *[32]byte) ([]byte, error) {
	p, err := a.open(sealed, listingAD)
	if err != nil {
		return nil, err
	}
	if len(p) < 1+32 || p[0] != listingVersion || (digest != nil && [32]byte(p[1:33]) != *digest) {
		return nil, fmt.Errorf("client: listing cache of another index")
	}
	return p, nil
}

// keepListing seals l as the listing of the index the head lists. A
// listing not kept is only built again next time.
func (a *Account) keepListing(l *listing) { a.sealListing(encodeListing(l, a.indexDigest())) }

func (a *Account) sealListing(p []byte) {
	if lc := a.listingCache(); lc != nil {
		if sealed := a.seal(p, listingAD); sealed != nil {
			_ = lc.KeepListing(sealed)
		}
	}
}

// seal seals p under the listing key with ad, or returns nil.
func (a *Account) seal(p []byte, ad string) []byte {
	aead, err := a.listingAEAD()
	if err != nil {
		return nil
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(p)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil
	}
	return aead.Seal(nonce, nonce, p, []byte(ad))
}

// open opens what seal sealed with ad.
func (a *Account) open(sealed []byte, ad string) ([]byte, error) {
	aead, err := a.listingAEAD()
	if err != nil {
		return nil, err
	}
	ns := aead.NonceSize()
	if len(sealed) < ns {
		return nil, errors.New("client: listing cache too short")
	}
	return aead.Open(nil, sealed[:ns], sealed[ns:], []byte(ad))
}

// listingRecordAD is the additional data of the log's records, which
// another version or a listing cannot be taken for.
const listingRecordAD = "blindstore listing cache record v1"

// listingRecord says that the index of digest to is that of digest from
// with the files of changes replaced, added, or removed (nil).
type listingRecord struct {
	from, to [32]byte
	changes  map[string]*Listed
}

// updateListing appends the record of a range update (lazyindex.go) from
// the index of digest before to the head's: the files of old (the range
// before) that next changed or dropped, and those it added. A few hundred
// bytes, whatever the account's size.
func (a *Account) updateListing(before [32]byte, old, next []indexfile.File) {
	lc := a.listingCache()
	if lc == nil {
		return
	}
	after := a.indexDigest()
	b := append([]byte{listingVersion}, before[:]...)
	b = append(b, after[:]...)
	var body []byte
	n := 0
	was := make(map[string][]byte, len(old))
	for i := range old {
		l := listed(&old[i])
		was[old[i].Name] = appendEntry(nil, &l)
	}
	for i := range next {
		l := listed(&next[i])
		e := appendEntry(nil, &l)
		if w, ok := was[next[i].Name]; !ok || !bytes.Equal(w, e) {
			body = append(append(body, 1), e...)
			n++
		}
		delete(was, next[i].Name)
	}
	for name := range was {
		body = binary.AppendUvarint(append(body, 0), uint64(len(name)))
		body = append(body, name...)
		n++
	}
	b = binary.AppendUvarint(b, uint64(n))
	if sealed := a.seal(append(b, body...), listingRecordAD); sealed != nil {
		_ = lc.AppendListingLog(sealed)
	}
}

// openRecord opens and parses a record of the log.
func (a *Account) openRecord(sealed []byte) (*listingRecord, error) {
	p, err := a.open(sealed, listingRecordAD)
	if err != nil {
		return nil, err
	}
	bad := errors.New("client: listing record does not parse")
	if len(p) < 1+64 || p[0] != listingVersion {
		return nil, bad
	}
	r := &listingRecord{from: [32]byte(p[1:33]), to: [32]byte(p[33:65]), changes: map[string]*Listed{}}
	c := cursor{b: p[65:]}
	n := c.uv()
	for range n {
		kind := c.bytes(1)
		if c.bad {
			return nil, bad
		}
		if kind[0] == 0 {
			name := c.bytes(c.uv())
			r.changes[string(name)] = nil
			continue
		}
		var l Listed
		if _, ok := c.entry(&l); !ok {
			return nil, bad
		}
		r.changes[l.Name] = &l
	}
	if c.bad || len(c.b) != 0 {
		return nil, bad
	}
	return r, nil
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

// entry reads one entry into f and returns its name.
func (c *cursor) entry(f *Listed) (string, bool) {
	name := string(c.bytes(c.uv()))
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
	*f = Listed{Name: name, Size: size, Mode: fs.FileMode(mode), ModTime: time.Unix(sec, int64(nsec)).UTC(), Hash: [indexfile.HashSize]byte(hash), Blocks: int(blocks), Shared: shared[0] == 1, Renewed: renewed}
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
