// Package postgres is the PostgreSQL implementation of blobstore.Store,
// for deployments that run several stateless blindstored instances on one
// database. The schema lives in the migrations package and is applied at
// Open (and by Migrate) under tern's advisory lock.
//
// Layout: the sealed part holds blocks(id, proof_hash, etag, data), each
// block once with its data out of line, and leases(bucket, id), which
// says which keyed bucket a block is stamped with, one partition per
// bucket. Writes never touch the sealed part: they go to the active one
// of two hot sides (blocks_hot_a/b, leases_hot_a/b; layers.go), and a
// seal (seal.go) rewrites what the hot side holds into the sealed part in
// a random order, in one transaction, and empties the side with TRUNCATE.
// So a copy of the database shows, of sealed rows, only which seal wrote
// them; and of hot rows, which transaction. A renewal writes a hot lease
// row and never rewrites a block; a purge empties and drops the
// partitions of expired buckets, so it costs what expired, not what lives.
// meta holds the block size, the bucket key's fingerprint, the highest
// period and the active hot side.
//
// An Apply is one READ COMMITTED transaction on the active side that
// locks or inserts the touched blocks' hot lease rows, decides the batch
// with blobstore.Plan from every layer's rows, and writes the net changes,
// new data by binary COPY. apply.go explains why this gives exactly one
// winner to every race, also against a seal or a purge.
//
// The package must never add a column beyond those (no time, size, user
// or sequence), never lock or update a sealed row outside a seal or a
// purge (the locker's transaction id would stay in the row), never log
// block IDs, proofs, ETags or buckets, and never start on a server with
// track_commit_timestamp on, which would date every row it writes.
package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/wire"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Options tune a Store. The zero value is ready to use.
type Options struct {
	// Logger receives the store's operational messages; nil means
	// slog.Default(). Nothing logged names a block.
	Logger *slog.Logger
	// MaxConns caps the connection pool; 0 keeps pgxpool's default or the
	// URL's pool_max_conns.
	MaxConns int32
	// NoMigrate leaves the schema alone at Open. Open then refuses a
	// database whose schema is not exactly the one this binary knows, and
	// the operator runs `blindstored migrate` first.
	NoMigrate bool
	// ConnectTimeout bounds each connection attempt; 0 means 5 s unless
	// the URL sets connect_timeout.
	ConnectTimeout time.Duration
	// ReadCache is the most bytes of block data kept in memory for reads
	// (readcache.go); less than two blocks keeps none.
	ReadCache int64
}

// Store is a blobstore.Store on PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool       *pgxpool.Pool
	log        *slog.Logger
	blockSize  int
	purgeChunk int

	side    sideCache         // the hot side believed to take writes
	writers blobstore.Writers // a seal paces itself by them (seal.go)
	reads   readGroup         // reads waiting to go out together (readgroup.go)
	cache   *readCache        // recently read blocks, or nil (readcache.go)
	lendBuf sync.Pool         // *[]byte of blockSize, for Lend without a cache
}

var (
	_ blobstore.Store      = (*Store)(nil)
	_ blobstore.ManyReader = (*Store)(nil)
)

// defaultTimeout bounds clean-up work done after the caller's context has
// ended (rolling back, releasing a lock).
const defaultTimeout = 5 * time.Second

// Meta keys.
const (
	metaBlockSize     = "block_size"
	metaFingerprint   = "fingerprint"
	metaHighestPeriod = "highest_period"
)

// ErrTrackCommitTimestamp is returned by Open when the server records
// commit timestamps.
var ErrTrackCommitTimestamp = errors.New("postgres: track_commit_timestamp is on: it would date every block; set track_commit_timestamp = off in postgresql.conf and restart PostgreSQL")

