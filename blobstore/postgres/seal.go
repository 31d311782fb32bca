package postgres

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/internal/wait"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A seal (docs/design.md §6) erases the write order that the hot side's rows
// keep: their transaction ids (xmin), their places (ctid) and the order of
// their TOAST value ids, all of which follow the order of writes. It runs
// under the maintenance lock, so one seal or purge at a time, and in two
// steps:
//
//  1. Switch: writers move to the other side. A short transaction locks
//     the active side's tables in EXCLUSIVE mode, which waits for the
//     writers on it (they hold ROW EXCLUSIVE) and holds new ones back
//     only until it commits, and sets meta's hot_side. Writers that come
//     later lock the side they believe active and check hot_side with a
//     snapshot taken after that lock, so none writes to the old side
//     again: it is frozen. Reads go on throughout.
//  2. Merge: one transaction deletes the sealed rows that the frozen
//     side's rows replace (overwritten, renewed, deleted blocks), inserts
//     the frozen side's rows into the sealed part in a random order (lease
//     rows ORDER BY random(), block rows in the order of a ChaCha8
//     permutation keyed from crypto/rand, see mergeBlocks), and empties
//     the side with TRUNCATE. Only the TRUNCATE needs the side's
//     tables to itself (ACCESS EXCLUSIVE), so readers and writers, which
//     read the frozen side, wait only for the TRUNCATE and the commit,
//     never for the copy. Every row the merge writes carries the merge's
//     transaction id, lies where the random order put it, and gets a new
//     TOAST value id in that order (a value is copied out of the hot
//     side's TOAST table, never moved). TRUNCATE leaves no dead rows: the
//     side's files are replaced.
//
// A seal interrupted after the switch leaves the frozen side full; the
// next seal merges it before anything else, so its rows are never lost
// and never stay hot for long. Lookups resolve the frozen side below the
// active one meanwhile, so reads see every acknowledged write throughout.
//
// What a seal leaves: sealed rows that it rewrote carry its transaction
// id, as the design allows ("sealed in the same window"); rows it did not
// touch keep their earlier seal's. The rows it deleted stay as dead
// tuples, with that earlier seal's xmin and this seal's xmax, until
// autovacuum removes them. Measured with internal/attack (attack_test.go):
// from 0.5–0.7 advantage before a seal to under 0.02 after it.

const (
	// switchLockTimeout bounds how long a switch waits for writers in
	// progress, holding new ones back meanwhile.
	switchLockTimeout = "1s"
	// truncateLockTimeout bounds each attempt of the merge to take the
	// frozen side to itself. A reader or writer that started before waits
	// behind it, so the attempts are short and spaced apart.
	truncateLockTimeout = "500ms"
	// maxLockAttempts bounds the attempts of either; past them the seal
	// fails and the next one starts again (a merge that failed is rolled
	// back whole).
	maxLockAttempts = 120
)

// testHookSwitched, when a test sets it, runs between a seal's switch and
// its merge: the kill test strikes there.
var testHookSwitched func()

// Seal rewrites what was written since the last seal into the sealed
// part in a random order, as described above.
func (s *Store) Seal(ctx context.Context) (blobstore.SealReport, error) {
	t0 := time.Now()
	var rep blobstore.SealReport
	err := s.maintenance(ctx, func(conn *pgxpool.Conn) error { return s.seal(ctx, conn, &rep) })
	if err != nil {
		return rep, err
	}
	rep.Duration = time.Since(t0)
	return rep, nil
}

func (s *Store) seal(ctx context.Context, conn *pgxpool.Conn, rep *blobstore.SealReport) error {
	var v []byte
	var holds [2]bool
	if err := conn.QueryRow(ctx, `SELECT value, EXISTS (SELECT 1 FROM leases_hot_a), EXISTS (SELECT 1 FROM leases_hot_b)
		FROM meta WHERE key = $1`, metaHotSide).Scan(&v, &holds[0], &holds[1]); err != nil {
		return classify("seal: look at the hot sides", err)
	}
	sd, err := sideOf(v)
	if err != nil {
		return err
	}
	s.side.set(sd)
	// Every change writes a lease row, so the lease tables say whether a
	// side holds anything.
	if holds[sd.other()] {
		// A seal was interrupted after its switch.
		if err := s.merge(ctx, conn, sd.other(), rep); err != nil {
			return err
		}
		rep.Resumed = true
	}
	if holds[sd] {
		if err := s.switchFrom(ctx, conn, sd); err != nil {
			return err
		}
		if testHookSwitched != nil {
			testHookSwitched()
		}
		if err := s.merge(ctx, conn, sd, rep); err != nil {
			return err
		}
	}
	if rep.Blocks+rep.Leases+rep.Deleted == 0 {
		return nil
	}
	return settle(ctx, conn)
}

