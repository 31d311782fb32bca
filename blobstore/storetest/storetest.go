// Package storetest is the conformance suite every blobstore.Store must
// pass: the contract of the Store interface written once, as tests, in
// the manner of Perkeep's storagetest. A backend's own test calls Run with
// a function that hands out fresh, empty locations, and RunSealing if the
// store seals. The races a store's own test also needs with its own checks
// around them (PurgeRacingRenewals, ConcurrentOpsOnOneBlock) are exported.
//
// The suite drives stores only through the Store interface, with ops built
// exactly as blobstore.Service builds them, so a store that passes it
// behaves the same under the service whatever it is built on. It must never
// depend on a particular backend, and it never logs block IDs, proofs or
// ETags: failures name the subtest, the op and the block by its role.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/wire"
)

// Opener opens the store at one fixed location with params p. Calling it
// again after Close must reopen the same data.
type Opener func(t *testing.T, p blobstore.Params) (blobstore.Store, error)

// blockSize is small so that the suite stays fast; it is the smallest a
// deployment may choose.
const blockSize = wire.MinBlockSize

// Run runs the whole suite. newLocation returns an Opener for a fresh,
// empty location; Run calls it once per subtest.
func Run(t *testing.T, newLocation func(t *testing.T) Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"PutCreateReplace", testPutCreateReplace},
		{"PutWrongProof", testPutWrongProof},
		{"ReadReusesDst", testReadReusesDst},
		{"Missing", testMissing},
		{"ReadMany", testReadMany},
		{"CreateOnly", testCreateOnly},
		{"IfMatch", testIfMatch},
		{"Delete", testDelete},
		{"Renew", testRenew},
		{"ProofChain", testProofChain},
		{"BatchSameID", testBatchSameID},
		{"BatchManyIDs", testBatchManyIDs},
		{"AtomicGroup", testAtomicGroup},
		{"ConcurrentCompareAndSwap", testConcurrentCAS},
		{"ConcurrentCreateOnly", testConcurrentCreate},
		{"ConcurrentApplies", testConcurrentApplies},
		{"Purge", testPurge},
		{"PurgeEmpty", testPurgeEmpty},
		{"Stats", testStats},
		{"Persistence", testPersistence},
		{"HighestPeriod", testHighestPeriod},
		{"ParamsMismatch", testParamsMismatch},
		{"CancelledApply", testCancelledApply},
		{"Ping", testPing},
		{"Params", testParams},
		{"WrongSize", testWrongSize},
		{"BatchMatchesOneAtATime", testBatchMatchesOneAtATime},
		{"ConcurrentReadersAndWriters", testConcurrentReadersAndWriters},
		{"ConcurrentOpsOnOneBlock", testConcurrentOpsOnOneBlock},
		{"PurgeRacingRenewals", testPurgeRacingRenewals},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, newLocation(t))
			tc.fn(t, h)
		})
	}
}

// harness holds one location, the params the suite opens it with, and
// the store currently open there.
type harness struct {
	t      *testing.T
	open   Opener
	params blobstore.Params
	bk     *bucketer.Bucketer
	s      blobstore.Store
}

func newHarness(t *testing.T, open Opener) *harness {
	t.Helper()
	key := make([]byte, bucketer.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	bk, err := bucketer.New(bucketer.Config{Key: key, Period: 24 * time.Hour, Retention: 3})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, open: open, bk: bk, params: blobstore.Params{BlockSize: blockSize, Fingerprint: bk.Fingerprint()}}
	h.reopen()
	t.Cleanup(func() {
		if h.s != nil {
			if err := h.s.Close(); err != nil {
				t.Errorf("Close at the end of the subtest: %v", err)
			}
			h.s = nil
		}
	})
	return h
}

// reopen closes the open store, if any, and opens the location again with
// the harness's params.
func (h *harness) reopen() {
	h.t.Helper()
	h.close()
	s, err := h.open(h.t, h.params)
	if err != nil {
		h.t.Fatalf("open store: %v", err)
	}
	if s == nil {
		h.t.Fatal("open store: Opener returned a nil store and no error")
	}
	h.s = s
}

func (h *harness) close() {
	h.t.Helper()
	if h.s == nil {
		return
	}
	s := h.s
	h.s = nil
	if err := s.Close(); err != nil {
		h.t.Fatalf("Close: %v", err)
	}
}

// bucket returns the bucket of period p under the harness's key.
func (h *harness) bucket(p uint64) bucketer.Bucket { return h.bk.Bucket(p) }

// block is a test block: an ID and its owner's write proof. name is what
// failure messages call it, never the ID.
type block struct {
	name string
	id   wire.ID
	w    wire.WriteProof
}

func newBlock(name string) block {
	b := block{name: name, id: wire.NewID()}
	if _, err := rand.Read(b.w[:]); err != nil {
		panic(err)
	}
	return b
}

// stranger returns the same block as seen by someone without its proof.
func (b block) stranger() block {
	s := newBlock(b.name + " (stranger's proof)")
	s.id = b.id
	return s
}

// randData returns block-sized random data.
func randData(r *mrand.Rand) []byte {
	d := make([]byte, blockSize)
	for i := 0; i < len(d); i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			d[i+j] = byte(v >> (8 * j))
		}
	}
	return d
}

func newRand() *mrand.Rand {
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		panic(err)
	}
	return mrand.New(mrand.NewChaCha8(seed))
}

// Ops built exactly as Service builds them.

func putOp(b block, data []byte, bucket bucketer.Bucket, c blobstore.Cond) blobstore.Op {
	return blobstore.Op{Kind: blobstore.OpPut, ID: b.id, ProofHash: b.w.Hash(), Data: data, ETag: wire.ETagOf(data), Bucket: bucket, Cond: c}
}

func deleteOp(b block, c blobstore.Cond) blobstore.Op {
	return blobstore.Op{Kind: blobstore.OpDelete, ID: b.id, ProofHash: b.w.Hash(), Cond: c}
}

