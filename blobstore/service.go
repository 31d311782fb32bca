package blobstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/wire"
)

// Limits bound what one request may ask for. All of them are published in
// /v1/config so clients never have to guess.
type Limits struct {
	RenewBatch int // ids in one POST /v1/renew
	WriteBatch int // blocks in one POST /v1/blocks
}

// DefaultLimits are the limits of a deployment that does not choose.
var DefaultLimits = Limits{RenewBatch: 4096, WriteBatch: 64}

// Committer commits batches of ops. The store itself is one (Apply); the
// write pool is another, which gathers many callers' ops into one shuffled
// commit.
type Committer interface {
	Commit(ctx context.Context, ops []Op) ([]Result, error)
}

type storeCommitter struct{ s Store }

func (c storeCommitter) Commit(ctx context.Context, ops []Op) ([]Result, error) {
	return c.s.Apply(ctx, ops)
}

// Service is the blob store's logic over a Store: validation, proof
// hashing, bucket stamping and batching rules. The HTTP API and the tools
// call it; it is safe for concurrent use.
type Service struct {
	store     Store
	bk        *bucketer.Bucketer
	blockSize int
	limits    Limits
	commit    Committer
	capacity  *capacity // nil: no cap
}

// ServiceConfig configures a Service.
type ServiceConfig struct {
	Store     Store
	Bucketer  *bucketer.Bucketer
	BlockSize int
	Limits    Limits    // zero fields take DefaultLimits
	Committer Committer // nil commits straight to Store
	// MaxBlocks caps the number of blocks: writes that could create
	// blocks beyond it are refused with KindFull (507). 0: no cap.
	MaxBlocks int64
}

// NewService validates cfg and returns a Service.
func NewService(cfg ServiceConfig) (*Service, error) {
	if cfg.Store == nil || cfg.Bucketer == nil {
		return nil, fmt.Errorf("blobstore: service needs a store and a bucketer")
	}
	if err := wire.ValidateBlockSize(cfg.BlockSize); err != nil {
		return nil, err
	}
	l := cfg.Limits
	if l.RenewBatch <= 0 {
		l.RenewBatch = DefaultLimits.RenewBatch
	}
	if l.WriteBatch <= 0 {
		l.WriteBatch = DefaultLimits.WriteBatch
	}
	c := cfg.Committer
	if c == nil {
		c = storeCommitter{cfg.Store}
	}
	svc := &Service{store: cfg.Store, bk: cfg.Bucketer, blockSize: cfg.BlockSize, limits: l, commit: c}
	if cfg.MaxBlocks < 0 {
		return nil, fmt.Errorf("blobstore: MaxBlocks must be 0 (no cap) or more, got %d", cfg.MaxBlocks)
	}
	if cfg.MaxBlocks > 0 {
		svc.capacity = &capacity{max: cfg.MaxBlocks}
	}
	return svc, nil
}

// BlockSize is the deployment's block size.
func (s *Service) BlockSize() int { return s.blockSize }

// Limits returns the request limits.
func (s *Service) Limits() Limits { return s.limits }

// Bucketer returns the service's bucketer.
func (s *Service) Bucketer() *bucketer.Bucketer { return s.bk }

// Store returns the underlying store.
func (s *Service) Store() Store { return s.store }

func (s *Service) checkSize(data []byte) error {
	if len(data) != s.blockSize {
		return wire.E(wire.KindInvalid, wire.CodeBadSize, fmt.Sprintf("block data must be exactly %d bytes, got %d", s.blockSize, len(data)))
	}
	return nil
}

// PutItem is one block of a batch write.
type PutItem struct {
	ID    wire.ID
	Proof wire.WriteProof
	Data  []byte
	Cond  Cond
	// KeepBucket overwrites without renewing: the block keeps its
	// bucket. It needs Cond.IfMatch, so that it can never create a
	// block. A quota charges nothing for such writes (docs/design.md §9 and §11).
	KeepBucket bool
	// Delete makes the entry a deletion (Batch only): no Data, and
	// Cond.IfMatch only.
	Delete bool
	// Check makes the entry a check (Batch only, OpCheck): no Data,
	// and Cond.IfMatch only.
	Check bool
}

// HasData reports whether the entry carries a block's data: a write,
// not a deletion or a check.
func (it PutItem) HasData() bool { return !it.Delete && !it.Check }

