package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/audit"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/wire"
	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Audit reads the store's file at path read-only and reports what a copy
// of it would reveal: everything beyond the layout of the package doc,
// blocks of another size, the buckets against bk's live set, what awaits
// a seal and the free pages a seal has not yet scrubbed. The file must
// not be in use: bbolt locks it.
func Audit(ctx context.Context, path string, bk *bucketer.Bucketer) (*audit.Report, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no embedded store at %s (%v): give the --data directory blindstored serve uses", path, err)
	}
	db, err := bbolt.Open(path, 0, &bbolt.Options{ReadOnly: true, Timeout: 2 * time.Second, PreLoadFreelist: true})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%s is in use: stop blindstored serve first (bbolt locks its file), or audit a copy taken while it was stopped", path)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s read-only: %w", path, err)
	}
	defer db.Close()
	rep := audit.New("embedded")
	var merges *blobstore.MergeState
	err = db.View(func(tx *bbolt.Tx) error {
		if err := tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
			if !isOneOf(name, bucketRecords, bucketBlocks, bucketSets, bucketMeta, bucketUnsealed, bucketUnmerged) {
				rep.Finding("top-level bucket %q is beyond the design", printable(name))
			}
			return nil
		}); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return errors.New("the meta bucket is missing: this is not a blindstore file")
		}
		blockSize := 0
		if v := meta.Get(keyBlockSize); len(v) == 8 {
			blockSize = int(binary.BigEndian.Uint64(v))
		} else {
			rep.Finding("meta's block_size is damaged")
		}
		fp := bk.Fingerprint()
		if v := meta.Get(keyFingerprint); !bytes.Equal(v, fp[:]) {
			return errors.New("the store was created with another bucket key: give the key file it was created with (--bucket-key-file)")
		}
		_ = meta.ForEach(func(k, v []byte) error {
			if v == nil || !isOneOf(k, keyBlockSize, keyFingerprint, keyHighestPeriod, keySchema, keyMerged, keyMerging, keyMigrating) {
				rep.Finding("meta key %q is beyond the design", printable(k))
			}
			return nil
		})
		if err := auditLeases(tx, rep); err != nil {
			return err
		}
		if err := auditData(tx, rep, blockSize); err != nil {
			return err
		}
		if err := auditUnsealed(tx, rep); err != nil {
			return err
		}
		if tx.Bucket(bucketUnmerged) != nil {
			st, err := mergeState(tx)
			if err != nil {
				rep.Finding("meta's merged set is damaged")
			} else {
				merges = &st
			}
		}
		return auditFreePages(ctx, tx, path, rep)
	})
	if err != nil {
		return nil, fmt.Errorf("audit %s: %w", path, err)
	}
	rep.Classify(bk)
	rep.Merges(bk, merges)
	return rep, nil
}

func isOneOf(name []byte, names ...[]byte) bool {
	for _, n := range names {
		if bytes.Equal(name, n) {
			return true
		}
	}
	return false
}

// printable shows a name from the file: as it is when it is plain text,
// else only its length, since a binary name may be a block id.
func printable(b []byte) string {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return fmt.Sprintf("<%d-byte binary name>", len(b))
		}
	}
	return string(b)
}

func auditLeases(tx *bbolt.Tx, rep *audit.Report) error {
	sets, records := tx.Bucket(bucketSets), tx.Bucket(bucketRecords)
	if sets == nil || records == nil {
		rep.Finding("the buckets or records bucket is missing (a file of schema 3 or older: run blindstored serve once to move it to schema 4)")
		return nil
	}
	bad, orphans := 0, 0
	err := sets.ForEach(func(k, v []byte) error {
		if v != nil || len(k) != bucketer.BucketSize {
			rep.Finding("the buckets bucket holds an entry that is not a 16-byte time bucket")
			return nil
		}
		var b bucketer.Bucket
		copy(b[:], k)
		set := sets.Bucket(k)
		return set.ForEach(func(id, v []byte) error {
			if v == nil || len(v) != 0 || len(id) != 16 || wire.ID(id).Validate() != nil {
				bad++
				return nil
			}
			if records.Get(id) == nil {
				orphans++
			}
			rep.ByBucket[b]++
			rep.Blocks++
			return nil
		})
	})
	if err != nil {
		return err
	}
	if bad > 0 {
		rep.Finding("%d entries of time buckets' sets are not a v4 block id with no value", bad)
	}
	bad = 0
	n := int64(0)
	err = records.ForEach(func(id, rec []byte) error {
		if rec == nil || len(id) != 16 || len(rec) != recordSize || wire.ID(id).Validate() != nil {
			bad++
			return nil
		}
		n++
		return nil
	})
	if bad > 0 {
		rep.Finding("%d records are not a v4 block id with a %d-byte record", bad, recordSize)
	}
	if orphans > 0 || n != rep.Blocks {
		rep.Note("%d blocks have a record and %d are in a time bucket, %d of them without a record: the file is inconsistent (run blindstored serve to see whether it opens)", n, rep.Blocks, orphans)
	}
	return err
}

