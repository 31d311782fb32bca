package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/wire"
)

// Defaults of Options.
const (
	DefaultWindow        = 250 * time.Millisecond
	DefaultMaxOps        = 16384
	DefaultFullOps       = 1024
	DefaultFullBytes     = 16 << 20
	DefaultMaxBytes      = 64 << 20
	DefaultCommitTimeout = 30 * time.Second
)

// Options tune a pool. Zero fields take the defaults, except Window, for
// which zero is a choice: see NoWindow.
type Options struct {
	// Window is how long the oldest waiting request waits for company
	// before its batch is committed. NoWindow (or any negative value)
	// commits whatever is waiting as soon as the previous commit is done:
	// pure group commit. Zero means DefaultWindow.
	Window time.Duration
	// MaxOps and MaxBytes (of block data) cap a batch. One request is
	// never split, so a single request over a cap is a batch of its own.
	MaxOps   int
	MaxBytes int
	// FullOps is the number of waiting ops that makes a batch due
	// without the window (default DefaultFullOps, at most MaxOps). It is
	// below MaxOps so that a batch that is full enough to go still takes
	// everything that waits, up to MaxOps: renewals come in requests of
	// thousands of ops, and a store's cost per op falls as a commit grows
	// (a commit rewrites each touched page once, however many of its
	// rows change).
	FullOps int
	// FullBytes is the data waiting that makes a batch due without the
	// window (default DefaultFullBytes, at most MaxBytes): a bulk upload
	// keeps several batch writes in flight, and holding 16 MiB for
	// company only stalls it; writers that arrive meanwhile still join
	// the batch that is open.
	FullBytes int
	// Quorum, if positive, commits a batch as soon as this many requests
	// wait, without waiting for the window: under load a batch already
	// mixes that many requests, and waiting longer would only cost
	// throughput. Under light load the window still holds each request
	// for company. Zero (the library default) always waits the window.
	Quorum int
	// CommitTimeout bounds one commit.
	CommitTimeout time.Duration
	// Logger receives the pool's operational messages; nil means
	// slog.Default(). No message names a block or a request.
	Logger *slog.Logger
}

// NoWindow is the Window of a pool that never waits for company.
const NoWindow time.Duration = -1

