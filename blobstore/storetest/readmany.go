package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/wire"
)

// testReadMany reads through the service, as POST /v1/read does: with the
// store's own ManyReader when it has one, block by block otherwise. At the
// suite's block size a read is 256 blocks, more than one grouped statement
// of PostgreSQL carries.
func testReadMany(t *testing.T, h *harness) {
	svc, err := blobstore.NewService(blobstore.ServiceConfig{Store: h.s, Bucketer: h.bk, BlockSize: blockSize})
	if err != nil {
		t.Fatal(err)
	}
	r := newRand()
	bucket := h.bk.CurrentBucket()
	blocks := make([]block, 100)
	datas := make(map[wire.ID][]byte, len(blocks))
	for i := range blocks {
		blocks[i] = newBlock(fmt.Sprintf("block %d", i))
		datas[blocks[i].id] = h.put(blocks[i], r, bucket)
	}
	// Every block, a repeat of each and a missing one between, shuffled.
	var ids []wire.ID
	for _, b := range blocks {
		ids = append(ids, b.id, wire.NewID(), b.id)
	}
	ids = append(ids[:svc.ReadBatch()-1], blocks[0].id)
	r.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })

	readAll := func(ctx context.Context) error {
		next := 0
		return svc.ReadMany(ctx, ids, make([]byte, 0, blockSize), func(i int, data []byte, etag wire.ETag, err error) error {
			if i != next {
				return fmt.Errorf("record %d came when %d was due", i, next)
			}
			next++
			want, ok := datas[ids[i]]
			switch {
			case !ok && !blobstore.IsNotFound(err):
				return fmt.Errorf("record %d, a missing block: %v, want not found", i, err)
			case ok && err != nil:
				return fmt.Errorf("record %d: %v", i, err)
			case ok && (!bytes.Equal(data, want) || etag != wire.ETagOf(want)):
				return fmt.Errorf("record %d: other data or ETag than was written", i)
			}
			return nil
		})
	}
	if err := readAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Concurrent reads, each in order, under the race detector.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() { errs <- readAll(context.Background()) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	// An error of fn ends the read and is returned.
	stop := errors.New("stop")
	seen := 0
	err = svc.ReadMany(context.Background(), ids, make([]byte, 0, blockSize), func(i int, _ []byte, _ wire.ETag, _ error) error {
		seen++
		if i == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || seen != 3 {
		t.Fatalf("fn's error after 3 records: %v after %d records", err, seen)
	}
	// A read of more than ReadBatch blocks is refused whole.
	over := make([]wire.ID, svc.ReadBatch()+1)
	for i := range over {
		over[i] = blocks[0].id
	}
	err = svc.ReadMany(context.Background(), over, make([]byte, 0, blockSize), func(int, []byte, wire.ETag, error) error {
		t.Fatal("fn called for an oversized read")
		return nil
	})
	if wire.KindOf(err) != wire.KindInvalid {
		t.Fatalf("oversized read: %v", err)
	}
	// The store still reads alone afterwards: nothing left queued.
	h.expectBlock(blocks[1], datas[blocks[1].id])
}
