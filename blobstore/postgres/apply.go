package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/internal/wait"
	"github.com/blindstore/blindstore/wire"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// An Apply is one transaction in two round trips (three when it creates
// several blocks, which go by COPY), all of it on the active hot side
// (layers.go):
//
//  1. BEGIN; lock the active side's tables and check that it is still the
//     active one; lock the touched blocks' rows on it; read every layer's
//     rows of the touched blocks.
//  2. write the net changes Plan decided to the active side; COMMIT.
//
// Every change of a block writes the block's lease row on the active side
// (a NULL bucket for a delete), so that row is where writers of one block
// meet: whoever locked it (FOR UPDATE) or inserted it is the block's only
// writer until commit, and of two transactions that both found no row and
// insert one, the primary key lets one through; the other gets a unique
// violation and runs again, and then finds and locks the winner's row.
// Under READ COMMITTED the read statement's snapshot is taken after those
// locks, so it sees the newest committed state of every locked row. Rows
// of the other side and of the sealed part change only when a seal moves
// a side, which cannot happen while this transaction holds its locks on
// the side tables, and when a purge claims a block, which it does by
// inserting a tombstone on the active side: the same primary key orders
// it with writers. Every Apply locks rows in id order, so two never wait
// on each other in a cycle.
//
// Sealed rows are never locked or written here: a row lock or an update
// would stamp this transaction's id into a sealed row, which is exactly
// what sealing erases.
const (
	sqlBegin = "BEGIN ISOLATION LEVEL READ COMMITTED"
)

// customPlanIDs is the number of touched blocks above which a write
// transaction plans its statements for the values bound and by index
// probes only (sqlPlanByID). Every statement of an Apply looks up a list
// of ids in tables keyed by id, so probing the primary key once per id
// costs what the batch is, whatever the size of the store. Left to
// itself the planner does worse in two ways, measured with
// BenchmarkRenew (100,000 blocks, batches of 4096):
//   - The connection's generic plan (see Open) is made once, for an array
//     of unknown length and the table sizes of that moment. Made while a
//     hot side was nearly empty (after a seal), it scans that side once
//     per id: a batch of renewals of sealed blocks took a second, not
//     30 ms, once the side held 100,000 leases (4,900 blocks/s against
//     68,000 with sqlPlanByID).
//   - A custom plan hash-joins the ids against whole tables, whose cost
//     grows with the store (43,000 blocks/s against 83,000 for blocks on
//     the hot side).
//
// Planning anew costs about a millisecond: nothing beside a large batch,
// too much beside the one-block writes that stay below the threshold.
//
// JIT is off for the same transactions: the planner's cost of a batch's
// read grows with the batch, the lease partitions it probes and the
// layers that hold rows (88,500 for 16,384 ids over 13 partitions of
// 100,000 sealed blocks, the hot sides empty), and past jit_above_cost
// (100,000 by default) PostgreSQL 15 compiles the plan: 165 to 200 ms
// for a variant of the read over 4 partitions, longer than the read
// itself (about 120 ms), whose index probes compiled code does not
// speed up.
const customPlanIDs = 64

// sqlPlanByID sets, for the rest of the transaction, custom plans made
// without hash or merge joins, and no JIT compilation.
const sqlPlanByID = `SELECT set_config('plan_cache_mode', 'force_custom_plan', true),
	set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true),
	set_config('jit', 'off', true)`

// maxAttempts bounds how often an Apply is run again after losing a race.
const maxAttempts = 20

// Apply commits ops in one transaction, deciding each with blobstore.Plan.
func (s *Store) Apply(ctx context.Context, ops []blobstore.Op) ([]blobstore.Result, error) {
	return s.apply(ctx, ops, nil)
}

