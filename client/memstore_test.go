package client

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/blindstore/blindstore/wire"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
)

// MemoryRemote is a Store that keeps its blocks in memory: the account's
// logic runs over it without a server, a database or a network. It lives
// in the tests because it borrows the server core (blobstore), which the
// client itself never imports. It
// decides every write with blobstore.Plan, the function every store of
// the server decides with, so it has the server's semantics: fixed-size
// blocks, create-only and If-Match writes by ETag, write proofs kept as
// their hash and checked on overwrite, deletion and renewal, atomic
// groups that apply whole or not at all, and renewal into the current
// period, with blocks purged once their period leaves the retention
// window (Advance). Its answers are turned into errors of the Kinds
// *Remote gives for the same HTTP answers.
type MemoryRemote struct {
	mu     sync.Mutex
	cfg    ServerConfig
	blocks map[wire.ID]memBlock
}

type memBlock struct {
	meta blobstore.Meta
	data []byte
}

var _ Store = (*MemoryRemote)(nil)

// NewMemoryRemote returns an empty store of blocks of blockSize bytes,
// in period 1, with the limits of a server that takes atomic batches and
// does not charge for writes.
func NewMemoryRemote(blockSize int) (*MemoryRemote, error) {
	if err := wire.ValidateBlockSize(blockSize); err != nil {
		return nil, fmt.Errorf("client: memory store: %w", err)
	}
	cfg := ServerConfig{Config: wire.Config{Version: "memory", BlockSize: blockSize, PeriodSeconds: 3600, RetentionPeriods: 3, CurrentPeriod: 1}}
	cfg.Limits.RenewBatch = blobstore.DefaultLimits.RenewBatch
	cfg.Limits.WriteBatch = blobstore.DefaultLimits.WriteBatch
	cfg.Limits.MaxBatchRefs = 1024
	cfg.Limits.MaxManifestBytes = 1 << 20
	return &MemoryRemote{cfg: cfg, blocks: make(map[wire.ID]memBlock)}, nil
}

// URL implements Store.
func (m *MemoryRemote) URL() string { return "memory:" }

// Config implements Store: a copy, with the current period.
func (m *MemoryRemote) Config(context.Context) (*ServerConfig, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.cfg
	return &c, nil
}

// CurrentPeriod implements Store.
func (m *MemoryRemote) CurrentPeriod(context.Context) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfg.CurrentPeriod, nil
}

// Advance moves the store n periods on and purges the blocks last
// renewed in a period that left the retention window, as the server's
// purge does.
func (m *MemoryRemote) Advance(n uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cfg.CurrentPeriod += n
	for id, b := range m.blocks {
		if periodOf(b.meta.Bucket)+uint64(m.cfg.RetentionPeriods) <= m.cfg.CurrentPeriod {
			delete(m.blocks, id)
		}
	}
}

// Len returns how many blocks the store holds.
func (m *MemoryRemote) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.blocks)
}

// bucket stamps period p. The server's buckets are keyed so that a copy
// of its database does not tell periods apart; in memory there is no
// copy to protect, and the period is read back to purge.
func bucket(p uint64) bucketer.Bucket {
	var b bucketer.Bucket
	binary.BigEndian.PutUint64(b[:], p+1) // never the zero bucket, which means "keep"
	return b
}

func periodOf(b bucketer.Bucket) uint64 { return binary.BigEndian.Uint64(b[:]) - 1 }

// apply plans ops against the blocks they touch and applies the net
// changes, under the lock: one transaction of the server.
func (m *MemoryRemote) apply(ops []blobstore.Op) []blobstore.Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := make(map[wire.ID]blobstore.Meta, len(ops))
	for _, op := range ops {
		if b, ok := m.blocks[op.ID]; ok {
			cur[op.ID] = b.meta
		}
	}
	results, changes := blobstore.Plan(ops, cur)
	for _, c := range changes {
		switch {
		case c.New == nil:
			delete(m.blocks, c.ID)
		case c.Data != nil:
			m.blocks[c.ID] = memBlock{meta: *c.New, data: append([]byte(nil), c.Data...)}
		default:
			b := m.blocks[c.ID]
			b.meta = *c.New
			m.blocks[c.ID] = b
		}
	}
	return results
}

