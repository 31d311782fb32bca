package bolt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/blindstore/blindstore/bucketer"
	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Schemas 1 to 3 kept every block under its time bucket:
//
//	leases    time bucket → { id → proof_hash ‖ etag }
//	data      time bucket → { id → { id → ciphertext } }
//
// so a renewal moved the block's record and its data subtree's header
// from one time bucket to another: four B+tree writes besides the
// unsealed mark, in trees whose leaf entries are 80 and 48 bytes. Schema
// 4 keys records and ciphertext by id and keeps per time bucket only the
// set of its ids (package doc). Open moves an older file to it.
var (
	bucketOldLeases = []byte("leases")
	bucketOldData   = []byte("data")

	// keyMigrating is set in meta while a move to schema 4 is under way:
	// both layouts are in the file, and Open goes on with the move.
	keyMigrating = []byte("migrating")
)

// migrateChunk bounds the blocks one transaction of the move takes, so
// that its memory and the time it holds the file stay bounded on a store
// of any size. A variable so that tests can take small steps.
var migrateChunk = 8192

// testHookMigrateStep, when a test sets it, runs after each committed
// step of a move; an error stops the move there, as a crash would.
var testHookMigrateStep func() error

// upgrade brings a version 1 file to version 3: it adds the unsealed
// bucket and names every block in it, so that the first seal rewrites
// the whole file out of the order it was written in (and names them in
// the unmerged bucket); and a version 2 file to version 3: it adds the
// unmerged bucket and names every sealed block in it, so that the first
// merge rewrites them out of the windows of their seals. migrate then
// brings version 3 to 4.
func upgrade(db *bbolt.DB, path string) error {
	err := db.Update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		v := binary.BigEndian.Uint32(meta.Get(keySchema))
		if v >= 3 {
			return nil
		}
		data := tx.Bucket(bucketOldData)
		um, err := tx.CreateBucketIfNotExists(bucketUnmerged)
		if err != nil {
			return err
		}
		// Every block sealed so far is named in the unmerged bucket: the
		// first merge rewrites the file out of its seals' windows.
		if v >= 2 {
			err = data.ForEachBucket(func(tb []byte) error {
				return data.Bucket(tb).ForEachBucket(func(id []byte) error {
					if tx.Bucket(bucketUnsealed).Get(id) != nil {
						return nil
					}
					return um.Put(bytes.Clone(id), []byte{unsealedData})
				})
			})
			if err != nil {
				return err
			}
			return meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, 3))
		}
		un, err := tx.CreateBucketIfNotExists(bucketUnsealed)
		if err != nil {
			return err
		}
		err = data.ForEachBucket(func(tb []byte) error {
			return data.Bucket(tb).ForEachBucket(func(id []byte) error {
				return un.Put(bytes.Clone(id), []byte{unsealedData})
			})
		})
		if err != nil {
			return err
		}
		return meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, 3))
	})
	if err != nil {
		return fmt.Errorf("bolt: upgrade %s to schema version 3: %w", path, err)
	}
	return nil
}

// migrate moves a version 3 file's blocks into schema 4, up to
// migrateChunk blocks per transaction. The first transaction creates the
// new buckets and sets the schema to 4 with meta's migrating key, so that
// an older build refuses the file from then on rather than read half of
// it. Each transaction moves blocks whole: the record to records, the id
// into its time bucket's set, the data subtree's header to blocks (bbolt's
// MoveBucket: the ciphertext pages stay where they are), and deletes them
// from the old buckets. The last one drops the emptied old buckets and
// the migrating key. A move stopped anywhere (a kill, a full disk) leaves
// every block in exactly one of the layouts, and the next Open goes on
// from there.
//
// Nothing is marked unsealed: a transaction's new pages hold the ids of
// one time bucket in id order, which says nothing beyond the bucket.
func migrate(db *bbolt.DB, path string) error {
	t0 := time.Now()
	var moved int64
	for step := 0; ; step++ {
		var n int
		var done bool
		err := db.Update(func(tx *bbolt.Tx) error {
			var err error
			n, done, err = migrateStep(tx)
			return err
		})
		if err != nil {
			return fmt.Errorf("bolt: move %s to schema version %d (every block is intact; the next start goes on with it): %w", path, schemaVersion, err)
		}
		moved += int64(n)
		if done {
			slog.Info("bolt: store moved to schema version 4 (records and ciphertext keyed by block id)", "path", path, "blocks", moved, "took", time.Since(t0).Round(time.Millisecond))
			return nil
		}
		if step == 0 {
			slog.Info("bolt: moving the store to schema version 4; each step is atomic, and a move that is stopped goes on at the next start", "path", path)
		}
		if testHookMigrateStep != nil {
			if err := testHookMigrateStep(); err != nil {
				return fmt.Errorf("bolt: move %s to schema version %d: %w", path, schemaVersion, err)
			}
		}
	}
}