// Open connects to the database at url, checks that the server and the
// stored parameters suit this deployment, applies pending migrations
// unless opt.NoMigrate, and returns the store.
//
// It refuses, with an error saying what to do: a server with
// track_commit_timestamp on; a schema newer than this binary knows (or,
// with NoMigrate, older); and a database created with another block size
// or bucket key (wrapping blobstore.ErrParamsMismatch). An unreachable
// server is an error of wire.KindUnavailable.
func Open(ctx context.Context, url string, p blobstore.Params, opt Options) (*Store, error) {
	if err := wire.ValidateBlockSize(p.BlockSize); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse store URL: %w", err)
	}
	if opt.MaxConns > 0 {
		cfg.MaxConns = opt.MaxConns
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
		if opt.ConnectTimeout > 0 {
			cfg.ConnConfig.ConnectTimeout = opt.ConnectTimeout
		}
	}
	if _, set := cfg.ConnConfig.RuntimeParams["plan_cache_mode"]; !set {
		// The store's statements are few and their best plans do not
		// depend on the values bound: planning each execution anew (a
		// custom plan) cost as much server time as running the lock and
		// read of an Apply.
		cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
	}
	if plainTCP(cfg.ConnConfig) {
		// Under TLS, reads of the socket are the TLS layer's, in sizes
		// that say nothing of the message (lowat_linux.go).
		cfg.ConnConfig.DialFunc = lowatDial(cfg.ConnConfig.DialFunc)
	}
	log := opt.Logger
	if log == nil {
		log = slog.Default()
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, classify("connect", err)
	}
	s := &Store{pool: pool, log: log, blockSize: p.BlockSize, purgeChunk: defaultPurgeChunk, reads: readGroup{slots: readSlots(cfg.MaxConns)},
		cache: newReadCache(opt.ReadCache, p.BlockSize)}
	if err := s.start(ctx, p, opt); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// plainTCP reports whether no connection attempt of cfg uses TLS.
func plainTCP(cfg *pgx.ConnConfig) bool {
	if cfg.TLSConfig != nil {
		return false
	}
	for _, f := range cfg.Fallbacks {
		if f.TLSConfig != nil {
			return false
		}
	}
	return true
}

func (s *Store) start(ctx context.Context, p blobstore.Params, opt Options) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return classify("connect", err)
	}
	defer conn.Release()

	// Checked before anything is written, so a refused start leaves no
	// trace, not even a schema.
	var tct string
	if err := conn.QueryRow(ctx, "SELECT current_setting('track_commit_timestamp')").Scan(&tct); err != nil {
		return classify("read track_commit_timestamp", err)
	}
	if tct != "off" {
		return ErrTrackCommitTimestamp
	}

	if !opt.NoMigrate {
		if err := migrate(ctx, conn.Conn(), s.log, nil); err != nil {
			return err
		}
	}
	v, ok, err := schemaVersion(ctx, conn.Conn())
	if err != nil {
		return err
	}
	switch {
	case !ok || v < int32(knownVersion):
		return fmt.Errorf("postgres: the database schema is at version %d, this blindstored needs %d: run `blindstored migrate --store URL` first", v, knownVersion)
	case v > int32(knownVersion):
		return errSchemaTooNew(v)
	}
	if err := checkParams(ctx, conn.Conn(), p); err != nil {
		return err
	}
	parts, err := listPartitions(ctx, conn)
	if err != nil {
		return err
	}
	if _, err := s.loadSide(ctx, conn); err != nil {
		return err
	}
	s.log.Info("postgres store open", "schema_version", v, "lease_partitions", len(parts))
	return nil
}

// checkParams records p in a new database, or compares it with what an
// existing one holds. Concurrent first starts agree: the first insert
// wins and every starter compares against it.
func checkParams(ctx context.Context, conn *pgx.Conn, p blobstore.Params) error {
	var bs [8]byte
	binary.BigEndian.PutUint64(bs[:], uint64(p.BlockSize))
	b := &pgx.Batch{}
	b.Queue("INSERT INTO meta (key, value) VALUES ($1, $2), ($3, $4) ON CONFLICT (key) DO NOTHING",
		metaBlockSize, bs[:], metaFingerprint, p.Fingerprint[:])
	var storedBS, storedFP []byte
	b.Queue("SELECT value FROM meta WHERE key = $1", metaBlockSize).QueryRow(func(r pgx.Row) error { return r.Scan(&storedBS) })
	b.Queue("SELECT value FROM meta WHERE key = $1", metaFingerprint).QueryRow(func(r pgx.Row) error { return r.Scan(&storedFP) })
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return classify("check stored parameters", err)
	}
	if len(storedBS) != 8 {
		return fmt.Errorf("postgres: meta holds a malformed block size (%d bytes)", len(storedBS))
	}
	if got := binary.BigEndian.Uint64(storedBS); got != uint64(p.BlockSize) {
		return fmt.Errorf("postgres: the store was created with block size %d, not %d: start with --block-size %d, or use a new database: %w",
			got, p.BlockSize, got, blobstore.ErrParamsMismatch)
	}
	if string(storedFP) != string(p.Fingerprint[:]) {
		return fmt.Errorf("postgres: the store was created with another bucket key (fingerprint differs): start with the bucket key file it was created with, or every block would look expired: %w",
			blobstore.ErrParamsMismatch)
	}
	return nil
}