func renewOp(b block, bucket bucketer.Bucket) blobstore.Op {
	return blobstore.Op{Kind: blobstore.OpRenew, ID: b.id, ProofHash: b.w.Renew().Hash(), Bucket: bucket}
}

func createOnly() blobstore.Cond { return blobstore.Cond{IfNoneMatchAny: true} }

func ifMatch(e wire.ETag) blobstore.Cond { return blobstore.Cond{IfMatch: &e} }

// describe names an op for failure messages without revealing anything
// about it but its role in the test.
func describe(op blobstore.Op, name string) string {
	s := op.Kind.String() + " of " + name
	if op.Cond.IfNoneMatchAny {
		s += " (If-None-Match: *)"
	}
	if op.Cond.IfMatch != nil {
		s += " (If-Match)"
	}
	return s
}

// step is an op with the name of its block and the outcome it must have.
type step struct {
	op     blobstore.Op
	name   string
	status blobstore.Status
	etag   *wire.ETag // nil: the result's ETag is not checked
}

func (st step) String() string { return describe(st.op, st.name) }

// applySteps commits all steps' ops in one Apply and checks each result.
func (h *harness) applySteps(ctx context.Context, steps ...step) []blobstore.Result {
	h.t.Helper()
	ops := make([]blobstore.Op, len(steps))
	for i, st := range steps {
		ops[i] = st.op
	}
	rs, err := h.s.Apply(ctx, ops)
	if err != nil {
		h.t.Fatalf("Apply of %d ops (first: %s): %v", len(ops), steps[0], err)
	}
	if len(rs) != len(ops) {
		h.t.Fatalf("Apply of %d ops returned %d results", len(ops), len(rs))
	}
	for i, st := range steps {
		checkResult(h.t, fmt.Sprintf("op %d of %d, %s", i+1, len(steps), st), rs[i], st.status, st.etag)
	}
	return rs
}

// apply1 commits one op alone and checks its result.
func (h *harness) apply1(op blobstore.Op, name string, status blobstore.Status, etag *wire.ETag) blobstore.Result {
	h.t.Helper()
	return h.applySteps(context.Background(), step{op: op, name: name, status: status, etag: etag})[0]
}

func checkResult(t *testing.T, what string, got blobstore.Result, status blobstore.Status, etag *wire.ETag) {
	t.Helper()
	if got.Status != status {
		t.Errorf("%s: status %s, want %s", what, got.Status, status)
		return
	}
	if etag != nil && got.ETag != *etag {
		t.Errorf("%s: result carries the wrong ETag", what)
	}
}

func ptr[T any](v T) *T { return &v }

// put creates b with random data in bucket and returns the data.
func (h *harness) put(b block, r *mrand.Rand, bucket bucketer.Bucket) []byte {
	h.t.Helper()
	data := randData(r)
	h.apply1(putOp(b, data, bucket, blobstore.Cond{}), b.name, blobstore.StatusCreated, ptr(wire.ETagOf(data)))
	return data
}

// expectBlock checks that Read and Stat return exactly data and its ETag.
func (h *harness) expectBlock(b block, data []byte) {
	h.t.Helper()
	ctx := context.Background()
	want := wire.ETagOf(data)
	got, etag, err := h.s.Read(ctx, b.id, nil)
	if err != nil {
		h.t.Fatalf("Read of %s: %v", b.name, err)
	}
	if !bytes.Equal(got, data) {
		h.t.Errorf("Read of %s: data differs from what was written (%d bytes, want %d)", b.name, len(got), len(data))
	}
	if etag != want {
		h.t.Errorf("Read of %s: wrong ETag", b.name)
	}
	etag, err = h.s.Stat(ctx, b.id)
	if err != nil {
		h.t.Fatalf("Stat of %s: %v", b.name, err)
	}
	if etag != want {
		h.t.Errorf("Stat of %s: wrong ETag", b.name)
	}
}

// expectMissing checks that Read and Stat report b as not found.
func (h *harness) expectMissing(b block) {
	h.t.Helper()
	ctx := context.Background()
	if _, _, err := h.s.Read(ctx, b.id, nil); !blobstore.IsNotFound(err) {
		h.t.Errorf("Read of missing %s: got error %v, want one of KindNotFound", b.name, err)
	}
	if _, err := h.s.Stat(ctx, b.id); !blobstore.IsNotFound(err) {
		h.t.Errorf("Stat of missing %s: got error %v, want one of KindNotFound", b.name, err)
	}
}

// stats returns the store's Stats with empty buckets dropped, since a
// store may or may not list a bucket it has emptied.
func (h *harness) stats() blobstore.Stats {
	h.t.Helper()
	st, err := h.s.Stats(context.Background())
	if err != nil {
		h.t.Fatalf("Stats: %v", err)
	}
	out := blobstore.Stats{Blocks: st.Blocks, Buckets: map[bucketer.Bucket]int64{}}
	for b, n := range st.Buckets {
		if n < 0 {
			h.t.Errorf("Stats: a bucket has a negative count %d", n)
		}
		if n != 0 {
			out.Buckets[b] = n
		}
	}
	return out
}

// expectStats checks the total and the per-bucket counts, buckets named
// by period for the message.
func (h *harness) expectStats(when string, total int64, perPeriod map[uint64]int64) {
	h.t.Helper()
	st := h.stats()
	if st.Blocks != total {
		h.t.Errorf("Stats %s: Blocks = %d, want %d", when, st.Blocks, total)
	}
	want := map[bucketer.Bucket]int64{}
	var sum int64
	for p, n := range perPeriod {
		if n != 0 {
			want[h.bucket(p)] = n
		}
		sum += n
	}
	if sum != total {
		h.t.Fatalf("test bug: per-bucket counts add up to %d, total is %d", sum, total)
	}
	for p, n := range perPeriod {
		if got := st.Buckets[h.bucket(p)]; got != n {
			h.t.Errorf("Stats %s: bucket of period %d holds %d blocks, want %d", when, p, got, n)
		}
	}
	for b, n := range st.Buckets {
		if _, ok := want[b]; !ok {
			h.t.Errorf("Stats %s: an unexpected bucket holds %d blocks", when, n)
		}
	}
}

