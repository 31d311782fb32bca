package client

// The local cache of index blocks (package blockcache keeps one on disk):
// a command reads from the server only the index blocks that changed
// since the last command on this machine. What the cache returns is
// accepted only as the block the authenticated head or dir lists: its
// SHA-256 must be the listed ETag, and it must decrypt under the account
// key with its ID; anything else is forgotten and fetched again.

import (
	"log/slog"
	"sync"

	"github.com/blindstore/blindstore/client/format"
	"github.com/blindstore/blindstore/indexfile"
	"github.com/blindstore/blindstore/wire"
)

// BlockCache keeps blocks' ciphertext by ID and ETag between commands.
// Its answers are not trusted (see above); a failure to keep a block
// only costs a fetch the next time.
type BlockCache interface {
	// Block returns the bytes kept for id at etag, or nil; in buf
	// when it has room.
	Block(id wire.ID, etag wire.ETag, buf []byte) []byte
	// Keep stores data as the block id at etag.
	Keep(id wire.ID, etag wire.ETag, data []byte) error
	// Forget drops the block id at etag, if kept.
	Forget(id wire.ID, etag wire.ETag)
	// Retain drops every block but those keep accepts.
	Retain(keep func(id wire.ID, etag wire.ETag) bool) error
}

// Option sets up an Account as it is opened (Login, Resume, Signup…).
type Option func(*Account)

// WithBlockCache makes the account read its index blocks from c when c
// holds them, and keep there those it reads from the server or writes.
func WithBlockCache(c BlockCache) Option {
	return func(a *Account) { a.cache = c }
}

// cached returns the payload of the index block r from the cache, or nil
// when the cache does not hold it as the block r names.
func (a *Account) cached(r indexfile.Ref) []byte {
	if a.cache == nil {
		return nil
	}
	// The ciphertext is dropped once decrypted: a large index is read
	// through a few buffers instead of one allocation per block.
	bp := cipherBufs.Get().(*[]byte)
	defer cipherBufs.Put(bp)
	data := a.cache.Block(r.ID, r.ETag, *bp)
	if data == nil {
		return nil
	}
	if cap(data) > cap(*bp) {
		*bp = data
	}
	if len(data) == a.cfg.BlockSize && wire.ETagOf(data) == r.ETag {
		if p, err := format.Decrypt(a.root.AccountKey, r.ID, data, a.cfg.BlockSize); err == nil {
			return p
		}
	}
	// Damaged, torn, or another block's: never trusted, fetched again.
	slog.Debug("client: a cached index block does not check out; fetching it again")
	a.cache.Forget(r.ID, r.ETag)
	return nil
}

var cipherBufs = sync.Pool{New: func() any { return new([]byte) }}

// keep stores a block read from the server or written to it.
func (a *Account) keep(r indexfile.Ref, data []byte) {
	if a.cache == nil {
		return
	}
	// A block not kept is fetched again next time; the error would
	// name the block, which is not logged.
	_ = a.cache.Keep(r.ID, r.ETag, data)
}

// retainTree drops from the cache what the account's index no longer
// refers to, after a load that fetched blocks: another device changed
// the index (or the cache was another account's), and the blocks it
// replaced would only wait for eviction.
func (a *Account) retainTree() {
	if a.cache == nil || a.tree == nil || a.fetched.Swap(0) == 0 {
		return
	}
	live := make(map[indexfile.Ref]struct{}, a.tree.Count())
	for _, r := range a.tree.Blocks() {
		live[r] = struct{}{}
	}
	_ = a.cache.Retain(func(id wire.ID, etag wire.ETag) bool {
		_, ok := live[indexfile.Ref{ID: id, ETag: etag}]
		return ok
	})
}

// forget drops blocks the account's index no longer refers to.
func (a *Account) forget(refs []indexfile.Ref) {
	if a.cache == nil {
		return
	}
	for _, r := range refs {
		a.cache.Forget(r.ID, r.ETag)
	}
}
