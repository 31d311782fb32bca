package bolt

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/internal/wait"
	"github.com/blindstore/blindstore/wire"
	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Sealing the embedded store (docs/design.md §6).
//
// bbolt writes a commit's dirty pages to newly allocated pages, all at
// commit time: together at the end of the file, or in free runs. So the
// file shows which blocks one commit wrote (a file's blocks, a login's
// renewals) and, by where commits landed, in which order. Freed pages
// keep what they held until reused, so old places and old ciphertext
// stay readable too.
//
// Every change names its block in the unsealed bucket, with a flag when
// its data was written anew and the time buckets it left. A seal shuffles
// the unsealed blocks with a cryptographic permutation and rewrites them
// in steps of a bounded size, each a call of the group commit, which
// writers' calls may share: for each block, its entry in its time
// bucket's set; its record and its data subtree anew (when its data
// changed); the leaves of the sets of the time buckets it left, and for
// a block deleted since, the leaves where its record and data subtree's
// header were (which a commit also rewrote: a one-key put and delete
// makes bbolt rewrite a leaf in place of a key that is gone). Within one
// commit bbolt lays pages out in key order and child buckets in map
// order, neither of which depends on who wrote what; which blocks share a
// commit is a uniformly random partition (writers' blocks in a shared
// commit are unsealed, and the next seal moves them). So the rewritten
// pages say of a block only that it was sealed by this seal. While
// writers are active, steps are small (sealChunkBytes) and the seal
// pauses after each for as long as it took, so that writers wait for one
// small commit at most, half the time: measured with four writers of
// 64 KiB blocks, their median went from 1.6 ms to 3.2 ms during a seal
// with small steps and no pause, which the pause brings within 2×
// (BenchmarkWritesDuringSeal). With no writer about the steps are large.
//
// Then scrub overwrites every free page that is not all zeros with zeros:
// the pages the seal freed (the blocks' former places, and their former
// ciphertext), and those that deletes, overwrites and purges freed.
//
// A seal interrupted anywhere loses nothing: each commit is atomic, a
// block leaves the unsealed bucket in the commit that rewrote it, and the
// next seal rewrites what is left and scrubs again.

const (
	unsealedData byte = 1 // the block's data was written since the last seal

	// A seal step rewrites up to this many blocks and bytes of data while
	// writers are active, and pauses after it for as long as it took;
	// with no writer about, up to the idle bounds, with no pause.
	sealChunkBytes      = 512 << 10
	sealChunkBlocks     = 256
	sealIdleChunkBytes  = 32 << 20
	sealIdleChunkBlocks = 4096
	scrubPages          = 4096 // page headers examined per scrub step
)

// testHookSealStep, when a test sets it, runs after each of a seal's
// commits ("commit") and before its scrub ("scrub"): the kill test
// strikes there.
var testHookSealStep func(step string)

// markUnsealed names id in the unsealed bucket: dataWritten when its data
// was written anew, left a time bucket it left (nil for none).
func (st *txState) markUnsealed(id []byte, dataWritten bool, left []byte) error {
	old := st.unsealed.Get(id)
	v := make([]byte, 1, max(len(old), 1)+len(left))
	if len(old) > 0 {
		v[0] = old[0]
		v = append(v, old[1:]...)
	}
	if dataWritten {
		v[0] |= unsealedData
	}
	if left != nil && !holdsBucket(v[1:], left) {
		v = append(v, left...)
	}
	if old != nil && bytes.Equal(v, old) {
		return nil
	}
	return st.unsealed.Put(bytes.Clone(id), v)
}

func holdsBucket(list, b []byte) bool {
	for i := 0; i+len(b) <= len(list); i += len(b) {
		if bytes.Equal(list[i:i+len(b)], b) {
			return true
		}
	}
	return false
}