func (m *MemoryRemote) checkSize(data []byte) error {
	if len(data) != m.cfg.BlockSize {
		return fmt.Errorf("client: batch block of %d bytes, want %d", len(data), m.cfg.BlockSize)
	}
	return nil
}

func (m *MemoryRemote) current() bucketer.Bucket {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bucket(m.cfg.CurrentPeriod)
}

func cond(c Cond) blobstore.Cond {
	return blobstore.Cond{IfNoneMatchAny: c.CreateOnly, IfMatch: c.IfMatch}
}

// Get implements Store.
func (m *MemoryRemote) Get(_ context.Context, id wire.ID, dst []byte) ([]byte, wire.ETag, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blocks[id]
	if !ok {
		return nil, wire.ETag{}, &Error{Kind: KindNotFound, Msg: "no such block"}
	}
	return append(dst[:0], b.data...), wire.ETagOf(b.data), nil
}

func (m *MemoryRemote) getUnhashed(ctx context.Context, id wire.ID, dst []byte) ([]byte, error) {
	data, _, err := m.Get(ctx, id, dst)
	return data, err
}

func (m *MemoryRemote) parallelism() int { return DefaultParallel }

// Put implements Store, as Remote.Put reads the server's answer.
func (m *MemoryRemote) Put(_ context.Context, id wire.ID, w wire.WriteProof, data []byte, c Cond) (wire.ETag, error) {
	want := wire.ETagOf(data)
	if len(data) != m.cfg.BlockSize {
		return want, errorf(KindOther, "the server refused the request: bad_size (a block of %d bytes, not %d)", len(data), m.cfg.BlockSize)
	}
	r := m.apply([]blobstore.Op{{Kind: blobstore.OpPut, ID: id, ProofHash: w.Hash(), Data: data, ETag: want, Bucket: m.current(), Cond: cond(c)}})[0]
	if r.Status == blobstore.StatusPrecondition && r.ETag == want {
		return want, nil // our own write, landed before
	}
	return want, resultErr(r)
}

// Delete implements Store.
func (m *MemoryRemote) Delete(_ context.Context, id wire.ID, w wire.WriteProof, ifMatch *wire.ETag) error {
	r := m.apply([]blobstore.Op{{Kind: blobstore.OpDelete, ID: id, ProofHash: w.Hash(), Cond: blobstore.Cond{IfMatch: ifMatch}}})[0]
	if r.Status == blobstore.StatusNotFound {
		return nil
	}
	return resultErr(r)
}

