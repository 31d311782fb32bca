package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
)

// The store's three layers (migrations/002_sealing.sql): two hot sides,
// a and b, and the sealed part (blocks, leases). Writes go to the active
// side, named by meta's hot_side; the other side is empty, or frozen while
// a seal rewrites it into the sealed part. A block's state is read from
// the newest layer that has a row for it: the active side, then the other
// side, then the sealed part; lease rows and block rows are resolved
// apart, since a renewal writes a hot lease and leaves the data sealed.
//
// The statements differ between the two sides only in table names, so
// each is written once with placeholders and expanded for both.

const (
	metaHotSide = "hot_side"

	// codeSideMoved is raised by blindstore_expect_side: a seal switched
	// sides since this store last read which one takes writes.
	codeSideMoved = "BS001"
)

// maxSideAttempts bounds how often a read runs again because a seal
// switched sides under it; seals are minutes apart, so a second switch
// within one read means something is wrong.
const maxSideAttempts = 3

var errSidesMoving = errors.New("postgres: the hot sides keep switching under a read")

// side is 0 for a, 1 for b.
type side uint8

func (s side) other() side { return 1 - s }

// value is how meta stores the side.
func (s side) value() []byte { return []byte{"ab"[s]} }

func sideOf(v []byte) (side, error) {
	if len(v) == 1 {
		switch v[0] {
		case 'a':
			return 0, nil
		case 'b':
			return 1, nil
		}
	}
	return 0, fmt.Errorf("postgres: meta holds a malformed hot side (%d bytes)", len(v))
}

// layerSQL holds the statements of one side being active.
type layerSQL struct {
	side side
	// tables, for the seal and tests
	leasesHot, blocksHot, leasesOld, blocksOld string

	lockHot    string // first statement of every write transaction
	lockRows   string
	readState  string
	readMany   string
	stat       string
	createOne  string
	insertHot  string
	updateHot  string
	insertData string
	updateData string
	deleteData string
	copyData   string
	stats      string
}

// expand replaces {S} and {O} (the active and the other side's suffix).
func expand(sql string, s side) string {
	return strings.NewReplacer("{S}", string("ab"[s]), "{O}", string("ab"[s.other()])).Replace(sql)
}