// Seal rewrites the blocks changed since the last seal, as described
// above, then scrubs the free pages.
func (s *Store) Seal(ctx context.Context) (blobstore.SealReport, error) {
	s.sealMu.Lock()
	defer s.sealMu.Unlock()
	t0 := time.Now()
	var rep blobstore.SealReport
	var ids [][]byte
	err := s.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketUnsealed).ForEach(func(k, _ []byte) error {
			ids = append(ids, bytes.Clone(k))
			return nil
		})
	})
	if err != nil {
		return rep, wrapErr("seal", err)
	}
	if err := s.steps(ctx, ids, sealOne, "commit", &rep, nil, nil); err != nil {
		return rep, wrapErr("seal", err)
	}
	if testHookSealStep != nil {
		testHookSealStep("scrub")
	}
	if err := s.scrub(ctx); err != nil {
		return rep, err
	}
	rep.Duration = time.Since(t0)
	return rep, nil
}

// steps shuffles ids with a cryptographic permutation and rewrites them
// with one in commits of the group commit, as described above, calling
// testHookSealStep(hook) after each. begin, when set, runs in the
// transaction of the first step, and end in that of the step that
// rewrites the last id.
func (s *Store) steps(ctx context.Context, ids [][]byte, one func(*txState, []byte, *blobstore.SealReport) (int64, error), hook string, rep *blobstore.SealReport, begin, end func(*txState) error) error {
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return err
	}
	rng := mrand.New(mrand.NewChaCha8(seed))
	rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })

	first := true
	for len(ids) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		var n int
		var step blobstore.SealReport
		maxBlocks, maxBytes := sealIdleChunkBlocks, int64(sealIdleChunkBytes)
		if s.writers.Active() {
			maxBlocks, maxBytes = sealChunkBlocks, sealChunkBytes
		}
		before, t0 := s.writers.Count(), time.Now()
		// A step is a call of the group commit, so writers wait for it no
		// longer than for another writer's commit, or share its commit.
		err := s.group.do(s, ctx, maxBlocks, func(st *txState) error {
			var bytes int64
			n, step = 0, blobstore.SealReport{}
			if begin != nil && first {
				if err := begin(st); err != nil {
					return err
				}
			}
			for n < len(ids) && n < maxBlocks && bytes < maxBytes {
				b, err := one(st, ids[n], &step)
				if err != nil {
					return err
				}
				bytes += b
				n++
			}
			if end != nil && n == len(ids) {
				return end(st)
			}
			return nil
		})
		if err != nil {
			return err
		}
		first = false
		rep.Blocks += step.Blocks
		rep.Leases += step.Leases
		rep.Deleted += step.Deleted
		rep.Bytes += step.Bytes
		ids = ids[n:]
		if testHookSealStep != nil {
			testHookSealStep(hook)
		}
		if len(ids) > 0 && s.writers.Count() != before {
			if err := wait.Sleep(ctx, time.Since(t0)); err != nil {
				return err
			}
		}
	}
	return nil
}

// sealOne rewrites one block's pages in the transaction (see above) and
// returns the bytes of data it rewrote. rep is counted as if the
// transaction commits.
//
// The block is then named in the unmerged bucket, with the same flags
// and buckets left, for the period merge (merge.go) to rewrite once more.
func sealOne(st *txState, id []byte, rep *blobstore.SealReport) (int64, error) {
	v := st.unsealed.Get(id)
	if v == nil {
		return 0, nil // sealed by an earlier commit of this seal's caller, or never unsealed
	}
	v = bytes.Clone(v)
	written, exists, err := rewriteOne(st, id, v, rep)
	if err != nil {
		return 0, err
	}
	if exists {
		if err := st.markUnmerged(id, v); err != nil {
			return 0, err
		}
	}
	return written, st.unsealed.Delete(id)
}