// settle sets, at once, the hint bits of every row version the merge
// wrote or deleted, and removes the deleted versions' data.
//
// A reader's visibility check sets a row's hint bits (xmin committed) the
// first time it reads the row, and they stay on disk: a copy would show
// which sealed blocks were read since the seal, and a user who opens a
// file reads its blocks together (measured: 0.56 advantage with half the
// users reading their files after a seal). VACUUM sets them on every row
// of every page it visits, which is every page the merge touched (the
// others are all-visible from an earlier seal), so that later reads find
// them set and change nothing. It also prunes the versions the merge
// deleted, which held the old ciphertext of overwritten and deleted
// blocks. INDEX_CLEANUP OFF keeps it from scanning whole indexes, so its
// cost follows the merge's pages, not the store; autovacuum cleans the
// indexes in its own time. TRUNCATE OFF keeps it from taking the tables
// to itself, however briefly, to give empty pages back.
func settle(ctx context.Context, conn *pgxpool.Conn) error {
	if _, err := conn.Exec(ctx, "VACUUM (INDEX_CLEANUP OFF, TRUNCATE OFF) blocks, leases"); err != nil {
		return classify("seal: settle the sealed part", err)
	}
	return nil
}

// switchFrom moves writers from side from to the other side.
func (s *Store) switchFrom(ctx context.Context, conn *pgxpool.Conn, from side) error {
	to := from.other()
	for attempt := 1; ; attempt++ {
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		b.Queue("SET LOCAL lock_timeout = '" + switchLockTimeout + "'")
		b.Queue(expand("LOCK TABLE leases_hot_{S}, blocks_hot_{S} IN EXCLUSIVE MODE", from))
		b.Queue("UPDATE meta SET value = $1 WHERE key = $2", to.value(), metaHotSide)
		var tag string
		b.Queue("COMMIT").Exec(func(ct pgconn.CommandTag) error { tag = ct.String(); return nil })
		err := conn.SendBatch(ctx, b).Close()
		if err == nil && tag != "COMMIT" {
			err = errors.New("commit was rolled back")
		}
		if err == nil {
			s.side.set(to)
			return nil
		}
		rollback(conn)
		if pgCode(err) == codeLockNotAvailable && attempt < maxLockAttempts {
			if err := pause(ctx, attempt); err != nil {
				return classify("seal: switch hot sides", err)
			}
			continue
		}
		return classify("seal: switch hot sides", err)
	}
}

// pause waits between lock attempts, longer each time up to a second,
// so that the readers and writers held back by one attempt get through
// before the next.
func pause(ctx context.Context, attempt int) error {
	return wait.Sleep(ctx, min(time.Duration(attempt)*50*time.Millisecond, time.Second))
}

// The merge's statements; {S} is the frozen side.
const (
	sqlMergeTombstones = `SELECT count(*) FROM leases_hot_{S} WHERE bucket IS NULL`
	// = ANY(ARRAY(…)): each sealed row is found through its index, so
	// the cost follows the side's rows, not the sealed part's.
	sqlMergeDeleteBlocks = `DELETE FROM blocks WHERE id = ANY(ARRAY(
		SELECT id FROM blocks_hot_{S} UNION ALL SELECT id FROM leases_hot_{S} WHERE bucket IS NULL))`
	sqlMergeDeleteLeases = `DELETE FROM leases WHERE id = ANY(ARRAY(SELECT id FROM leases_hot_{S}))`
	sqlMergeIDs          = `SELECT id FROM blocks_hot_{S}`
	// sqlMergeBlocks inserts the rows of the ids given, in their order:
	// all of the side's, which a hash join over one scan of the side
	// finds best.
	sqlMergeBlocks = `INSERT INTO blocks (id, proof_hash, etag, data)
		SELECT h.id, h.proof_hash, h.etag, h.data
		FROM unnest($1::uuid[]) WITH ORDINALITY AS u(id, n) JOIN blocks_hot_{S} h ON h.id = u.id
		ORDER BY u.n`
	// sqlMergeChunk does the same for a chunk of them, each found through
	// the primary key (OFFSET 0 keeps the planner from turning the lookup
	// into a join that scans the whole side for every chunk).
	sqlMergeChunk = `INSERT INTO blocks (id, proof_hash, etag, data)
		SELECT u.id, h.proof_hash, h.etag, h.data
		FROM unnest($1::uuid[]) WITH ORDINALITY AS u(id, n)
		CROSS JOIN LATERAL (SELECT proof_hash, etag, data FROM blocks_hot_{S} WHERE id = u.id OFFSET 0) h
		ORDER BY u.n`
	sqlMergeLeases = `INSERT INTO leases (bucket, id)
		SELECT bucket, id FROM leases_hot_{S} WHERE bucket IS NOT NULL ORDER BY random()`
)