func (s *Service) putOp(it PutItem, bucket bucketer.Bucket) (Op, error) {
	if err := it.ID.Validate(); err != nil {
		return Op{}, err
	}
	if !it.HasData() {
		if it.Data != nil || it.Cond.IfNoneMatchAny || it.Delete && it.Check {
			return Op{}, wire.E(wire.KindInvalid, wire.CodeBadRequest, "a deletion or check has no data and no create-only condition")
		}
		kind := OpDelete
		if it.Check {
			kind = OpCheck
		}
		return Op{Kind: kind, ID: it.ID, ProofHash: it.Proof.Hash(), Cond: it.Cond}, nil
	}
	if err := s.checkSize(it.Data); err != nil {
		return Op{}, err
	}
	if it.KeepBucket {
		if it.Cond.IfMatch == nil {
			return Op{}, wire.E(wire.KindInvalid, wire.CodeBadRequest, "an overwrite that keeps the bucket needs If-Match")
		}
		bucket = bucketer.Bucket{}
	}
	return Op{Kind: OpPut, ID: it.ID, ProofHash: it.Proof.Hash(), Data: it.Data, ETag: wire.ETagOf(it.Data), Bucket: bucket, Cond: it.Cond}, nil
}

// MayCreate reports whether a put can create a block: one without
// If-Match. Those are what quotas and the capacity cap count.
func (it PutItem) MayCreate() bool { return it.HasData() && it.Cond.IfMatch == nil }

// Put creates or overwrites one block. The result's Status tells which;
// a failed proof or precondition is returned as an error of its kind with
// the result alongside (its ETag is the block's current one).
func (s *Service) Put(ctx context.Context, it PutItem) (Result, error) {
	op, err := s.putOp(it, s.bk.CurrentBucket())
	if err != nil {
		return Result{}, err
	}
	n := 0
	if it.MayCreate() {
		n = 1
	}
	release, err := s.reserve(ctx, n)
	if err != nil {
		return Result{}, err
	}
	rs, err := s.commitAll(ctx, []Op{op})
	release(rs)
	if err != nil {
		return Result{}, err
	}
	return rs[0], rs[0].Status.Err()
}

// PutBatch writes up to Limits.WriteBatch blocks in one commit. A block
// that fails validation fails the whole request, so nothing is written
// half-understood; proof and precondition failures are per block.
func (s *Service) PutBatch(ctx context.Context, items []PutItem) ([]Result, error) {
	return s.Batch(ctx, items, false)
}

// Batch is PutBatch with deletions and checks among the items
// (PutItem.Delete, PutItem.Check; up to Limits.RenewBatch of them) and,
// with atomic, all-or-nothing: if one put or check fails, nothing of the
// batch applies (StatusAborted), and the deletions apply only when every
// put did. A client commits a change this way in one round: new blocks,
// the compare-and-swap of the block that refers to them, checks of the
// blocks it refers to that other requests still carry, and the removal
// of what it no longer refers to.
func (s *Service) Batch(ctx context.Context, items []PutItem, atomic bool) ([]Result, error) {
	if len(items) == 0 {
		return nil, wire.E(wire.KindInvalid, wire.CodeBadRequest, "batch is empty")
	}
	puts := 0
	for _, it := range items {
		if it.HasData() {
			puts++
		}
	}
	if puts > s.limits.WriteBatch {
		return nil, wire.E(wire.KindInvalid, wire.CodeBatchTooLarge, fmt.Sprintf("batch holds %d blocks, the limit is %d", puts, s.limits.WriteBatch))
	}
	if refs := len(items) - puts; refs > s.limits.RenewBatch {
		return nil, wire.E(wire.KindInvalid, wire.CodeBatchTooLarge, fmt.Sprintf("batch deletes or checks %d blocks, the limit is %d", refs, s.limits.RenewBatch))
	}
	var group uint64
	if atomic {
		// Random, so that the groups of requests committed together
		// never meet; zero means none.
		for group == 0 {
			group = rand.Uint64()
		}
	}
	bucket := s.bk.CurrentBucket()
	ops := make([]Op, len(items))
	n := 0
	for i, it := range items {
		op, err := s.putOp(it, bucket)
		if err != nil {
			return nil, fmt.Errorf("block %d of the batch: %w", i, err)
		}
		op.Group = group
		ops[i] = op
		if it.MayCreate() {
			n++
		}
	}
	release, err := s.reserve(ctx, n)
	if err != nil {
		return nil, err
	}
	rs, err := s.commitAll(ctx, ops)
	release(rs)
	return rs, err
}

