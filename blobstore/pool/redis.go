package pool

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blindstore/blindstore/internal/wait"
	"github.com/blindstore/blindstore/wire"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/redis/go-redis/v9"
)

// Defaults of RedisOptions.
const (
	DefaultLockTTL    = 5 * time.Second
	DefaultAckTimeout = 15 * time.Second
)

// answerTTL is how long an instance's answers wait in Redis for it; the
// finish script holds the same figure.
const answerTTL = time.Minute

// RedisOptions tune a RedisPool.
type RedisOptions struct {
	Options
	// Prefix starts every key the pool writes. Instances that share a
	// pool use the same prefix; deployments sharing one Redis must not.
	Prefix string
	// LockTTL is how long the flusher's lock outlives a flusher that
	// died; a live flusher renews it every third of it.
	LockTTL time.Duration
	// AckTimeout bounds how long a request waits for its commit; after
	// it the request is answered 503 (withdrawn if it was not yet taken).
	AckTimeout time.Duration
}

// FencedStore is the store a RedisPool commits to; blobstore/postgres's
// Store is one. Fence and ApplyFenced are explained in the package doc.
//
// ApplyFenced must fail with an error that has a BatchCommitted() bool
// method returning true when batch was already committed, and one with a
// Fenced() bool method returning true when another token took the fence.
// An error of another kind than wire.KindUnavailable must mean that
// nothing was committed.
type FencedStore interface {
	Fence(ctx context.Context, token [16]byte) (last [16]byte, err error)
	ApplyFenced(ctx context.Context, token, prev, batch [16]byte, ops []blobstore.Op) ([]blobstore.Result, error)
}

// RedisPool is the write pool shared by every instance on one Redis: a
// blobstore.Committer whose batches mix the requests of all instances,
// committed by one flusher at a time. It is safe for concurrent use.
type RedisPool struct {
	rc    redis.UniversalClient
	store FencedStore
	opt   RedisOptions
	log   *slog.Logger
	inst  string // this instance's random id, for its answers
	keys  keys
	hooks hooks

	ctx         context.Context // ends at kill, or at Close once the flusher stopped
	cancel      context.CancelFunc
	stop        chan struct{} // closed by Close: finish the current step, then stop
	killed      atomic.Bool   // stopped as by SIGKILL (tests)
	flusherDone chan struct{}
	readerDone  chan struct{}

	leading atomic.Bool // this instance is the flusher

	mu      sync.Mutex
	waiting map[string]chan []byte // answers by request id
	closed  bool
}

var _ blobstore.Committer = (*RedisPool)(nil)

// hooks let tests act at the flusher's critical points. All nil in use.
type hooks struct {
	beforeCommit func(ctx context.Context) // after a batch is taken
	afterCommit  func(ctx context.Context) // after it is committed, before it is answered
	noRenew      bool                      // the lock is never renewed (a paused flusher)
}

type keys struct {
	lock, queue, qops, qbytes, bell, proc, batch, down, res string
	prefix                                                  string
}

func newKeys(prefix, inst string) keys {
	return keys{
		prefix: prefix,
		lock:   prefix + "lock", queue: prefix + "queue", qops: prefix + "qops", qbytes: prefix + "qbytes",
		bell: prefix + "bell", proc: prefix + "proc", batch: prefix + "batch", down: prefix + "down",
		res: prefix + "res:" + inst,
	}
}

func (k keys) payload(rid string) string  { return k.prefix + "op:" + rid }
func (k keys) answers(inst string) string { return k.prefix + "res:" + inst }

// NewRedis starts a pool on client that commits to store. Every instance
// of a deployment runs one; whichever holds the lock flushes. It checks
// that Redis answers. Close it before closing the store or the client.
func NewRedis(ctx context.Context, client redis.UniversalClient, store FencedStore, opt RedisOptions) (*RedisPool, error) {
	return newRedis(ctx, client, store, opt, hooks{})
}