// merge moves frozen side x into the sealed part and empties it.
func (s *Store) merge(ctx context.Context, conn *pgxpool.Conn, x side, rep *blobstore.SealReport) (err error) {
	if err := s.partitionsFor(ctx, conn, x); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			rollback(conn)
		}
	}()
	var leases, deleted int64
	var ids []pgtype.UUID
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(expand(sqlMergeTombstones, x)).QueryRow(func(r pgx.Row) error { return r.Scan(&deleted) })
	b.Queue(expand(sqlMergeDeleteBlocks, x))
	b.Queue(expand(sqlMergeDeleteLeases, x))
	b.Queue(expand(sqlMergeLeases, x)).Exec(func(ct pgconn.CommandTag) error { leases = ct.RowsAffected(); return nil })
	b.Queue(sqlRecordSeal, metaUnmerged)
	b.Queue(expand(sqlMergeIDs, x)).Query(func(rows pgx.Rows) error {
		var err error
		ids, err = pgx.CollectRows(rows, pgx.RowTo[pgtype.UUID])
		return err
	})
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return classify("seal: rewrite a hot side into the sealed part", err)
	}
	blocks := int64(len(ids))
	if err := s.mergeBlocks(ctx, conn, x, ids); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "SAVEPOINT truncate"); err != nil {
		return classify("seal: rewrite a hot side into the sealed part", err)
	}
	lock := expand("LOCK TABLE leases_hot_{S}, blocks_hot_{S} IN ACCESS EXCLUSIVE MODE", x)
	for attempt := 1; ; attempt++ {
		b := &pgx.Batch{}
		b.Queue("SET LOCAL lock_timeout = '" + truncateLockTimeout + "'")
		b.Queue(lock)
		err := conn.SendBatch(ctx, b).Close()
		if err == nil {
			break
		}
		if pgCode(err) != codeLockNotAvailable || attempt >= maxLockAttempts {
			return classify("seal: take the hot side to empty it", err)
		}
		if _, err := conn.Exec(ctx, "ROLLBACK TO SAVEPOINT truncate"); err != nil {
			return classify("seal: take the hot side to empty it", err)
		}
		if err := pause(ctx, attempt); err != nil {
			return classify("seal: take the hot side to empty it", err)
		}
	}
	var tag string
	b = &pgx.Batch{}
	b.Queue(expand("TRUNCATE leases_hot_{S}, blocks_hot_{S}", x))
	b.Queue("COMMIT").Exec(func(ct pgconn.CommandTag) error { tag = ct.String(); return nil })
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return classify("seal: empty the hot side", err)
	}
	if tag != "COMMIT" {
		return errors.New("postgres: seal: commit was rolled back")
	}
	rep.Blocks += blocks
	rep.Bytes += blocks * int64(s.blockSize)
	rep.Leases += leases
	rep.Deleted += deleted
	return nil
}

// mergeChunkBytes is how much block data one statement of a merge
// rewrites while writers are active; the whole side goes in one
// statement otherwise.
const mergeChunkBytes = 4 << 20

// mergeBlocks inserts the frozen side's block rows into the sealed part
// in the order of a cryptographic permutation of ids, in the merge's
// transaction.
//
// A merge writes as much WAL as data, and writers' commits wait for the
// WAL before their own to reach the disk: measured with four writers of
// 64 KiB blocks, their median commit took 2.7 times as long during a
// 32 MiB merge as without. So while writers are active (this store's
// Applies, or another session of the database at work) the merge goes a
// chunk at a time and pauses after each for as long as the chunk took:
// the seal takes about twice as long, and writers' medians stay within
// 2× (BenchmarkWritesDuringSeal). With no writer about it goes at full
// speed (BenchmarkSeal).
func (s *Store) mergeBlocks(ctx context.Context, conn *pgxpool.Conn, x side, ids []pgtype.UUID) error {
	return s.rewritePermuted(ctx, conn, ids, 0, expand(sqlMergeBlocks, x), expand(sqlMergeChunk, x), nil)
}