// Delete removes one block.
func (s *Service) Delete(ctx context.Context, id wire.ID, w wire.WriteProof, c Cond) (Result, error) {
	if err := id.Validate(); err != nil {
		return Result{}, err
	}
	release, err := s.reserve(ctx, 0)
	if err != nil {
		return Result{}, err
	}
	rs, err := s.commitAll(ctx, []Op{{Kind: OpDelete, ID: id, ProofHash: w.Hash(), Cond: c}})
	release(rs)
	if err != nil {
		return Result{}, err
	}
	return rs[0], rs[0].Status.Err()
}

// RenewItem is one block of a renew request.
type RenewItem struct {
	ID    wire.ID
	Proof wire.RenewProof
}

// Renew stamps up to Limits.RenewBatch blocks with the current bucket.
// Results are per block: renewed, already current, not found or forbidden.
func (s *Service) Renew(ctx context.Context, items []RenewItem) ([]Result, error) {
	if len(items) == 0 {
		return nil, wire.E(wire.KindInvalid, wire.CodeBadRequest, "renew request names no blocks")
	}
	if len(items) > s.limits.RenewBatch {
		return nil, wire.E(wire.KindInvalid, wire.CodeBatchTooLarge, fmt.Sprintf("renew request names %d blocks, the limit is %d", len(items), s.limits.RenewBatch))
	}
	bucket := s.bk.CurrentBucket()
	ops := make([]Op, len(items))
	for i, it := range items {
		if err := it.ID.Validate(); err != nil {
			return nil, fmt.Errorf("block %d of the request: %w", i, err)
		}
		ops[i] = Op{Kind: OpRenew, ID: it.ID, ProofHash: it.Proof.Hash(), Bucket: bucket}
	}
	return s.commitAll(ctx, ops)
}

// Get reads a block, appending its data to dst[:0].
func (s *Service) Get(ctx context.Context, id wire.ID, dst []byte) ([]byte, wire.ETag, error) {
	if err := id.Validate(); err != nil {
		return nil, wire.ETag{}, err
	}
	return s.store.Read(ctx, id, dst)
}

// Lend calls fn with a block's data in place when the store can lend it
// (see Lender), and reports false without calling fn when it cannot.
func (s *Service) Lend(ctx context.Context, id wire.ID, fn func(data []byte, etag wire.ETag) error) (bool, error) {
	l, ok := s.store.(Lender)
	if !ok {
		return false, nil
	}
	if err := id.Validate(); err != nil {
		return true, err
	}
	return true, l.Lend(ctx, id, fn)
}

// ReadBatch is the most blocks one ReadMany may read: about 4 MiB of
// them (wire.ReadBatchFor).
func (s *Service) ReadBatch() int { return wire.ReadBatchFor(s.blockSize) }

// ReadMany reads up to ReadBatch blocks, calling fn for each in order as
// ManyReader says; buf, of the block size, holds each block in turn for a
// store that reads one at a time.
func (s *Service) ReadMany(ctx context.Context, ids []wire.ID, buf []byte, fn func(i int, data []byte, etag wire.ETag, err error) error) error {
	if len(ids) > s.ReadBatch() {
		return wire.E(wire.KindInvalid, wire.CodeBatchTooLarge, fmt.Sprintf("read request names %d blocks, the limit is %d", len(ids), s.ReadBatch()))
	}
	for i, id := range ids {
		if err := id.Validate(); err != nil {
			return fmt.Errorf("block %d of the request: %w", i, err)
		}
	}
	if m, ok := s.store.(ManyReader); ok {
		return m.ReadMany(ctx, ids, fn)
	}
	for i, id := range ids {
		data, etag, err := s.store.Read(ctx, id, buf[:0])
		if err != nil && wire.KindOf(err) != wire.KindNotFound {
			return err
		}
		if err := fn(i, data, etag, err); err != nil {
			return err
		}
	}
	return nil
}

// Head returns a block's ETag.
func (s *Service) Head(ctx context.Context, id wire.ID) (wire.ETag, error) {
	if err := id.Validate(); err != nil {
		return wire.ETag{}, err
	}
	return s.store.Stat(ctx, id)
}