const (
	sqlLockHot = "LOCK TABLE leases_hot_{S}, blocks_hot_{S} IN ROW EXCLUSIVE MODE"

	sqlExpectSide = "SELECT blindstore_expect_side($1)"

	// Locks the active side's lease rows of the touched blocks: whoever
	// holds a block's row is its only writer until commit. A block with
	// no such row yet gets one by INSERT, and of two inserters the
	// primary key lets one through; the other runs again.
	sqlLockRows = "SELECT 1 FROM leases_hot_{S} WHERE id = ANY($1) ORDER BY id FOR UPDATE"

	// sqlReadState reads every layer's rows of the touched blocks, with a
	// snapshot taken after the locks above. Sealed rows are read, never
	// locked: a row lock writes the locker's transaction id into the row,
	// where a copy would find it long after the seal. Rows come in no
	// particular order (the caller keys them by id): sorting 16,384 of
	// them took 5 ms of a 100 ms read.
	sqlReadState = `SELECT q.id,
			sl.id IS NOT NULL, sl.bucket,
			ol.id IS NOT NULL, ol.bucket,
			l.bucket,
			sb.id IS NOT NULL,
			CASE WHEN sb.id IS NOT NULL THEN sb.proof_hash WHEN ob.id IS NOT NULL THEN ob.proof_hash ELSE b.proof_hash END,
			CASE WHEN sb.id IS NOT NULL THEN sb.etag WHEN ob.id IS NOT NULL THEN ob.etag ELSE b.etag END
		FROM unnest($1::uuid[]) AS q(id)
		LEFT JOIN leases_hot_{S} sl ON sl.id = q.id
		LEFT JOIN leases_hot_{O} ol ON ol.id = q.id
		LEFT JOIN leases l ON l.id = q.id
		LEFT JOIN blocks_hot_{S} sb ON sb.id = q.id
		LEFT JOIN blocks_hot_{O} ob ON ob.id = q.id
		LEFT JOIN blocks b ON b.id = q.id`

	sqlStat = `SELECT m.value, ` + sqlLive + `, x.etag
		FROM meta m LEFT JOIN LATERAL (` + sqlNewestBlock + `) x ON true
		WHERE m.key = 'hot_side'`

	sqlLive = `COALESCE(
			(SELECT sl.bucket IS NOT NULL FROM leases_hot_{S} sl WHERE sl.id = $1),
			(SELECT ol.bucket IS NOT NULL FROM leases_hot_{O} ol WHERE ol.id = $1),
			EXISTS (SELECT 1 FROM leases l WHERE l.id = $1))`

	sqlNewestBlock = `SELECT sb.etag, sb.data FROM blocks_hot_{S} sb WHERE sb.id = $1
			UNION ALL
			SELECT ob.etag, ob.data FROM blocks_hot_{O} ob WHERE ob.id = $1
				AND NOT EXISTS (SELECT 1 FROM blocks_hot_{S} n WHERE n.id = $1)
			UNION ALL
			SELECT b.etag, b.data FROM blocks b WHERE b.id = $1
				AND NOT EXISTS (SELECT 1 FROM blocks_hot_{S} n WHERE n.id = $1)
				AND NOT EXISTS (SELECT 1 FROM blocks_hot_{O} n WHERE n.id = $1)
			LIMIT 1`

	// sqlCreateOne creates a block that no layer holds, in one statement
	// (see createOne). The other side decides if it has a row; else the
	// sealed part does. The active side's primary key settles a race.
	sqlCreateOne = `WITH lease AS (
			INSERT INTO leases_hot_{S} (id, bucket)
			SELECT $1::uuid, $5::bytea
			WHERE NOT EXISTS (SELECT 1 FROM leases_hot_{O} o WHERE o.id = $1 AND o.bucket IS NOT NULL)
			  AND (EXISTS (SELECT 1 FROM leases_hot_{O} o WHERE o.id = $1)
			       OR NOT EXISTS (SELECT 1 FROM leases l WHERE l.id = $1))
			ON CONFLICT (id) DO NOTHING RETURNING id),
		ins AS (INSERT INTO blocks_hot_{S} (id, proof_hash, etag, data) SELECT id, $2, $3, $4 FROM lease)
		SELECT count(*) FROM lease`

	// Each write checks, inside the statement, that it touched one row per
	// id: with the rows locked any other count means the store is not what
	// the read said, and the error aborts the transaction before the
	// COMMIT queued behind it (a check in Go would come too late, since
	// the whole pipeline is already on its way). A NULL bucket is a
	// tombstone.
	sqlInsertHot = "INSERT INTO leases_hot_{S} (id, bucket) SELECT * FROM unnest($1::uuid[], $2::bytea[])"
	sqlUpdateHot = `WITH u AS (UPDATE leases_hot_{S} h SET bucket = v.bucket
			FROM unnest($1::uuid[], $2::bytea[]) AS v(id, bucket) WHERE h.id = v.id RETURNING 1)
		SELECT blindstore_expect_rows(count(*), cardinality($1::uuid[]), 'update hot leases') FROM u`
	sqlInsertData = "INSERT INTO blocks_hot_{S} (id, proof_hash, etag, data) VALUES ($1, $2, $3, $4)"
	sqlUpdateData = `WITH u AS (UPDATE blocks_hot_{S} SET proof_hash = $2, etag = $3, data = $4 WHERE id = $1 RETURNING 1)
		SELECT blindstore_expect_rows(count(*), 1, 'update hot block') FROM u`
	sqlDeleteData = `WITH d AS (DELETE FROM blocks_hot_{S} WHERE id = ANY($1) RETURNING 1)
		SELECT blindstore_expect_rows(count(*), cardinality($1::uuid[]), 'delete hot blocks') FROM d`
	sqlCopyData = "COPY blocks_hot_{S} (id, proof_hash, etag, data) FROM STDIN (FORMAT binary)"

	// sqlStats counts each block once, in the bucket of its newest lease.
	sqlStats = `SELECT bucket, count(*) FROM (
			SELECT bucket FROM leases_hot_{S} WHERE bucket IS NOT NULL
			UNION ALL
			SELECT o.bucket FROM leases_hot_{O} o
			WHERE o.bucket IS NOT NULL AND NOT EXISTS (SELECT 1 FROM leases_hot_{S} s WHERE s.id = o.id)
			UNION ALL
			SELECT l.bucket FROM leases l
			WHERE NOT EXISTS (SELECT 1 FROM leases_hot_{S} s WHERE s.id = l.id)
			  AND NOT EXISTS (SELECT 1 FROM leases_hot_{O} o WHERE o.id = l.id)
		) x GROUP BY bucket`
)

