// Package blockcache keeps a client's index blocks between commands, in
// a directory of the client's configuration: each block as the
// ciphertext the server holds, in a file named by the block's ID and
// ETag, so that a command fetches only the index blocks that changed
// since the last one.
//
// The cache trusts nothing it reads: it hands back bytes, and the caller
// (package client) accepts them only when their hash is the ETag the
// authenticated head or dir lists for that ID and they decrypt under the
// account key; anything else is dropped and fetched again. Entries are
// written through a temporary file and a rename, without a flush: a
// crash may leave a torn or empty entry, which that check refuses like
// any other damage.
//
// The cache is bounded: once its files exceed the bound, the entries
// used least recently (by modification time, which a hit refreshes) are
// removed.
package blockcache

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/blindstore/blindstore/internal/atomicfile"
	"github.com/blindstore/blindstore/wire"
)

// DefaultMaxBytes bounds a cache by default: the index of about 450,000
// small files, or of millions of large ones.
const DefaultMaxBytes = 512 << 20

// touchAfter is how old an entry's time must be before a hit refreshes
// it: a command that reads the whole index then does not rewrite the
// time of every entry.
const touchAfter = time.Hour

// Cache is a directory of cached blocks. Its methods are safe for
// concurrent use; separate processes may share the directory (an entry
// is replaced whole, never changed in place).
type Cache struct {
	dir string
	max int64

	mu sync.Mutex
	// size is the bytes of the entries, counted at the first Keep
	// (-1 until then: a command that only reads never lists the
	// directory) and kept up to date by this process.
	size int64
}

// Open opens (creating it, mode 0700) the cache in dir, bounded to max
// bytes.
func Open(dir string, max int64) (*Cache, error) {
	if max <= 0 {
		return nil, fmt.Errorf("blockcache: a bound of %d bytes", max)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("blockcache: creating %s: %w", dir, err)
	}
	return &Cache{dir: dir, max: max, size: -1}, nil
}

// Remove deletes the cache in dir and everything in it; a cache that is
// not there is not an error.
func Remove(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("blockcache: removing %s: %w", dir, err)
	}
	return nil
}

const entrySuffix = ".blk"

// maxEntry bounds what Block reads: no block is larger (wire's limit on
// a server's block size), whatever a damaged cache holds.
const maxEntry = wire.MaxBlockSize

func (c *Cache) path(id wire.ID, etag wire.ETag) string {
	return filepath.Join(c.dir, hex.EncodeToString(id[:])+"-"+hex.EncodeToString(etag[:])+entrySuffix)
}

// Block returns what the cache holds for the block id at etag, or nil,
// in buf when it has room. The bytes are unchecked: see the package
// comment.
func (c *Cache) Block(id wire.ID, etag wire.ETag, buf []byte) []byte {
	p := c.path(id, etag)
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() > maxEntry {
		return nil
	}
	data := buf[:0]
	if int64(cap(buf)) < fi.Size() {
		data = make([]byte, 0, fi.Size())
	}
	data = data[:fi.Size()]
	if _, err := io.ReadFull(f, data); err != nil {
		return nil
	}
	if time.Since(fi.ModTime()) > touchAfter {
		now := time.Now()
		_ = os.Chtimes(p, now, now)
	}
	return data
}

