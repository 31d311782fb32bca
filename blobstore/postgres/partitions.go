package postgres

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/blindstore/blindstore/bucketer"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Lease partitions: one per bucket, named after the bucket's hex. The
// bucket is keyed, so the name tells nothing of the period it stands for.

const partitionPrefix = "leases_"

// Advisory lock keys (transaction-scoped for DDL, session-scoped for a
// purge or a seal). Arbitrary constants, distinct from tern's.
const (
	partitionLockKey int64 = 0x626c696e64_0001 // "blind" ‖ 1
	// maintenanceLockKey is held by a purge or a seal for its whole run:
	// one of them at a time per database. Both move rows between layers
	// and the sealed part, and each relies on the other not doing so
	// meanwhile (the active side stays the active side through a purge).
	maintenanceLockKey int64 = 0x626c696e64_0002
)

// defaultPurgeChunk is how many expired blocks one purge transaction
// deletes: few enough that a transaction stays short, many enough that
// round trips do not matter.
const defaultPurgeChunk = 2000

func partitionName(b bucketer.Bucket) string { return partitionPrefix + hex.EncodeToString(b[:]) }

func partitionBucket(name string) (bucketer.Bucket, bool) {
	var b bucketer.Bucket
	h, ok := strings.CutPrefix(name, partitionPrefix)
	if !ok || len(h) != 2*len(b) {
		return b, false
	}
	if _, err := hex.Decode(b[:], []byte(h)); err != nil {
		return b, false
	}
	return b, true
}

// listPartitions returns the buckets of every lease partition.
func listPartitions(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) ([]bucketer.Bucket, error) {
	rows, err := q.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'leases'::regclass`)
	if err != nil {
		return nil, classify("list lease partitions", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, classify("list lease partitions", err)
	}
	out := make([]bucketer.Bucket, 0, len(names))
	for _, n := range names {
		b, ok := partitionBucket(n)
		if !ok {
			return nil, fmt.Errorf("postgres: leases has a partition %q this store did not create; remove it", n)
		}
		out = append(out, b)
	}
	return out, nil
}

// ensurePartitions creates the lease partitions of bs that do not exist.
// Only a seal creates partitions, under the maintenance lock, so no purge
// drops one meanwhile; the advisory lock keeps this safe for any other
// caller too. Creating a partition takes an exclusive lock on leases and
// so waits for the transactions reading it: never for long.
func ensurePartitions(ctx context.Context, conn *pgxpool.Conn, bs []bucketer.Bucket) error {
	have, err := listPartitions(ctx, conn)
	if err != nil {
		return err
	}
	exists := make(map[bucketer.Bucket]bool, len(have))
	for _, b := range have {
		exists[b] = true
	}
	for _, b := range bs {
		if exists[b] {
			continue
		}
		batch := &pgx.Batch{}
		batch.Queue("BEGIN")
		batch.Queue("SET LOCAL lock_timeout = '10s'")
		batch.Queue("SELECT pg_advisory_xact_lock($1)", partitionLockKey)
		batch.Queue(fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF leases FOR VALUES IN ('\x%s'::bytea)`,
			pgx.Identifier{partitionName(b)}.Sanitize(), hex.EncodeToString(b[:])))
		batch.Queue("COMMIT")
		if err := conn.SendBatch(ctx, batch).Close(); err != nil {
			rollback(conn)
			return classify("create lease partition", err)
		}
		exists[b] = true
	}
	return nil
}

// Purge deletes every block whose newest lease has an expired bucket.
// Its cost follows the number of expired blocks (and the size of the hot
// sides, which a seal empties), not the number of live ones: it reads
// only the expired buckets' partitions of the sealed part.
//
// Blocks on a hot side are purged by turning their lease rows into
// tombstones. A block that lies only in the sealed part is claimed by
// inserting a tombstone for it on the active side, in the transaction
// that deletes its sealed rows: writers of a block meet on that row
// (apply.go), so a renewal that committed first keeps the block (the
// purge's insert finds the row taken and leaves the block alone), and
// one that comes after finds the tombstone and answers not found. The
// tombstones go away with the next seal.
func (s *Store) Purge(ctx context.Context, live bucketer.LiveSet, dryRun bool) (int64, error) {
	if dryRun {
		return s.countExpired(ctx, live)
	}
	var total int64
	err := s.maintenance(ctx, func(conn *pgxpool.Conn) error {
		var err error
		total, err = s.purge(ctx, conn, live)
		return err
	})
	return total, err
}

