// Package sealtest holds the tests and benchmarks of sealing (docs/design.md
// §6) that every sealing store must pass, written once: a seal killed at
// any instant loses no acknowledged write (Kill, with KillChild for the
// process it kills), clients keep working while a seal runs
// (WorkDuringSeal), writers racing on one block keep deciding on its
// newest state while seals move it (OpsOnOneBlockDuringSeals), a copy of
// the store taken after a seal links no blocks (Attack), and the seal's
// and renewal's costs set beside a raw baseline of the same store's engine
// (BenchSeal, BenchWritesDuringSeal, BenchRenew).
//
// Like storetest, it drives a store only through this package's Store:
// blobstore.Store with Seal and SealStats. What only one store knows (how to open it in a child process,
// how to read its file or tables as a copy holder, what its raw engine
// does, which physical checks its state must pass) the store's own test
// hands in as functions. It never logs block IDs, proofs or ETags.
package sealtest

import (
	"context"
	"crypto/rand"
	"slices"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/wire"
)

// Store is a store that seals: blobstore/bolt and blobstore/postgres are.
type Store interface {
	blobstore.Store
	Seal(ctx context.Context) (blobstore.SealReport, error)
	SealStats(ctx context.Context) (blobstore.SealStats, error)
}

// mustSeal seals s and fails the test or benchmark if that fails.
func mustSeal(t testing.TB, s Store) blobstore.SealReport {
	t.Helper()
	rep, err := s.Seal(context.Background())
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return rep
}

// checkAllSealed fails t unless s holds nothing unsealed: what a seal
// with no writer about must leave.
func checkAllSealed(t testing.TB, s Store, when string) {
	t.Helper()
	st, err := s.SealStats(context.Background())
	if err != nil || st.Blocks != 0 {
		t.Fatalf("%s: %+v, %v; want nothing unsealed", when, st, err)
	}
}

// crypto/rand.Read never fails (it crashes the program where the system
// cannot give randomness), so these need no test to fail, and workers'
// goroutines may call them.

func randBucket() bucketer.Bucket {
	var b bucketer.Bucket
	rand.Read(b[:])
	return b
}

func randBytes(n int) []byte {
	d := make([]byte, n)
	rand.Read(d)
	return d
}

func randProof() wire.WriteProof {
	var w wire.WriteProof
	rand.Read(w[:])
	return w
}

// blockSet is a few random blocks of one size, reused for many writes:
// benchmarks time the store, not the random source or the hashing the
// service does before it.
type blockSet struct {
	data  [][]byte
	etags []wire.ETag
}

func newBlockSet(n, size int) *blockSet {
	bs := &blockSet{}
	for range n {
		d := randBytes(size)
		bs.data = append(bs.data, d)
		bs.etags = append(bs.etags, wire.ETagOf(d))
	}
	return bs
}

// create is a create of a fresh block with slot k's data, as the
// service builds it.
func (bs *blockSet) create(k int, bucket bucketer.Bucket) blobstore.Op {
	k %= len(bs.data)
	return blobstore.Op{Kind: blobstore.OpPut, ID: wire.NewID(), ProofHash: randProof().Hash(), Data: bs.data[k], ETag: bs.etags[k], Bucket: bucket}
}

// fill creates n fresh blocks in batches of 64.
func (bs *blockSet) fill(t testing.TB, s blobstore.Store, n int, bucket bucketer.Bucket) {
	t.Helper()
	for j := 0; j < n; j += 64 {
		ops := make([]blobstore.Op, min(64, n-j))
		for k := range ops {
			ops[k] = bs.create(j+k, bucket)
		}
		if _, err := s.Apply(context.Background(), ops); err != nil {
			t.Fatal(err)
		}
	}
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
