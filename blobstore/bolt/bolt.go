// Package bolt is blindstore's embedded store: every block in one bbolt
// file in the data directory, nothing else to install or run.
//
// The file holds five top-level buckets and nothing else:
//
//	meta      schema, block_size, fingerprint, highest_period, merged, merging
//	leases    time bucket (16 bytes) → { id → proof_hash (32) ‖ etag (16) }
//	data      time bucket (16 bytes) → { id → { id → ciphertext } }
//	unsealed  id → flags (1) ‖ time buckets the block left (16 each)
//	unmerged  id → the same, for blocks sealed since the last period merge
//
// Keys are only block IDs, time buckets and the four meta keys. There is
// no timestamp, size, sequence or counter anywhere, and no value links two
// blocks beyond sharing a time bucket, which the design allows.
//
// Sealing (seal.go, docs/design.md §6): bbolt allocates the pages of one
// commit together, so a copy of the file shows which blocks were written
// in one commit, and in which order commits came (measured with
// internal/attack, attack_test.go: with three users writing at a time,
// about 0.5 advantage in linking two blocks to one user; with all ten at
// once, where group commits mix them, 0.06). unsealed names the blocks
// changed since the last seal, and a seal rewrites their pages in commits
// of randomly chosen blocks, then overwrites the freed pages with zeros:
// after it, under 0.02.
//
// Why this shape (figures from bench_test.go on the development machine):
//   - Blocks live under their time bucket, so a purge drops each expired
//     time bucket's two subtrees whole: it frees their pages and writes
//     almost nothing, whatever the live data (8–16 KiB written to purge
//     256 blocks, beside 0 or beside 2560 live ones). With one global
//     tree keyed by id, as first built, deleting an expired id rewrites a
//     leaf page shared with live ids: the same purge took 3.3 times as
//     long beside 2560 live blocks as beside none, and wrote 597 KiB
//     against 8 KiB.
//   - A lookup by id probes each time bucket present: R of them (13 by
//     default) plus any expired bucket not yet purged. That is a few
//     microseconds (Stat: under 1 µs with one time bucket, about 3 µs with
//     14), paid so that no index from id to time bucket has to be kept,
//     rewritten by renewals, or purged.
//   - A renewal moves the block's data subtree to the new time bucket
//     with bbolt's MoveBucket, which moves the subtree's root pointer and
//     never rewrites ciphertext pages.
//   - Each block's ciphertext sits alone in its own nested bucket,
//     because bbolt keeps two to four values in a leaf node: in one flat
//     bucket, writing a 64 KiB block rewrites its neighbours' 64 KiB too
//     (measured: 114–278 KiB written per put in a flat bucket against
//     68–82 KiB in nested ones).
//   - Records are apart from data so that Stats, Stat and the planning of
//     a batch read small pages only.
//
// The package must never log block IDs, proofs, ETags or bucket values,
// and must never give bbolt a logger: bbolt's debug logging prints keys.
package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/wire"
	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Names of the top-level buckets and meta keys: the only constant keys
// in the file.
var (
	bucketMeta     = []byte("meta")
	bucketLeases   = []byte("leases")
	bucketData     = []byte("data")
	bucketUnsealed = []byte("unsealed")

	keySchema        = []byte("schema")
	keyBlockSize     = []byte("block_size")
	keyFingerprint   = []byte("fingerprint")
	keyHighestPeriod = []byte("highest_period")
)

// schemaVersion is the layout this package writes and reads. Version 1
// had no unsealed bucket, version 2 no unmerged one; Open upgrades both
// (see upgrade).
const schemaVersion = 3

// recordSize is the size of a lease record: the block's Meta less its
// time bucket, which is the record's parent.
const recordSize = wire.HashSize + wire.ETagSize

// lockTimeout bounds the wait for bbolt's file lock, so a second server
// pointed at the same directory fails with a clear error instead of
// hanging. A variable so that the test of it is quick.
var lockTimeout = 2 * time.Second

// boltOptions are the bbolt options every store opens with.
//
//   - Durability first: NoSync and NoGrowSync stay off, every commit is
//     fsynced before Apply returns.
//   - NoFreelistSync: bbolt otherwise rewrites the whole freelist at every
//     commit, and a purge frees 17 pages per 64 KiB block. Measured after
//     purging 6000 of 8000 blocks: a single put wrote 884 KiB and took
//     1.7 ms with the freelist synced, 84 KiB and 0.5 ms without. The
//     price is paid at open, where bbolt rebuilds the freelist by walking
//     the tree (22 ms for 2000 blocks of 64 KiB, warm cache), and a crash
//     can never leave a stale freelist behind.
//   - FreelistMapType: purges leave many runs of 17 free pages (a 64 KiB
//     block with its page header); the array freelist scans for a run on
//     every allocation, the hash map finds one by size.
//   - No Logger: bbolt logs keys, which are block IDs.
func boltOptions() *bbolt.Options {
	return &bbolt.Options{
		Timeout:        lockTimeout,
		NoFreelistSync: true,
		FreelistType:   bbolt.FreelistMapType,
	}
}