func newRedis(ctx context.Context, client redis.UniversalClient, store FencedStore, opt RedisOptions, h hooks) (*RedisPool, error) {
	opt.Options = opt.Options.withDefaults()
	if opt.Prefix == "" {
		return nil, errors.New("pool: a Redis pool needs a key prefix")
	}
	if opt.LockTTL <= 0 {
		opt.LockTTL = DefaultLockTTL
	}
	if opt.LockTTL < 30*time.Millisecond {
		return nil, fmt.Errorf("pool: lock TTL %v is too short to renew", opt.LockTTL)
	}
	if opt.AckTimeout <= 0 {
		opt.AckTimeout = DefaultAckTimeout
	}
	if err := client.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("pool: Redis is not reachable: %w", err)
	}
	inst := hex.EncodeToString(random16())
	p := &RedisPool{
		rc: client, store: store, opt: opt, log: opt.Logger, inst: inst,
		keys: newKeys(opt.Prefix, inst), hooks: h,
		stop: make(chan struct{}), waiting: map[string]chan []byte{},
		flusherDone: make(chan struct{}), readerDone: make(chan struct{}),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	go p.readAnswers()
	go p.flushLoop()
	return p, nil
}

func random16() []byte {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return b
}

// Ping checks that Redis answers, for readiness.
func (p *RedisPool) Ping(ctx context.Context) error {
	if err := p.rc.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("write pool: Redis: %w", err)
	}
	return nil
}

// Close stops this instance's part of the pool: no new requests, the
// flusher (if this instance is it) finishes the batch in hand and hands
// the lock over, and waits for the answers still due here for up to
// AckTimeout. Requests queued by this instance and not answered are
// withdrawn if not yet taken.
func (p *RedisPool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	close(p.stop)
	// The flusher finishes the batch in hand and hands the lock over;
	// answers go on arriving until nothing waits here any more. The bell
	// wakes this instance's flusher if it waits on it (only the flusher
	// does), and a blank answer wakes the reader.
	wake := func(key string, trim bool) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		p.rc.Pipelined(ctx, func(pipe redis.Pipeliner) error {
			pipe.LPush(ctx, key, "")
			if trim {
				pipe.LTrim(ctx, key, 0, 0) // the bell holds one ring at most
			}
			pipe.PExpire(ctx, key, answerTTL)
			return nil
		})
	}
	wake(p.keys.bell, true)
	<-p.flusherDone
	// Callers still waiting past the ack timeout are answered by cancel.
	_ = wait.For(p.opt.AckTimeout, 10*time.Millisecond, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.waiting) == 0
	})
	p.cancel()
	wake(p.keys.res, false)
	<-p.readerDone
	return nil
}

// kill stops the pool at once, as SIGKILL would: no lock released, no
// batch finished. For tests.
func (p *RedisPool) kill() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.killed.Store(true)
	p.cancel()
	<-p.flusherDone
	<-p.readerDone
}

// Commit queues ops as one request in the shared pool and returns their
// results once the batch holding them is committed. A request whose ctx
// ends, or that waits longer than AckTimeout, is withdrawn if no flusher
// took it yet (ctx's error, or 503) and answered 503 otherwise: its
// outcome is then unknown. While Redis or the store is down, Commit fails
// with an error of KindUnavailable.
func (p *RedisPool) Commit(ctx context.Context, ops []blobstore.Op) ([]blobstore.Result, error) {
	if len(ops) == 0 {
		return []blobstore.Result{}, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rawRID := random16()
	rid := hex.EncodeToString(rawRID)
	nbytes := dataBytes(ops)
	entry := rid + " " + strconv.Itoa(len(ops)) + " " + strconv.Itoa(nbytes) + " " + p.inst
	ch := make(chan []byte, 1)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	p.waiting[rid] = ch
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.waiting, rid)
		p.mu.Unlock()
	}()

	k := p.keys
	n, err := enqueueScript.Run(ctx, p.rc, []string{k.queue, k.qops, k.qbytes, k.bell, k.payload(rid), k.down},
		entry, encodeOps(ops), len(ops), nbytes, p.opt.FullOps, p.opt.FullBytes).Int64()
	if err != nil {
		// The script may have run with its reply lost: withdraw it.
		p.withdraw(entry, rid, len(ops), nbytes)
		return nil, wire.Wrap(wire.KindUnavailable, wire.CodeUnavailable, "write pool unavailable, retry later",
			fmt.Errorf("pool: queue a request in Redis: %w", err))
	}
	if n < 0 {
		return nil, wire.E(wire.KindUnavailable, wire.CodeUnavailable, "store unavailable, retry later")
	}

	a, giveUp := p.await(ctx, ch, k.payload(rid))
	if giveUp == nil {
		return decodeAnswer(a, len(ops))
	}
	withdrawn := p.withdraw(entry, rid, len(ops), nbytes)
	p.log.Debug("write pool: a request gave up waiting", "reason", giveUp.Error(), "withdrawn", withdrawn)
	if withdrawn {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, wire.Wrap(wire.KindUnavailable, wire.CodeUnavailable, "write not committed in time, retry later", giveUp)
	}
	// Taken by a flusher: the answer may have arrived meanwhile.
	select {
	case a := <-ch:
		if a != nil {
			return decodeAnswer(a, len(ops))
		}
	default:
	}
	return nil, wire.Wrap(wire.KindUnavailable, wire.CodeUnavailable, errUnknown.Msg, giveUp)
}

