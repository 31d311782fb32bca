package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

// Uploads at once share the account's budget of block buffers: more of
// them than the budget has batches for all complete, byte for byte, and
// every buffer is back once they are done, a failed upload's too.
func TestUploadsShareTheBlockBudget(t *testing.T) {
	m := newMem(t)
	a, _, _ := memSignup(t, m, "budget")
	ctx := context.Background()
	batch := a.cfg.Limits.WriteBatch
	// Each file is several batches long, so that each upload wants its
	// full depth, and together they want far more than the budget.
	size := 3 * batch * memBlockSize
	const uploads = 3 * budgetBatches / (uploaders + 1)
	files := make([][]byte, uploads)
	for i := range files {
		files[i] = randomBytes(size + i)
	}
	var wg sync.WaitGroup
	errs := make(chan error, uploads)
	for i := range uploads {
		wg.Go(func() {
			if _, err := a.Put(ctx, bytes.NewReader(files[i]), PutInfo{Name: fmt.Sprintf("f%d", i)}, nil); err != nil {
				errs <- fmt.Errorf("put %d: %w", i, err)
			}
		})
	}
	// A failing upload among them gives its buffers back too.
	boom := errors.New("the disk went away")
	wg.Go(func() {
		r := io.MultiReader(bytes.NewReader(randomBytes(2*batch*memBlockSize)), errReader{boom})
		if _, err := a.Put(ctx, r, PutInfo{Name: "broken"}, nil); !errors.Is(err, boom) {
			errs <- fmt.Errorf("the broken upload returned %v, want its reader's error", err)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i, want := range files {
		wantGet(t, a, fmt.Sprintf("f%d", i), want)
	}
	b := a.blockBudget()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.lent != 0 {
		t.Fatalf("%d block buffers still lent after every upload ended", b.lent)
	}
	if len(b.free) > b.limit {
		t.Fatalf("the budget keeps %d buffers, over its limit of %d", len(b.free), b.limit)
	}
}

// A take beyond what is free waits for a give, and gives up with its
// context.
func TestBlockBudgetWaits(t *testing.T) {
	b := newBlockBudget(16, 4)
	ctx := context.Background()
	first, err := b.take(ctx, 3)
	if err != nil || len(first) != 3 {
		t.Fatalf("take 3 of 4: %d buffers, %v", len(first), err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.take(cctx, 2); !errors.Is(err, context.Canceled) {
		t.Fatalf("a take that cannot be met returned %v once its context ended", err)
	}
	got := make(chan [][]byte)
	go func() {
		bufs, _ := b.take(ctx, 2)
		got <- bufs
	}()
	b.give(first[:2])
	bufs := <-got
	if len(bufs) != 2 || len(bufs[0]) != 16 {
		t.Fatalf("the waiting take got %d buffers", len(bufs))
	}
	b.give(bufs)
	b.forget(1) // first[2], dropped
	if b.lent != 0 {
		t.Fatalf("%d still lent", b.lent)
	}
}

// The buffers given back are kept for the next take, and let go once
// none was lent for a while.
func TestBlockBudgetLetsIdleBuffersGo(t *testing.T) {
	b := newBlockBudget(16, 4)
	b.keep = 50 * time.Millisecond
	ctx := context.Background()
	bufs, err := b.take(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	b.give(bufs[:2])
	b.mu.Lock()
	kept := len(b.free)
	b.mu.Unlock()
	if kept != 2 {
		t.Fatalf("%d buffers kept after 2 given back", kept)
	}
	again, err := b.take(ctx, 2)
	if err != nil || &again[0][0] != &bufs[1][0] && &again[0][0] != &bufs[0][0] {
		t.Fatalf("a take after a give did not reuse the buffers given (%v)", err)
	}
	b.give(again)
	b.give(bufs[2:])
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.mu.Lock()
		kept = len(b.free)
		b.mu.Unlock()
		if kept == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d buffers still kept long after none was lent", kept)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