// liveSet returns a live set made of the buckets of the given periods.
func (h *harness) liveSet(periods ...uint64) bucketer.LiveSet {
	ls := bucketer.LiveSet{}
	for _, p := range periods {
		ls.Buckets = append(ls.Buckets, h.bucket(p))
		ls.Current = max(ls.Current, p)
	}
	return ls
}

func (h *harness) purge(live bucketer.LiveSet, dryRun bool, want int64, what string) {
	h.t.Helper()
	n, err := h.s.Purge(context.Background(), live, dryRun)
	if err != nil {
		h.t.Fatalf("Purge %s: %v", what, err)
	}
	if n != want {
		h.t.Errorf("Purge %s: counted %d blocks, want %d", what, n, want)
	}
}

func testPutCreateReplace(t *testing.T, h *harness) {
	r := newRand()
	a := newBlock("block A")
	d1 := randData(r)
	h.apply1(putOp(a, d1, h.bucket(1), blobstore.Cond{}), "new block A", blobstore.StatusCreated, ptr(wire.ETagOf(d1)))
	h.expectBlock(a, d1)
	h.expectStats("after create", 1, map[uint64]int64{1: 1})

	d2 := randData(r)
	h.apply1(putOp(a, d2, h.bucket(2), blobstore.Cond{}), "existing block A", blobstore.StatusReplaced, ptr(wire.ETagOf(d2)))
	h.expectBlock(a, d2)
	// A put stamps the bucket it carries, like a renewal.
	h.expectStats("after replace", 1, map[uint64]int64{2: 1})

	// Replacing with identical data is still a replacement.
	h.apply1(putOp(a, d2, h.bucket(2), blobstore.Cond{}), "block A with its own data", blobstore.StatusReplaced, ptr(wire.ETagOf(d2)))
	h.expectBlock(a, d2)
}

func testPutWrongProof(t *testing.T, h *harness) {
	r := newRand()
	a := newBlock("block A")
	d := h.put(a, r, h.bucket(1))

	evil := randData(r)
	h.apply1(putOp(a.stranger(), evil, h.bucket(2), blobstore.Cond{}), "block A", blobstore.StatusForbidden, nil)
	h.apply1(putOp(a.stranger(), evil, h.bucket(2), createOnly()), "block A", blobstore.StatusForbidden, nil)
	h.apply1(putOp(a.stranger(), evil, h.bucket(2), ifMatch(wire.ETagOf(d))), "block A", blobstore.StatusForbidden, nil)
	h.expectBlock(a, d)
	h.expectStats("after refused puts", 1, map[uint64]int64{1: 1})
	// The stored proof is the owner's still: the owner's renewal into the
	// same bucket finds nothing to do, and the owner can still write.
	h.apply1(renewOp(a, h.bucket(1)), "block A after refused puts", blobstore.StatusCurrent, ptr(wire.ETagOf(d)))
	d2 := randData(r)
	h.apply1(putOp(a, d2, h.bucket(1), blobstore.Cond{}), "block A by its owner", blobstore.StatusReplaced, ptr(wire.ETagOf(d2)))
	h.expectBlock(a, d2)
}

func testReadReusesDst(t *testing.T, h *harness) {
	r := newRand()
	a := newBlock("block A")
	d := h.put(a, r, h.bucket(1))
	ctx := context.Background()

	dst := make([]byte, 0, blockSize)
	got, etag, err := h.s.Read(ctx, a.id, dst)
	if err != nil {
		t.Fatalf("Read of block A into dst: %v", err)
	}
	if !bytes.Equal(got, d) || etag != wire.ETagOf(d) {
		t.Fatal("Read of block A into dst: wrong data or ETag")
	}
	if &got[0] != &dst[:1][0] {
		t.Error("Read of block A into a dst with enough capacity allocated a new slice")
	}

	// dst's old contents are replaced, not appended to.
	dirty := make([]byte, 17, 2*blockSize)
	got, _, err = h.s.Read(ctx, a.id, dirty)
	if err != nil {
		t.Fatalf("Read of block A into a non-empty dst: %v", err)
	}
	if !bytes.Equal(got, d) {
		t.Errorf("Read of block A into a non-empty dst: got %d bytes, want the block's %d", len(got), len(d))
	}
	if &got[0] != &dirty[0] {
		t.Error("Read of block A into a non-empty dst with enough capacity allocated a new slice")
	}

	// A small dst still works.
	got, _, err = h.s.Read(ctx, a.id, make([]byte, 0, 8))
	if err != nil || !bytes.Equal(got, d) {
		t.Errorf("Read of block A into a small dst: err %v, data equal %v", err, bytes.Equal(got, d))
	}

	// A Read's result is the caller's: changing it does not change the block.
	got[0] ^= 0xff
	h.expectBlock(a, d)
}

func testMissing(t *testing.T, h *harness) {
	r := newRand()
	h.expectMissing(newBlock("a block never written"))
	h.put(newBlock("block A"), r, h.bucket(1))
	h.expectMissing(newBlock("another block never written"))
}

func testCreateOnly(t *testing.T, h *harness) {
	r := newRand()
	a := newBlock("block A")
	d := randData(r)
	h.apply1(putOp(a, d, h.bucket(1), createOnly()), "new block A", blobstore.StatusCreated, ptr(wire.ETagOf(d)))
	h.expectBlock(a, d)

	h.apply1(putOp(a, randData(r), h.bucket(2), createOnly()), "existing block A", blobstore.StatusPrecondition, ptr(wire.ETagOf(d)))
	h.expectBlock(a, d)
	h.expectStats("after failed create-only", 1, map[uint64]int64{1: 1})
}