// apply is Apply; f, when not nil, adds the write pool's fence to each
// attempt's transaction (fence.go).
func (s *Store) apply(ctx context.Context, ops []blobstore.Op, f *fence) ([]blobstore.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, classify("apply", err)
	}
	if len(ops) == 0 {
		return []blobstore.Result{}, nil
	}
	s.writers.Began()
	for i := range ops {
		if ops[i].Kind == blobstore.OpPut && len(ops[i].Data) != s.blockSize {
			return nil, wire.E(wire.KindInvalid, wire.CodeBadSize,
				fmt.Sprintf("block data must be exactly %d bytes, got %d", s.blockSize, len(ops[i].Data)))
		}
	}
	ids := make([]pgtype.UUID, 0, len(ops))
	for i := range ops {
		ids = append(ids, uuidOf(ops[i].ID))
		// Not needed for fresh reads (each one checks the ETag), but
		// data about to be replaced or deleted is memory better spent.
		if ops[i].Kind != blobstore.OpRenew {
			s.cache.remove(ops[i].ID)
		}
	}
	slices.SortFunc(ids, func(a, b pgtype.UUID) int { return bytes.Compare(a.Bytes[:], b.Bytes[:]) })
	ids = slices.CompactFunc(ids, func(a, b pgtype.UUID) bool { return a.Bytes == b.Bytes })

	// A put with the zero bucket keeps the block's bucket and never
	// creates one: Plan decides it.
	fast := f == nil && len(ops) == 1 && ops[0].Kind == blobstore.OpPut && ops[0].Cond.IfMatch == nil &&
		ops[0].Bucket != (bucketer.Bucket{})
	for attempt := 1; ; attempt++ {
		var rs []blobstore.Result
		var sent bool
		var err error
		if fast {
			var created bool
			created, err = s.createOne(ctx, &ops[0])
			switch {
			case err == nil && created:
				return []blobstore.Result{{Status: blobstore.StatusCreated, ETag: ops[0].ETag}}, nil
			case err == nil:
				// Some layer holds the block: decide the op the general way.
				fast = false
				continue
			case pgCode(err) == "":
				// The connection failed with the COMMIT on its way: whether
				// it committed is unknown.
				return nil, classify("apply", err)
			}
			// The server refused the statement and nothing was committed.
		} else {
			rs, sent, err = s.applyOnce(ctx, ops, ids, f)
			if err == nil {
				return rs, nil
			}
		}
		switch {
		case attempt >= maxAttempts:
		case pgCode(err) == codeSideMoved:
			// A seal moved writes to the other side since we last looked.
			if _, err := s.loadSide(ctx, s.pool); err != nil {
				return nil, err
			}
			continue
		case retryable(err):
			// Lost a race with another writer of the same block.
			if err := sleepJitter(ctx, attempt); err != nil {
				return nil, classify("apply", err)
			}
			continue
		case !sent && unavailable(err) && ctx.Err() == nil && attempt < 2:
			// The connection broke before any write was sent (the server
			// restarted since the pool last used it): nothing can have
			// been committed, so a fresh connection may try once more.
			continue
		}
		if fast && pgCode(err) != "" && !unavailable(err) {
			// The fast path's statement was refused for a reason of its
			// own: the general path decides and reports.
			fast = false
			continue
		}
		return nil, classify("apply", err)
	}
}

func sleepJitter(ctx context.Context, attempt int) error {
	return wait.Sleep(ctx, time.Duration(rand.Int64N(int64(attempt)*int64(2*time.Millisecond)+1)))
}

// state is what the read statement found of one block.
type state struct {
	meta    blobstore.Meta
	exists  bool
	hotRow  bool // the active side has a lease row (locked by us)
	hotData bool // the active side has a block row
}

