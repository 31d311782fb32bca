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
// back for the next upload, so that a long-running process allocates
// them once.

import (
	"context"
	"sync"
)

// budgetBatches bounds the batches of block buffers lent at once across
// an account's uploads: two uploads at full depth.
const budgetBatches = 2 * (uploaders + 1)

// blockBudget lends block buffers of one size, at most limit at once.
type blockBudget struct {
	size  int
	limit int

	mu   sync.Mutex
	lent int           // buffers lent and not yet given back (or forgotten)
	free [][]byte      // buffers given back, for the next take
	wake chan struct{} // closed when buffers come back
}

func newBlockBudget(size, limit int) *blockBudget {
	return &blockBudget{size: size, limit: max(limit, 1), wake: make(chan struct{})}
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
}