// Keep stores data as the block id at etag, then removes the entries
// used least recently while the cache exceeds its bound. A cache that
// cannot be written is only a cache: the error is returned for the
// caller to ignore or report, and nothing is left half written.
func (c *Cache) Keep(id wire.ID, etag wire.ETag, data []byte) error {
	p := c.path(id, etag)
	old, _ := os.Stat(p)
	if err := atomicfile.WriteFileUnsynced(p, data, 0o600); err != nil {
		return fmt.Errorf("blockcache: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.size < 0 {
		// The listing includes the entry just written.
		return c.trimLocked(true)
	}
	c.size += int64(len(data))
	if old != nil {
		c.size -= old.Size()
	}
	if c.size > c.max {
		return c.trimLocked(true)
	}
	return nil
}

// Forget removes the entry of the block id at etag, if any: the
// account's index no longer refers to it.
func (c *Cache) Forget(id wire.ID, etag wire.ETag) {
	p := c.path(id, etag)
	fi, err := os.Stat(p)
	if err != nil {
		return
	}
	if os.Remove(p) == nil {
		c.mu.Lock()
		if c.size >= 0 {
			c.size -= fi.Size()
		}
		c.mu.Unlock()
	}
}

// Retain removes every entry but those keep accepts: what the caller's
// index no longer refers to (replaced by another device, or another
// account's), so that old versions do not linger until evicted.
func (c *Cache) Retain(keep func(id wire.ID, etag wire.ETag) bool) error {
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return fmt.Errorf("blockcache: listing %s: %w", c.dir, err)
	}
	var errs []error
	for _, e := range ents {
		id, etag, ok := parseName(e.Name())
		if !ok || keep(id, etag) {
			continue
		}
		if err := os.Remove(filepath.Join(c.dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	c.mu.Lock()
	c.size = -1 // counted again at the next Keep
	c.mu.Unlock()
	if len(errs) > 0 {
		return fmt.Errorf("blockcache: removing old entries: %w", errors.Join(errs...))
	}
	return nil
}

// parseName returns the block an entry's file name stands for.
func parseName(name string) (id wire.ID, etag wire.ETag, ok bool) {
	base, found := strings.CutSuffix(name, entrySuffix)
	hid, hetag, found2 := strings.Cut(base, "-")
	if !found || !found2 || hex.DecodedLen(len(hid)) != len(id) || hex.DecodedLen(len(hetag)) != len(etag) {
		return id, etag, false
	}
	if _, err := hex.Decode(id[:], []byte(hid)); err != nil {
		return id, etag, false
	}
	if _, err := hex.Decode(etag[:], []byte(hetag)); err != nil {
		return id, etag, false
	}
	return id, etag, true
}

// Size returns the bytes the cache's entries take now.
func (c *Cache) Size() (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.trimLocked(false); err != nil {
		return 0, err
	}
	return c.size, nil
}

// trimLocked lists the directory, counts its entries and, with evict,
// removes the oldest until the total is within nine tenths of the bound:
// the next listing then waits for a tenth of the bound's writes, instead
// of coming at every Keep of a load larger than the cache. Files that
// are not entries (a temporary of another process's Keep, say) are
// left alone, except temporaries older than touchAfter, which a crash
// left behind.
func (c *Cache) trimLocked(evict bool) error {
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return fmt.Errorf("blockcache: listing %s: %w", c.dir, err)
	}
	type entry struct {
		name string
		size int64
		mod  time.Time
	}
	var list []entry
	var total int64
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if !strings.HasSuffix(e.Name(), entrySuffix) {
			if strings.HasPrefix(e.Name(), ".") && time.Since(fi.ModTime()) > touchAfter {
				_ = os.Remove(filepath.Join(c.dir, e.Name()))
			}
			continue
		}
		list = append(list, entry{e.Name(), fi.Size(), fi.ModTime()})
		total += fi.Size()
	}
	c.size = total
	if !evict || total <= c.max {
		return nil
	}
	low := c.max - c.max/10
	slices.SortFunc(list, func(a, b entry) int { return a.mod.Compare(b.mod) })
	var errs []error
	for _, e := range list {
		if c.size <= low {
			break
		}
		if err := os.Remove(filepath.Join(c.dir, e.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		c.size -= e.size
	}
	if len(errs) > 0 {
		return fmt.Errorf("blockcache: evicting: %w", errors.Join(errs...))
	}
	return nil
}

// listingFile holds the client's sealed listing (client.ListingCache),
// beside the blocks, and listingLog the sealed records of the changes
// made since; neither is an entry, and both are outside the bound, which
// maxListingLog keeps the log within.
const (
	listingFile   = "listing"
	listingLog    = "listing.log"
	maxListingLog = 16 << 20
)

// Listing returns the sealed listing kept, or nil.
func (c *Cache) Listing() []byte {
	b, err := os.ReadFile(filepath.Join(c.dir, listingFile))
	if err != nil {
		return nil
	}
	return b
}

// KeepListing replaces the sealed listing and empties the log, whose
// records it includes.
func (c *Cache) KeepListing(sealed []byte) error {
	if err := atomicfile.WriteFileUnsynced(filepath.Join(c.dir, listingFile), sealed, 0o600); err != nil {
		return fmt.Errorf("blockcache: %w", err)
	}
	if err := os.Remove(filepath.Join(c.dir, listingLog)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blockcache: %w", err)
	}
	return nil
}

// ListingLog returns the records of the log in order. A torn record (a
// crash while one was appended) ends it.
func (c *Cache) ListingLog() [][]byte {
	b, err := os.ReadFile(filepath.Join(c.dir, listingLog))
	if err != nil {
		return nil
	}
	var out [][]byte
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			break
		}
		out = append(out, b[k:k+int(n)])
		b = b[k+int(n):]
	}
	return out
}

// AppendListingLog appends a record to the log, in one write (so that
// two processes appending at once do not interleave). A log grown past
// its bound is removed with the listing instead: the next listing is
// built again from the index.
func (c *Cache) AppendListingLog(record []byte) error {
	p := filepath.Join(c.dir, listingLog)
	if fi, err := os.Stat(p); err == nil && fi.Size()+int64(len(record)) > maxListingLog {
		_ = os.Remove(filepath.Join(c.dir, listingFile))
		_ = os.Remove(p)
		return nil
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("blockcache: %w", err)
	}
	_, err = f.Write(append(binary.AppendUvarint(nil, uint64(len(record))), record...))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("blockcache: %w", err)
	}
	return nil
}

// Dir returns the cache's directory.
func (c *Cache) Dir() string { return c.dir }
