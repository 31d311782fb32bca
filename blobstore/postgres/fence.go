package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/jackc/pgx/v5"
)

// The write pool's fence. Several instances share one write pool in
// Redis (blobstore/pool), and exactly one of them, the flusher, commits
// its batches. A flusher that is merely paused (a long GC, a partition)
// may wake up after another took over, still believing it flushes; Redis
// alone cannot stop its commit, so the database does.
//
// One meta row, write_pool, holds 32 bytes: the token of the flusher that
// holds the fence, then the id of the last batch committed through the
// pool. Both are random (a token is drawn per takeover, an id per batch):
// the row holds no counter and no time, and is overwritten by each batch,
// so it tells nothing beyond which transaction was the last batch, which
// that batch's own rows tell anyway.
//
// Fence writes a new token in its own transaction. ApplyFenced locks the
// row FOR UPDATE before anything else in its transaction and checks it
// after the first round trip, before any write is sent; it rewrites the
// batch id in the last round trip, beside the COMMIT. The row lock orders
// the two: a takeover waits for a fenced commit in progress and then sees
// its batch id, and a commit that starts after a takeover sees the new
// token (READ COMMITTED re-reads a row it waited for) and refuses.
//
// The batch id makes replays exact: a batch is applied only if the row's
// last id is the batch's predecessor (prev), so a batch is applied at most
// once, and never after a later one, even when Redis loses or rolls back
// its record of what was committed. Applying a batch twice would not be
// harmless: two concurrent compare-and-swaps of one block, replayed, can
// leave the block in a state that no order of the original requests gives.
const (
	metaWritePool = "write_pool"

	sqlFenceLock  = "SELECT value FROM meta WHERE key = $1 FOR UPDATE"
	sqlFenceWrite = "UPDATE meta SET value = $2 WHERE key = $1"
	// sqlFenceTake sets the token and keeps the last batch id; a new row
	// starts with an all-zero batch id, which no batch has.
	sqlFenceTake = `INSERT INTO meta (key, value) VALUES ($1, $2 || '\x00000000000000000000000000000000'::bytea)
		ON CONFLICT (key) DO UPDATE SET value = $2 || substring(meta.value FROM 17 FOR 16)
		RETURNING substring(value FROM 17 FOR 16)`
)

// FenceError is ApplyFenced's refusal of a batch. Nothing of the batch was
// written. The write pool tells the reasons apart by its methods.
type FenceError struct{ reason fenceReason }

type fenceReason uint8

const (
	fenceTaken     fenceReason = iota + 1 // another flusher holds the fence
	fenceCommitted                        // the batch is the last one committed
	fenceStale                            // the batch does not follow the last one committed
)

func (e *FenceError) Error() string {
	switch e.reason {
	case fenceTaken:
		return "write pool: another flusher took over; this one must stop committing"
	case fenceCommitted:
		return "write pool: the batch was already committed"
	}
	return "write pool: the batch does not follow the last committed one (a stale replay)"
}

// Fenced reports whether another flusher took the fence: the caller must
// stop committing.
func (e *FenceError) Fenced() bool { return e.reason == fenceTaken }

// BatchCommitted reports whether the batch had already been committed, by
// an earlier attempt whose outcome its flusher never learned.
func (e *FenceError) BatchCommitted() bool { return e.reason == fenceCommitted }

// Fence makes token the only one whose ApplyFenced commits succeed, and
// returns the id of the last batch committed through the write pool (all
// zero if none). It waits for a fenced commit in progress to end, so that
// commit's batch is the one it returns.
func (s *Store) Fence(ctx context.Context, token [16]byte) ([16]byte, error) {
	var last [16]byte
	var got []byte
	err := s.pool.QueryRow(ctx, sqlFenceTake, metaWritePool, token[:]).Scan(&got)
	if err != nil {
		return last, classify("take the write pool's fence", err)
	}
	if len(got) != len(last) {
		return last, fmt.Errorf("postgres: the write pool's fence row is malformed (%d bytes of batch id)", len(got))
	}
	copy(last[:], got)
	return last, nil
}

// ApplyFenced applies ops as Apply does, in one transaction that also
// checks that token holds the fence and that prev is the last batch
// committed, and records batch as the last. It fails with a *FenceError
// (wrapped) when the fence refuses the batch; like Apply, an error of
// another kind than wire.KindUnavailable means nothing was
// committed, and KindUnavailable means the outcome is unknown: an
// ApplyFenced of the same batch later tells which (BatchCommitted).
func (s *Store) ApplyFenced(ctx context.Context, token, prev, batch [16]byte, ops []blobstore.Op) ([]blobstore.Result, error) {
	if len(ops) == 0 {
		// Apply commits nothing for no ops, so the batch id could not be
		// recorded and the next batch would look stale.
		return nil, errors.New("postgres: a write pool batch must hold at least one op")
	}
	if batch == prev {
		return nil, errors.New("postgres: a write pool batch cannot follow itself")
	}
	return s.apply(ctx, ops, &fence{token: token, prev: prev, batch: batch})
}

// fence is the write pool's check in one Apply. Its methods do nothing on
// a nil fence, so that Apply's code reads the same with and without one.
type fence struct {
	token, prev, batch [16]byte
	stored             []byte // the row as locked, nil if absent
}

// lock queues the row's lock and read into the transaction's first round trip.
func (f *fence) lock(b *pgx.Batch) {
	if f == nil {
		return
	}
	f.stored = nil
	b.Queue(sqlFenceLock, metaWritePool).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			if err := rows.Scan(&f.stored); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

// check decides, after the first round trip, whether the batch may go on.
func (f *fence) check() error {
	if f == nil {
		return nil
	}
	if len(f.stored) != 32 {
		if f.stored == nil {
			// Nobody took the fence: Fence was not called, a bug.
			return &FenceError{reason: fenceTaken}
		}
		return fmt.Errorf("the write pool's fence row is malformed (%d bytes)", len(f.stored))
	}
	switch {
	case string(f.stored[:16]) != string(f.token[:]):
		return &FenceError{reason: fenceTaken}
	case string(f.stored[16:]) == string(f.batch[:]):
		return &FenceError{reason: fenceCommitted}
	case string(f.stored[16:]) != string(f.prev[:]):
		return &FenceError{reason: fenceStale}
	}
	return nil
}

// record queues the new last batch id beside the COMMIT.
func (f *fence) record(b *pgx.Batch) {
	if f == nil {
		return
	}
	v := make([]byte, 0, 32)
	v = append(append(v, f.token[:]...), f.batch[:]...)
	b.Queue(sqlFenceWrite, metaWritePool, v)
}