var (
	// sqlReadMany resolves the blocks of $1, one row each (readgroup.go),
	// in one statement, so in one snapshot, and returns the active side as
	// that snapshot saw it: a reader that assumed the other one runs again.
	//
	// It asks each layer only as far as needed. The newest lease row
	// decides liveness (a NULL bucket is a tombstone; with no hot row, a
	// sealed lease in any partition means live): COALESCE stops at the
	// first layer holding a row, since a row's bucket IS NOT NULL is never
	// NULL, so the sealed leases, one index per bucket partition, are
	// probed only for a block with no hot lease. The data comes from the
	// newest layer holding a block row: each branch of the UNION ALL
	// admits its row only if no newer layer has one, so at most one
	// branch yields a row whatever order they run in, and LIMIT 1 stops
	// at the first, leaving the older layers unread for a hot block.
	// Joining every layer instead cost a GET half again the server time
	// of reading the row alone, probing every partition each time.
	//
	// $2 holds, for each id, the ETag of the data the read cache holds,
	// or NULL: a block whose ETag is still that one comes back without
	// its data, which is then never fetched (readcache.go).
	sqlReadMany = `SELECT q.id, m.value, ` + perID(sqlLive) + `, x.etag,
			CASE WHEN x.etag = q.have THEN NULL ELSE x.data END
		FROM unnest($1::uuid[], $2::bytea[]) AS q(id, have)
		CROSS JOIN meta m
		LEFT JOIN LATERAL (` + perID(sqlNewestBlock) + `) x ON true
		WHERE m.key = 'hot_side'`
)

// perID makes a statement about the block $1 one about each q.id.
func perID(sql string) string { return strings.ReplaceAll(sql, "$1", "q.id") }

var layers = [2]*layerSQL{newLayerSQL(0), newLayerSQL(1)}

func newLayerSQL(s side) *layerSQL {
	e := func(q string) string { return expand(q, s) }
	return &layerSQL{
		side:       s,
		leasesHot:  e("leases_hot_{S}"),
		blocksHot:  e("blocks_hot_{S}"),
		leasesOld:  e("leases_hot_{O}"),
		blocksOld:  e("blocks_hot_{O}"),
		lockHot:    e(sqlLockHot),
		lockRows:   e(sqlLockRows),
		readState:  e(sqlReadState),
		readMany:   e(sqlReadMany),
		stat:       e(sqlStat),
		createOne:  e(sqlCreateOne),
		insertHot:  e(sqlInsertHot),
		updateHot:  e(sqlUpdateHot),
		insertData: e(sqlInsertData),
		updateData: e(sqlUpdateData),
		deleteData: e(sqlDeleteData),
		copyData:   e(sqlCopyData),
		stats:      e(sqlStats),
	}
}

// sideCache is this process's belief of which side takes writes. Every
// statement that depends on it checks it in the same snapshot, so a stale
// belief costs one more round trip, never a wrong answer.
type sideCache struct{ v atomic.Uint32 }

func (c *sideCache) get() side  { return side(c.v.Load()) }
func (c *sideCache) set(s side) { c.v.Store(uint32(s)) }

// layer returns the statements for the side believed active.
func (s *Store) layer() *layerSQL { return layers[s.side.get()] }

// loadSide reads which side takes writes and remembers it.
func (s *Store) loadSide(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (side, error) {
	var v []byte
	if err := q.QueryRow(ctx, "SELECT value FROM meta WHERE key = $1", metaHotSide).Scan(&v); err != nil {
		return 0, classify("read the active hot side", err)
	}
	sd, err := sideOf(v)
	if err != nil {
		return 0, err
	}
	s.side.set(sd)
	return sd, nil
}

// lockAllHot takes ACCESS SHARE on every hot table and on leases with its
// partitions. A read-only transaction that starts with it keeps a seal
// from emptying a side under it (TRUNCATE is not MVCC-safe: a snapshot
// older than the TRUNCATE would see the side empty and the sealed part
// without the rows moved there) and a purge from dropping a partition.
// It is a utility statement, so under REPEATABLE READ the snapshot is
// taken by the next statement, after the locks.
const sqlLockAllHot = "LOCK TABLE leases_hot_a, leases_hot_b, blocks_hot_a, blocks_hot_b, leases IN ACCESS SHARE MODE"

// readSnapshot runs fn in a REPEATABLE READ, READ ONLY transaction that
// sees every layer at one instant, with the layer statements of the side
// active in that snapshot.
func (s *Store) readSnapshot(ctx context.Context, what string, fn func(tx pgx.Tx, l *layerSQL) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return classify(what, err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), defaultTimeout)
		defer cancel()
		_ = tx.Rollback(rctx)
	}()
	if _, err := tx.Exec(ctx, sqlLockAllHot); err != nil {
		return classify(what, err)
	}
	sd, err := s.loadSide(ctx, tx)
	if err != nil {
		return err
	}
	return fn(tx, layers[sd])
}