// rewritePermuted runs the statements that rewrite the rows of ids, in
// the order of a cryptographic permutation of ids, in the caller's
// transaction: all at once with full while no writer is about (in
// chunks of idleBytes of data, when idleBytes is not 0), and a chunk of
// mergeChunkBytes at a time with chunk, pausing after each, while
// writers are active. hook, when set, runs after the first statement.
func (s *Store) rewritePermuted(ctx context.Context, conn *pgxpool.Conn, ids []pgtype.UUID, idleBytes int, full, chunk string, hook func()) error {
	shuffle(ids)
	per, idle := max(1, mergeChunkBytes/s.blockSize), len(ids)
	if idleBytes > 0 {
		idle = max(1, idleBytes/s.blockSize)
	}
	for len(ids) > 0 {
		before := s.writers.Count()
		n, q := min(len(ids), idle), full
		if n > per && (s.writers.Active() || othersActive(ctx, conn)) {
			n, q = per, chunk
		}
		t0 := time.Now()
		if _, err := conn.Exec(ctx, q, ids[:n]); err != nil {
			return classify("rewrite rows in a random order", err)
		}
		if hook != nil {
			hook()
			hook = nil
		}
		took := time.Since(t0)
		ids = ids[n:]
		if len(ids) > 0 && (s.writers.Count() != before || othersActive(ctx, conn)) {
			if err := wait.Sleep(ctx, took); err != nil {
				return classify("seal", err)
			}
		}
	}
	return nil
}

// shuffle puts xs in the order of a ChaCha8 permutation keyed from
// crypto/rand.
func shuffle[T any](xs []T) {
	var seed [32]byte
	_, _ = rand.Read(seed[:]) // never fails: crypto/rand crashes the program instead
	mrand.New(mrand.NewChaCha8(seed)).Shuffle(len(xs), func(i, j int) { xs[i], xs[j] = xs[j], xs[i] })
}

// othersActive reports whether another session of this database is
// running a statement now: another instance's writer, seen by a sample.
// pg_stat_activity is read afresh, not from the transaction's snapshot
// of it. An error counts as not active: pacing is only a courtesy.
func othersActive(ctx context.Context, conn *pgxpool.Conn) bool {
	var busy bool
	b := &pgx.Batch{}
	b.Queue("SELECT pg_stat_clear_snapshot()")
	b.Queue(`SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database()
		AND pid <> pg_backend_pid() AND state = 'active' AND backend_type = 'client backend')`).
		QueryRow(func(r pgx.Row) error { return r.Scan(&busy) })
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return false
	}
	return busy
}

// partitionsFor creates the lease partitions that side x's buckets need
// and do not have.
func (s *Store) partitionsFor(ctx context.Context, conn *pgxpool.Conn, x side) error {
	rows, err := conn.Query(ctx, expand(`SELECT DISTINCT h.bucket FROM leases_hot_{S} h
		WHERE h.bucket IS NOT NULL AND NOT EXISTS (
			SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent = 'leases'::regclass AND c.relname = $1 || encode(h.bucket, 'hex'))`, x), partitionPrefix)
	if err != nil {
		return classify("seal: list the hot side's buckets", err)
	}
	raw, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return classify("seal: list the hot side's buckets", err)
	}
	if len(raw) == 0 {
		return nil
	}
	need := make([]bucketer.Bucket, 0, len(raw))
	for _, r := range raw {
		var b bucketer.Bucket
		if len(r) != len(b) {
			return fmt.Errorf("postgres: a hot lease has a %d-byte bucket", len(r))
		}
		copy(b[:], r)
		need = append(need, b)
	}
	return ensurePartitions(ctx, conn, need)
}

// SealStats counts what awaits the next seal: Blocks is the hot lease
// rows (one per block changed since the last seal, on each side), Rows
// adds the hot block rows.
func (s *Store) SealStats(ctx context.Context) (blobstore.SealStats, error) {
	var st blobstore.SealStats
	var data int64
	err := s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM leases_hot_a) + (SELECT count(*) FROM leases_hot_b),
		(SELECT count(*) FROM blocks_hot_a) + (SELECT count(*) FROM blocks_hot_b)`).Scan(&st.Blocks, &data)
	if err != nil {
		return st, classify("count rows awaiting a seal", err)
	}
	st.Rows = st.Blocks + data
	return st, nil
}