// rewriteOne rewrites one block's pages as a seal does, after the
// entry v (flags ‖ buckets left) that names it in the unsealed or the
// unmerged bucket, and reports whether the block exists.
func rewriteOne(st *txState, id, v []byte, rep *blobstore.SealReport) (written int64, exists bool, err error) {
	if len(v) < 1 || (len(v)-1)%len(wire.ETag{}) != 0 {
		return 0, false, errors.New("an unsealed or unmerged entry is malformed; the file is damaged")
	}
	flags, left := v[0], v[1:]
	var bucket []byte
	if rec := st.records.Get(id); rec != nil {
		exists = true
		if bucket = find(st.tx, id); bucket == nil {
			return 0, false, errNoBucket
		}
		bucket = bytes.Clone(bucket)
		// The block's membership of its time bucket: a renewal or a
		// put wrote it.
		if err := st.sets.Bucket(bucket).Put(bytes.Clone(id), []byte{}); err != nil {
			return 0, false, err
		}
		rep.Leases++
		if flags&unsealedData != 0 {
			// Its record and ciphertext, which only a put writes.
			if err := st.records.Put(bytes.Clone(id), bytes.Clone(rec)); err != nil {
				return 0, false, err
			}
			nb := st.blocks.Bucket(id)
			if nb == nil {
				return 0, false, errNoData
			}
			// d is not copied: it points into the memory map (or into a
			// node of this transaction), and bbolt keeps a value until
			// commit. The old pages it points into are freed by this
			// transaction, so no commit reuses them before this one
			// ends, and a remap during the commit copies every value of
			// the transaction's nodes first (DB.mmap dereferences them).
			// A copy cost a 64 KiB allocation and move per block, a
			// fifth of a merge's time.
			d := nb.Get(id)
			if d == nil {
				return 0, false, errNoData
			}
			if err := st.blocks.DeleteBucket(id); err != nil {
				return 0, false, err
			}
			nb, err := st.blocks.CreateBucket(bytes.Clone(id))
			if err != nil {
				return 0, false, err
			}
			if err := nb.Put(bytes.Clone(id), d); err != nil {
				return 0, false, err
			}
			written = int64(len(d))
			rep.Blocks++
			rep.Bytes += written
		}
	} else {
		// Deleted or purged: the leaves where its record and its data
		// subtree's header were.
		rep.Deleted++
		for _, b := range []*bbolt.Bucket{st.records, st.blocks} {
			if err := touch(b, id); err != nil {
				return 0, false, err
			}
		}
	}
	for i := 0; i < len(left); i += len(wire.ETag{}) {
		l := left[i : i+len(wire.ETag{})]
		if bytes.Equal(l, bucket) {
			continue
		}
		if b := st.sets.Bucket(l); b != nil {
			if err := touch(b, id); err != nil {
				return 0, false, err
			}
		}
	}
	return written, exists, nil
}

// touch makes bbolt rewrite the leaf of b where id lies or would lie: a
// key that sorts right after id is put and deleted again, and bbolt
// writes every leaf a transaction modified to a new page at commit.
func touch(b *bbolt.Bucket, id []byte) error {
	k := append(bytes.Clone(id), 0)
	if err := b.Put(k, []byte{}); err != nil {
		return err
	}
	return b.Delete(k)
}

// scrub overwrites with zeros every free page that is not all zeros
// already.
//
// A page is free once no transaction can read it: bbolt keeps a page
// freed by commit N pending while a read transaction that began before
// N is open, and releases it when the next write transaction begins
// without such readers. So each step waits for the read transactions in
// progress to end (new ones are held back meanwhile, a few microseconds),
// begins a write transaction, which releases every pending page and keeps
// commits out, and lets readers go: those that begin now read the tree
// as last committed, which references no free page. The step then writes
// zeros through a file handle of its own over the free pages of its range
// that are not all zeros, and rolls its transaction back. A step examines
// scrubPages pages, so commits wait for one step at most.
//
// The walk asks bbolt about the first page of each page run in use and
// skips the rest of the run (see scrubRange): a 64 KiB block is a run of
// 17 pages, so it reads one page header in 17, and a scrub's walk costs
// a few milliseconds per hundred MiB of store rather than one header
// read per page, which measured 25-45 ms for a 420 MiB file and grew
// with the store.
//
// An interrupted scrub leaves some pages unscrubbed, never a page in use
// zeroed; the next seal scrubs again.
func (s *Store) scrub(ctx context.Context) error {
	f, err := os.OpenFile(s.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("bolt: seal: open the file to scrub it: %w", err)
	}
	defer f.Close()
	pageSize := s.pageSize
	buf := make([]byte, 64*pageSize)
	zeros := make([]byte, len(buf))
	for start := 2; ; {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.readers.Lock()
		tx, err := s.db.Begin(true)
		s.readers.Unlock()
		if err != nil {
			return wrapErr("seal: scrub", err)
		}
		next, done, err := scrubRange(tx, f, start, scrubPages, pageSize, buf, zeros)
		if rerr := tx.Rollback(); err == nil && rerr != nil && !errors.Is(rerr, berrors.ErrTxClosed) {
			err = rerr
		}
		if err != nil {
			return fmt.Errorf("bolt: seal: scrub: %w", err)
		}
		if done {
			break
		}
		start = next
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("bolt: seal: scrub: %w", err)
	}
	return nil
}