// commitMode selects how Apply reaches bbolt. Only group commit is used in
// production; the others exist so the benchmark can show what it buys.
type commitMode uint8

const (
	commitGroup     commitMode = iota // our group commit (default)
	commitSolo                        // one bbolt Update per Apply
	commitBoltBatch                   // bbolt's DB.Batch
)

// Store is the embedded store. It is safe for concurrent use.
type Store struct {
	db        *bbolt.DB
	path      string
	blockSize int
	pageSize  int // bbolt's, read at Open: DB.Info races with a commit's remap
	mode      commitMode
	group     group
	closeOnce sync.Once
	closeErr  error
	files     chan *os.File // LendFile's idle handles of the file

	// readers is held shared by every read transaction, so that a seal's
	// scrub can wait for those that may still read pages freed before it
	// (see scrub).
	readers sync.RWMutex
	sealMu  sync.Mutex        // one seal at a time
	writers blobstore.Writers // a seal paces itself by them (seal.go)
}

// view runs a read transaction.
func (s *Store) view(fn func(tx *bbolt.Tx) error) error {
	s.readers.RLock()
	defer s.readers.RUnlock()
	return s.db.View(fn)
}

var _ blobstore.Store = (*Store)(nil)

// Open opens the store in the file at path, creating it (mode 0600, and
// its directory with mode 0700) if it does not exist. An existing store
// created with different Params is refused with an error wrapping
// blobstore.ErrParamsMismatch, and left untouched.
func Open(path string, p blobstore.Params) (*Store, error) {
	if err := wire.ValidateBlockSize(p.BlockSize); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("bolt: create data directory: %w", err)
	}
	db, err := bbolt.Open(path, 0o600, boltOptions())
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("bolt: %s is locked by another process (is another blindstored using this data directory?): %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		// Not fatal: the operator may have reasons, but should know.
		slog.Warn("bolt: store file is readable by other users; chmod 600 it", "path", path, "mode", fi.Mode().Perm().String())
	}
	if err := initOrCheck(db, path, p); err != nil {
		_ = db.Close()
		return nil, err
	}
	return &Store{db: db, path: path, blockSize: p.BlockSize, pageSize: db.Info().PageSize, files: make(chan *os.File, filesKept)}, nil
}