func testIfMatch(t *testing.T, h *harness) {
	r := newRand()
	a := newBlock("block A")
	d1 := h.put(a, r, h.bucket(1))

	d2 := randData(r)
	h.apply1(putOp(a, d2, h.bucket(2), ifMatch(wire.ETagOf(d1))), "block A with its current ETag", blobstore.StatusReplaced, ptr(wire.ETagOf(d2)))
	h.expectBlock(a, d2)

	// d1's ETag is stale now.
	h.apply1(putOp(a, randData(r), h.bucket(3), ifMatch(wire.ETagOf(d1))), "block A with a stale ETag", blobstore.StatusPrecondition, ptr(wire.ETagOf(d2)))
	h.expectBlock(a, d2)
	h.expectStats("after failed If-Match", 1, map[uint64]int64{2: 1})

	m := newBlock("missing block M")
	h.apply1(putOp(m, randData(r), h.bucket(2), ifMatch(wire.ETagOf(d2))), m.name, blobstore.StatusPrecondition, nil)
	h.expectMissing(m)
	h.expectStats("after If-Match on a missing block", 1, map[uint64]int64{2: 1})
}

func testDelete(t *testing.T, h *harness) {
	r := newRand()
	a := newBlock("block A")
	d := h.put(a, r, h.bucket(1))

	h.apply1(deleteOp(a.stranger(), blobstore.Cond{}), "block A", blobstore.StatusForbidden, nil)
	h.expectBlock(a, d)
	h.apply1(deleteOp(a, ifMatch(wire.ETagOf(randData(r)))), "block A with a wrong ETag", blobstore.StatusPrecondition, ptr(wire.ETagOf(d)))
	h.expectBlock(a, d)
	h.expectStats("after refused deletes", 1, map[uint64]int64{1: 1})

	h.apply1(deleteOp(a, blobstore.Cond{}), "block A", blobstore.StatusDeleted, nil)
	h.expectMissing(a)
	h.expectStats("after delete", 0, nil)
	h.apply1(deleteOp(a, blobstore.Cond{}), "deleted block A", blobstore.StatusNotFound, nil)
	h.apply1(deleteOp(newBlock("missing block M"), blobstore.Cond{}), "missing block M", blobstore.StatusNotFound, nil)

	// A deleted ID is free: anyone may create it anew, with their proof.
	b := newBlock("block B")
	d = h.put(b, r, h.bucket(1))
	other := a.stranger()
	h.put(other, r, h.bucket(2))
	h.apply1(deleteOp(a, blobstore.Cond{}), "block A re-created by someone else", blobstore.StatusForbidden, nil)

	// Delete with the right If-Match succeeds.
	h.apply1(deleteOp(b, ifMatch(wire.ETagOf(d))), "block B with its ETag", blobstore.StatusDeleted, nil)
	h.expectMissing(b)
	h.expectStats("at the end", 1, map[uint64]int64{2: 1})
}

func testRenew(t *testing.T, h *harness) {
	r := newRand()
	a := newBlock("block A")
	d := h.put(a, r, h.bucket(1))
	etag := wire.ETagOf(d)

	h.apply1(renewOp(a, h.bucket(1)), "block A into its own bucket", blobstore.StatusCurrent, &etag)
	h.apply1(renewOp(a, h.bucket(2)), "block A into a new bucket", blobstore.StatusRenewed, &etag)
	h.expectBlock(a, d)
	h.expectStats("after renew", 1, map[uint64]int64{2: 1})
	h.apply1(renewOp(a, h.bucket(2)), "block A again", blobstore.StatusCurrent, &etag)

	h.apply1(renewOp(a.stranger(), h.bucket(3)), "block A", blobstore.StatusForbidden, nil)
	h.apply1(renewOp(newBlock("missing block M"), h.bucket(3)), "missing block M", blobstore.StatusNotFound, nil)
	h.expectStats("after refused renewals", 1, map[uint64]int64{2: 1})

	// The block now lives in bucket 2 only: a purge keeping only bucket 2
	// keeps it, and one keeping only bucket 1 deletes it.
	h.purge(h.liveSet(2), false, 0, "keeping the renewed bucket")
	h.expectBlock(a, d)
	h.purge(h.liveSet(1, 3), true, 1, "dry run keeping only the old bucket")
	h.expectBlock(a, d)
	h.purge(h.liveSet(1, 3), false, 1, "keeping only the old bucket")
	h.expectMissing(a)
}

// testProofChain checks that the store compares the one stored hash with
// what each kind of op carries: a write proof cannot be passed off as a
// renew proof, nor the other way round.
func testProofChain(t *testing.T, h *harness) {
	r := newRand()
	a := newBlock("block A")
	d := h.put(a, r, h.bucket(1))
	etag := wire.ETagOf(d)
	if a.w.Hash() != a.w.Renew().Hash() {
		t.Fatal("WriteProof.Hash is not RenewProof.Hash of the derived renew proof")
	}

	// The write proof's bytes used as a renew proof.
	asRenew := wire.RenewProof(a.w)
	h.apply1(blobstore.Op{Kind: blobstore.OpRenew, ID: a.id, ProofHash: asRenew.Hash(), Bucket: h.bucket(2)},
		"block A with its write proof as renew proof", blobstore.StatusForbidden, nil)

	// The renew proof's bytes used as a write proof, for put and delete.
	asWrite := wire.WriteProof(a.w.Renew())
	evil := randData(r)
	h.apply1(blobstore.Op{Kind: blobstore.OpPut, ID: a.id, ProofHash: asWrite.Hash(), Data: evil, ETag: wire.ETagOf(evil), Bucket: h.bucket(2)},
		"put of block A with its renew proof as write proof", blobstore.StatusForbidden, nil)
	h.apply1(blobstore.Op{Kind: blobstore.OpDelete, ID: a.id, ProofHash: asWrite.Hash()},
		"delete of block A with its renew proof as write proof", blobstore.StatusForbidden, nil)
	h.expectBlock(a, d)
	h.expectStats("after misused proofs", 1, map[uint64]int64{1: 1})

	// The real renew proof works.
	h.apply1(renewOp(a, h.bucket(2)), "block A with its renew proof", blobstore.StatusRenewed, &etag)
}