// scrubRange zeroes the free pages that are not zero among the pages
// from from on, examining up to limit of them, and returns the page to
// go on from; done reports that it reached the end of the file's pages.
//
// A page in use that bbolt reports as a branch, leaf, meta or freelist
// page is the first of a run that bbolt allocated whole, its header
// written at the allocation; the OverflowCount pages after it are the
// run's (a value's bytes, no header) and are in use too, so they are
// skipped unread. Every page in use that the walk meets is then the
// first of a run, but for the first page of a step: commits between two
// steps may have placed a run across from. A page that is neither free
// nor of a known type is such a run's inner page, and the walk goes on
// with the next page. An inner page whose bytes happen to read as a
// known type with an overflow count would make the walk skip pages that
// may be free, never zero one in use (only pages bbolt reports free are
// zeroed), and the next scrub starts elsewhere.
func scrubRange(tx *bbolt.Tx, f *os.File, from, limit, pageSize int, buf, zeros []byte) (next int, done bool, err error) {
	end := int(tx.Size()) / pageSize
	run := func(first, n int) error {
		for n > 0 {
			k := min(n, len(buf)/pageSize)
			b := buf[:k*pageSize]
			if _, err := f.ReadAt(b, int64(first)*int64(pageSize)); err != nil {
				return err
			}
			// Pages that are not zero are zeroed a stretch at a time:
			// after a merge most free pages that hold anything lie in
			// runs, the blocks' former places.
			for i := 0; i < k; {
				if bytes.Equal(b[i*pageSize:(i+1)*pageSize], zeros[:pageSize]) {
					i++
					continue
				}
				j := i + 1
				for j < k && !bytes.Equal(b[j*pageSize:(j+1)*pageSize], zeros[:pageSize]) {
					j++
				}
				if _, err := f.WriteAt(zeros[:(j-i)*pageSize], int64(first+i)*int64(pageSize)); err != nil {
					return err
				}
				i = j
			}
			first, n = first+k, n-k
		}
		return nil
	}
	runStart, runLen := 0, 0
	id := from
	for examined := 0; id < end && examined < limit; examined++ {
		info, err := tx.Page(id)
		if err != nil {
			return id, false, err
		}
		if info == nil {
			id = end // past the high water mark: nothing there to scrub
			break
		}
		if info.Type == "free" {
			if runLen == 0 {
				runStart = id
			}
			runLen++
			id++
			continue
		}
		if runLen > 0 {
			if err := run(runStart, runLen); err != nil {
				return id, false, err
			}
			runLen = 0
		}
		switch info.Type {
		case "branch", "leaf", "meta", "freelist":
			id += 1 + info.OverflowCount
		default:
			id++
		}
	}
	if runLen > 0 {
		if err := run(runStart, runLen); err != nil {
			return id, false, err
		}
	}
	return id, id >= end, nil
}

// SealStats counts the blocks changed since the last seal.
func (s *Store) SealStats(ctx context.Context) (blobstore.SealStats, error) {
	if err := ctx.Err(); err != nil {
		return blobstore.SealStats{}, err
	}
	var st blobstore.SealStats
	err := s.view(func(tx *bbolt.Tx) error {
		st.Blocks = int64(tx.Bucket(bucketUnsealed).Stats().KeyN)
		st.Rows = st.Blocks
		return nil
	})
	if err != nil {
		return st, wrapErr("seal stats", err)
	}
	return st, nil
}