// Close releases the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return classify("ping", s.pool.Ping(ctx))
}

func uuidOf(id wire.ID) pgtype.UUID { return pgtype.UUID{Bytes: id, Valid: true} }

// Stat returns the block's ETag.
func (s *Store) Stat(ctx context.Context, id wire.ID) (wire.ETag, error) {
	var e wire.ETag
	err := retryBroken(ctx, func() error {
		for attempt := 0; ; attempt++ {
			l := s.layer()
			var sideV, etag []byte
			var live bool
			if err := s.pool.QueryRow(ctx, l.stat, uuidOf(id)).Scan(&sideV, &live, &etag); err != nil {
				return err
			}
			sd, err := sideOf(sideV)
			if err != nil {
				return err
			}
			if sd != l.side {
				s.side.set(sd)
				if attempt < maxSideAttempts {
					continue
				}
				return errSidesMoving
			}
			if !live {
				return blobstore.ErrNotFound
			}
			if len(etag) != len(e) {
				return fmt.Errorf("a block has a lease but a malformed or missing row (%d-byte ETag)", len(etag))
			}
			copy(e[:], etag)
			return nil
		}
	})
	if err != nil {
		return wire.ETag{}, classify("stat block", err)
	}
	return e, nil
}

// retryBroken runs a read once more if it failed for want of a working
// connection: after a server restart the pool may hand out a connection
// that broke while idle, and the pool drops it on that failure. A second
// failure is the caller's.
func retryBroken(ctx context.Context, read func() error) error {
	err := read()
	if err != nil && unavailable(err) && ctx.Err() == nil {
		err = read()
	}
	return err
}

// HighestPeriod returns the highest period recorded, 0 if none.
func (s *Store) HighestPeriod(ctx context.Context) (uint64, error) {
	var v []byte
	err := s.pool.QueryRow(ctx, "SELECT value FROM meta WHERE key = $1", metaHighestPeriod).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, classify("read highest period", err)
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("postgres: meta holds a malformed highest period (%d bytes)", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// SetHighestPeriod records p if it is higher than the recorded one. The
// value is big-endian, so bytea order is numeric order and one statement
// does the comparison under the row's lock.
func (s *Store) SetHighestPeriod(ctx context.Context, p uint64) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], p)
	_, err := s.pool.Exec(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value WHERE meta.value < EXCLUDED.value`,
		metaHighestPeriod, v[:])
	return classify("record highest period", err)
}

// Stats counts blocks per bucket, each in the bucket of its newest lease
// row: every live block has exactly one.
func (s *Store) Stats(ctx context.Context) (blobstore.Stats, error) {
	st := blobstore.Stats{Buckets: map[bucketer.Bucket]int64{}}
	err := s.readSnapshot(ctx, "count blocks", func(tx pgx.Tx, l *layerSQL) error {
		rows, err := tx.Query(ctx, l.stats)
		if err != nil {
			return classify("count blocks", err)
		}
		defer rows.Close()
		for rows.Next() {
			var b []byte
			var n int64
			if err := rows.Scan(&b, &n); err != nil {
				return classify("count blocks", err)
			}
			var bk bucketer.Bucket
			if len(b) != len(bk) {
				return fmt.Errorf("postgres: a lease has a %d-byte bucket", len(b))
			}
			copy(bk[:], b)
			st.Buckets[bk] = n
			st.Blocks += n
		}
		return classify("count blocks", rows.Err())
	})
	if err != nil {
		return blobstore.Stats{Buckets: map[bucketer.Bucket]int64{}}, err
	}
	return st, nil
}
