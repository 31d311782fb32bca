package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/wire"
	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

func encodeRecord(m *blobstore.Meta) []byte {
	v := make([]byte, 0, recordSize)
	v = append(v, m.ProofHash[:]...)
	return append(v, m.ETag[:]...)
}

func decodeRecord(v []byte, bucket []byte) (blobstore.Meta, error) {
	var m blobstore.Meta
	if len(v) != recordSize || len(bucket) != bucketer.BucketSize {
		return m, fmt.Errorf("a lease record has %d bytes, want %d; the file is damaged", len(v), recordSize)
	}
	copy(m.ProofHash[:], v)
	copy(m.ETag[:], v[wire.HashSize:])
	copy(m.Bucket[:], bucket)
	return m, nil
}

// find returns the time bucket holding id and its lease record, probing
// every time bucket present. The slices point into the transaction.
func find(tx *bbolt.Tx, id []byte) (bucket, record []byte) {
	c := tx.Bucket(bucketLeases).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v != nil {
			continue // not a bucket; checkShape would report it
		}
		if rec := c.Bucket().Bucket(k).Get(id); rec != nil {
			return k, rec
		}
	}
	return nil, nil
}

// Read appends the block's data to dst[:0]. The copy is made inside the
// read transaction: bbolt's slices point into the memory map, which a
// later write may remap.
func (s *Store) Read(ctx context.Context, id wire.ID, dst []byte) ([]byte, wire.ETag, error) {
	var etag wire.ETag
	err := s.Lend(ctx, id, func(data []byte, e wire.ETag) error {
		dst, etag = append(dst[:0], data...), e
		return nil
	})
	if err != nil {
		return nil, wire.ETag{}, err
	}
	return dst, etag, nil
}

// Lend calls fn with the block's data where it lies in the memory map,
// inside the read transaction, and returns fn's error as it is. While fn
// runs, the transaction holds back a remap of a growing file (so every
// commit that grows it) and a seal's scrub (so every new reader): fn
// must not wait on anything slow, a client least of all.
func (s *Store) Lend(ctx context.Context, id wire.ID, fn func(data []byte, etag wire.ETag) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var fnErr error
	err := s.view(func(tx *bbolt.Tx) error {
		bucket, rec := find(tx, id[:])
		if rec == nil {
			return blobstore.ErrNotFound
		}
		m, err := decodeRecord(rec, bucket)
		if err != nil {
			return err
		}
		var data []byte
		if tb := tx.Bucket(bucketData).Bucket(bucket); tb != nil {
			if nb := tb.Bucket(id[:]); nb != nil {
				data = nb.Get(id[:])
			}
		}
		if data == nil {
			return errors.New("a block has a record but no data; the file is damaged")
		}
		fnErr = fn(data, m.ETag)
		return nil
	})
	if err != nil {
		return wrapErr("read", err)
	}
	return fnErr
}

// Stat returns the block's ETag.
func (s *Store) Stat(ctx context.Context, id wire.ID) (wire.ETag, error) {
	if err := ctx.Err(); err != nil {
		return wire.ETag{}, err
	}
	var etag wire.ETag
	err := s.view(func(tx *bbolt.Tx) error {
		bucket, rec := find(tx, id[:])
		if rec == nil {
			return blobstore.ErrNotFound
		}
		m, err := decodeRecord(rec, bucket)
		etag = m.ETag
		return err
	})
	if err != nil {
		return wire.ETag{}, wrapErr("stat", err)
	}
	return etag, nil
}

// wrapErr adds context to internal errors and passes blobstore errors
// (not found) and context errors through as they are, so their kind
// survives unchanged.
func wrapErr(op string, err error) error {
	var be *wire.Error
	if errors.As(err, &be) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("bolt: %s: %w", op, err)
}

