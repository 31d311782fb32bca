// Package bolt is blindstore's embedded store: every block in one bbolt
// file in the data directory, nothing else to install or run.
//
// The file holds six top-level buckets and nothing else:
//
//	meta      schema, block_size, fingerprint, highest_period, merged, merging
//	records   id → proof_hash (32) ‖ etag (16)
//	blocks    id → { id → ciphertext }
//	buckets   time bucket (16 bytes) → { id → (empty) }
//	unsealed  id → flags (1) ‖ time buckets the block left (16 each)
//	unmerged  id → the same, for blocks sealed since the last period merge
//
// Keys are only block IDs, time buckets and the meta keys. There is no
// timestamp, size, sequence or counter anywhere, and no value links two
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
// Why this shape (schema 4; figures from renewbench_test.go and
// bench_test.go on the development machine):
//   - A renewal writes only the block's membership of a time bucket: it
//     deletes the id from the set of the bucket it leaves and adds it to
//     the current one's, each entry 32 bytes of a leaf (a 16-byte key, no
//     value, bbolt's 16-byte element header). Records and ciphertext are
//     keyed by id alone and never move. A batch of thousands of random
//     ids dirties nearly every leaf of each tree it touches, so what a
//     renewal costs is the size of the trees it touches: schema 3 kept
//     the record (80 bytes a leaf entry) and the data subtree's header
//     (48) under the time bucket and moved both: 6,490 bytes written per
//     renewal against 2,980 now, in batches of 4,096 renewals of a
//     100,000-block store, where bbolt rewriting 48-byte records in place
//     in one flat bucket writes 2,670.
//   - A lookup of a block's time bucket (to plan a batch) probes each
//     time bucket's set present: R of them (13 by default) plus any
//     expired set not yet purged, a few microseconds, paid so that no
//     index from id to time bucket is rewritten by renewals. Reads and
//     Stat need no time bucket: one lookup in records and one in blocks.
//   - A purge walks each expired time bucket's set and deletes those
//     blocks' records and ciphertext from the trees keyed by id, then
//     drops the set. Those deletes rewrite leaves shared with live blocks
//     (schema 3 dropped whole subtrees and wrote almost nothing: 16 KiB
//     to purge 256 blocks of 64 KiB beside 2,560 live ones, against 522
//     KiB now): a purge costs about one more renewal batch's worth of
//     writes per expired bucket, once a period, against a renewal of the
//     whole store every period.
//   - Each block's ciphertext sits alone in its own nested bucket,
//     because bbolt keeps two to four values in a leaf node: in one flat
//     bucket, writing a 64 KiB block rewrites its neighbours' 64 KiB too
//     (measured: 114–278 KiB written per put in a flat bucket against
//     68–82 KiB in nested ones).
//   - Records are apart from data so that Stat and the planning of a
//     batch read small pages only.
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
	"strconv"
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
	bucketRecords  = []byte("records")
	bucketBlocks   = []byte("blocks")
	bucketSets     = []byte("buckets")
	bucketUnsealed = []byte("unsealed")

	keySchema        = []byte("schema")
	keyBlockSize     = []byte("block_size")
	keyFingerprint   = []byte("fingerprint")
	keyHighestPeriod = []byte("highest_period")
)

// schemaVersion is the layout this package writes and reads. Versions 1
// to 3 kept records and data under their time bucket (see migrate.go);
// version 1 had no unsealed bucket, version 2 no unmerged one. Open
// upgrades them all.
const schemaVersion = 4

// recordSize is the size of a block's record: its Meta less its time
// bucket, which the sets of the buckets bucket give.
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
//   - InitialMmapSize: bbolt maps the file, and remaps it each time the
//     file outgrows the map (doubling it up to 1 GiB, then 1 GiB at a
//     time). A remap first copies every key and value the write
//     transaction holds out of the map, which for a put is every block
//     of the commit: a tenth of the server's CPU in a 256 MiB upload into
//     a new store, all of it in the commit, which holds up every writer.
//     A remap also waits for every read transaction. A first map of
//     initialMmapSize leaves none before the file reaches it; the map is
//     address space only, not memory.
//   - No Logger: bbolt logs keys, which are block IDs.
func boltOptions() *bbolt.Options {
	return &bbolt.Options{
		Timeout:         lockTimeout,
		NoFreelistSync:  true,
		FreelistType:    bbolt.FreelistMapType,
		InitialMmapSize: initialMmapSize,
	}
}

// initialMmapSize is the size of the file's first map (boltOptions):
// 1 GiB, bbolt's largest step, where address space allows; 32-bit
// systems keep bbolt's default.
const initialMmapSize = (strconv.IntSize / 64) << 30

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
	wb        *writeback // starts a commit's writes to disk early (writeback.go)
	closeOnce sync.Once
	closeErr  error

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
	return &Store{db: db, path: path, blockSize: p.BlockSize, pageSize: db.Info().PageSize, wb: openWriteback(path)}, nil
}

// initOrCheck writes the meta of a new store, or checks an existing
// store's against p, and brings a store of an older schema to this one
// (see upgrade and migrate).
func initOrCheck(db *bbolt.DB, path string, p blobstore.Params) error {
	fresh, version, migrating := false, uint32(0), false
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
		version = binary.BigEndian.Uint32(meta.Get(keySchema))
		migrating = meta.Get(keyMigrating) != nil
		return nil
	})
	if err != nil {
		return err
	}
	if version != 0 && version < 3 {
		if err := upgrade(db, path); err != nil {
			return err
		}
	}
	if version != 0 && (version < schemaVersion || migrating) {
		return migrate(db, path)
	}
	if !fresh {
		return nil
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		for _, name := range [][]byte{bucketRecords, bucketBlocks, bucketSets, bucketUnsealed, bucketUnmerged} {
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
	version := binary.BigEndian.Uint32(v)
	if version > schemaVersion || version < 1 {
		return fmt.Errorf("bolt: %s has schema version %d, this build reads versions 1 to %d: run the blindstored that created it", path, version, schemaVersion)
	}
	need := [][]byte{bucketRecords, bucketBlocks, bucketSets, bucketUnsealed, bucketUnmerged}
	switch {
	case version < schemaVersion:
		need = [][]byte{bucketOldLeases, bucketOldData}
		if version >= 2 {
			need = append(need, bucketUnsealed)
		}
		if version >= 3 {
			need = append(need, bucketUnmerged)
		}
	case meta.Get(keyMigrating) != nil:
		need = append(need, bucketOldLeases, bucketOldData)
	}
	for _, name := range need {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("bolt: %s lacks its %q bucket; the file is damaged", path, name)
		}
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

// Close waits for commits in progress and closes the file. Calls after
// the first return its result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		defer s.wb.close()
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("bolt: close: %w", err)
		}
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
