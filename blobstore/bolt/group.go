package bolt

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/blindstore/blindstore/blobstore"
	"go.etcd.io/bbolt"
)

// maxGroupOps bounds the ops of the callers a leader takes into one
// transaction beyond its own, so one commit's memory and latency stay
// bounded however many callers pile up.
const maxGroupOps = 1024

// group is a group commit: bbolt fsyncs every transaction, so callers of
// Apply that arrive while a commit is in progress queue up, and the next
// commit takes them all, one fsync for many.
//
// There is no background goroutine and no timer: the first caller to find
// no commit in progress becomes the leader and commits at once, so a lone
// caller pays no delay. A leader commits one transaction, answers the
// callers it took, and hands leadership to the first caller still waiting.
//
// Inside the transaction each caller's ops are planned against the state
// the previous callers' ops left, exactly as if each had committed alone.
// A caller that fails before writing (its context is done) fails alone
// and the transaction goes on; one whose writes fail part way taints the
// transaction, which is rolled back and redone without it, so no caller
// fails because of another.
//
// bbolt's DB.Batch does much the same but waits up to MaxBatchDelay for
// company before committing, and rolls everything back and re-runs it for
// any failing caller; see the benchmark for both.
type group struct {
	mu    sync.Mutex
	queue []*call // waiting callers; a leader is always first
	busy  bool    // a leader exists; false only when queue is empty
}

// States of a call.
const (
	callQueued    uint32 = iota // waiting in the queue
	callTaken                   // taken into a transaction by a leader
	callLeading                 // chosen to lead the next transaction
	callAbandoned               // its caller gave up before it was taken
)

type call struct {
	ctx context.Context
	ops []blobstore.Op
	// fn, when set, is work of the store's own (a seal's step) done in
	// the transaction instead of ops; weight stands for its size.
	fn     func(st *txState) error
	weight int
	state  atomic.Uint32
	// wake is closed once, when the call has its results or must lead.
	wake    chan struct{}
	results []blobstore.Result
	err     error
}

func (g *group) apply(s *Store, ctx context.Context, ops []blobstore.Op) ([]blobstore.Result, error) {
	return g.enqueue(s, &call{ctx: ctx, ops: ops, weight: len(ops), wake: make(chan struct{})})
}

// do runs fn in a transaction of the group, in turn with the callers of
// apply: it waits for no more than the commit in progress, and callers
// that come meanwhile share its commit instead of waiting for it.
func (g *group) do(s *Store, ctx context.Context, weight int, fn func(st *txState) error) error {
	_, err := g.enqueue(s, &call{ctx: ctx, fn: fn, weight: weight, wake: make(chan struct{})})
	return err
}

func (g *group) enqueue(s *Store, c *call) ([]blobstore.Result, error) {
	ctx := c.ctx
	g.mu.Lock()
	g.queue = append(g.queue, c)
	lead := !g.busy
	if lead {
		g.busy = true
		c.state.Store(callLeading)
	}
	g.mu.Unlock()

	if !lead {
		select {
		case <-c.wake:
		case <-ctx.Done():
			// Leave only if no leader has taken the call yet: once taken,
			// its ops may be committed, and the caller must learn of it.
			if c.state.CompareAndSwap(callQueued, callAbandoned) {
				return nil, ctx.Err()
			}
			<-c.wake
		}
		if c.state.Load() != callLeading {
			return c.results, c.err
		}
	}
	g.lead(s)
	return c.results, c.err
}

// lead commits the calls at the head of the queue, its own first, then
// passes leadership on.
func (g *group) lead(s *Store) {
	g.mu.Lock()
	var batch []*call
	nops := 0
	for len(g.queue) > 0 {
		c := g.queue[0]
		if len(batch) > 0 && nops+c.weight > maxGroupOps {
			break
		}
		g.queue[0] = nil
		g.queue = g.queue[1:]
		if c.state.Load() == callLeading || c.state.CompareAndSwap(callQueued, callTaken) {
			batch = append(batch, c)
			nops += c.weight
		}
	}
	g.mu.Unlock()

	s.wb.during(func() { commitGuarded(s, batch) })
	for _, c := range batch[1:] {
		close(c.wake)
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	for len(g.queue) > 0 {
		c := g.queue[0]
		if c.state.CompareAndSwap(callQueued, callLeading) {
			close(c.wake)
			return
		}
		g.queue[0] = nil
		g.queue = g.queue[1:]
	}
	g.queue = nil
	g.busy = false
}

// commitGuarded commits batch and turns a panic into an error for its
// callers: a leader that died mid-commit would leave every later caller
// waiting forever, and net/http recovers panics, so the server would stay
// up with a store that never answers.
func commitGuarded(s *Store, batch []*call) {
	defer func() {
		if r := recover(); r != nil {
			slog.Error("bolt: commit panicked; its callers get an error", "panic", fmt.Sprint(r))
			err := fmt.Errorf("bolt: commit panicked: %v", r)
			for _, c := range batch {
				c.results, c.err = nil, err
			}
		}
	}()
	s.commitCalls(batch)
}

// commitCalls commits the calls' ops in one transaction and sets each
// call's results or error.
func (s *Store) commitCalls(calls []*call) {
	pending := calls
	for len(pending) > 0 {
		tainted := -1
		err := s.db.Update(func(tx *bbolt.Tx) error {
			st := newTxState(tx)
			for i, c := range pending {
				var rs []blobstore.Result
				var err error
				var bad bool
				if c.fn != nil {
					// The store's own work: any failure may have
					// written part of it.
					err = c.fn(st)
					bad = err != nil
				} else {
					rs, err, bad = applyOps(c.ctx, st, c.ops)
				}
				c.results, c.err = rs, nil
				if err != nil {
					c.err = wrapErr("apply", err)
				}
				if bad {
					tainted = i
					return err
				}
			}
			return nil
		})
		if tainted >= 0 {
			// The transaction was rolled back: the caller whose writes
			// failed keeps its error, the others are done again.
			pending[tainted].results = nil
			rest := make([]*call, 0, len(pending)-1)
			rest = append(rest, pending[:tainted]...)
			pending = append(rest, pending[tainted+1:]...)
			continue
		}
		if err != nil {
			err = fmt.Errorf("bolt: commit: %w", err)
			for _, c := range pending {
				c.results, c.err = nil, err
			}
		}
		return
	}
}