func testBatchSameID(t *testing.T, h *harness) {
	r := newRand()
	d1, d2, d3 := randData(r), randData(r), randData(r)
	e1, e2, e3 := wire.ETagOf(d1), wire.ETagOf(d2), wire.ETagOf(d3)

	// The same sequence on two blocks: all in one Apply for A, one Apply
	// per op for B. Results and final state must agree.
	seq := func(b block) []step {
		return []step{
			{putOp(b, d1, h.bucket(1), createOnly()), b.name, blobstore.StatusCreated, &e1},
			{putOp(b, d2, h.bucket(1), createOnly()), b.name, blobstore.StatusPrecondition, &e1},
			{putOp(b.stranger(), d3, h.bucket(1), blobstore.Cond{}), b.name, blobstore.StatusForbidden, nil},
			{putOp(b, d2, h.bucket(1), ifMatch(e1)), b.name, blobstore.StatusReplaced, &e2},
			{putOp(b, d3, h.bucket(1), ifMatch(e1)), b.name, blobstore.StatusPrecondition, &e2},
			{renewOp(b, h.bucket(2)), b.name, blobstore.StatusRenewed, &e2},
			{renewOp(b, h.bucket(2)), b.name, blobstore.StatusCurrent, &e2},
			{deleteOp(b, blobstore.Cond{}), b.name, blobstore.StatusDeleted, nil},
			{deleteOp(b, blobstore.Cond{}), b.name, blobstore.StatusNotFound, nil},
			{renewOp(b, h.bucket(2)), b.name, blobstore.StatusNotFound, nil},
			{putOp(b, d3, h.bucket(1), ifMatch(e2)), b.name, blobstore.StatusPrecondition, nil},
			{putOp(b, d3, h.bucket(3), blobstore.Cond{}), b.name, blobstore.StatusCreated, &e3},
		}
	}
	a, b := newBlock("block A (one batch)"), newBlock("block B (one op at a time)")
	batched := h.applySteps(context.Background(), seq(a)...)
	for i, st := range seq(b) {
		rs := h.applySteps(context.Background(), st)
		if rs[0] != batched[i] {
			t.Errorf("op %d, %s: alone gives %s, in one batch gave %s", i+1, st, rs[0].Status, batched[i].Status)
		}
	}
	h.expectBlock(a, d3)
	h.expectBlock(b, d3)
	h.expectStats("after both sequences", 2, map[uint64]int64{3: 2})

	// A block created and deleted within one batch leaves nothing behind.
	c := newBlock("block C")
	h.applySteps(context.Background(),
		step{putOp(c, d1, h.bucket(1), blobstore.Cond{}), c.name, blobstore.StatusCreated, &e1},
		step{deleteOp(c, blobstore.Cond{}), c.name, blobstore.StatusDeleted, nil},
	)
	h.expectMissing(c)
	h.expectStats("after create and delete in one batch", 2, map[uint64]int64{3: 2})
}

// testAtomicGroup: a commit in one atomic group (new blocks, the
// compare-and-swap of the block that refers to them, deletion of what it
// replaces) leaves nothing of itself when its swap fails, and applies
// whole when it wins; ops of other requests in the same Apply are
// unaffected either way.
func testAtomicGroup(t *testing.T, h *harness) {
	r := newRand()
	head, stale := newBlock("head"), newBlock("stale index block")
	dHead := h.put(head, r, h.bucket(1))
	dStale := h.put(stale, r, h.bucket(1))
	eHead := wire.ETagOf(dHead)
	fresh, other := newBlock("fresh index block"), newBlock("unrelated block")
	dFresh, dNext, dOther := randData(r), randData(r), randData(r)
	commit := func(g uint64, etag wire.ETag) []blobstore.Op {
		ops := []blobstore.Op{
			putOp(fresh, dFresh, h.bucket(2), createOnly()),
			putOp(head, dNext, h.bucket(2), ifMatch(etag)),
			deleteOp(stale, blobstore.Cond{}),
		}
		for i := range ops {
			ops[i].Group = g
		}
		return ops
	}
	lost := commit(11, wire.ETagOf(dOther))
	h.applySteps(context.Background(),
		step{lost[0], fresh.name, blobstore.StatusAborted, nil},
		step{lost[1], head.name, blobstore.StatusPrecondition, &eHead},
		step{lost[2], stale.name, blobstore.StatusAborted, nil},
		step{putOp(other, dOther, h.bucket(2), blobstore.Cond{}), other.name, blobstore.StatusCreated, nil},
	)
	h.expectMissing(fresh)
	h.expectBlock(head, dHead)
	h.expectBlock(stale, dStale)
	h.expectBlock(other, dOther)

	won := commit(12, eHead)
	h.applySteps(context.Background(),
		step{won[0], fresh.name, blobstore.StatusCreated, nil},
		step{won[1], head.name, blobstore.StatusReplaced, nil},
		step{won[2], stale.name, blobstore.StatusDeleted, nil},
	)
	h.expectBlock(fresh, dFresh)
	h.expectBlock(head, dNext)
	h.expectMissing(stale)
	h.expectStats("after the atomic commit", 3, map[uint64]int64{2: 3})
}