func auditData(tx *bbolt.Tx, rep *audit.Report, blockSize int) error {
	data := tx.Bucket(bucketBlocks)
	if data == nil {
		rep.Finding("the blocks bucket is missing")
		return nil
	}
	var bad int
	var blocks int64
	err := data.ForEach(func(id, v []byte) error {
		nb := data.Bucket(id)
		if v != nil || nb == nil || len(id) != 16 {
			bad++
			return nil
		}
		return nb.ForEach(func(k2, v2 []byte) error {
			switch {
			case v2 == nil || !bytes.Equal(k2, id):
				bad++
			case len(v2) != blockSize:
				rep.OtherSize++
			default:
				blocks++
			}
			return nil
		})
	})
	if bad > 0 {
		rep.Finding("%d entries of the blocks bucket are not a block's ciphertext under its id", bad)
	}
	if rep.OtherSize > 0 {
		rep.Finding("%d blocks are not %d bytes long: their size says something of their content", rep.OtherSize, blockSize)
	}
	if blocks+rep.OtherSize != rep.Blocks {
		rep.Note("%d blocks have data and %d have a lease record: the file is inconsistent (run blindstored serve to see whether it opens)", blocks+rep.OtherSize, rep.Blocks)
	}
	return err
}

// auditUnsealed counts the blocks awaiting a seal; a file of version 1
// has no unsealed bucket and reports none.
func auditUnsealed(tx *bbolt.Tx, rep *audit.Report) error {
	u := tx.Bucket(bucketUnsealed)
	if u == nil {
		return nil
	}
	st := blobstore.SealStats{}
	err := u.ForEach(func(k, v []byte) error {
		st.Blocks++
		if v == nil || len(k) != 16 || len(v) < 1 || (len(v)-1)%bucketer.BucketSize != 0 {
			rep.Finding("an entry of the unsealed bucket is not a block id with its flags and buckets")
		}
		return nil
	})
	if err != nil {
		return err
	}
	st.Rows = st.Blocks
	rep.AwaitingSeal = &st
	if st.Blocks > 0 {
		rep.Note("%d blocks changed since the last seal: until the next seal, a copy shows which of them were written together and in which order", st.Blocks)
	}
	return nil
}

// auditFreePages counts the file's free pages and those not all zeros.
func auditFreePages(ctx context.Context, tx *bbolt.Tx, path string, rep *audit.Report) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	pageSize := tx.DB().Info().PageSize
	end := int(tx.Size()) / pageSize
	page := make([]byte, pageSize)
	zero := make([]byte, pageSize)
	fp := &audit.FreePages{}
	for id := 2; id < end; id++ {
		if id%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		info, err := tx.Page(id)
		if err != nil {
			return err
		}
		if info == nil || info.Type != "free" {
			continue
		}
		fp.Free++
		if _, err := f.ReadAt(page, int64(id)*int64(pageSize)); err != nil {
			return err
		}
		if !bytes.Equal(page, zero) {
			fp.NonZero++
		}
	}
	rep.FreePages = fp
	if fp.NonZero > 0 {
		rep.Note("%d free pages (%d KiB) still hold bytes from before they were freed (in a serving store: old records and ciphertext of deleted, overwritten or purged blocks); the next seal, or blindstored seal on a copy, overwrites them with zeros", fp.NonZero, fp.NonZero*pageSize/1024)
	}
	return nil
}