func (s *Store) purge(ctx context.Context, conn *pgxpool.Conn, live bucketer.LiveSet) (int64, error) {
	// No seal can switch sides while the maintenance lock is held.
	sd, err := s.loadSide(ctx, conn)
	if err != nil {
		return 0, err
	}
	l := layers[sd]
	liveB := liveArray(live)
	var total int64
	var n int64
	if err := conn.QueryRow(ctx, expand(sqlPurgeHotActive, sd), liveB).Scan(&n); err != nil {
		return total, classify("purge the active hot side", err)
	}
	total += n
	if err := conn.QueryRow(ctx, expand(sqlPurgeHotOther, sd), liveB).Scan(&n); err != nil {
		return total, classify("purge the other hot side", err)
	}
	total += n

	buckets, err := listPartitions(ctx, conn)
	if err != nil {
		return total, err
	}
	var expired []bucketer.Bucket
	for _, b := range buckets {
		if !live.Contains(b) {
			expired = append(expired, b)
		}
	}
	for _, b := range expired {
		n, err := s.purgePartition(ctx, conn, l, b)
		total += n
		if err != nil {
			return total, err
		}
	}
	if len(expired) > 0 {
		s.log.Info("purge done", "expired_partitions", len(expired), "blocks_deleted", total)
	}
	return total, nil
}

const (
	// A hot lease with an expired bucket (a side no seal emptied for a
	// whole retention) becomes a tombstone, and its data goes.
	sqlPurgeHotActive = `WITH t AS (UPDATE leases_hot_{S} SET bucket = NULL
			WHERE bucket IS NOT NULL AND NOT (bucket = ANY($1::bytea[])) RETURNING id),
		d AS (DELETE FROM blocks_hot_{S} WHERE id IN (SELECT id FROM t))
		SELECT count(*) FROM t`
	// The other side is frozen (a seal was interrupted): its expired
	// blocks are shadowed by tombstones on the active side, unless the
	// active side already holds a newer state.
	sqlPurgeHotOther = `WITH t AS (INSERT INTO leases_hot_{S} (id, bucket)
			SELECT o.id, NULL::bytea FROM leases_hot_{O} o
			WHERE o.bucket IS NOT NULL AND NOT (o.bucket = ANY($1::bytea[]))
			ON CONFLICT (id) DO NOTHING RETURNING id)
		SELECT count(*) FROM t`
	// sqlPurgeChunk purges one chunk of an expired partition's leases.
	// Blocks with a row on either hot side are not this partition's to
	// purge: their sealed lease is stale, and only it goes. The others are
	// claimed with a tombstone and their sealed rows deleted. = ANY(ARRAY(…))
	// rather than IN (…): IN lets the planner hash-join against a scan of
	// all of blocks, whose cost grows with live data.
	sqlPurgeChunk = `WITH c AS (INSERT INTO leases_hot_{S} (id, bucket)
			SELECT i, NULL::bytea FROM unnest($1::uuid[]) AS i
			WHERE NOT EXISTS (SELECT 1 FROM leases_hot_{O} o WHERE o.id = i)
			ON CONFLICT (id) DO NOTHING RETURNING id),
		dl AS (DELETE FROM {P} WHERE id = ANY($1::uuid[])),
		db AS (DELETE FROM blocks WHERE id = ANY(ARRAY(SELECT id FROM c)))
		SELECT count(*) FROM c`
)

func liveArray(live bucketer.LiveSet) [][]byte {
	out := make([][]byte, len(live.Buckets))
	for i := range live.Buckets {
		out[i] = live.Buckets[i][:]
	}
	return out
}

// maintenance runs fn on a connection holding the maintenance lock. The
// lock belongs to the session, so a broken connection (a killed process)
// releases it. It is polled with pg_try_advisory_lock, the connection
// going back to the pool between tries: several seals and purges waiting
// must not take every connection that writers need.
func (s *Store) maintenance(ctx context.Context, fn func(conn *pgxpool.Conn) error) error {
	for attempt := 1; ; attempt++ {
		conn, err := s.pool.Acquire(ctx)
		if err != nil {
			return classify("take the maintenance lock", err)
		}
		var got bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", maintenanceLockKey).Scan(&got); err != nil {
			conn.Release()
			return classify("take the maintenance lock", err)
		}
		if !got {
			conn.Release()
			if err := pause(ctx, attempt); err != nil {
				return classify("take the maintenance lock", err)
			}
			continue
		}
		err = fn(conn)
		c := conn.Conn()
		if !c.IsClosed() {
			rollback(conn)
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), defaultTimeout)
			if _, uerr := c.Exec(uctx, "SELECT pg_advisory_unlock($1)", maintenanceLockKey); uerr != nil {
				// Never hand a connection holding the lock back to the pool.
				_ = c.Close(uctx)
			}
			cancel()
		}
		conn.Release()
		return err
	}
}

