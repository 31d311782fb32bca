// Package blobstore is the heart of blindstore: the types of the data
// model, the store interface every backend implements, and the service
// logic that validates requests, checks ownership proofs and stamps
// buckets before anything reaches a store.
//
// A block is exactly what docs/design.md §3 allows: a random v4 UUID, a fixed
// number of ciphertext bytes, the hash of its renew proof, and a keyed time
// bucket. Nothing here records who wrote a block, when, or which blocks
// belong together, and nothing here logs block IDs, proofs or ETags.
package blobstore

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/wire"
)

// Meta is what a store keeps of a block besides its data.
type Meta struct {
	ProofHash wire.ProofHash
	ETag      wire.ETag
	Bucket    bucketer.Bucket
}

// Cond is a write precondition (RFC 9110 §13).
type Cond struct {
	// IfNoneMatchAny is If-None-Match: * — create only.
	IfNoneMatchAny bool
	// IfMatch, when set, is If-Match: <etag> — compare-and-swap.
	IfMatch *wire.ETag
}

// OpKind is the kind of a mutation.
type OpKind uint8

// Mutations.
const (
	OpPut OpKind = iota + 1
	OpDelete
	OpRenew
	// OpCheck changes nothing: it asserts that the block exists, is
	// the prover's, and meets Cond.IfMatch once the batch is applied.
	// In an atomic group it makes the group depend on a block written
	// by another request (a client's data, still on its way, that its
	// index is about to refer to).
	OpCheck
)

func (k OpKind) String() string {
	switch k {
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	case OpRenew:
		return "renew"
	case OpCheck:
		return "check"
	}
	return fmt.Sprintf("op(%d)", k)
}

// Op is one mutation, already validated by the service: proofs are hashed,
// the ETag of new data computed, and the current bucket chosen. Stores
// receive batches of them.
type Op struct {
	Kind      OpKind
	ID        wire.ID
	ProofHash wire.ProofHash // of the write proof (put, delete) or the renew proof (renew)
	Data      []byte         // put only: exactly the block size
	ETag      wire.ETag      // put only: ETagOf(Data)
	// Bucket is the bucket to stamp (put, renew). A put with the zero
	// Bucket is an overwrite that keeps the block's bucket: it never
	// creates a block (it fails its precondition when there is none)
	// and never renews one, so that writes a quota does not charge for
	// cannot stand in for renewals (docs/design.md §9 and §11).
	Bucket bucketer.Bucket
	Cond   Cond // put, delete, check
	// Group, when not zero, makes the ops that share it one atomic
	// request: its puts apply all together or none does, and its
	// deletes apply only when its puts do (a delete's own failure
	// aborts nothing: deleting is cleanup). Ops of an aborted group
	// answer StatusAborted. The service gives each atomic request a
	// random group, so groups of different requests in one batch never
	// meet.
	Group uint64
}

// Status is the outcome of one Op.
type Status uint8

// Outcomes.
const (
	StatusCreated      Status = iota + 1 // put of a new block
	StatusReplaced                       // put over an existing block
	StatusDeleted                        // delete
	StatusRenewed                        // renew that moved the block to the given bucket
	StatusCurrent                        // renew of a block already in the given bucket: nothing written
	StatusNotFound                       // delete or renew of a missing block
	StatusForbidden                      // proof does not match
	StatusPrecondition                   // If-Match / If-None-Match failed
	StatusAborted                        // not applied: another op of its atomic group failed
	StatusChecked                        // check that held
)

func (s Status) String() string {
	switch s {
	case StatusCreated:
		return "created"
	case StatusReplaced:
		return "replaced"
	case StatusDeleted:
		return "deleted"
	case StatusRenewed:
		return "renewed"
	case StatusCurrent:
		return "current"
	case StatusNotFound:
		return "not_found"
	case StatusForbidden:
		return "forbidden"
	case StatusPrecondition:
		return "precondition_failed"
	case StatusAborted:
		return "aborted"
	case StatusChecked:
		return "checked"
	}
	return fmt.Sprintf("status(%d)", s)
}

// Err returns the error a single request with this outcome reports, or nil
// for success.
func (s Status) Err() error {
	switch s {
	case StatusNotFound:
		return wire.E(wire.KindNotFound, wire.CodeNotFound, "no such block")
	case StatusForbidden:
		return wire.E(wire.KindForbidden, wire.CodeProofMismatch, "proof does not match this block")
	case StatusPrecondition:
		return wire.E(wire.KindPrecondition, wire.CodePreconditionFailed, "precondition failed")
	case StatusAborted:
		return wire.E(wire.KindAborted, wire.CodeAborted, "not applied: another write of the same atomic batch failed")
	}
	return nil
}

// HTTPStatus is the status a batch entry with this outcome answers: the
// success statuses of the single-block routes, and for a failure the
// status its error answers (wire's table). 0 for an outcome a batch
// write or deletion cannot have.
func (s Status) HTTPStatus() int {
	switch s {
	case StatusCreated:
		return http.StatusCreated
	case StatusReplaced, StatusDeleted:
		return http.StatusNoContent
	case StatusChecked:
		return http.StatusOK
	}
	if e, ok := s.Err().(*wire.Error); ok {
		return e.Kind.HTTPStatus()
	}
	return 0
}

