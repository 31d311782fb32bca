package postgres

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/internal/pgtest"
	"github.com/blindstore/blindstore/wire"
)

// Two instances on one database, the reader with a read cache: every
// read it answers is as fresh as PostgreSQL's, whatever the other
// instance wrote, rewrote or deleted meanwhile; a block whose ETag has
// not changed is served from the cache without its data being fetched;
// Lend hands the same bytes as Read; and the cache stays within its
// bound.
func TestReadCacheAcrossInstances(t *testing.T) {
	url := pgtest.URL(t)
	ctx := context.Background()
	p := testParams()
	writer := openTest(t, url, p)
	reader, err := Open(ctx, url, p, Options{Logger: quietLogger(), ReadCache: 4 * testBlockSize})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	bucket := randBucket(t)

	read := func(o owned) ([]byte, error) {
		t.Helper()
		data, etag, err := reader.Read(ctx, o.id, nil)
		if err == nil && etag != wire.ETagOf(data) {
			t.Fatal("Read's ETag is not its data's")
		}
		return data, err
	}
	o := newOwned(t, testBlockSize)
	mustApply(t, writer, o.put(bucket))
	if got, err := read(o); err != nil || !bytes.Equal(got, o.data) {
		t.Fatalf("first read: %v", err)
	}

	// Rewritten through the other instance: the cached copy is stale,
	// and the read says so.
	o.data = randBlock(t, testBlockSize)
	mustApply(t, writer, blobstore.Op{Kind: blobstore.OpPut, ID: o.id, ProofHash: o.w.Hash(), Data: o.data, ETag: wire.ETagOf(o.data)})
	if got, err := read(o); err != nil || !bytes.Equal(got, o.data) {
		t.Fatalf("read after another instance rewrote the block: %v, same data %v", err, bytes.Equal(got, o.data))
	}

	// Changing the bytes behind PostgreSQL's back, ETag kept, shows
	// that an unchanged block's data is not fetched again.
	conn := connect(t, url)
	tag, err := conn.Exec(ctx, `UPDATE blocks_hot_a SET data = $2 WHERE id = $1`, uuidOf(o.id), randBlock(t, testBlockSize))
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("update behind the store's back: %v, %d rows", err, tag.RowsAffected())
	}
	if got, err := read(o); err != nil || !bytes.Equal(got, o.data) {
		t.Fatalf("read of an unchanged ETag did not come from the cache: %v", err)
	}
	mustLend(t, reader, o)

	// Deleted through the other instance: not found, and forgotten.
	mustApply(t, writer, o.del())
	if _, err := read(o); !errors.Is(err, blobstore.ErrNotFound) {
		t.Fatalf("read after another instance deleted the block: %v", err)
	}
	if _, ok := reader.cache.get(o.id); ok {
		t.Error("a deleted block stays in the cache")
	}
	if err := reader.Lend(ctx, o.id, func([]byte, wire.ETag) error { t.Error("Lend called fn for a missing block"); return nil }); !errors.Is(err, blobstore.ErrNotFound) {
		t.Fatalf("Lend of a deleted block: %v", err)
	}

	// Reads of more blocks than fit keep the cache within its bound.
	for range 10 {
		b := newOwned(t, testBlockSize)
		mustApply(t, writer, b.put(bucket))
		if got, err := read(b); err != nil || !bytes.Equal(got, b.data) {
			t.Fatalf("read: %v", err)
		}
	}
	if n := reader.cache.blocks.Len(); n > 4 {
		t.Errorf("the cache holds %d blocks, its bound is 4", n)
	}
}

// Without a cache, Lend reads into the store's own buffers.
func TestLendWithoutCache(t *testing.T) {
	url := pgtest.URL(t)
	s := openTest(t, url, testParams())
	o := newOwned(t, testBlockSize)
	mustApply(t, s, o.put(randBucket(t)))
	for range 3 {
		mustLend(t, s, o)
	}
}

// mustLend checks that Lend hands o's data with its ETag.
func mustLend(t *testing.T, s *Store, o owned) {
	t.Helper()
	var lent []byte
	err := s.Lend(context.Background(), o.id, func(data []byte, etag wire.ETag) error {
		if etag != wire.ETagOf(o.data) {
			return errors.New("Lend's ETag is not the block's")
		}
		lent = append(lent, data...)
		return nil
	})
	if err != nil || !bytes.Equal(lent, o.data) {
		t.Fatalf("Lend: %v, same data %v", err, bytes.Equal(lent, o.data))
	}
}