// countExpired counts what a purge would delete, in one snapshot of
// every layer.
func (s *Store) countExpired(ctx context.Context, live bucketer.LiveSet) (int64, error) {
	var total int64
	err := s.readSnapshot(ctx, "count expired blocks", func(tx pgx.Tx, l *layerSQL) error {
		total = 0
		var n int64
		if err := tx.QueryRow(ctx, expand(`SELECT
				(SELECT count(*) FROM leases_hot_{S} WHERE bucket IS NOT NULL AND NOT (bucket = ANY($1::bytea[])))
				+ (SELECT count(*) FROM leases_hot_{O} o WHERE o.bucket IS NOT NULL AND NOT (o.bucket = ANY($1::bytea[]))
				   AND NOT EXISTS (SELECT 1 FROM leases_hot_{S} s WHERE s.id = o.id))`, l.side),
			liveArray(live)).Scan(&n); err != nil {
			return classify("count expired blocks", err)
		}
		total += n
		buckets, err := listPartitions(ctx, tx)
		if err != nil {
			return err
		}
		for _, b := range buckets {
			if live.Contains(b) {
				continue
			}
			part := pgx.Identifier{partitionName(b)}.Sanitize()
			q := expand(`SELECT count(*) FROM `+part+` p
				WHERE NOT EXISTS (SELECT 1 FROM leases_hot_{S} s WHERE s.id = p.id)
				  AND NOT EXISTS (SELECT 1 FROM leases_hot_{O} o WHERE o.id = p.id)`, l.side)
			if err := tx.QueryRow(ctx, q).Scan(&n); err != nil {
				return classify("count expired blocks", err)
			}
			total += n
		}
		return nil
	})
	return total, err
}

// purgePartition empties the partition of bucket b and drops it.
func (s *Store) purgePartition(ctx context.Context, conn *pgxpool.Conn, l *layerSQL, b bucketer.Bucket) (int64, error) {
	part := pgx.Identifier{partitionName(b)}.Sanitize()
	// Key-set pagination over the partition's id index: deleted rows stay
	// behind until vacuum, and a scan from the start each time would read
	// them again and again.
	first := "SELECT id FROM " + part + " WHERE id >= $1 ORDER BY id LIMIT $2"
	next := "SELECT id FROM " + part + " WHERE id > $1 ORDER BY id LIMIT $2"
	del := strings.ReplaceAll(expand(sqlPurgeChunk, l.side), "{P}", part)

	var total int64
	var after pgtype.UUID
	after.Valid = true
	q := first
	for {
		rows, err := conn.Query(ctx, q, after, s.purgeChunk)
		if err != nil {
			return total, classify("list expired blocks", err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[pgtype.UUID])
		if err != nil {
			return total, classify("list expired blocks", err)
		}
		if len(ids) == 0 {
			break
		}
		n, err := s.deleteChunk(ctx, conn, del, ids)
		total += n
		if err != nil {
			return total, err
		}
		if len(ids) < s.purgeChunk {
			break
		}
		after, q = ids[len(ids)-1], next
	}
	if err := dropIfEmpty(ctx, conn, part); err != nil {
		// The blocks are gone; an empty partition left behind costs
		// nothing and the next purge drops it.
		s.log.Warn("purge: could not drop an emptied lease partition; the next purge will", "err", err)
		return total, nil
	}
	return total, nil
}

// deleteChunk purges the blocks of ids, in one transaction and one round
// trip.
func (s *Store) deleteChunk(ctx context.Context, conn *pgxpool.Conn, del string, ids []pgtype.UUID) (int64, error) {
	for attempt := 1; ; attempt++ {
		var n int64
		b := &pgx.Batch{}
		b.Queue(sqlBegin)
		b.Queue(del, ids).QueryRow(func(r pgx.Row) error { return r.Scan(&n) })
		var tag string
		b.Queue("COMMIT").Exec(func(ct pgconn.CommandTag) error { tag = ct.String(); return nil })
		err := conn.SendBatch(ctx, b).Close()
		if err == nil && tag != "COMMIT" {
			err = errors.New("commit was rolled back")
		}
		if err == nil {
			return n, nil
		}
		rollback(conn)
		if retryable(err) && attempt < maxAttempts {
			if err := sleepJitter(ctx, attempt); err != nil {
				return 0, classify("purge", err)
			}
			continue
		}
		return 0, classify("delete expired blocks", err)
	}
}

// dropIfEmpty drops the partition if no lease is left in it. The check and
// the drop happen under an exclusive lock on leases, so no lease can slip
// in between. Taking that lock waits for the transactions using leases and
// holds new ones back, so it gives up after a short wait rather than stall
// readers and writers.
func dropIfEmpty(ctx context.Context, conn *pgxpool.Conn, part string) (err error) {
	defer func() {
		if err != nil {
			rollback(conn)
		}
	}()
	var nonEmpty bool
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SET LOCAL lock_timeout = '2s'")
	b.Queue("LOCK TABLE ONLY leases IN ACCESS EXCLUSIVE MODE")
	b.Queue("SELECT EXISTS (SELECT 1 FROM " + part + ")").QueryRow(func(r pgx.Row) error { return r.Scan(&nonEmpty) })
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		if pgCode(err) == codeUndefinedTable {
			rollback(conn) // dropped by a concurrent purge
			return nil
		}
		return err
	}
	end := "ROLLBACK"
	if !nonEmpty {
		end = "COMMIT"
		if _, err := conn.Exec(ctx, "DROP TABLE "+part); err != nil {
			return err
		}
	}
	_, err = conn.Exec(ctx, end)
	return err
}