// Result is the outcome of one Op. ETag is the block's ETag after the op
// (for successful puts and renewals) or its current one (for failed
// preconditions on an existing block).
type Result struct {
	Status Status
	ETag   wire.ETag
}

// Change is the net effect of a batch on one block, for a store to write.
// Old is the block's metadata before the batch (nil if it did not exist),
// New its metadata after (nil if it no longer exists). Data is non-nil
// exactly when the block's content changed.
type Change struct {
	ID   wire.ID
	Old  *Meta
	New  *Meta
	Data []byte
}

// Plan decides a batch: given the metadata of the blocks the batch touches
// as they are in the store (absent from current means no such block), it
// returns each op's result, in op order, and the net changes to write.
// Ops on the same block see each other's effects in order, exactly as if
// they had been committed one at a time; the ops of an atomic group (see
// Op.Group) that failed are then as if they had never been sent.
//
// Every store calls Plan inside its transaction, after locking or reading
// the rows of the touched blocks, so proof checks, preconditions and
// renewal rules are written once, here.
func Plan(ops []Op, current map[wire.ID]Meta) ([]Result, []Change) {
	var aborted map[uint64]bool
	var causes map[int]Result
	for {
		results, changes := planPass(ops, current, aborted)
		for i, r := range causes {
			results[i] = r
		}
		// The group of the first failed put or check in op order is aborted,
		// and the batch planned again without it: its other ops may
		// have changed what later ops saw, and a later group may have
		// failed only because of them. Each pass aborts one more
		// group, so this ends; a batch without groups takes one pass.
		first := -1
		for i := range ops {
			g := ops[i].Group
			if g == 0 || aborted[g] || ops[i].Kind == OpDelete || ops[i].Kind == OpRenew {
				continue
			}
			if st := results[i].Status; st != StatusCreated && st != StatusReplaced && st != StatusChecked {
				first = i
				break
			}
		}
		if first < 0 {
			return results, changes
		}
		if aborted == nil {
			aborted, causes = map[uint64]bool{}, map[int]Result{}
		}
		// The op that failed answers why, as it failed; the rest of
		// its group answers StatusAborted.
		aborted[ops[first].Group], causes[first] = true, results[first]
	}
}

// planPass plans ops as Plan does, skipping the ops of aborted groups.
func planPass(ops []Op, current map[wire.ID]Meta, aborted map[uint64]bool) ([]Result, []Change) {
	type state struct {
		old  *Meta
		cur  *Meta
		data []byte
	}
	states := make(map[wire.ID]*state, len(ops))
	order := make([]wire.ID, 0, len(ops))
	results := make([]Result, len(ops))
	stateOf := func(id wire.ID) *state {
		st, ok := states[id]
		if !ok {
			st = &state{}
			if m, ok := current[id]; ok {
				old, cur := m, m
				st.old, st.cur = &old, &cur
			}
			states[id] = st
			order = append(order, id)
		}
		return st
	}
	var checks []int
	for i := range ops {
		op := &ops[i]
		switch {
		case op.Group != 0 && aborted[op.Group]:
			results[i] = Result{Status: StatusAborted}
		case op.Kind == OpCheck:
			checks = append(checks, i)
		default:
			st := stateOf(op.ID)
			results[i] = planOne(op, &st.cur, &st.data)
		}
	}
	// Checks see the batch as applied, whatever the order its requests
	// were shuffled into: a check holds if its block exists once this
	// batch commits, written by it or before it.
	for _, i := range checks {
		results[i] = checkOne(&ops[i], stateOf(ops[i].ID).cur)
	}
	changes := make([]Change, 0, len(order))
	for _, id := range order {
		st := states[id]
		if st.old == nil && st.cur == nil {
			continue
		}
		if st.old != nil && st.cur != nil && *st.old == *st.cur && st.data == nil {
			continue
		}
		changes = append(changes, Change{ID: id, Old: st.old, New: st.cur, Data: st.data})
	}
	return results, changes
}

func planOne(op *Op, cur **Meta, data *[]byte) Result {
	m := *cur
	switch op.Kind {
	case OpPut:
		if m != nil && !m.ProofHash.Equal(op.ProofHash) {
			return Result{Status: StatusForbidden}
		}
		if r, failed := checkCond(op.Cond, m); failed {
			return r
		}
		bucket := op.Bucket
		if bucket == (bucketer.Bucket{}) {
			if m == nil {
				return Result{Status: StatusPrecondition}
			}
			bucket = m.Bucket
		}
		status := StatusCreated
		if m != nil {
			status = StatusReplaced
		}
		*cur = &Meta{ProofHash: op.ProofHash, ETag: op.ETag, Bucket: bucket}
		*data = op.Data
		return Result{Status: status, ETag: op.ETag}
	case OpDelete:
		if r := checkOne(op, m); r.Status != StatusChecked {
			return r
		}
		*cur = nil
		*data = nil
		return Result{Status: StatusDeleted}
	case OpRenew:
		if m == nil {
			return Result{Status: StatusNotFound}
		}
		if !m.ProofHash.Equal(op.ProofHash) {
			return Result{Status: StatusForbidden}
		}
		if m.Bucket == op.Bucket {
			return Result{Status: StatusCurrent, ETag: m.ETag}
		}
		n := *m
		n.Bucket = op.Bucket
		*cur = &n
		return Result{Status: StatusRenewed, ETag: m.ETag}
	}
	return Result{Status: StatusForbidden}
}