func testBatchManyIDs(t *testing.T, h *harness) {
	r := newRand()
	const n = 40
	old := make([]block, n)
	oldData := make([][]byte, n)
	var ops []step
	for i := range old {
		old[i] = newBlock(fmt.Sprintf("old block %d", i))
		d := randData(r)
		oldData[i] = d
		ops = append(ops, step{putOp(old[i], d, h.bucket(1), blobstore.Cond{}), old[i].name, blobstore.StatusCreated, ptr(wire.ETagOf(d))})
	}
	h.applySteps(context.Background(), ops...)
	h.expectStats("after the first batch", n, map[uint64]int64{1: n})

	// One batch mixing every kind of op on many blocks, interleaved so
	// that a store returning results out of order fails.
	fresh := make([]block, n)
	freshData := make([][]byte, n)
	ops = ops[:0]
	for i := 0; i < n; i++ {
		fresh[i] = newBlock(fmt.Sprintf("new block %d", i))
		freshData[i] = randData(r)
		ops = append(ops, step{putOp(fresh[i], freshData[i], h.bucket(2), createOnly()), fresh[i].name, blobstore.StatusCreated, ptr(wire.ETagOf(freshData[i]))})
		switch i % 4 {
		case 0:
			ops = append(ops, step{deleteOp(old[i], blobstore.Cond{}), old[i].name, blobstore.StatusDeleted, nil})
		case 1:
			ops = append(ops, step{renewOp(old[i], h.bucket(2)), old[i].name, blobstore.StatusRenewed, ptr(wire.ETagOf(oldData[i]))})
		case 2:
			ops = append(ops, step{renewOp(old[i].stranger(), h.bucket(2)), old[i].name, blobstore.StatusForbidden, nil})
		case 3:
			ops = append(ops, step{deleteOp(newBlock("missing"), blobstore.Cond{}), "a missing block", blobstore.StatusNotFound, nil})
		}
	}
	h.applySteps(context.Background(), ops...)

	for i := 0; i < n; i++ {
		h.expectBlock(fresh[i], freshData[i])
		if i%4 == 0 {
			h.expectMissing(old[i])
		} else {
			h.expectBlock(old[i], oldData[i])
		}
	}
	// n/4 old blocks deleted, n/4 moved to bucket 2, n new in bucket 2.
	h.expectStats("after the mixed batch", n-n/4+n, map[uint64]int64{1: n / 2, 2: n/4 + n})
}

// race runs fn from n goroutines released at once and returns their
// results.
func race(t *testing.T, n int, fn func(i int) (blobstore.Result, error)) []blobstore.Result {
	t.Helper()
	results := make([]blobstore.Result, n)
	errs := make([]error, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := 0; i < n; i++ {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			results[i], errs[i] = fn(i)
		}()
	}
	start.Done()
	done.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("goroutine %d of %d: Apply: %v", i, n, err)
		}
	}
	return results
}

func applyOne(s blobstore.Store, op blobstore.Op) (blobstore.Result, error) {
	rs, err := s.Apply(context.Background(), []blobstore.Op{op})
	if err != nil {
		return blobstore.Result{}, err
	}
	if len(rs) != 1 {
		return blobstore.Result{}, fmt.Errorf("Apply of one op returned %d results", len(rs))
	}
	return rs[0], nil
}

const racers = 16

func testConcurrentCAS(t *testing.T, h *harness) {
	r := newRand()
	a := newBlock("block A")
	d0 := h.put(a, r, h.bucket(1))
	h.putRace("compare-and-swap", a, ifMatch(wire.ETagOf(d0)), blobstore.StatusReplaced)
}

func testConcurrentCreate(t *testing.T, h *harness) {
	h.putRace("create-only", newBlock("block A"), createOnly(), blobstore.StatusCreated)
	h.expectStats("after the race", 1, map[uint64]int64{1: 1})
}

// putRace has racers goroutines put block a at once under cond: exactly
// one must win with status won, every other must fail its precondition
// and be told the winner's ETag, and a must hold the winner's data.
func (h *harness) putRace(what string, a block, cond blobstore.Cond, won blobstore.Status) {
	t := h.t
	t.Helper()
	r := newRand()
	datas := make([][]byte, racers)
	for i := range datas {
		datas[i] = randData(r)
	}
	results := race(t, racers, func(i int) (blobstore.Result, error) {
		return applyOne(h.s, putOp(a, datas[i], h.bucket(1), cond))
	})
	winner := -1
	for i, res := range results {
		switch res.Status {
		case won:
			if winner >= 0 {
				t.Errorf("%s race: goroutines %d and %d both got %s for %s", what, winner, i, won, a.name)
			}
			winner = i
		case blobstore.StatusPrecondition:
		default:
			t.Errorf("%s race: goroutine %d got %s, want %s or %s", what, i, res.Status, won, blobstore.StatusPrecondition)
		}
	}
	if winner < 0 {
		t.Fatalf("%s race: no goroutine got %s for %s", what, won, a.name)
	}
	for i, res := range results {
		if res.Status == blobstore.StatusPrecondition && res.ETag != wire.ETagOf(datas[winner]) {
			t.Errorf("%s race: goroutine %d lost but was not told the winner's ETag", what, i)
		}
	}
	h.expectBlock(a, datas[winner])
}

