package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The period merge (docs/design.md §6).
//
// Every row a seal writes into the sealed part carries the seal's
// transaction id, and lies where that seal put it: a copy groups the
// sealed rows by seal, and on a small store a seal window often holds
// one user's writes, or one login's renewal. Each seal records its
// transaction id in meta's unmerged list. Once a period closes, the
// merge rewrites, in one transaction:
//
//   - every block row whose xmin is in the list, in the order of a
//     ChaCha8 permutation keyed from crypto/rand, by deleting it and
//     inserting it again in the same statement (the data is re-stored:
//     an insert always copies an out-of-line value into new TOAST chunks
//     with a new value id);
//   - every lease partition holding a row whose xmin is in the list,
//     whole, ORDER BY random(): a partition then carries one transaction
//     id, whatever its rows' seals were (a lease row is 32 bytes, so this
//     costs little beside the data);
//
// then empties the list and adds the closed period's bucket to meta's
// merged set, and VACUUMs, index cleanup included, so that neither the
// dead versions' headers (with the seals' xmins) nor the index entries
// pointing at the rows' old places stay. Afterwards every row the
// period's seals placed carries the merge's transaction id and lies in
// a random place among them. The merge is one transaction: killed at any
// point, it rolls back whole and the next one does it all again, so
// nothing is lost or written twice. It runs under the maintenance lock,
// like a seal or a purge.
//
// meta's merged value is the set of the buckets of closed periods
// merged, among the live set, sorted by value: it says which buckets
// were merged, never in which order.

const (
	metaUnmerged = "unmerged" // the seals' transaction ids (xid8, 8 bytes each) since the last merge
	metaMerged   = "merged"   // the buckets of closed periods merged, sorted
)

// leaseRowBytes is what a lease row holds (bucket and id), for the
// merge's cost.
const leaseRowBytes = 32

// sqlRecordSeal adds the seal's transaction to the unmerged list, in the
// seal's transaction.
const sqlRecordSeal = `INSERT INTO meta (key, value) VALUES ($1, int8send(pg_current_xact_id()::text::bigint))
	ON CONFLICT (key) DO UPDATE SET value = meta.value || EXCLUDED.value`

const (
	// sqlMergeScan lists the block rows the unmerged seals placed, and
	// counts every block row (the merge's cost is reported per byte
	// stored). One scan of the heap, which holds ids, hashes and TOAST
	// pointers only.
	// $2: the store's first merge, which rewrites every row (rows sealed
	// before the merge existed carry their seals' ids too).
	sqlMergeScan = `SELECT count(*), COALESCE(array_agg(id) FILTER (WHERE $2 OR xmin = ANY($1::text[]::xid[])), '{}')
		FROM blocks`
	sqlMergePartitions = `SELECT DISTINCT tableoid::regclass::text FROM leases WHERE $2 OR xmin = ANY($1::text[]::xid[])`
	// sqlMergeRewrite deletes and inserts again a chunk of block rows,
	// in the order given: the inserted rows pass the primary key, since
	// the rows they replace are deleted by this transaction.
	sqlMergeRewrite = `WITH d AS (DELETE FROM blocks WHERE id = ANY($1::uuid[]) RETURNING id, proof_hash, etag, data)
		INSERT INTO blocks (id, proof_hash, etag, data)
		SELECT d.id, d.proof_hash, d.etag, d.data
		FROM unnest($1::uuid[]) WITH ORDINALITY AS u(id, n) JOIN d ON d.id = u.id
		ORDER BY u.n`
	// sqlMergePartition rewrites one lease partition ({P}) whole.
	sqlMergePartition = `WITH d AS (DELETE FROM {P} RETURNING bucket, id)
		INSERT INTO {P} (bucket, id) SELECT bucket, id FROM d ORDER BY random()`
)

// mergeIdleChunkBytes bounds the block data one statement of a merge
// rewrites with no writer about: the deleted rows' data passes through
// the statement's memory.
const mergeIdleChunkBytes = 64 << 20

// testHookMerging, when a test sets it, runs in a merge's transaction
// after its first chunk of block rows: the kill test strikes there.
var testHookMerging func()

// Merge rewrites what the seals placed since the last merge, as
// described above, and records live's previous period as merged. Call
// it once a period has closed, after a seal: live is the live set of
// the period that has begun.
func (s *Store) Merge(ctx context.Context, live bucketer.LiveSet) (blobstore.MergeReport, error) {
	t0 := time.Now()
	var rep blobstore.MergeReport
	err := s.maintenance(ctx, func(conn *pgxpool.Conn) error { return s.mergePeriod(ctx, conn, live, &rep) })
	if err != nil {
		return rep, err
	}
	rep.Duration = time.Since(t0)
	return rep, nil
}

