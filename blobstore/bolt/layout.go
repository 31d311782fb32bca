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
		return m, fmt.Errorf("a block's record has %d bytes, want %d; the file is damaged", len(v), recordSize)
	}
	copy(m.ProofHash[:], v)
	copy(m.ETag[:], v[wire.HashSize:])
	copy(m.Bucket[:], bucket)
	return m, nil
}

// etagOf returns the ETag in a block's record.
func etagOf(rec []byte) (wire.ETag, error) {
	if len(rec) != recordSize {
		return wire.ETag{}, fmt.Errorf("a block's record has %d bytes, want %d; the file is damaged", len(rec), recordSize)
	}
	return wire.ETag(rec[wire.HashSize:]), nil
}

// errNoBucket reports a record whose block is in no time bucket's set.
var errNoBucket = errors.New("a block has a record but no time bucket; the file is damaged")

// errNoData reports a record whose block has no ciphertext.
var errNoData = errors.New("a block has a record but no data; the file is damaged")

// has reports whether the set b holds id. Set entries have no value, so
// membership is the key's presence, not Get's answer.
func has(b *bbolt.Bucket, id []byte) bool {
	k, _ := b.Cursor().Seek(id)
	return bytes.Equal(k, id)
}

// find returns the time bucket whose set holds id, probing every set
// present; nil if none. The slice points into the transaction.
func find(tx *bbolt.Tx, id []byte) []byte {
	return newProbe(tx).find(id)
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
		rec := tx.Bucket(bucketRecords).Get(id[:])
		if rec == nil {
			return blobstore.ErrNotFound
		}
		etag, err := etagOf(rec)
		if err != nil {
			return err
		}
		var data []byte
		if nb := tx.Bucket(bucketBlocks).Bucket(id[:]); nb != nil {
			data = nb.Get(id[:])
		}
		if data == nil {
			return errNoData
		}
		fnErr = fn(data, etag)
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
		rec := tx.Bucket(bucketRecords).Get(id[:])
		if rec == nil {
			return blobstore.ErrNotFound
		}
		var err error
		etag, err = etagOf(rec)
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
		err := s.db.Batch(func(tx *bbolt.Tx) error {
			var err error
			rs, err, _ = applyOps(ctx, newTxState(tx), ops)
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
type txState struct {
	tx       *bbolt.Tx
	records  *bbolt.Bucket
	blocks   *bbolt.Bucket
	sets     *bbolt.Bucket
	unsealed *bbolt.Bucket
	unmerged *bbolt.Bucket
}

func newTxState(tx *bbolt.Tx) *txState {
	return &txState{tx: tx, records: tx.Bucket(bucketRecords), blocks: tx.Bucket(bucketBlocks), sets: tx.Bucket(bucketSets),
		unsealed: tx.Bucket(bucketUnsealed), unmerged: tx.Bucket(bucketUnmerged)}
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
		rec := st.records.Get(id[:])
		if rec == nil {
			continue
		}
		bucket := probe.find(id[:])
		if bucket == nil {
			return nil, errNoBucket, false
		}
		m, err := decodeRecord(rec, bucket)
		if err != nil {
			return nil, err, false
		}
		current[id] = m
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

// probe looks blocks up in the time buckets' sets present when it was
// made, trying first the one where it last found a block: a batch's
// blocks mostly share a time bucket (an account's blocks were last
// renewed together). It must not outlive a write that creates or drops a
// time bucket.
type probe struct {
	names   [][]byte
	buckets []*bbolt.Bucket
	last    int
}

func newProbe(tx *bbolt.Tx) *probe {
	p := &probe{}
	sets := tx.Bucket(bucketSets)
	c := sets.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v != nil {
			continue // not a bucket; the audit reports it
		}
		p.names = append(p.names, k)
		p.buckets = append(p.buckets, sets.Bucket(k))
	}
	return p
}

// find returns the time bucket whose set holds id, or nil.
func (p *probe) find(id []byte) []byte {
	for j := range p.buckets {
		i := (p.last + j) % len(p.buckets)
		if has(p.buckets[i], id) {
			p.last = i
			return p.names[i]
		}
	}
	return nil
}

// testHookAfterRecord, when set by a test, runs after a change's record
// is written, so a test can make a write fail half way.
var testHookAfterRecord func(*blobstore.Change) error

// writeChange writes one block's net change and names the block in the
// unsealed bucket. A renewal writes the block's membership of time
// buckets only: its record and ciphertext are keyed by id and stay where
// they are. bbolt keeps references to keys and values until commit:
// ch.ID and ch.Data are the caller's, held until Apply returns and never
// changed, and every other value is freshly allocated.
func (st *txState) writeChange(ch *blobstore.Change) error {
	id := ch.ID[:]
	if ch.New == nil {
		if err := st.leave(ch.Old.Bucket[:], id); err != nil {
			return err
		}
		if err := st.records.Delete(id); err != nil {
			return err
		}
		if err := st.blocks.DeleteBucket(id); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return err
		}
		return st.markUnsealed(id, false, ch.Old.Bucket[:])
	}
	moved := ch.Old != nil && ch.Old.Bucket != ch.New.Bucket
	var left []byte
	if moved {
		left = ch.Old.Bucket[:]
		if err := st.leave(left, id); err != nil {
			return err
		}
	}
	if ch.Old == nil || moved {
		set, err := st.sets.CreateBucketIfNotExists(ch.New.Bucket[:])
		if err != nil {
			return err
		}
		if err := set.Put(id, []byte{}); err != nil {
			return err
		}
	}
	if ch.Old == nil || ch.Old.ProofHash != ch.New.ProofHash || ch.Old.ETag != ch.New.ETag {
		if err := st.records.Put(id, encodeRecord(ch.New)); err != nil {
			return err
		}
	}
	if testHookAfterRecord != nil {
		if err := testHookAfterRecord(ch); err != nil {
			return err
		}
	}
	if ch.Data == nil {
		return st.markUnsealed(id, false, left)
	}
	nb, err := st.blocks.CreateBucketIfNotExists(id)
	if err != nil {
		return err
	}
	if err := nb.Put(id, ch.Data); err != nil {
		return err
	}
	return st.markUnsealed(id, true, left)
}

// leave removes id from the set of the time bucket it leaves, and drops
// the set once empty, so Stats and lookups never meet empty ones.
func (st *txState) leave(bucket, id []byte) error {
	set := st.sets.Bucket(bucket)
	if set == nil {
		return nil
	}
	if err := set.Delete(id); err != nil {
		return err
	}
	if k, _ := set.Cursor().First(); k != nil {
		return nil
	}
	return st.sets.DeleteBucket(bucket)
}

// errDamagedBucket reports a time bucket name of the wrong size. Nothing
// is ever deleted on the word of a damaged file.
var errDamagedBucket = errors.New("a time bucket name has the wrong size; the file is damaged")

// expiredBuckets lists the time buckets present and not in live.
func expiredBuckets(tx *bbolt.Tx, live bucketer.LiveSet) ([][]byte, error) {
	var out [][]byte
	err := tx.Bucket(bucketSets).ForEachBucket(func(k []byte) error {
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

// Purge deletes the blocks of every time bucket outside live, one
// transaction per time bucket: it walks the bucket's set, deletes each
// block's record and ciphertext subtree, and drops the set. Freeing a
// block's ciphertext reads one page header; the deletes rewrite the
// leaves of the records and blocks trees that held the expired ids.
func (s *Store) Purge(ctx context.Context, live bucketer.LiveSet, dryRun bool) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var total int64
	if dryRun {
		err := s.view(func(tx *bbolt.Tx) error {
			sets := tx.Bucket(bucketSets)
			expired, err := expiredBuckets(tx, live)
			for _, name := range expired {
				total += int64(sets.Bucket(name).Stats().KeyN)
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
			st := newTxState(tx)
			set := st.sets.Bucket(name)
			if set == nil {
				return nil // emptied since it was listed
			}
			c := set.Cursor()
			for id, _ := c.First(); id != nil; id, _ = c.Next() {
				if err := st.records.Delete(id); err != nil {
					return err
				}
				if err := st.blocks.DeleteBucket(id); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
					return err
				}
				n++
			}
			return st.sets.DeleteBucket(name)
		})
		if err != nil {
			return total, wrapErr("purge", err)
		}
		total += n
	}
	return total, nil
}

// Stats counts blocks per time bucket from the page headers of the
// buckets' sets, without reading records.
func (s *Store) Stats(ctx context.Context) (blobstore.Stats, error) {
	if err := ctx.Err(); err != nil {
		return blobstore.Stats{}, err
	}
	st := blobstore.Stats{Buckets: map[bucketer.Bucket]int64{}}
	err := s.view(func(tx *bbolt.Tx) error {
		sets := tx.Bucket(bucketSets)
		return sets.ForEachBucket(func(k []byte) error {
			if len(k) != bucketer.BucketSize {
				return errDamagedBucket
			}
			n := int64(sets.Bucket(k).Stats().KeyN)
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
