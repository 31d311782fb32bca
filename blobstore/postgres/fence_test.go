package postgres

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/internal/pgtest"
	"github.com/blindstore/blindstore/wire"
)

func rand16(t testing.TB) [16]byte {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return b
}

func fenceErr(err error) *FenceError {
	var fe *FenceError
	if errors.As(err, &fe) {
		return fe
	}
	return nil
}

// A batch is applied once, only after its predecessor, and only under
// the token that holds the fence; a takeover keeps the chain.
func TestFenceChainsBatchesAndRefusesReplays(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, pgtest.URL(t), testParams())
	bucket := randBucket(t)
	a, b := rand16(t), rand16(t)
	var zero [16]byte

	last, err := s.Fence(ctx, a)
	if err != nil || last != zero {
		t.Fatalf("first Fence = %x, %v; want zero", last, err)
	}
	o1, o2 := newOwned(t, testBlockSize), newOwned(t, testBlockSize)
	b1, b2 := rand16(t), rand16(t)
	rs, err := s.ApplyFenced(ctx, a, zero, b1, []blobstore.Op{o1.put(bucket)})
	if err != nil || rs[0].Status != blobstore.StatusCreated {
		t.Fatalf("first batch: %v, %v", rs, err)
	}

	// The same batch again: refused as committed, and nothing written
	// (o2 rides along and must not appear).
	_, err = s.ApplyFenced(ctx, a, zero, b1, []blobstore.Op{o1.put(bucket), o2.put(bucket)})
	if fe := fenceErr(err); fe == nil || !fe.BatchCommitted() || fe.Fenced() {
		t.Fatalf("replay of a committed batch: %v; want BatchCommitted", err)
	}
	if _, err := s.Stat(ctx, o2.id); !blobstore.IsNotFound(err) {
		t.Fatalf("a refused replay wrote a block: Stat = %v", err)
	}
	if wire.KindOf(err) == wire.KindUnavailable {
		t.Fatalf("a fence refusal must not look like an unknown outcome")
	}

	// A batch whose predecessor is not the last one: a stale replay.
	_, err = s.ApplyFenced(ctx, a, rand16(t), b2, []blobstore.Op{o2.put(bucket)})
	if fe := fenceErr(err); fe == nil || fe.BatchCommitted() || fe.Fenced() {
		t.Fatalf("stale batch: %v; want a plain FenceError", err)
	}

	// Takeover by b keeps the last batch id and shuts a out.
	last, err = s.Fence(ctx, b)
	if err != nil || last != b1 {
		t.Fatalf("takeover Fence = %x, %v; want the last batch %x", last, err, b1)
	}
	_, err = s.ApplyFenced(ctx, a, b1, b2, []blobstore.Op{o2.put(bucket)})
	if fe := fenceErr(err); fe == nil || !fe.Fenced() {
		t.Fatalf("commit under a superseded token: %v; want Fenced", err)
	}
	rs, err = s.ApplyFenced(ctx, b, b1, b2, []blobstore.Op{o2.put(bucket)})
	if err != nil || rs[0].Status != blobstore.StatusCreated {
		t.Fatalf("commit under the new token: %v, %v", rs, err)
	}
	if _, err := s.ApplyFenced(ctx, b, b2, rand16(t), nil); err == nil {
		t.Fatalf("an empty batch was accepted")
	}
}

// A takeover that races a flusher's commits is ordered with them: the
// last batch the takeover reports is exactly the last commit the old
// flusher saw succeed, and every later commit of the old flusher fails.
func TestFenceTakeoverOrdersWithCommitsInFlight(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, pgtest.URL(t), testParams())
	bucket := randBucket(t)
	old, next := rand16(t), rand16(t)
	if _, err := s.Fence(ctx, old); err != nil {
		t.Fatal(err)
	}

	var (
		mu        sync.Mutex
		lastOK    [16]byte
		refusedAt int
	)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var prev [16]byte
		deadline := time.Now().Add(10 * time.Second)
		for i := 0; time.Now().Before(deadline); i++ {
			id := rand16(t)
			o := newOwned(t, testBlockSize)
			_, err := s.ApplyFenced(ctx, old, prev, id, []blobstore.Op{o.put(bucket)})
			if fe := fenceErr(err); fe != nil && fe.Fenced() {
				mu.Lock()
				refusedAt = i
				mu.Unlock()
				return
			}
			if err != nil {
				t.Errorf("commit %d: %v", i, err)
				return
			}
			mu.Lock()
			lastOK = id
			mu.Unlock()
			prev = id
		}
		t.Errorf("the old flusher was never fenced")
	}()
	time.Sleep(150 * time.Millisecond)
	last, err := s.Fence(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if last != lastOK {
		t.Fatalf("takeover saw last batch %x, the old flusher's last success was %x", last, lastOK)
	}
	if refusedAt == 0 {
		t.Fatalf("the takeover came before any commit; the test raced nothing")
	}
	t.Logf("old flusher committed %d batches before it was fenced", refusedAt)
}
