package bolt

import (
	"bytes"
	"context"
	"crypto/rand"
	mrand "math/rand/v2"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"go.etcd.io/bbolt"
)

// Renewal as make bench measures it: an account of renewAccount blocks
// of renewBlockSize bytes, renewed in shuffled requests of renewBatch
// (the service's RenewBatch; the write pool never splits a request, so
// each is one Apply). Run:
//
//	go test -run '^$' -bench Renew -benchtime 3x ./blobstore/bolt/
//
// Each iteration renews the whole account into a fresh time bucket and,
// in the same iteration, does the raw baseline: bbolt rewriting the same
// number of 48-byte records in place in one flat bucket, in transactions
// of the same size. The ratio is store / raw.
const (
	renewAccount   = 100_000
	renewBlockSize = 4096
	renewBatch     = 4096 // blobstore.DefaultLimits.RenewBatch
)

func BenchmarkRenew(b *testing.B) {
	var fp bucketer.Fingerprint
	s, err := Open(filepath.Join(b.TempDir(), "blocks.db"), blobstore.Params{BlockSize: renewBlockSize, Fingerprint: fp})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	type block struct {
		id blobstore.ID
		ph blobstore.ProofHash
	}
	blocks := make([]block, renewAccount)
	var bucket bucketer.Bucket
	rand.Read(bucket[:])
	data := make([]byte, renewBlockSize)
	rand.Read(data)
	etag := blobstore.ETagOf(data)
	for lo := 0; lo < len(blocks); lo += 1024 {
		var ops []blobstore.Op
		for i := lo; i < min(lo+1024, len(blocks)); i++ {
			var w blobstore.WriteProof
			rand.Read(w[:])
			blocks[i] = block{id: blobstore.NewID(), ph: w.Renew().Hash()}
			ops = append(ops, blobstore.Op{Kind: blobstore.OpPut, ID: blocks[i].id, ProofHash: w.Hash(), Data: data, ETag: etag, Bucket: bucket})
		}
		if _, err := s.Apply(ctx, ops); err != nil {
			b.Fatal(err)
		}
	}

	// In key order: bbolt inserts into a node's sorted slice, so one
	// transaction's random inserts into one fresh node cost n².
	sorted := slices.Clone(blocks)
	slices.SortFunc(sorted, func(x, y block) int { return bytes.Compare(x.id[:], y.id[:]) })
	raw := rawDB(b)
	err = raw.Update(func(tx *bbolt.Tx) error {
		rec := make([]byte, recordSize)
		for i := range sorted {
			if err := tx.Bucket(bucketData).Put(sorted[i].id[:], rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}

	var storeTime, rawTime time.Duration
	var storeWritten, rawWritten int64
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		mrand.Shuffle(len(blocks), func(i, j int) { blocks[i], blocks[j] = blocks[j], blocks[i] })
		rand.Read(bucket[:])
		w0, t0 := bytesWritten(), time.Now()
		for lo := 0; lo < len(blocks); lo += renewBatch {
			hi := min(lo+renewBatch, len(blocks))
			ops := make([]blobstore.Op, 0, hi-lo)
			for i := lo; i < hi; i++ {
				ops = append(ops, blobstore.Op{Kind: blobstore.OpRenew, ID: blocks[i].id, ProofHash: blocks[i].ph, Bucket: bucket})
			}
			var rs []blobstore.Result
			var err error
			pprof.Do(ctx, pprof.Labels("phase", "renew"), func(ctx context.Context) { rs, err = s.Apply(ctx, ops) })
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range rs {
				if r.Status != blobstore.StatusRenewed {
					b.Fatalf("renew answered %v", r.Status)
				}
			}
		}
		storeTime += time.Since(t0)
		storeWritten += bytesWritten() - w0

		w0, t0 = bytesWritten(), time.Now()
		for lo := 0; lo < len(blocks); lo += renewBatch {
			hi := min(lo+renewBatch, len(blocks))
			err := raw.Update(func(tx *bbolt.Tx) error {
				bk := tx.Bucket(bucketData)
				for i := lo; i < hi; i++ {
					rec := make([]byte, recordSize)
					copy(rec, bucket[:])
					if err := bk.Put(blocks[i].id[:], rec); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		rawTime += time.Since(t0)
		rawWritten += bytesWritten() - w0
	}
	b.StopTimer()
	total := float64(b.N * len(blocks))
	b.ReportMetric(total/storeTime.Seconds(), "blocks/s")
	b.ReportMetric(total/rawTime.Seconds(), "raw-blocks/s")
	b.ReportMetric(rawTime.Seconds()/storeTime.Seconds(), "store/raw")
	b.ReportMetric(float64(storeWritten)/total, "B-written/renewal")
	b.ReportMetric(float64(rawWritten)/total, "raw-B-written/renewal")
}