// Purge deletes every block whose bucket has left the live set. Guards
// against a wrong key or a jumping clock live in the scheduler, which is
// the only caller that runs unattended.
func (s *Service) Purge(ctx context.Context, dryRun bool) (int64, error) {
	n, err := s.store.Purge(ctx, s.bk.Live(), dryRun)
	if s.capacity != nil && !dryRun {
		// Count again rather than subtract: another instance may have
		// purged or written too.
		s.capacity.stale()
	}
	return n, err
}

func (s *Service) commitAll(ctx context.Context, ops []Op) ([]Result, error) {
	rs, err := s.commit.Commit(ctx, ops)
	if err != nil {
		if wire.KindOf(err) == wire.KindInternal {
			// The cause stays in the wrapped error for the server's log;
			// the client learns only that the store is unavailable.
			return nil, wire.Wrap(wire.KindUnavailable, wire.CodeUnavailable, "store unavailable, retry later", err)
		}
		return nil, err
	}
	if len(rs) != len(ops) {
		return nil, fmt.Errorf("blobstore: committer returned %d results for %d ops", len(rs), len(ops))
	}
	return rs, nil
}

// Capacity cap. The count of blocks is read from the store's Stats at
// the first write, and again every capacityRecount (other instances
// write to the same store, and purges delete); in between, this
// instance adds what it creates and subtracts what it deletes. A write
// reserves room for every block it may create before its commit, so
// concurrent writes cannot overshoot the cap together; the reservation
// is settled against what the commit actually created.

// capacityRecount bounds how stale the count may grow.
const capacityRecount = time.Minute

type capacity struct {
	max   int64
	count atomic.Int64

	mu      sync.Mutex
	counted time.Time // zero: count afresh before the next write
}

func (c *capacity) stale() {
	c.mu.Lock()
	c.counted = time.Time{}
	c.mu.Unlock()
}

// recount reads the block count from the store when it is due.
func (s *Service) recount(ctx context.Context) error {
	c := s.capacity
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.counted.IsZero() && time.Since(c.counted) < capacityRecount {
		return nil
	}
	st, err := s.store.Stats(ctx)
	if err != nil {
		return wire.Wrap(wire.KindUnavailable, wire.CodeUnavailable, "store unavailable, retry later", fmt.Errorf("count blocks for the capacity cap: %w", err))
	}
	c.count.Store(st.Blocks)
	c.counted = time.Now()
	return nil
}

// reserve makes room for n new blocks, or refuses with KindFull. The
// returned function settles the reservation with the commit's results,
// counting what they created and deleted (nil: the outcome is unknown).
func (s *Service) reserve(ctx context.Context, n int) (func([]Result), error) {
	c := s.capacity
	if c == nil {
		return func([]Result) {}, nil
	}
	if n > 0 {
		if err := s.recount(ctx); err != nil {
			return nil, err
		}
		for {
			cur := c.count.Load()
			if cur+int64(n) > c.max {
				return nil, errFull(c.max)
			}
			if c.count.CompareAndSwap(cur, cur+int64(n)) {
				break
			}
		}
	}
	return func(rs []Result) {
		delta := -n
		for _, r := range rs {
			switch r.Status {
			case StatusCreated:
				delta++
			case StatusDeleted:
				delta--
			}
		}
		c.count.Add(int64(delta))
		if rs == nil {
			// An unknown outcome: the store knows what it holds.
			c.stale()
		}
	}, nil
}

// HasRoom reports, as an error of KindFull, a store too full for n more
// blocks. It reserves nothing: a caller that must not act on a write the
// store will refuse (spending a token for it) asks first.
func (s *Service) HasRoom(ctx context.Context, n int) error {
	c := s.capacity
	if c == nil || n == 0 {
		return nil
	}
	if err := s.recount(ctx); err != nil {
		return err
	}
	if c.count.Load()+int64(n) > c.max {
		return errFull(c.max)
	}
	return nil
}

func errFull(max int64) error {
	return wire.E(wire.KindFull, wire.CodeFull, fmt.Sprintf("the store is full (it holds at most %d blocks): delete blocks, or wait for unrenewed ones to expire", max))
}

// MaxBlocks returns the capacity cap (0: none).
func (s *Service) MaxBlocks() int64 {
	if s.capacity == nil {
		return 0
	}
	return s.capacity.max
}