// Apply commits ops in one transaction, shared with other callers' Applys
// that arrive while a commit is in progress (see group).
func (s *Store) Apply(ctx context.Context, ops []blobstore.Op) ([]blobstore.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(ops) == 0 {
		return []blobstore.Result{}, nil
	}
	s.writers.Began()
	for i := range ops {
		if err := s.checkOp(&ops[i]); err != nil {
			return nil, fmt.Errorf("op %d of the batch: %w", i, err)
		}
	}
	switch s.mode {
	case commitSolo:
		var rs []blobstore.Result
		err := s.db.Update(func(tx *bbolt.Tx) error {
			var err error
			rs, err, _ = applyOps(ctx, newTxState(tx), ops)
			return err
		})
		if err != nil {
			return nil, wrapErr("apply", err)
		}
		return rs, nil
	case commitBoltBatch:
		var rs []blobstore.Result
		// Batch may run fn more than once; each run recomputes rs from
		// the transaction it is given, so the last run's results stand.
		// Callers share the transaction without sharing a txState, so
		// every renewal copies data rather than move a subtree another
		// caller may have written (see txState).
		err := s.db.Batch(func(tx *bbolt.Tx) error {
			st := newTxState(tx)
			st.copyAll = true
			var err error
			rs, err, _ = applyOps(ctx, st, ops)
			return err
		})
		if err != nil {
			return nil, wrapErr("apply", err)
		}
		return rs, nil
	}
	return s.group.apply(s, ctx, ops)
}

// checkOp refuses what the service would never send, so that nothing but
// block-sized data can reach the file.
func (s *Store) checkOp(op *blobstore.Op) error {
	switch op.Kind {
	case blobstore.OpPut:
		if len(op.Data) != s.blockSize {
			return wire.E(wire.KindInvalid, wire.CodeBadSize,
				fmt.Sprintf("block data must be exactly %d bytes, got %d", s.blockSize, len(op.Data)))
		}
	case blobstore.OpDelete, blobstore.OpRenew, blobstore.OpCheck:
	default:
		return wire.E(wire.KindInvalid, wire.CodeBadRequest, "unknown operation")
	}
	return nil
}

// txState is one write transaction as the ops applied in it see it.
//
// written holds the blocks whose data subtree was created or written in
// this transaction. bbolt's MoveBucket moves a subtree by copying its
// root pointer as last committed, so moving a subtree written in the same
// transaction would silently lose the write (checked by
// TestMoveBucketLosesUncommittedWrites). Such a block is moved by copying
// its data instead; it is being written anyway.
type txState struct {
	tx       *bbolt.Tx
	leases   *bbolt.Bucket
	data     *bbolt.Bucket
	unsealed *bbolt.Bucket
	unmerged *bbolt.Bucket
	written  map[wire.ID]struct{}
	copyAll  bool // move every block by copying: written is not complete
}

func newTxState(tx *bbolt.Tx) *txState {
	return &txState{tx: tx, leases: tx.Bucket(bucketLeases), data: tx.Bucket(bucketData),
		unsealed: tx.Bucket(bucketUnsealed), unmerged: tx.Bucket(bucketUnmerged), written: map[wire.ID]struct{}{}}
}

// applyOps decides ops against the state in st and writes the changes.
// It reports tainted when it failed after writing part of its changes,
// so that the transaction must be rolled back; an error before any write
// leaves the transaction as it found it, fit for other callers' ops.
func applyOps(ctx context.Context, st *txState, ops []blobstore.Op) (rs []blobstore.Result, err error, tainted bool) {
	if err := ctx.Err(); err != nil {
		return nil, err, false
	}
	// Blocks are looked up and written in id order: a batch of renewals
	// names thousands of random ids, and bbolt inserts each key into its
	// node's sorted slice, so in random order a batch's inserts into a
	// fresh time bucket cost n² moves, and each lookup starts from a
	// cold leaf. Results stay in op order; bbolt lays a commit's pages
	// out in key order whatever the order of writes.
	ids := make([]wire.ID, len(ops))
	for i := range ops {
		ids[i] = ops[i].ID
	}
	slices.SortFunc(ids, func(a, b wire.ID) int { return bytes.Compare(a[:], b[:]) })
	ids = slices.Compact(ids)
	current := make(map[wire.ID]blobstore.Meta, len(ids))
	probe := newProbe(st.tx)
	for _, id := range ids {
		if bucket, rec := probe.find(id[:]); rec != nil {
			m, err := decodeRecord(rec, bucket)
			if err != nil {
				return nil, err, false
			}
			current[id] = m
		}
	}
	rs, changes := blobstore.Plan(ops, current)
	slices.SortFunc(changes, func(a, b blobstore.Change) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	for i := range changes {
		if err := st.writeChange(&changes[i]); err != nil {
			return nil, err, true
		}
	}
	return rs, nil, false
}

// probe looks blocks up in the time buckets present when it was made,
// trying first the one where it last found a block: a batch's blocks
// mostly share a time bucket (an account's blocks were last renewed
// together). It must not outlive a write that creates or drops a time
// bucket.
type probe struct {
	names   [][]byte
	buckets []*bbolt.Bucket
	last    int
}

func newProbe(tx *bbolt.Tx) *probe {
	p := &probe{}
	c := tx.Bucket(bucketLeases).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v != nil {
			continue // not a bucket; checkShape would report it
		}
		p.names = append(p.names, k)
		p.buckets = append(p.buckets, tx.Bucket(bucketLeases).Bucket(k))
	}
	return p
}

