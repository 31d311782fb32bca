package client

// The block buffers of uploads. Each upload keeps up to uploaders+1
// batches of blocks in flight (put.go); without a bound shared by the
// uploads of one account, a process running several at once (blind serve
// webdav, with a client uploading a file on each of its connections)
// held that much per upload, and allocated it afresh for each: eight
// uploads of 256 MiB at once peaked the WebDAV server at 415 MiB
// resident. The budget lends buffers in whole batches (an upload's batch
// write must never wait for a buffer another upload holds, or uploads
// that each hold part of a batch would wait on each other for good), up
// to budgetBatches batches for the account, and keeps the buffers given
// back for the next upload, so that uploads one after the other (a
// folder of large files) allocate them once; once none is lent for
// budgetIdle, it lets them go, so that an idle server does not hold them.

import (
	"context"
	"sync"
	"time"
)

// budgetBatches bounds the batches of block buffers lent at once across
// an account's uploads: one upload at full depth (uploaders+1), and room
// for another to go on meanwhile. It was two uploads at full depth when
// that was seven batches; it stayed at fourteen when one upload's depth
// grew, so that many uploads at once hold no more than before.
const budgetBatches = 14

// budgetIdle is how long the budget keeps its buffers with none lent.
const budgetIdle = 30 * time.Second

// blockBudget lends block buffers of one size, at most limit at once.
type blockBudget struct {
	size  int
	limit int
	keep  time.Duration // budgetIdle, but in tests

	mu   sync.Mutex
	lent int           // buffers lent and not yet given back (or forgotten)
	free [][]byte      // buffers given back, for the next take
	wake chan struct{} // closed when buffers come back
	idle *time.Timer   // lets free go once nothing was lent for budgetIdle
}

func newBlockBudget(size, limit int) *blockBudget {
	return &blockBudget{size: size, limit: max(limit, 1), keep: budgetIdle, wake: make(chan struct{})}
}

// blockBudget returns the account's budget, made on first use.
func (a *Account) blockBudget() *blockBudget {
	a.budgetOnce.Do(func() {
		a.budget = newBlockBudget(a.cfg.BlockSize, budgetBatches*a.cfg.Limits.WriteBatch)
	})
	return a.budget
}

// take lends n buffers (at most the limit), waiting until they are
// free or ctx is done.
func (b *blockBudget) take(ctx context.Context, n int) ([][]byte, error) {
	n = min(n, b.limit)
	for {
		b.mu.Lock()
		if b.lent+n <= b.limit {
			b.lent += n
			k := min(n, len(b.free))
			out := make([][]byte, 0, n)
			out = append(out, b.free[len(b.free)-k:]...)
			clear(b.free[len(b.free)-k:])
			b.free = b.free[:len(b.free)-k]
			b.mu.Unlock()
			for len(out) < n {
				out = append(out, make([]byte, b.size))
			}
			return out, nil
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// give takes lent buffers back for the next take.
func (b *blockBudget) give(bufs [][]byte) {
	if len(bufs) == 0 {
		return
	}
	b.mu.Lock()
	for _, x := range bufs {
		if cap(x) >= b.size {
			b.free = append(b.free, x[:b.size])
		}
	}
	b.release(len(bufs))
	b.mu.Unlock()
}

// forget counts n lent buffers as back without them: those an upload
// that failed dropped on its way.
func (b *blockBudget) forget(n int) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	b.release(n)
	b.mu.Unlock()
}

// release returns n to the budget and wakes the takers; b.mu is held.
func (b *blockBudget) release(n int) {
	b.lent -= n
	if b.lent < 0 {
		panic("client: more block buffers given back than lent")
	}
	close(b.wake)
	b.wake = make(chan struct{})
	if b.lent == 0 && len(b.free) > 0 {
		if b.idle == nil {
			b.idle = time.AfterFunc(b.keep, b.trim)
		} else {
			b.idle.Reset(b.keep)
		}
	}
}

// trim lets the kept buffers go, unless some are lent again: those
// uploads give theirs back, and the timer is set again then.
func (b *blockBudget) trim() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.lent == 0 {
		clear(b.free)
		b.free = nil
	}
}