// initOrCheck writes the meta of a new store, or checks an existing
// store's against p without writing anything.
func initOrCheck(db *bbolt.DB, path string, p blobstore.Params) error {
	fresh, old := false, false
	err := db.View(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			empty := true
			_ = tx.ForEach(func([]byte, *bbolt.Bucket) error { empty = false; return nil })
			if !empty {
				return fmt.Errorf("bolt: %s is a bbolt file but not a blindstore store; refusing to use it", path)
			}
			fresh = true
			return nil
		}
		if err := checkMeta(tx, meta, path, p); err != nil {
			return err
		}
		old = binary.BigEndian.Uint32(meta.Get(keySchema)) != schemaVersion
		return nil
	})
	if err != nil {
		return err
	}
	if old {
		return upgrade(db, path)
	}
	if !fresh {
		return nil
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		for _, name := range [][]byte{bucketLeases, bucketData, bucketUnsealed, bucketUnmerged} {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		puts := []struct{ k, v []byte }{
			{keySchema, binary.BigEndian.AppendUint32(nil, schemaVersion)},
			{keyBlockSize, binary.BigEndian.AppendUint64(nil, uint64(p.BlockSize))},
			{keyFingerprint, bytes.Clone(p.Fingerprint[:])},
			{keyHighestPeriod, binary.BigEndian.AppendUint64(nil, 0)},
		}
		for _, kv := range puts {
			if err := meta.Put(kv.k, kv.v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("bolt: initialise %s: %w", path, err)
	}
	return nil
}

func checkMeta(tx *bbolt.Tx, meta *bbolt.Bucket, path string, p blobstore.Params) error {
	v := meta.Get(keySchema)
	if len(v) != 4 {
		return fmt.Errorf("bolt: %s has no valid schema version; the file is damaged", path)
	}
	if s := binary.BigEndian.Uint32(v); s > schemaVersion || s < 1 {
		return fmt.Errorf("bolt: %s has schema version %d, this build reads versions 1 to %d: run the blindstored that created it", path, s, schemaVersion)
	}
	for _, name := range [][]byte{bucketLeases, bucketData} {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("bolt: %s lacks its %q bucket; the file is damaged", path, name)
		}
	}
	if binary.BigEndian.Uint32(v) >= 2 && tx.Bucket(bucketUnsealed) == nil {
		return fmt.Errorf("bolt: %s lacks its %q bucket; the file is damaged", path, bucketUnsealed)
	}
	if binary.BigEndian.Uint32(v) >= 3 && tx.Bucket(bucketUnmerged) == nil {
		return fmt.Errorf("bolt: %s lacks its %q bucket; the file is damaged", path, bucketUnmerged)
	}
	v = meta.Get(keyBlockSize)
	fp := meta.Get(keyFingerprint)
	if len(v) != 8 || len(fp) != len(p.Fingerprint) || len(meta.Get(keyHighestPeriod)) != 8 {
		return fmt.Errorf("bolt: %s has damaged metadata", path)
	}
	var problems []string
	if bs := binary.BigEndian.Uint64(v); bs != uint64(p.BlockSize) {
		problems = append(problems, fmt.Sprintf(
			"it was created with block size %d but %d is configured (run with --block-size %d, or use a new data directory)",
			bs, p.BlockSize, bs))
	}
	if !bytes.Equal(fp, p.Fingerprint[:]) {
		problems = append(problems, fmt.Sprintf(
			"it was created under another bucket key (fingerprint %x…, the configured key's is %x…): use the bucket key file it was created with, since under another key every block would look expired",
			fp[:4], p.Fingerprint[:4]))
	}
	if len(problems) > 0 {
		msg := problems[0]
		if len(problems) > 1 {
			msg += "; and " + problems[1]
		}
		return fmt.Errorf("bolt: refusing to open %s: %s: %w", path, msg, blobstore.ErrParamsMismatch)
	}
	return nil
}

// upgrade brings a version 1 file to version 3: it adds the unsealed
// bucket and names every block in it, so that the first seal rewrites
// the whole file out of the order it was written in (and names them in
// the unmerged bucket); and a version 2 file to version 3: it adds the
// unmerged bucket and names every sealed block in it, so that the first
// merge rewrites them out of the windows of their seals.
func upgrade(db *bbolt.DB, path string) error {
	err := db.Update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		v := binary.BigEndian.Uint32(meta.Get(keySchema))
		if v == schemaVersion {
			return nil
		}
		um, err := tx.CreateBucketIfNotExists(bucketUnmerged)
		if err != nil {
			return err
		}
		// Every block sealed so far is named in the unmerged bucket: the
		// first merge rewrites the file out of its seals' windows.
		if v >= 2 {
			err = tx.Bucket(bucketData).ForEachBucket(func(tb []byte) error {
				return tx.Bucket(bucketData).Bucket(tb).ForEachBucket(func(id []byte) error {
					if tx.Bucket(bucketUnsealed).Get(id) != nil {
						return nil
					}
					return um.Put(bytes.Clone(id), []byte{unsealedData})
				})
			})
			if err != nil {
				return err
			}
			return meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, schemaVersion))
		}
		un, err := tx.CreateBucketIfNotExists(bucketUnsealed)
		if err != nil {
			return err
		}
		err = tx.Bucket(bucketData).ForEachBucket(func(tb []byte) error {
			return tx.Bucket(bucketData).Bucket(tb).ForEachBucket(func(id []byte) error {
				return un.Put(bytes.Clone(id), []byte{unsealedData})
			})
		})
		if err != nil {
			return err
		}
		return meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, schemaVersion))
	})
	if err != nil {
		return fmt.Errorf("bolt: upgrade %s to schema version %d: %w", path, schemaVersion, err)
	}
	return nil
}

// Close waits for commits in progress and closes the file. Calls after
// the first return its result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("bolt: close: %w", err)
		}
		s.closeFiles()
	})
	return s.closeErr
}

// Ping checks that the file is open and holds a store.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.view(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil {
			return errors.New("meta bucket missing")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("bolt: ping: %w", err)
	}
	return nil
}

// HighestPeriod returns the highest period recorded.
func (s *Store) HighestPeriod(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var p uint64
	err := s.view(func(tx *bbolt.Tx) error {
		var err error
		p, err = highestPeriod(tx)
		return err
	})
	if err != nil {
		return 0, wrapErr("highest period", err)
	}
	return p, nil
}

func highestPeriod(tx *bbolt.Tx) (uint64, error) {
	v := tx.Bucket(bucketMeta).Get(keyHighestPeriod)
	if len(v) != 8 {
		return 0, errors.New("the highest period is damaged")
	}
	return binary.BigEndian.Uint64(v), nil
}

// SetHighestPeriod records p if it is higher than the recorded period. It
// writes nothing otherwise, so frequent calls cost a read.
func (s *Store) SetHighestPeriod(ctx context.Context, p uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	cur, err := s.HighestPeriod(ctx)
	if err != nil || p <= cur {
		return err
	}
	err = s.db.Update(func(tx *bbolt.Tx) error {
		cur, err := highestPeriod(tx)
		if err != nil || p <= cur {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyHighestPeriod, binary.BigEndian.AppendUint64(nil, p))
	})
	if err != nil {
		return wrapErr("set highest period", err)
	}
	return nil
}