// errDamagedOld reports a schema 3 file whose layout the move does not
// recognise. Nothing is deleted on the word of a damaged file.
var errDamagedOld = errors.New("an entry of the old leases or data bucket is not a block of schema 3; the file is damaged")

// migrateStep moves up to migrateChunk blocks (see migrate) and reports
// how many, and done once nothing is left to move.
func migrateStep(tx *bbolt.Tx) (n int, done bool, err error) {
	meta := tx.Bucket(bucketMeta)
	if binary.BigEndian.Uint32(meta.Get(keySchema)) == schemaVersion && meta.Get(keyMigrating) == nil {
		return 0, true, nil
	}
	var st txState
	for _, b := range []struct {
		name []byte
		dst  **bbolt.Bucket
	}{{bucketRecords, &st.records}, {bucketBlocks, &st.blocks}, {bucketSets, &st.sets}} {
		if *b.dst, err = tx.CreateBucketIfNotExists(b.name); err != nil {
			return 0, false, err
		}
	}
	if err := meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, schemaVersion)); err != nil {
		return 0, false, err
	}
	if err := meta.Put(keyMigrating, []byte{1}); err != nil {
		return 0, false, err
	}
	leases, data := tx.Bucket(bucketOldLeases), tx.Bucket(bucketOldData)
	for n < migrateChunk {
		tb, v := leases.Cursor().First()
		if tb == nil {
			break
		}
		if v != nil || len(tb) != bucketer.BucketSize {
			return 0, false, errDamagedOld
		}
		tb = bytes.Clone(tb)
		lb, db := leases.Bucket(tb), data.Bucket(tb)
		if db == nil {
			return 0, false, errNoData
		}
		set, err := st.sets.CreateBucketIfNotExists(tb)
		if err != nil {
			return 0, false, err
		}
		var ids, recs [][]byte
		c := lb.Cursor()
		for id, rec := c.First(); id != nil && n+len(ids) < migrateChunk; id, rec = c.Next() {
			if rec == nil || len(id) != 16 || len(rec) != recordSize {
				return 0, false, errDamagedOld
			}
			ids, recs = append(ids, bytes.Clone(id)), append(recs, bytes.Clone(rec))
		}
		for i, id := range ids {
			if st.records.Get(id) != nil {
				return 0, false, errors.New("a block has records in two time buckets; the file is damaged")
			}
			if err := st.records.Put(id, recs[i]); err != nil {
				return 0, false, err
			}
			if err := set.Put(id, []byte{}); err != nil {
				return 0, false, err
			}
			if err := db.MoveBucket(id, st.blocks); errors.Is(err, berrors.ErrBucketNotFound) {
				return 0, false, errNoData
			} else if err != nil {
				return 0, false, err
			}
			if err := lb.Delete(id); err != nil {
				return 0, false, err
			}
		}
		n += len(ids)
		if k, _ := lb.Cursor().First(); k != nil {
			continue
		}
		if k, _ := db.Cursor().First(); k != nil {
			return 0, false, errors.New("a time bucket holds ciphertext with no record; the file is damaged")
		}
		if err := leases.DeleteBucket(tb); err != nil {
			return 0, false, err
		}
		if err := data.DeleteBucket(tb); err != nil {
			return 0, false, err
		}
	}
	if k, _ := leases.Cursor().First(); k != nil {
		return n, false, nil
	}
	if k, _ := data.Cursor().First(); k != nil {
		return 0, false, errors.New("a time bucket holds ciphertext with no record; the file is damaged")
	}
	for _, name := range [][]byte{bucketOldLeases, bucketOldData} {
		if err := tx.DeleteBucket(name); err != nil {
			return 0, false, err
		}
	}
	return n, true, meta.Delete(keyMigrating)
}