// testConcurrentApplies runs many small Applies at once, as the service
// does without a write pool, some of them doomed (a cancelled context),
// and checks that each caller gets its own results and that a doomed
// caller harms no other.
func testConcurrentApplies(t *testing.T, h *harness) {
	const callers, rounds = racers, 8
	r := newRand()
	type plan struct {
		b    block
		data []byte
	}
	plans := make([][]plan, callers)
	for i := range plans {
		for j := 0; j < rounds; j++ {
			plans[i] = append(plans[i], plan{newBlock(fmt.Sprintf("block %d of caller %d", j, i)), randData(r)})
		}
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	var wg sync.WaitGroup
	errs := make(chan error, callers*rounds)
	for i := 0; i < callers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j, p := range plans[i] {
				ops := []blobstore.Op{putOp(p.b, p.data, h.bucket(1), createOnly())}
				ctx := context.Background()
				doomed := (i+j)%5 == 0
				if doomed {
					ctx = cancelled
				}
				rs, err := h.s.Apply(ctx, ops)
				switch {
				case doomed && err == nil:
					errs <- fmt.Errorf("caller %d, round %d: Apply with a cancelled context succeeded", i, j)
				case doomed:
				case err != nil:
					errs <- fmt.Errorf("caller %d, round %d: Apply: %w", i, j, err)
				case len(rs) != 1 || rs[0].Status != blobstore.StatusCreated || rs[0].ETag != wire.ETagOf(p.data):
					errs <- fmt.Errorf("caller %d, round %d: put of %s: got %v, want created with its ETag", i, j, p.b.name, rs)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var n int64
	for i := range plans {
		for j, p := range plans[i] {
			if (i+j)%5 == 0 {
				h.expectMissing(p.b)
			} else {
				h.expectBlock(p.b, p.data)
				n++
			}
		}
	}
	h.expectStats("after concurrent applies", n, map[uint64]int64{1: n})
}

func testPurge(t *testing.T, h *harness) {
	r := newRand()
	// Periods 1 and 2 expire, 3 and 4 stay live.
	counts := map[uint64]int{1: 7, 2: 5, 3: 6, 4: 4}
	blocks := map[uint64][]block{}
	data := map[uint64][][]byte{}
	for p, n := range counts {
		var steps []step
		for i := 0; i < n; i++ {
			b := newBlock(fmt.Sprintf("block %d of period %d", i, p))
			d := randData(r)
			blocks[p] = append(blocks[p], b)
			data[p] = append(data[p], d)
			steps = append(steps, step{putOp(b, d, h.bucket(p), blobstore.Cond{}), b.name, blobstore.StatusCreated, nil})
		}
		h.applySteps(context.Background(), steps...)
	}
	before := map[uint64]int64{1: 7, 2: 5, 3: 6, 4: 4}
	h.expectStats("before purge", 22, before)

	live := h.liveSet(3, 4)
	h.purge(live, true, 12, "dry run")
	h.expectStats("after a dry run", 22, before)
	for p := range counts {
		for i, b := range blocks[p] {
			h.expectBlock(b, data[p][i])
		}
	}

	h.purge(live, false, 12, "of periods 1 and 2")
	h.expectStats("after purge", 10, map[uint64]int64{3: 6, 4: 4})
	for p := range counts {
		for i, b := range blocks[p] {
			if p <= 2 {
				h.expectMissing(b)
			} else {
				h.expectBlock(b, data[p][i])
			}
		}
	}
	h.purge(live, false, 0, "a second time")
	h.purge(live, true, 0, "dry run after purge")

	// Live blocks can still be renewed and written after a purge, and a
	// purged ID can be created anew.
	b := blocks[3][0]
	h.apply1(renewOp(b, h.bucket(4)), b.name, blobstore.StatusRenewed, ptr(wire.ETagOf(data[3][0])))
	gone := blocks[1][0]
	d := h.put(gone, r, h.bucket(4))
	h.expectBlock(gone, d)
	h.expectStats("after writes following the purge", 11, map[uint64]int64{3: 5, 4: 6})

	// Moving on: period 3 expires.
	h.purge(h.liveSet(4, 5), false, 5, "of period 3")
	h.expectStats("after the second purge", 6, map[uint64]int64{4: 6})
}

func testPurgeEmpty(t *testing.T, h *harness) {
	h.purge(h.liveSet(1, 2), true, 0, "dry run of an empty store")
	h.purge(h.liveSet(1, 2), false, 0, "of an empty store")
	h.purge(bucketer.LiveSet{}, false, 0, "of an empty store with an empty live set")
	h.expectStats("of an empty store", 0, nil)

	// A store whose blocks are all live purges nothing.
	r := newRand()
	a := newBlock("block A")
	d := h.put(a, r, h.bucket(2))
	h.purge(h.liveSet(1, 2), false, 0, "with every block live")
	h.expectBlock(a, d)
}

func testStats(t *testing.T, h *harness) {
	r := newRand()
	h.expectStats("of a new store", 0, nil)
	var steps []step
	var bs []block
	for i := 0; i < 9; i++ {
		b := newBlock(fmt.Sprintf("block %d", i))
		bs = append(bs, b)
		steps = append(steps, step{putOp(b, randData(r), h.bucket(uint64(1+i%3)), blobstore.Cond{}), b.name, blobstore.StatusCreated, nil})
	}
	h.applySteps(context.Background(), steps...)
	h.expectStats("after 9 puts", 9, map[uint64]int64{1: 3, 2: 3, 3: 3})

	// Periods of bs[i] are 1+i%3: renew 0 and 3 (period 1) to period 3,
	// delete 1 (period 2), overwrite 2 (period 3) into period 4.
	h.applySteps(context.Background(),
		step{renewOp(bs[0], h.bucket(3)), bs[0].name, blobstore.StatusRenewed, nil},
		step{renewOp(bs[3], h.bucket(3)), bs[3].name, blobstore.StatusRenewed, nil},
		step{deleteOp(bs[1], blobstore.Cond{}), bs[1].name, blobstore.StatusDeleted, nil},
		step{putOp(bs[2], randData(r), h.bucket(4), blobstore.Cond{}), bs[2].name, blobstore.StatusReplaced, nil},
	)
	h.expectStats("after renewals, a delete and an overwrite", 8, map[uint64]int64{1: 1, 2: 2, 3: 4, 4: 1})

	// Stats survive a reopen.
	h.reopen()
	h.expectStats("after reopen", 8, map[uint64]int64{1: 1, 2: 2, 3: 4, 4: 1})
}

func testPersistence(t *testing.T, h *harness) {
	const n, batch = 500, 50
	r := newRand()
	bs := make([]block, n)
	datas := make([][]byte, n)
	perPeriod := map[uint64]int64{}
	for i := 0; i < n; i += batch {
		var steps []step
		for j := i; j < i+batch; j++ {
			bs[j] = newBlock(fmt.Sprintf("block %d", j))
			datas[j] = randData(r)
			p := uint64(1 + j%4)
			perPeriod[p]++
			steps = append(steps, step{putOp(bs[j], datas[j], h.bucket(p), blobstore.Cond{}), bs[j].name, blobstore.StatusCreated, nil})
		}
		h.applySteps(context.Background(), steps...)
	}
	h.reopen()
	for i := range bs {
		h.expectBlock(bs[i], datas[i])
		if t.Failed() {
			t.Fatalf("block %d of %d not intact after reopen", i, n)
		}
	}
	h.expectStats("after reopen", n, perPeriod)

	// Proofs and buckets survived too: an owner's renewal into the bucket
	// the block was written in finds nothing to do, a stranger's fails.
	for i := 0; i < n; i += 37 {
		h.apply1(renewOp(bs[i], h.bucket(uint64(1+i%4))), bs[i].name, blobstore.StatusCurrent, ptr(wire.ETagOf(datas[i])))
		h.apply1(deleteOp(bs[i].stranger(), blobstore.Cond{}), bs[i].name, blobstore.StatusForbidden, nil)
	}
	h.purge(h.liveSet(2, 3, 4), false, perPeriod[1], "of period 1 after reopen")

	// And what the purge did survives the next reopen.
	h.reopen()
	delete(perPeriod, 1)
	h.expectStats("after purge and reopen", n-n/4, perPeriod)
	for i := range bs {
		if i%4 == 0 {
			h.expectMissing(bs[i])
		} else {
			h.expectBlock(bs[i], datas[i])
		}
	}
}

func testHighestPeriod(t *testing.T, h *harness) {
	ctx := context.Background()
	expect := func(want uint64, when string) {
		t.Helper()
		got, err := h.s.HighestPeriod(ctx)
		if err != nil {
			t.Fatalf("HighestPeriod %s: %v", when, err)
		}
		if got != want {
			t.Errorf("HighestPeriod %s = %d, want %d", when, got, want)
		}
	}
	set := func(p uint64) {
		t.Helper()
		if err := h.s.SetHighestPeriod(ctx, p); err != nil {
			t.Fatalf("SetHighestPeriod(%d): %v", p, err)
		}
	}
	expect(0, "of a new store")
	set(20000)
	expect(20000, "after setting 20000")
	set(19999)
	expect(20000, "after setting a lower 19999")
	set(20000)
	expect(20000, "after setting 20000 again")
	h.reopen()
	expect(20000, "after reopen")
	set(20001)
	expect(20001, "after setting 20001")
	set(0)
	expect(20001, "after setting 0")
	set(1 << 40)
	h.reopen()
	expect(1<<40, "after setting 2^40 and reopening")
}

func testParamsMismatch(t *testing.T, h *harness) {
	r := newRand()
	a := newBlock("block A")
	d := h.put(a, r, h.bucket(1))
	if err := h.s.SetHighestPeriod(context.Background(), 7); err != nil {
		t.Fatalf("SetHighestPeriod: %v", err)
	}
	h.close()

	var otherFP bucketer.Fingerprint
	if _, err := rand.Read(otherFP[:]); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		what string
		p    blobstore.Params
	}{
		{"a larger block size", blobstore.Params{BlockSize: 2 * blockSize, Fingerprint: h.params.Fingerprint}},
		{"the default block size", blobstore.Params{BlockSize: wire.DefaultBlockSize, Fingerprint: h.params.Fingerprint}},
		{"a different bucket key fingerprint", blobstore.Params{BlockSize: blockSize, Fingerprint: otherFP}},
		{"both different", blobstore.Params{BlockSize: 2 * blockSize, Fingerprint: otherFP}},
	}
	for _, c := range cases {
		s, err := h.open(t, c.p)
		if err == nil {
			_ = s.Close()
			t.Errorf("reopen with %s: succeeded, want an error wrapping ErrParamsMismatch", c.what)
			continue
		}
		if !errors.Is(err, blobstore.ErrParamsMismatch) {
			t.Errorf("reopen with %s: error %q does not wrap ErrParamsMismatch", c.what, err)
		}
	}

	// The refused opens changed nothing and released the location.
	h.reopen()
	h.expectBlock(a, d)
	h.expectStats("after refused opens", 1, map[uint64]int64{1: 1})
	got, err := h.s.HighestPeriod(context.Background())
	if err != nil || got != 7 {
		t.Errorf("HighestPeriod after refused opens = %d, %v; want 7", got, err)
	}
	d2 := randData(r)
	h.apply1(putOp(a, d2, h.bucket(1), ifMatch(wire.ETagOf(d))), "block A after refused opens", blobstore.StatusReplaced, ptr(wire.ETagOf(d2)))
}

// testCancelledApply checks that an Apply that fails leaves the store as
// it was. A context cancelled before the call is the failure every store
// can produce on demand; a store must notice it rather than write.
func testCancelledApply(t *testing.T, h *harness) {
	r := newRand()
	a := newBlock("block A")
	d := h.put(a, r, h.bucket(1))
	b := newBlock("block B")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ops := []blobstore.Op{
		putOp(a, randData(r), h.bucket(2), blobstore.Cond{}),
		putOp(b, randData(r), h.bucket(2), blobstore.Cond{}),
	}
	if _, err := h.s.Apply(ctx, ops); err == nil {
		t.Fatal("Apply with a cancelled context succeeded")
	}
	ops = []blobstore.Op{deleteOp(a, blobstore.Cond{})}
	if _, err := h.s.Apply(ctx, ops); err == nil {
		t.Fatal("Apply of a delete with a cancelled context succeeded")
	}
	h.expectBlock(a, d)
	h.expectMissing(b)
	h.expectStats("after cancelled applies", 1, map[uint64]int64{1: 1})

	// The store is still usable.
	h.apply1(renewOp(a, h.bucket(2)), "block A after cancelled applies", blobstore.StatusRenewed, ptr(wire.ETagOf(d)))
}

func testPing(t *testing.T, h *harness) {
	if err := h.s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping of an open store: %v", err)
	}
	h.reopen()
	if err := h.s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping after reopen: %v", err)
	}
}