func (s *Store) mergePeriod(ctx context.Context, conn *pgxpool.Conn, live bucketer.LiveSet, rep *blobstore.MergeReport) (err error) {
	defer func() {
		if err != nil {
			rollback(conn)
		}
	}()
	if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
		return classify("merge: begin", err)
	}
	var rawX, rawMerged []byte
	var first bool
	b := &pgx.Batch{}
	b.Queue(`SELECT COALESCE((SELECT value FROM meta WHERE key = $1), ''), COALESCE((SELECT value FROM meta WHERE key = $2), ''),
		NOT EXISTS (SELECT 1 FROM meta WHERE key = $2)`,
		metaUnmerged, metaMerged).QueryRow(func(r pgx.Row) error { return r.Scan(&rawX, &rawMerged, &first) })
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return classify("merge: read meta", err)
	}
	xids, err := decodeXids(rawX)
	if err != nil {
		return err
	}
	var stored int64
	if len(xids) > 0 || first {
		var ids []pgtype.UUID
		if err := conn.QueryRow(ctx, sqlMergeScan, xids, first).Scan(&stored, &ids); err != nil {
			return classify("merge: list the period's block rows", err)
		}
		rows, err := conn.Query(ctx, sqlMergePartitions, xids, first)
		if err != nil {
			return classify("merge: list the period's lease partitions", err)
		}
		parts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return classify("merge: list the period's lease partitions", err)
		}
		// The partitions in a random order too: each gets a run of
		// positions in the lease index's insertion order otherwise.
		shuffle(parts)
		for _, p := range parts {
			if _, ok := partitionBucket(p); !ok {
				return fmt.Errorf("postgres: merge: leases has a partition %q this store did not create; remove it", p)
			}
			ct, err := conn.Exec(ctx, expandPartition(sqlMergePartition, p))
			if err != nil {
				return classify("merge: rewrite a lease partition", err)
			}
			rep.Leases += ct.RowsAffected()
		}
		rep.Blocks = int64(len(ids))
		if err := s.rewritePermuted(ctx, conn, ids, mergeIdleChunkBytes, sqlMergeRewrite, sqlMergeRewrite, testHookMerging); err != nil {
			return err
		}
	} else if err := conn.QueryRow(ctx, "SELECT count(*) FROM blocks").Scan(&stored); err != nil {
		return classify("merge: count blocks", err)
	}
	merged, err := blobstore.DecodeBuckets(rawMerged)
	if err != nil {
		return err
	}
	var tag string
	b = &pgx.Batch{}
	b.Queue("DELETE FROM meta WHERE key = $1", metaUnmerged)
	b.Queue(`INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`,
		metaMerged, blobstore.EncodeBuckets(blobstore.MergedSet(merged, live, first)))
	b.Queue("COMMIT").Exec(func(ct pgconn.CommandTag) error { tag = ct.String(); return nil })
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return classify("merge: commit", err)
	}
	if tag != "COMMIT" {
		return errors.New("postgres: merge: commit was rolled back")
	}
	rep.Bytes = rep.Blocks*int64(s.blockSize) + rep.Leases*leaseRowBytes
	rep.Stored = stored * int64(s.blockSize)
	if rep.Blocks+rep.Leases == 0 {
		return nil
	}
	// As settle, and with index cleanup: the indexes still point at the
	// rows' old places, which the seals chose.
	if _, err := conn.Exec(ctx, "VACUUM (TRUNCATE OFF) blocks, leases"); err != nil {
		return classify("merge: settle the sealed part", err)
	}
	return nil
}

// decodeXids turns the unmerged list into the 32-bit transaction ids
// that rows carry, as text for a ::xid[] cast.
func decodeXids(v []byte) ([]string, error) {
	if len(v)%8 != 0 {
		return nil, errors.New("postgres: meta's unmerged list is damaged")
	}
	out := make([]string, 0, len(v)/8)
	for i := 0; i < len(v); i += 8 {
		out = append(out, strconv.FormatUint(uint64(uint32(binary.BigEndian.Uint64(v[i:]))), 10))
	}
	return out, nil
}

func expandPartition(sql, part string) string {
	return string(bytes.ReplaceAll([]byte(sql), []byte("{P}"), []byte(pgx.Identifier{part}.Sanitize())))
}

// MergeState reads the merged set and counts the rows the seals placed
// since the last merge.
func (s *Store) MergeState(ctx context.Context) (blobstore.MergeState, error) {
	var st blobstore.MergeState
	err := s.readSnapshot(ctx, "read the merge state", func(tx pgx.Tx, _ *layerSQL) error {
		var err error
		st, err = mergeState(ctx, tx)
		return err
	})
	return st, err
}

func mergeState(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (blobstore.MergeState, error) {
	st := blobstore.MergeState{Merged: map[bucketer.Bucket]bool{}}
	var rawX, rawMerged []byte
	if err := q.QueryRow(ctx, "SELECT COALESCE((SELECT value FROM meta WHERE key = $1), ''), COALESCE((SELECT value FROM meta WHERE key = $2), '')",
		metaUnmerged, metaMerged).Scan(&rawX, &rawMerged); err != nil {
		return st, classify("read the merge state", err)
	}
	merged, err := blobstore.DecodeBuckets(rawMerged)
	if err != nil {
		return st, err
	}
	for _, b := range merged {
		st.Merged[b] = true
	}
	xids, err := decodeXids(rawX)
	if err != nil || len(xids) == 0 {
		return st, err
	}
	err = q.QueryRow(ctx, `SELECT (SELECT count(*) FROM blocks WHERE xmin = ANY($1::text[]::xid[]))
		+ (SELECT count(*) FROM leases WHERE xmin = ANY($1::text[]::xid[]))`, xids).Scan(&st.Pending)
	if err != nil {
		return st, classify("count rows awaiting the merge", err)
	}
	return st, nil
}