// applyOnce runs one attempt of Apply. sent reports whether the writes had
// been sent when it failed, after which the outcome is unknown.
func (s *Store) applyOnce(ctx context.Context, ops []blobstore.Op, ids []pgtype.UUID, f *fence) (results []blobstore.Result, sent bool, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, false, err
	}
	defer func() {
		if err != nil {
			rollback(conn)
		}
		conn.Release()
	}()

	l := s.layer()
	states := make(map[wire.ID]*state, len(ids))
	b := &pgx.Batch{}
	b.Queue(sqlBegin)
	if len(ids) > customPlanIDs {
		b.Queue(sqlPlanByID)
	}
	f.lock(b)
	b.Queue(l.lockHot)
	b.Queue(sqlExpectSide, l.side.value())
	b.Queue(l.lockRows, ids)
	b.Queue(l.readState, ids).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id pgtype.UUID
			var inS, inO, hotData bool
			var sBucket, oBucket, sealedBucket, proof, etag []byte
			if err := rows.Scan(&id, &inS, &sBucket, &inO, &oBucket, &sealedBucket, &hotData, &proof, &etag); err != nil {
				return err
			}
			if _, dup := states[id.Bytes]; dup {
				return errors.New("a block has more than one sealed lease")
			}
			st := &state{hotRow: inS, hotData: hotData}
			bucket := sealedBucket
			switch {
			case inS:
				bucket = sBucket
			case inO:
				bucket = oBucket
			}
			if bucket != nil {
				if len(proof) != len(st.meta.ProofHash) || len(etag) != len(st.meta.ETag) || len(bucket) != len(st.meta.Bucket) {
					return errors.New("a block has a lease but malformed or missing data")
				}
				st.exists = true
				copy(st.meta.ProofHash[:], proof)
				copy(st.meta.ETag[:], etag)
				copy(st.meta.Bucket[:], bucket)
			}
			states[id.Bytes] = st
		}
		return rows.Err()
	})
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return nil, false, err
	}
	if err := f.check(); err != nil {
		return nil, false, err
	}

	current := make(map[wire.ID]blobstore.Meta, len(states))
	for id, st := range states {
		if st.exists {
			current[id] = st.meta
		}
	}
	results, changes := blobstore.Plan(ops, current)
	w, err := planWrites(changes, states)
	if err != nil {
		return nil, false, err
	}
	if len(w.inserted.ids) > 1 {
		// New data goes by COPY (see copy.go), in a round trip of its
		// own; a single block rides with the last round trip instead,
		// which measured faster. Nothing is committed before that last
		// round trip, so a failed COPY leaves the outcome as known as a
		// failed read.
		if _, err := conn.Conn().PgConn().CopyFrom(ctx, newCopyReader(&w.inserted), l.copyData); err != nil {
			return nil, false, err
		}
		w.inserted = rowSet{}
	}
	b = w.batch(l)
	f.record(b)
	var tag string
	b.Queue("COMMIT").Exec(func(ct pgconn.CommandTag) error { tag = ct.String(); return nil })
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return nil, true, err
	}
	if tag != "COMMIT" {
		// PostgreSQL answers COMMIT of a failed transaction with ROLLBACK.
		return nil, true, errors.New("commit was rolled back")
	}
	return results, true, nil
}

// createOne is the fast path of a single put without If-Match, the
// commonest Apply when no write pool batches them: one round trip that
// creates the block if no layer holds it and commits. Plan would call
// that outcome Created whatever the op's proof or If-None-Match, so
// nothing is decided here that Plan would decide otherwise. If a layer
// holds the block, or the active side has a row for it (perhaps a
// tombstone), the insert does nothing (waiting, like any insert, for a
// concurrent creator to finish), an empty transaction commits, and
// created is false.
func (s *Store) createOne(ctx context.Context, op *blobstore.Op) (created bool, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, err
	}
	defer func() {
		if err != nil {
			rollback(conn)
		}
		conn.Release()
	}()
	l := s.layer()
	var n int64
	var tag string
	b := &pgx.Batch{}
	b.Queue(sqlBegin)
	b.Queue(l.lockHot)
	b.Queue(sqlExpectSide, l.side.value())
	b.Queue(l.createOne, uuidOf(op.ID), op.ProofHash[:], op.ETag[:], op.Data, op.Bucket[:]).
		QueryRow(func(r pgx.Row) error { return r.Scan(&n) })
	b.Queue("COMMIT").Exec(func(ct pgconn.CommandTag) error { tag = ct.String(); return nil })
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return false, err
	}
	if tag != "COMMIT" {
		return false, errors.New("commit was rolled back")
	}
	return n == 1, nil
}