// DeleteMany deletes items one by one, each whatever the others' fate,
// as the server's non-atomic batch does.
func (m *MemoryRemote) DeleteMany(ctx context.Context, items []CommitItem) error {
	var first error
	for _, it := range items {
		if err := m.Delete(ctx, it.ID, it.Proof, it.Cond.IfMatch); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// resultErr is the error Remote makes of the answer to one op.
func resultErr(r blobstore.Result) error {
	switch r.Status {
	case blobstore.StatusCreated, blobstore.StatusReplaced, blobstore.StatusDeleted, blobstore.StatusChecked:
		return nil
	case blobstore.StatusNotFound:
		return &Error{Kind: KindNotFound, Msg: "no such block"}
	case blobstore.StatusForbidden:
		return &Error{Kind: KindAuth, Msg: "the server refused the block's write proof"}
	case blobstore.StatusPrecondition:
		pe := &PreconditionError{}
		if r.ETag != (wire.ETag{}) {
			e := r.ETag
			pe.Current = &e
		}
		return &Error{Kind: KindConflict, Err: pe}
	}
	return errorf(KindOther, "the server refused the request: %s", r.Status)
}

// PutBatch implements Store: create-only writes, in batches of at most
// write_batch, each entry applied or refused on its own.
func (m *MemoryRemote) PutBatch(_ context.Context, items []BatchItem) error {
	for len(items) > 0 {
		n := min(len(items), m.cfg.Limits.WriteBatch)
		ops := make([]blobstore.Op, n)
		b := m.current()
		for i := range items[:n] {
			it := &items[i]
			if err := m.checkSize(it.Data); err != nil {
				return err
			}
			ops[i] = blobstore.Op{Kind: blobstore.OpPut, ID: it.ID, ProofHash: it.Proof.Hash(), Data: it.Data, ETag: it.etag(), Bucket: b, Cond: blobstore.Cond{IfNoneMatchAny: true}}
		}
		for i, r := range m.apply(ops) {
			switch {
			case r.Status == blobstore.StatusCreated || r.Status == blobstore.StatusReplaced:
			case r.Status == blobstore.StatusPrecondition && r.ETag == ops[i].ETag:
				// Landed by an earlier attempt.
			case r.Status == blobstore.StatusPrecondition:
				return &Error{Kind: KindConflict, Msg: "a new block's random id is taken", Err: &PreconditionError{}}
			case r.Status == blobstore.StatusForbidden:
				return errorf(KindAuth, "the server refused a block's write proof")
			default:
				return errorf(KindNetwork, "the server answered %s for a block of a batch", r.Status)
			}
		}
		items = items[n:]
	}
	return nil
}

// Commit implements Store: items are one atomic group, and the outcome is
// read by the very code that reads the server's (commitOutcome).
func (m *MemoryRemote) Commit(_ context.Context, items []CommitItem) error {
	want := make([]wire.ETag, len(items))
	ops := make([]blobstore.Op, len(items))
	b := m.current()
	for i, it := range items {
		op := blobstore.Op{ID: it.ID, ProofHash: it.Proof.Hash(), Cond: cond(it.Cond), Group: 1}
		switch {
		case it.Data != nil:
			if err := m.checkSize(it.Data); err != nil {
				return err
			}
			if want[i] = it.ETag; want[i] == (wire.ETag{}) {
				want[i] = wire.ETagOf(it.Data)
			}
			op.Kind, op.Data, op.ETag, op.Bucket = blobstore.OpPut, it.Data, want[i], b
		case it.Check:
			op.Kind = blobstore.OpCheck
		default:
			op.Kind = blobstore.OpDelete
		}
		ops[i] = op
	}
	manifest := commitManifest(items)
	results := make([]wire.BatchResult, len(items))
	for i, r := range m.apply(ops) {
		results[i] = wire.BatchResult{ID: manifest.Blocks[i].ID, Status: r.Status.HTTPStatus()}
		if r.ETag != (wire.ETag{}) {
			results[i].ETag = r.ETag.String()
		}
	}
	return commitOutcome(items, manifest, want, results)
}

// Renew implements Store.
func (m *MemoryRemote) Renew(_ context.Context, items []RenewItem) (RenewResult, error) {
	var res RenewResult
	b := m.current()
	ops := make([]blobstore.Op, len(items))
	for i, it := range items {
		ops[i] = blobstore.Op{Kind: blobstore.OpRenew, ID: it.ID, ProofHash: it.Proof.Hash(), Bucket: b}
	}
	for i, r := range m.apply(ops) {
		switch r.Status {
		case blobstore.StatusRenewed:
			res.Renewed++
		case blobstore.StatusCurrent:
			res.Current++
		case blobstore.StatusNotFound:
			res.Missing = append(res.Missing, items[i].ID)
		default:
			res.Refused = append(res.Refused, items[i].ID)
		}
	}
	return res, nil
}
