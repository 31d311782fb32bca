package bolt

import (
	"bytes"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/sealtest"
	"go.etcd.io/bbolt"
)

// The seal's benchmarks. Run them with, e.g.
//
//	go test -run '^$' -bench 'Seal' -benchtime 4x ./blobstore/bolt/
//
// BenchmarkMerge and BenchmarkWritesDuringMerge do the same for the
// period merge, beside the same baseline; BenchmarkMergeAttack reports
// what the attacker reaches after the seals and after the merges.
//
// BenchmarkSeal sets a seal beside a raw bbolt rewrite of the same data:
// nested buckets copied in a random order from one bucket to another in
// one transaction. BenchmarkWritesDuringSeal times single writes with and
// without a seal running. Write amplification is what the process passed
// to write calls.

// BenchmarkSeal runs sealtest.BenchSeal: a seal rewrites its blocks and
// scrubs what it freed.
func BenchmarkSeal(b *testing.B) { sealtest.BenchSeal(b, sealBench(b)) }

// BenchmarkMerge runs sealtest.BenchMerge beside the seal's raw baseline:
// a merge rewrites its blocks as a seal does, and scrubs.
func BenchmarkMerge(b *testing.B) { sealtest.BenchMerge(b, sealBench(b)) }

// BenchmarkWritesDuringMerge runs sealtest.BenchWritesDuringMerge.
func BenchmarkWritesDuringMerge(b *testing.B) {
	f := newBenchStore(b, 1)
	sealtest.BenchWritesDuringMerge(b, f.s, benchBlockSize)
}

// BenchmarkMergeAttack runs sealtest.BenchMergeAttack on a fresh file
// each round.
func BenchmarkMergeAttack(b *testing.B) {
	sealtest.BenchMergeAttack(b, attackConfig(func(t testing.TB) string { return filepath.Join(t.TempDir(), "blocks.db") }, nil))
}

// sealBench is a fresh store and the raw baseline of the seal's and the
// merge's benchmarks.
func sealBench(b *testing.B) sealtest.SealBench {
	f := newBenchStore(b, 1) // for its store: sealtest brings its own blocks
	raw, err := bbolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, boltOptions())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { raw.Close() })
	return sealtest.SealBench{
		Store:     f.s,
		BlockSize: benchBlockSize,
		Raw: sealtest.SealBaseline{
			Fill: func(b *testing.B, ops []blobstore.Op) {
				err := raw.Update(func(tx *bbolt.Tx) error {
					hot, err := tx.CreateBucketIfNotExists([]byte("hot"))
					if err != nil {
						return err
					}
					for _, op := range ops {
						nb, err := hot.CreateBucket(op.ID[:])
						if err != nil {
							return err
						}
						if err := nb.Put(op.ID[:], op.Data); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			},
			Rewrite: func(b *testing.B) {
				if err := raw.Update(rawSeal); err != nil {
					b.Fatal(err)
				}
			},
		},
		Written:     bytesWritten,
		WrittenName: "written",
	}
}

// rawSeal moves every nested bucket of "hot" to "sealed" in a random
// order, as the seal does with no store around it.
func rawSeal(tx *bbolt.Tx) error {
	hot := tx.Bucket([]byte("hot"))
	sealed, err := tx.CreateBucketIfNotExists([]byte("sealed"))
	if err != nil {
		return err
	}
	var ids [][]byte
	if err := hot.ForEachBucket(func(k []byte) error { ids = append(ids, bytes.Clone(k)); return nil }); err != nil {
		return err
	}
	rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	for _, id := range ids {
		d := bytes.Clone(hot.Bucket(id).Get(id))
		nb, err := sealed.CreateBucketIfNotExists(id)
		if err != nil {
			return err
		}
		if err := nb.Put(id, d); err != nil {
			return err
		}
	}
	return tx.DeleteBucket([]byte("hot"))
}

// BenchmarkWritesDuringSeal runs sealtest.BenchWritesDuringSeal.
func BenchmarkWritesDuringSeal(b *testing.B) {
	f := newBenchStore(b, 1) // for its store: sealtest brings its own blocks
	sealtest.BenchWritesDuringSeal(b, f.s, benchBlockSize)
}
