package storetest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/internal/wait"
	"github.com/blindstore/blindstore/wire"
)

// testConcurrentReadersAndWriters reads blocks while others overwrite
// them: a reader sees a block whole, with its own ETag, or not at all.
func testConcurrentReadersAndWriters(t *testing.T, h *harness) {
	r := newRand()
	ctx := context.Background()
	const n = 64
	blocks := make([]block, n)
	for i := range blocks {
		blocks[i] = newBlock(fmt.Sprintf("block %d", i))
		h.put(blocks[i], r, h.bucket(1))
	}
	deadline := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := 0; w < 4; w++ {
		wg.Go(func() {
			for i := 0; i < 200 && time.Now().Before(deadline); i++ {
				b := blocks[(i*7+w)%n]
				d := make([]byte, blockSize)
				for j := range d {
					d[j] = byte(i + w)
				}
				if _, err := h.s.Apply(ctx, []blobstore.Op{putOp(b, d, h.bucket(uint64(1+i%2)), blobstore.Cond{})}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for rd := 0; rd < 4; rd++ {
		wg.Go(func() {
			var dst []byte
			for i := 0; i < 2000 && time.Now().Before(deadline); i++ {
				var etag wire.ETag
				var err error
				dst, etag, err = h.s.Read(ctx, blocks[(i+rd)%n].id, dst)
				if err != nil {
					errs <- err
					return
				}
				if wire.ETagOf(dst) != etag {
					errs <- errors.New("a read returned data that does not match its ETag")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testConcurrentOpsOnOneBlock(t *testing.T, h *harness) {
	ConcurrentOpsOnOneBlock(t, h.s, nil)
}

// ConcurrentOpsOnOneBlock races renewals into alternating buckets and
// overwrites of one block from 8 workers while background, if not nil,
// runs until they are done: every Apply must succeed with an outcome the
// sequence allows, every overwrite must win, and the store must hold the
// one block after. A store whose rows move under writers (a seal) passes
// that as background; a renewal moves the block's lease, so writers that
// waited on it must decide again rather than act on the stale one. s must
// take blocks of wire.MinBlockSize, as the suite's stores do.
func ConcurrentOpsOnOneBlock(t *testing.T, s blobstore.Store, background func(ctx context.Context) error) {
	ctx := context.Background()
	buckets := []bucketer.Bucket{randomBucket(), randomBucket(), randomBucket()}
	a := newBlock("block A")
	r := newRand()
	if _, err := applyOne(s, putOp(a, randData(r), buckets[0], blobstore.Cond{})); err != nil {
		t.Fatalf("put of block A: %v", err)
	}

	bgCtx, stop := context.WithCancel(ctx)
	bgDone := make(chan error, 1)
	if background != nil {
		go func() { bgDone <- background(bgCtx) }()
	} else {
		bgDone <- nil
	}
	const workers, rounds = 8, 25
	var wg sync.WaitGroup
	var renewed, current, replaced atomic.Int64
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			for rd := 0; rd < rounds; rd++ {
				bk := buckets[(w+rd)%len(buckets)]
				op := renewOp(a, bk)
				if w%4 == 3 {
					d := make([]byte, blockSize)
					rand.Read(d)
					op = putOp(a, d, bk, blobstore.Cond{})
				}
				res, err := applyOne(s, op)
				if err != nil {
					t.Errorf("worker %d round %d: %s of block A: %v", w, rd, op.Kind, err)
					return
				}
				switch res.Status {
				case blobstore.StatusRenewed:
					renewed.Add(1)
				case blobstore.StatusCurrent:
					current.Add(1)
				case blobstore.StatusReplaced:
					replaced.Add(1)
				default:
					t.Errorf("worker %d round %d: %s of block A: %s", w, rd, op.Kind, res.Status)
					return
				}
			}
		})
	}
	wg.Wait()
	stop()
	if err := <-bgDone; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("background work during the race: %v", err)
	}
	t.Logf("%d renewed, %d already current, %d replaced", renewed.Load(), current.Load(), replaced.Load())
	if replaced.Load() != 2*rounds {
		t.Errorf("%d overwrites succeeded, want %d", replaced.Load(), 2*rounds)
	}
	st, err := s.Stats(ctx)
	if err != nil || st.Blocks != 1 {
		t.Fatalf("Stats after the race: %d blocks (%v), want 1", st.Blocks, err)
	}
}

func testPurgeRacingRenewals(t *testing.T, h *harness) {
	PurgeRacingRenewals(t, h.s, nil)
}

// PurgeRace is what PurgeRacingRenewals leaves: the blocks a renewal
// kept, and those purged.
type PurgeRace struct {
	Renewed, Gone []wire.ID
}

// PurgeRacingRenewals fills s with 3000 blocks of one bucket, runs
// afterFill if it is not nil (a store's own test seals there), then
// purges that bucket as expired while the blocks' owners renew half of
// them, in small batches, half the renewers walking the blocks in the
// opposite order. Each renewal that succeeds must keep its block; the
// others are gone; the purge's count and Stats agree. s must take blocks
// of wire.MinBlockSize, as the suite's stores do.
func PurgeRacingRenewals(t *testing.T, s blobstore.Store, afterFill func()) PurgeRace {
	ctx := context.Background()
	old, cur := randomBucket(), randomBucket()
	r := newRand()
	const n = 3000
	blocks := make([]block, n)
	for i := 0; i < n; i += 500 {
		var ops []blobstore.Op
		for j := i; j < i+500; j++ {
			blocks[j] = newBlock(fmt.Sprintf("block %d", j))
			ops = append(ops, putOp(blocks[j], randData(r), old, blobstore.Cond{}))
		}
		if _, err := s.Apply(ctx, ops); err != nil {
			t.Fatalf("Apply of %d blocks: %v", len(ops), err)
		}
	}
	if afterFill != nil {
		afterFill()
	}

	live := bucketer.LiveSet{Buckets: []bucketer.Bucket{cur}}
	results := make([]blobstore.Status, n)
	var wg sync.WaitGroup
	var purged int64
	var purgeErr error
	var batches atomic.Int64
	wg.Go(func() {
		// Let the renewers get going first, so the purge meets them; a
		// deadline, in case they fail at once.
		_ = wait.For(10*time.Second, time.Millisecond, func() bool { return batches.Load() >= 8 })
		purged, purgeErr = s.Purge(ctx, live, false)
	})
	const renewers = 4
	for rn := 0; rn < renewers; rn++ {
		wg.Go(func() {
			// Renewer rn renews every other block of its share, in small
			// batches.
			for i := 0; i < n; i += 16 {
				k := i
				if rn%2 == 1 {
					k = n - 16 - i
				}
				var ops []blobstore.Op
				var idx []int
				for j := max(k, 0); j < min(k+16, n); j++ {
					if j%2 == 0 && (j/2)%renewers == rn {
						ops = append(ops, renewOp(blocks[j], cur))
						idx = append(idx, j)
					}
				}
				if len(ops) == 0 {
					continue
				}
				rs, err := s.Apply(ctx, ops)
				batches.Add(1)
				if err != nil {
					t.Errorf("renew during purge: %v", err)
					return
				}
				for m, j := range idx {
					results[j] = rs[m].Status
				}
			}
		})
	}
	wg.Wait()
	if purgeErr != nil {
		t.Fatalf("Purge: %v", purgeErr)
	}

	var out PurgeRace
	var notFound int64
	for j, b := range blocks {
		_, err := s.Stat(ctx, b.id)
		switch results[j] {
		case blobstore.StatusRenewed:
			out.Renewed = append(out.Renewed, b.id)
			if err != nil {
				t.Fatalf("%s, renewed during the purge, is gone: %v", b.name, err)
			}
		case blobstore.StatusNotFound:
			notFound++
			out.Gone = append(out.Gone, b.id)
			if !blobstore.IsNotFound(err) {
				t.Fatalf("a renewal found no %s but the block is there (%v)", b.name, err)
			}
		case 0: // not renewed: expired, must be gone
			out.Gone = append(out.Gone, b.id)
			if !blobstore.IsNotFound(err) {
				t.Fatalf("%s, expired and never renewed, survived the purge (%v)", b.name, err)
			}
		default:
			t.Fatalf("renewal of %s during purge: %s", b.name, results[j])
		}
	}
	renewed := int64(len(out.Renewed))
	if renewed+purged != n {
		t.Errorf("purge deleted %d blocks and %d were renewed, want %d in all", purged, renewed, n)
	}
	t.Logf("%d renewed in time, %d found purged, %d purged", renewed, notFound, purged)
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Blocks != renewed || st.Buckets[cur] != renewed {
		t.Errorf("Stats: %d blocks, %d in the live bucket; want %d renewed ones only", st.Blocks, st.Buckets[cur], renewed)
	}
	return out
}

// randomBucket is a bucket of no key: stores treat buckets as opaque.
func randomBucket() bucketer.Bucket {
	var b bucketer.Bucket
	rand.Read(b[:])
	return b
}