// find does what the function find does, over the probe's time buckets.
func (p *probe) find(id []byte) (bucket, record []byte) {
	for j := range p.buckets {
		i := (p.last + j) % len(p.buckets)
		if rec := p.buckets[i].Get(id); rec != nil {
			p.last = i
			return p.names[i], rec
		}
	}
	return nil, nil
}

// testHookAfterRecord, when set by a test, runs after a change's record
// is written, so a test can make a write fail half way.
var testHookAfterRecord func(*blobstore.Change) error

// writeChange writes one block's net change and names the block in the
// unsealed bucket. bbolt keeps references to values until commit: ch.Data
// is the caller's op data, which the caller holds until Apply returns, and
// every other value is freshly allocated.
func (st *txState) writeChange(ch *blobstore.Change) error {
	id := ch.ID[:]
	if ch.New == nil {
		if err := st.unlease(ch.Old.Bucket[:], id); err != nil {
			return err
		}
		if err := st.deleteData(ch.Old.Bucket[:], id); err != nil {
			return err
		}
		return st.markUnsealed(id, false, ch.Old.Bucket[:])
	}
	moved := ch.Old != nil && ch.Old.Bucket != ch.New.Bucket
	var left []byte
	if moved {
		left = ch.Old.Bucket[:]
		if err := st.unlease(ch.Old.Bucket[:], id); err != nil {
			return err
		}
	}
	lb, db, err := st.timeBucket(ch.New.Bucket[:])
	if err != nil {
		return err
	}
	if err := lb.Put(id, encodeRecord(ch.New)); err != nil {
		return err
	}
	if testHookAfterRecord != nil {
		if err := testHookAfterRecord(ch); err != nil {
			return err
		}
	}
	data := ch.Data
	if moved && data == nil {
		// A renewal into another time bucket: Plan gives every put data.
		if _, ok := st.written[ch.ID]; !ok && !st.copyAll {
			tb := st.data.Bucket(ch.Old.Bucket[:])
			if tb == nil {
				return errors.New("a block has a record but no data; the file is damaged")
			}
			if err := tb.MoveBucket(id, db); err != nil {
				return err
			}
			if err := st.dropIfEmpty(ch.Old.Bucket[:]); err != nil {
				return err
			}
			return st.markUnsealed(id, false, left)
		}
		if tb := st.data.Bucket(ch.Old.Bucket[:]); tb != nil {
			if nb := tb.Bucket(id); nb != nil {
				data = bytes.Clone(nb.Get(id))
			}
		}
		if data == nil {
			return errors.New("a block has a record but no data; the file is damaged")
		}
	}
	if data == nil {
		return st.markUnsealed(id, false, left)
	}
	if moved {
		if err := st.deleteData(ch.Old.Bucket[:], id); err != nil {
			return err
		}
	}
	nb, err := db.CreateBucketIfNotExists(id)
	if err != nil {
		return err
	}
	st.written[ch.ID] = struct{}{}
	if err := nb.Put(id, data); err != nil {
		return err
	}
	return st.markUnsealed(id, true, left)
}

// timeBucket returns the lease and data subtrees of a time bucket,
// creating them if needed.
func (st *txState) timeBucket(bucket []byte) (lb, db *bbolt.Bucket, err error) {
	if lb, err = st.leases.CreateBucketIfNotExists(bucket); err != nil {
		return nil, nil, err
	}
	if db, err = st.data.CreateBucketIfNotExists(bucket); err != nil {
		return nil, nil, err
	}
	return lb, db, nil
}