func (o Options) withDefaults() Options {
	switch {
	case o.Window == 0:
		o.Window = DefaultWindow
	case o.Window < 0:
		o.Window = 0
	}
	if o.MaxOps <= 0 {
		o.MaxOps = DefaultMaxOps
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.FullOps <= 0 {
		o.FullOps = DefaultFullOps
	}
	o.FullOps = min(o.FullOps, o.MaxOps)
	if o.FullBytes <= 0 {
		o.FullBytes = DefaultFullBytes
	}
	o.FullBytes = min(o.FullBytes, o.MaxBytes)
	if o.CommitTimeout <= 0 {
		o.CommitTimeout = DefaultCommitTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// quorate reports whether n waiting requests make a batch due by Quorum.
func (o Options) quorate(n int) bool { return o.Quorum > 0 && n >= o.Quorum }

// WindowOption turns a configured window (a flag, where 0 means "no
// window") into Options.Window.
func WindowOption(d time.Duration) time.Duration {
	if d <= 0 {
		return NoWindow
	}
	return d
}

// Applier commits a batch of ops in one transaction: a blobstore.Store.
type Applier interface {
	Apply(ctx context.Context, ops []blobstore.Op) ([]blobstore.Result, error)
}

// ErrClosed is returned by Commit after Close.
var ErrClosed = wire.E(wire.KindUnavailable, wire.CodeUnavailable, "server is shutting down, retry later")

// Pool is the in-process write pool: a blobstore.Committer that commits
// the requests of one process in shuffled batches, one commit at a time.
// It is safe for concurrent use.
type Pool struct {
	store Applier
	opt   Options
	log   *slog.Logger

	mu     sync.Mutex
	queue  []*request
	qops   int // ops waiting in queue
	qbytes int // bytes of data waiting in queue
	closed bool

	wake    chan struct{} // capacity 1: something changed for the flusher
	stopped chan struct{} // closed when the flusher has returned
}

var _ blobstore.Committer = (*Pool)(nil)

// A request's states, guarded by Pool.mu.
const (
	queued = iota
	taken
	abandoned
)

type request struct {
	ops     []blobstore.Op
	bytes   int
	arrived time.Time
	state   int
	done    chan struct{} // closed when results or err are set
	results []blobstore.Result
	err     error
}

// New starts a pool committing to store. Close it before closing the store.
func New(store Applier, opt Options) *Pool {
	opt = opt.withDefaults()
	p := &Pool{store: store, opt: opt, log: opt.Logger, wake: make(chan struct{}, 1), stopped: make(chan struct{})}
	go p.run()
	return p
}

func dataBytes(ops []blobstore.Op) int {
	n := 0
	for i := range ops {
		n += len(ops[i].Data)
	}
	return n
}

// Commit queues ops as one request and returns their results, in op
// order, once the batch that holds them is committed. If ctx ends before
// the request is taken into a batch, it is dropped and Commit returns
// ctx's error; once taken, it is committed and Commit waits for the
// outcome (at most the pool's CommitTimeout). A store error fails every
// request of the batch with that error.
func (p *Pool) Commit(ctx context.Context, ops []blobstore.Op) ([]blobstore.Result, error) {
	if len(ops) == 0 {
		return []blobstore.Result{}, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &request{ops: ops, bytes: dataBytes(ops), arrived: time.Now(), done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	p.queue = append(p.queue, r)
	p.qops += len(r.ops)
	p.qbytes += r.bytes
	p.mu.Unlock()
	p.signal()

	select {
	case <-r.done:
		return r.results, r.err
	case <-ctx.Done():
	}
	p.mu.Lock()
	if r.state == queued {
		p.removeLocked(r)
		r.state = abandoned
		p.mu.Unlock()
		return nil, ctx.Err()
	}
	p.mu.Unlock()
	// Taken: its ops are being committed, and the caller must learn the
	// outcome (and may reuse the ops' buffers only after it).
	<-r.done
	return r.results, r.err
}

func (p *Pool) removeLocked(r *request) {
	for i, q := range p.queue {
		if q == r {
			copy(p.queue[i:], p.queue[i+1:])
			p.queue[len(p.queue)-1] = nil
			p.queue = p.queue[:len(p.queue)-1]
			p.qops -= len(r.ops)
			p.qbytes -= r.bytes
			return
		}
	}
}

func (p *Pool) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Close stops taking requests, commits those already waiting, and
// returns when the last commit is done. Commit fails with ErrClosed
// afterwards.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.signal()
	<-p.stopped
	return nil
}

func (p *Pool) run() {
	defer close(p.stopped)
	for {
		batch := p.next()
		if batch == nil {
			return
		}
		p.commit(batch)
	}
}

// next waits until a batch is due and takes it: when the oldest waiting
// request has waited the window, when the waiting ops or bytes reach a
// cap, when a quorum of requests waits, or at once when the pool is
// closing. It returns nil once the pool
// is closed and empty.
func (p *Pool) next() []*request {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		var wait <-chan time.Time
		if len(p.queue) == 0 {
			if p.closed {
				return nil
			}
		} else {
			due := time.Until(p.queue[0].arrived.Add(p.opt.Window))
			if p.closed || due <= 0 || p.qops >= p.opt.FullOps || p.qbytes >= p.opt.FullBytes || p.opt.quorate(len(p.queue)) {
				return p.takeLocked()
			}
			if timer == nil {
				timer = time.NewTimer(due)
			} else {
				timer.Reset(due)
			}
			wait = timer.C
		}
		p.mu.Unlock()
		select {
		case <-p.wake:
		case <-wait:
		}
		p.mu.Lock()
	}
}

// takeLocked takes requests from the head of the queue up to the caps,
// and at least one.
func (p *Pool) takeLocked() []*request {
	var batch []*request
	nops, nbytes, n := 0, 0, 0
	for _, r := range p.queue {
		if len(batch) > 0 && (nops+len(r.ops) > p.opt.MaxOps || nbytes+r.bytes > p.opt.MaxBytes) {
			break
		}
		r.state = taken
		batch = append(batch, r)
		nops += len(r.ops)
		nbytes += r.bytes
		n++
	}
	clear(p.queue[:n])
	p.queue = p.queue[n:]
	p.qops -= nops
	p.qbytes -= nbytes
	return batch
}

// commit commits one batch and answers its requests.
func (p *Pool) commit(batch []*request) {
	reqs := make([][]blobstore.Op, len(batch))
	for i, r := range batch {
		reqs[i] = r.ops
	}
	rs, at, err := p.apply(reqs)
	for i, r := range batch {
		if err != nil {
			r.err = err
		} else {
			r.results = make([]blobstore.Result, len(r.ops))
			for j, k := range at[i] {
				r.results[j] = rs[k]
			}
		}
		close(r.done)
	}
}

// apply shuffles the requests' ops and commits them in one Apply. A panic
// in the store becomes an error for the batch: a flusher that died would
// leave every later request waiting forever.
func (p *Pool) apply(reqs [][]blobstore.Op) (rs []blobstore.Result, at [][]int, err error) {
	defer func() {
		if v := recover(); v != nil {
			p.log.Error("pool: commit panicked; its requests get an error", "panic", fmt.Sprintf("%T", v))
			rs, at, err = nil, nil, fmt.Errorf("pool: commit panicked: %T", v)
		}
	}()
	rng, err := newRand()
	if err != nil {
		return nil, nil, err
	}
	ops, at := permute(rng, reqs)
	ctx, cancel := context.WithTimeout(context.Background(), p.opt.CommitTimeout)
	defer cancel()
	rs, err = p.store.Apply(ctx, ops)
	if err == nil && len(rs) != len(ops) {
		err = fmt.Errorf("pool: the store returned %d results for %d ops", len(rs), len(ops))
	}
	if err != nil {
		return nil, nil, err
	}
	return rs, at, nil
}

// isUnavailable reports whether err leaves a batch's outcome unknown.
func isUnavailable(err error) bool {
	return wire.KindOf(err) == wire.KindUnavailable || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}
