package postgres

import (
	"sync/atomic"

	"github.com/blindstore/blindstore/wire"
	lru "github.com/hashicorp/golang-lru/v2"
)

// The read cache keeps the data of recently read blocks in this process,
// each with the ETag it was read under. A read still asks PostgreSQL,
// in the same grouped statement as before (readgroup.go), but passes the
// ETag it holds: the statement answers a block whose ETag is unchanged
// with its ETag alone and leaves its data unread. So a cached read is
// exactly as fresh as an uncached one, whichever instance wrote last,
// and PostgreSQL is spared what a 64 KiB read costs it most: fetching
// the value's TOAST chunks and sending them (a statement for 64 blocks
// took about 35 ms with the data and about 7 ms without, most of that
// the lookups of the ids).
//
// It holds ciphertext that the database holds too, and ids of blocks read
// lately, as PostgreSQL's shared buffers and the kernel's page cache do
// on the same machine; it writes nothing anywhere. 2Q rather than plain
// LRU: one client's reading of a large file, each block once, passes
// through without flushing the blocks read again and again (heads,
// index blocks).

// cachedBlock is a block's data as read, never changed once cached, so
// readers may keep the slice while the cache drops it.
type cachedBlock struct {
	etag wire.ETag
	data []byte
}

type readCache struct {
	blocks *lru.TwoQueueCache[wire.ID, cachedBlock]
	// hits counts reads answered from the cache, misses reads whose
	// data PostgreSQL sent (not cached, or changed): counts only.
	hits, misses atomic.Uint64
}

// ReadCacheStats reports the read cache's hits and misses since Open
// and the blocks it holds; ok is false when the store has no cache.
func (s *Store) ReadCacheStats() (hits, misses uint64, blocks int, ok bool) {
	c := s.cache
	if c == nil {
		return 0, 0, 0, false
	}
	return c.hits.Load(), c.misses.Load(), c.blocks.Len(), true
}

// newReadCache returns a cache of at most bytes of blockSize blocks, or
// nil (no cache) when that is fewer than two blocks, the least 2Q takes.
func newReadCache(bytes int64, blockSize int) *readCache {
	n := bytes / int64(blockSize)
	if n < 2 {
		return nil
	}
	c, err := lru.New2Q[wire.ID, cachedBlock](int(min(n, 1<<30)))
	if err != nil {
		// Only sizes below two are refused, excluded above.
		panic(err)
	}
	return &readCache{blocks: c}
}

// get returns the cached block, if any. A nil cache holds nothing.
func (c *readCache) get(id wire.ID) (cachedBlock, bool) {
	if c == nil {
		return cachedBlock{}, false
	}
	return c.blocks.Get(id)
}

// add caches a copy of data, which points into a connection's buffer,
// and returns the copy.
func (c *readCache) add(id wire.ID, etag wire.ETag, data []byte) cachedBlock {
	c.misses.Add(1)
	b := cachedBlock{etag: etag, data: append([]byte(nil), data...)}
	c.blocks.Add(id, b)
	return b
}

// remove forgets a block: its data was rewritten, deleted or purged, so
// the next read would fetch it anyway, and the memory is better spent.
func (c *readCache) remove(id wire.ID) {
	if c != nil {
		c.blocks.Remove(id)
	}
}