// unlease removes id's record from its time bucket.
func (st *txState) unlease(bucket, id []byte) error {
	if lb := st.leases.Bucket(bucket); lb != nil {
		return lb.Delete(id)
	}
	return nil
}

// deleteData removes id's data from its time bucket, and the time bucket
// once empty.
func (st *txState) deleteData(bucket, id []byte) error {
	tb := st.data.Bucket(bucket)
	if tb == nil {
		return nil
	}
	if err := tb.DeleteBucket(id); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
		return err
	}
	return st.dropIfEmpty(bucket)
}

// dropIfEmpty deletes a time bucket that holds no more blocks, so Stats
// and lookups never meet empty ones.
func (st *txState) dropIfEmpty(bucket []byte) error {
	lb := st.leases.Bucket(bucket)
	if lb != nil {
		if k, _ := lb.Cursor().First(); k != nil {
			return nil
		}
		if err := st.leases.DeleteBucket(bucket); err != nil {
			return err
		}
	}
	if err := st.data.DeleteBucket(bucket); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
		return err
	}
	return nil
}

// errDamagedBucket reports a time bucket name of the wrong size. Nothing
// is ever deleted on the word of a damaged file.
var errDamagedBucket = errors.New("a time bucket name has the wrong size; the file is damaged")

// expiredBuckets lists the time buckets present and not in live.
func expiredBuckets(tx *bbolt.Tx, live bucketer.LiveSet) ([][]byte, error) {
	var out [][]byte
	err := tx.Bucket(bucketLeases).ForEachBucket(func(k []byte) error {
		if len(k) != bucketer.BucketSize {
			return errDamagedBucket
		}
		if !live.Contains(bucketer.Bucket(k)) {
			out = append(out, bytes.Clone(k))
		}
		return nil
	})
	return out, err
}

// Purge drops every time bucket outside live, one transaction per time
// bucket. Dropping a subtree frees its pages without rewriting any page
// of the live ones, so the cost follows the expired blocks alone: bbolt
// reads one page header per expired block to free its pages.
func (s *Store) Purge(ctx context.Context, live bucketer.LiveSet, dryRun bool) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var total int64
	if dryRun {
		err := s.view(func(tx *bbolt.Tx) error {
			leases := tx.Bucket(bucketLeases)
			expired, err := expiredBuckets(tx, live)
			for _, name := range expired {
				total += int64(leases.Bucket(name).Stats().KeyN)
			}
			return err
		})
		if err != nil {
			return 0, wrapErr("purge (dry run)", err)
		}
		return total, nil
	}
	var expired [][]byte
	err := s.view(func(tx *bbolt.Tx) error {
		var err error
		expired, err = expiredBuckets(tx, live)
		return err
	})
	if err != nil {
		return 0, wrapErr("purge", err)
	}
	for _, name := range expired {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var n int64
		err := s.db.Update(func(tx *bbolt.Tx) error {
			n = 0
			leases, data := tx.Bucket(bucketLeases), tx.Bucket(bucketData)
			lb := leases.Bucket(name)
			if lb == nil {
				return nil // emptied since it was listed
			}
			n = int64(lb.Stats().KeyN)
			if err := leases.DeleteBucket(name); err != nil {
				return err
			}
			if err := data.DeleteBucket(name); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
				return err
			}
			return nil
		})
		if err != nil {
			return total, wrapErr("purge", err)
		}
		total += n
	}
	return total, nil
}

// Stats counts blocks per time bucket from the page headers of the lease
// subtrees, without reading records.
func (s *Store) Stats(ctx context.Context) (blobstore.Stats, error) {
	if err := ctx.Err(); err != nil {
		return blobstore.Stats{}, err
	}
	st := blobstore.Stats{Buckets: map[bucketer.Bucket]int64{}}
	err := s.view(func(tx *bbolt.Tx) error {
		leases := tx.Bucket(bucketLeases)
		return leases.ForEachBucket(func(k []byte) error {
			if len(k) != bucketer.BucketSize {
				return errDamagedBucket
			}
			n := int64(leases.Bucket(k).Stats().KeyN)
			st.Buckets[bucketer.Bucket(k)] = n
			st.Blocks += n
			return nil
		})
	})
	if err != nil {
		return blobstore.Stats{}, wrapErr("stats", err)
	}
	return st, nil
}
