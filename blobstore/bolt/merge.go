package bolt

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// The period merge of the embedded store (docs/design.md §6).
//
// A seal's commits lie together in the file, at its end or in free runs
// that the seal before it left, so the pages a seal wrote say "sealed in
// this window" of the blocks in them; on a small store a window often
// holds one user's writes. A seal names every block it rewrote in the
// unmerged bucket, with the flags and buckets left of its unsealed
// entry. Once a period closes, Merge rewrites all of them again exactly
// as a seal does (sealOne's pages: the record and data subtree when the
// data was written in the period, the set entry, the leaves around them),
// shuffled with one cryptographic permutation over the whole period, in
// commits of the group commit; each block leaves the unmerged bucket in
// the commit that rewrote it. In the commit of the last block the
// unmerged bucket is dropped and made anew (its pages, written by the
// seals, go) and the closed period's bucket joins meta's merged set;
// then the free pages are scrubbed.
//
// A merge killed at any point loses nothing (each commit is atomic) and
// leaves the rest in the unmerged bucket with meta's merging key set:
// the next Merge finishes it, and reports that it resumed. Seals keep
// adding to the unmerged bucket meanwhile, so what a merge owed is never
// lost; the scheduler runs the merge right after the period's last seal,
// and at start, so little of the next period joins an owed merge.

var (
	bucketUnmerged = []byte("unmerged")
	keyMerged      = []byte("merged")  // the buckets of closed periods merged, sorted
	keyMerging     = []byte("merging") // a merge began and has not finished
)

// markUnmerged names id in the unmerged bucket with the flags and
// buckets left of v, added to what it holds already.
func (st *txState) markUnmerged(id, v []byte) error {
	old := st.unmerged.Get(id)
	nv := slices.Clone(v)
	if len(old) > 0 {
		nv[0] |= old[0]
		for i := 1; i+bucketer.BucketSize <= len(old); i += bucketer.BucketSize {
			if l := old[i : i+bucketer.BucketSize]; !holdsBucket(nv[1:], l) {
				nv = append(nv, l...)
			}
		}
	}
	if old != nil && bytes.Equal(nv, old) {
		return nil
	}
	return st.unmerged.Put(bytes.Clone(id), nv)
}

// mergeOne rewrites one block named in the unmerged bucket.
func mergeOne(st *txState, id []byte, rep *blobstore.SealReport) (int64, error) {
	v := st.unmerged.Get(id)
	if v == nil {
		return 0, nil
	}
	written, _, err := rewriteOne(st, id, bytes.Clone(v), rep)
	if err != nil {
		return 0, err
	}
	return written, st.unmerged.Delete(id)
}

// Merge rewrites the blocks the seals placed since the last merge, as
// described above, and records live's previous period as merged. Call
// it once a period has closed, after a seal: live is the live set of
// the period that has begun.
//
// The merging key is set in the commit of the first step and the period
// recorded in that of the last (finishMerge), rather than in commits of
// their own: each commit costs two fsyncs, and either way the key is
// set exactly while some of the period's blocks were rewritten and some
// await it.
func (s *Store) Merge(ctx context.Context, live bucketer.LiveSet) (blobstore.MergeReport, error) {
	s.sealMu.Lock()
	defer s.sealMu.Unlock()
	t0 := time.Now()
	var rep blobstore.MergeReport
	var ids [][]byte
	err := s.view(func(tx *bbolt.Tx) error {
		rep.Resumed = tx.Bucket(bucketMeta).Get(keyMerging) != nil
		return tx.Bucket(bucketUnmerged).ForEach(func(k, _ []byte) error {
			ids = append(ids, bytes.Clone(k))
			return nil
		})
	})
	if err != nil {
		return rep, wrapErr("merge", err)
	}
	finish := func(st *txState) error { return finishMerge(st, live) }
	if len(ids) == 0 {
		err = s.db.Update(func(tx *bbolt.Tx) error { return finish(newTxState(tx)) })
	} else {
		begin := func(st *txState) error {
			if rep.Resumed {
				return nil
			}
			return st.tx.Bucket(bucketMeta).Put(keyMerging, []byte{1})
		}
		var step blobstore.SealReport
		err = s.steps(ctx, ids, mergeOne, "merge", &step, begin, finish)
		rep.Blocks, rep.Leases = step.Blocks, step.Leases
		rep.Bytes = step.Bytes + step.Leases*(recordSize+16)
	}
	if err != nil {
		return rep, wrapErr("merge", err)
	}
	// Counted outside the merge's commits, so that writers do not wait
	// for it: it reads every page header of the records tree.
	err = s.view(func(tx *bbolt.Tx) error {
		rep.Stored = int64(tx.Bucket(bucketRecords).Stats().KeyN)
		return nil
	})
	if err != nil {
		return rep, wrapErr("merge", err)
	}
	rep.Stored *= int64(s.blockSize)
	if len(ids) > 0 {
		if testHookSealStep != nil {
			testHookSealStep("scrub")
		}
		if err := s.scrub(ctx); err != nil {
			return rep, err
		}
	}
	rep.Duration = time.Since(t0)
	return rep, nil
}

// finishMerge records live's previous period as merged, in the
// transaction that rewrote the last block named in the unmerged bucket
// (or one of its own when there was none).
func finishMerge(st *txState, live bucketer.LiveSet) error {
	tx := st.tx
	meta := tx.Bucket(bucketMeta)
	// The seals wrote the unmerged bucket's pages, in their windows:
	// dropped and made anew, it keeps none of them. A seal cannot run
	// during a merge (sealMu), so it is empty here but after a failure
	// of the steps.
	if k, _ := st.unmerged.Cursor().First(); k == nil {
		if err := tx.DeleteBucket(bucketUnmerged); err != nil {
			return err
		}
		u, err := tx.CreateBucket(bucketUnmerged)
		if err != nil {
			return err
		}
		st.unmerged = u
	}
	// The first merge finds every block in the unmerged bucket: a new
	// store's, or those upgrade named there.
	first := meta.Get(keyMerged) == nil
	merged, err := blobstore.DecodeBuckets(meta.Get(keyMerged))
	if err != nil {
		return err
	}
	if err := meta.Put(keyMerged, blobstore.EncodeBuckets(blobstore.MergedSet(merged, live, first))); err != nil {
		return err
	}
	if err := meta.Delete(keyMerging); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
		return err
	}
	return nil
}

// MergeState reads the merged set and counts the blocks awaiting the
// merge.
func (s *Store) MergeState(ctx context.Context) (blobstore.MergeState, error) {
	if err := ctx.Err(); err != nil {
		return blobstore.MergeState{}, err
	}
	var st blobstore.MergeState
	err := s.view(func(tx *bbolt.Tx) error {
		var err error
		st, err = mergeState(tx)
		return err
	})
	if err != nil {
		return st, wrapErr("merge state", err)
	}
	return st, nil
}

func mergeState(tx *bbolt.Tx) (blobstore.MergeState, error) {
	st := blobstore.MergeState{Merged: map[bucketer.Bucket]bool{}}
	merged, err := blobstore.DecodeBuckets(tx.Bucket(bucketMeta).Get(keyMerged))
	if err != nil {
		return st, err
	}
	for _, b := range merged {
		st.Merged[b] = true
	}
	if u := tx.Bucket(bucketUnmerged); u != nil {
		st.Pending = int64(u.Stats().KeyN)
	}
	return st, nil
}