// rollback ends a failed transaction so the connection can go back to
// the pool; if that fails the pool drops the connection, since it is not
// idle.
func rollback(conn *pgxpool.Conn) {
	c := conn.Conn()
	if c.IsClosed() || c.PgConn().TxStatus() == 'I' {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
	defer cancel()
	if _, err := c.Exec(ctx, "ROLLBACK"); err != nil {
		_ = c.Close(ctx)
	}
}

// writes are the statements that carry a batch's changes to the active
// side, grouped so that a batch costs a handful of statements whatever its
// size (overwrites of data already on the active side excepted: one
// statement each). Rows are in id order: the order ops arrived in leaves
// no trace in the order rows are written, and two transactions insert in
// the same order.
type writes struct {
	leaseIns, leaseUpd   []pgtype.UUID // lease rows to insert, to update
	leaseInsB, leaseUpdB [][]byte      // their buckets; nil is a tombstone
	dataDel              []pgtype.UUID // active-side block rows to delete
	inserted, updated    rowSet        // active-side block rows to insert, to update
}

type rowSet struct {
	ids    []pgtype.UUID
	proofs [][]byte
	etags  [][]byte
	data   [][]byte
}

func (r *rowSet) add(id wire.ID, m *blobstore.Meta, data []byte) {
	r.ids = append(r.ids, uuidOf(id))
	r.proofs = append(r.proofs, m.ProofHash[:])
	r.etags = append(r.etags, m.ETag[:])
	r.data = append(r.data, data)
}

func planWrites(changes []blobstore.Change, states map[wire.ID]*state) (*writes, error) {
	slices.SortFunc(changes, func(a, b blobstore.Change) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	w := &writes{}
	for i := range changes {
		c := &changes[i]
		if c.Old == nil && c.New == nil {
			continue
		}
		st := states[c.ID]
		if st == nil {
			return nil, errors.New("a change to a block the read did not return")
		}
		id := uuidOf(c.ID)
		var bucket []byte // nil: tombstone
		if c.New != nil {
			bucket = c.New.Bucket[:]
		}
		if st.hotRow {
			w.leaseUpd = append(w.leaseUpd, id)
			w.leaseUpdB = append(w.leaseUpdB, bucket)
		} else {
			w.leaseIns = append(w.leaseIns, id)
			w.leaseInsB = append(w.leaseInsB, bucket)
		}
		switch {
		case c.New == nil:
			if st.hotData {
				w.dataDel = append(w.dataDel, id)
			}
		case c.Data != nil:
			if st.hotData {
				w.updated.add(c.ID, c.New, c.Data)
			} else {
				w.inserted.add(c.ID, c.New, c.Data)
			}
		case c.Old == nil:
			return nil, errors.New("a new block comes without data")
		case c.New.ProofHash != c.Old.ProofHash || c.New.ETag != c.Old.ETag:
			return nil, errors.New("a block's proof or ETag changes without its data")
		}
	}
	return w, nil
}

// batch queues the statements, lease rows first: they are where a race
// with another writer shows, before any data is written.
func (w *writes) batch(l *layerSQL) *pgx.Batch {
	b := &pgx.Batch{}
	if len(w.leaseUpd) > 0 {
		b.Queue(l.updateHot, w.leaseUpd, w.leaseUpdB)
	}
	if len(w.leaseIns) > 0 {
		b.Queue(l.insertHot, w.leaseIns, w.leaseInsB)
	}
	if len(w.dataDel) > 0 {
		b.Queue(l.deleteData, w.dataDel)
	}
	// One statement per block: block data as separate parameters, never
	// gathered into one array (see copy.go).
	for i := range w.updated.ids {
		r := &w.updated
		b.Queue(l.updateData, r.ids[i], r.proofs[i], r.etags[i], r.data[i])
	}
	if len(w.inserted.ids) == 1 {
		r := &w.inserted
		b.Queue(l.insertData, r.ids[0], r.proofs[0], r.etags[0], r.data[0])
	}
	return b
}