// checkOne decides a check against the block's state m (nil: none): the
// block exists, op's proof is its own, and op's precondition holds. A
// delete asks the same before it deletes.
func checkOne(op *Op, m *Meta) Result {
	if m == nil {
		return Result{Status: StatusNotFound}
	}
	if !m.ProofHash.Equal(op.ProofHash) {
		return Result{Status: StatusForbidden}
	}
	if r, failed := checkCond(op.Cond, m); failed {
		return r
	}
	return Result{Status: StatusChecked, ETag: m.ETag}
}

// checkCond evaluates preconditions against the current state m (nil: no
// block). It runs after the proof check, so a stranger learns from a 412
// nothing that a GET would not tell them.
func checkCond(c Cond, m *Meta) (Result, bool) {
	if c.IfNoneMatchAny && m != nil {
		return Result{Status: StatusPrecondition, ETag: m.ETag}, true
	}
	if c.IfMatch != nil {
		if m == nil {
			return Result{Status: StatusPrecondition}, true
		}
		if m.ETag != *c.IfMatch {
			return Result{Status: StatusPrecondition, ETag: m.ETag}, true
		}
	}
	return Result{}, false
}

// Params are the values a store is created with and must keep: opening an
// existing store with different ones is refused, because a different
// block size would corrupt reads and a different bucket key would make
// every block look expired.
type Params struct {
	BlockSize   int
	Fingerprint bucketer.Fingerprint
}

// Store is what a backend implements. Implementations must be safe for
// concurrent use. They keep nothing beyond what Meta and the data hold,
// plus the deployment's Params and the highest period seen.
type Store interface {
	// Read appends the block's data to dst[:0] and returns it with the
	// block's ETag. A missing block is an error of KindNotFound.
	Read(ctx context.Context, id wire.ID, dst []byte) ([]byte, wire.ETag, error)
	// Stat returns the block's ETag without its data.
	Stat(ctx context.Context, id wire.ID) (wire.ETag, error)
	// Apply commits a batch of ops in one transaction, deciding each with
	// Plan, and returns their results in op order. Either every change of
	// the batch is durable when it returns nil, or none is.
	Apply(ctx context.Context, ops []Op) ([]Result, error)
	// Purge deletes every block whose bucket is not in live and returns
	// how many it deleted. With dryRun it counts them and deletes nothing.
	// Its cost must grow with the number of expired blocks, not live ones.
	Purge(ctx context.Context, live bucketer.LiveSet, dryRun bool) (int64, error)
	// Stats returns aggregate figures for guards, readiness and audit.
	Stats(ctx context.Context) (Stats, error)
	// HighestPeriod returns the highest period recorded by SetHighestPeriod
	// (0 if none): the purge's guard against a clock that jumped.
	HighestPeriod(ctx context.Context) (uint64, error)
	// SetHighestPeriod records p if it is higher than the recorded one.
	SetHighestPeriod(ctx context.Context, p uint64) error
	// Ping checks that the store is reachable.
	Ping(ctx context.Context) error
	// Close releases the store.
	Close() error
}

// Lender is an optional interface of a Store that can hand a block's
// data to its reader in place (bbolt's memory map, PostgreSQL's read
// cache), sparing a copy. The slice is valid only while fn runs, and fn
// must return promptly: the store may hold a read transaction, and with
// it writers, meanwhile.
// fn's error is returned as it is; a missing block is an error of
// KindNotFound, and fn is not called.
type Lender interface {
	Lend(ctx context.Context, id wire.ID, fn func(data []byte, etag wire.ETag) error) error
}

// ManyReader is an optional interface of a Store that reads several
// blocks better together than one by one (PostgreSQL: in one statement
// rather than one round trip each). ReadMany calls fn once per id, in
// order, with the block's data (valid only while fn runs) and ETag, or
// with an error of KindNotFound for a missing block; any other failure,
// or an error fn returns, ends it and is returned.
type ManyReader interface {
	ReadMany(ctx context.Context, ids []wire.ID, fn func(i int, data []byte, etag wire.ETag, err error) error) error
}

// Stats are aggregate counts; they never name a block.
type Stats struct {
	Blocks  int64                     // all blocks
	Buckets map[bucketer.Bucket]int64 // blocks per bucket
}

// ErrParamsMismatch is wrapped by stores that refuse to open because the
// stored Params differ from the configured ones.
var ErrParamsMismatch = errors.New("store was created with different parameters")