// await waits for a request's answer. It gives up (giveUp not nil) when
// ctx ends, after AckTimeout, when the pool stops, when Redis fails, or
// when the request is gone from Redis unanswered: its payload is deleted
// only together with the pushing of its answer, so a payload missing for
// a second with no answer means Redis lost the request (it restarted
// without persistence, which a broken connection does not always show).
func (p *RedisPool) await(ctx context.Context, ch <-chan []byte, payloadKey string) (answer []byte, giveUp error) {
	timer := time.NewTimer(p.opt.AckTimeout)
	defer timer.Stop()
	check := time.NewTicker(time.Second)
	defer check.Stop()
	missing := false
	for {
		select {
		case a := <-ch:
			if a != nil {
				return a, nil
			}
			return nil, errors.New("pool: Redis failed while the request waited")
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
			return nil, errors.New("pool: no commit within the acknowledgement timeout")
		case <-p.ctx.Done():
			return nil, errors.New("pool: stopped")
		case <-check.C:
			n, err := p.rc.Exists(ctx, payloadKey).Result()
			switch {
			case err != nil || n == 1:
				missing = false
			case missing:
				return nil, errors.New("pool: the request is gone from Redis unanswered")
			default:
				missing = true // answered meanwhile, or lost: see at the next tick
			}
		}
	}
}

// withdraw removes a request that no flusher took yet, and reports
// whether it did: then the request will never be committed.
func (p *RedisPool) withdraw(entry, rid string, nops, nbytes int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	k := p.keys
	n, err := cancelScript.Run(ctx, p.rc, []string{k.queue, k.qops, k.qbytes, k.payload(rid)}, entry, nops, nbytes).Int64()
	return err == nil && n == 1
}

// readAnswers receives this instance's answers and hands each to its
// waiting request. While Redis fails, every waiting request is answered
// 503 at once: its answer may never come.
func (p *RedisPool) readAnswers() {
	defer close(p.readerDone)
	backoff := newBackoff()
	for p.ctx.Err() == nil {
		v, err := p.rc.BLPop(p.ctx, time.Second, p.keys.res).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			if p.ctx.Err() != nil {
				return
			}
			p.failWaiting()
			backoff.sleep(p.ctx)
			continue
		}
		backoff.reset()
		p.deliver(v[1])
		// Drain what else is there in one round trip.
		more, err := p.rc.LPopCount(p.ctx, p.keys.res, 256).Result()
		if err == nil {
			for _, a := range more {
				p.deliver(a)
			}
		}
	}
}

func (p *RedisPool) deliver(a string) {
	if len(a) < 16 {
		return
	}
	rid := hex.EncodeToString([]byte(a[:16]))
	p.mu.Lock()
	ch := p.waiting[rid]
	p.mu.Unlock()
	if ch == nil {
		return // its request gave up already
	}
	select {
	case ch <- []byte(a[16:]):
	default:
	}
}

func (p *RedisPool) failWaiting() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ch := range p.waiting {
		select {
		case ch <- nil: // no answer: Commit withdraws or answers 503
		default:
		}
	}
}

// backoff sleeps 50 ms, doubling up to 2 s.
type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{d: 50 * time.Millisecond} }

func (b *backoff) reset() { b.d = 50 * time.Millisecond }

func (b *backoff) sleep(ctx context.Context) {
	t := time.NewTimer(b.d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	b.d = min(2*b.d, 2*time.Second)
}
