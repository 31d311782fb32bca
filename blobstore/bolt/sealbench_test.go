package bolt

import (
	"bytes"
	"context"
	mrand "math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"go.etcd.io/bbolt"
)

// The seal's benchmarks. Run them with, e.g.
//
//	go test -run '^$' -bench 'Seal' -benchtime 4x ./blobstore/bolt/
//
// BenchmarkSeal sets a seal beside a raw bbolt rewrite of the same data:
// nested buckets copied in a random order from one bucket to another in
// one transaction. BenchmarkWritesDuringSeal times single writes with and
// without a seal running.

// sealBlocks is how many 64 KiB blocks one seal rewrites: 128 MiB.
const sealBlocks = 2048

// BenchmarkSeal seals sealBlocks new blocks (the rewrite and the scrub of
// what it freed), and in the same rounds rewrites as many blocks in raw
// bbolt, and reports both rates, their ratio, and the write amplification
// of each: bytes written to the file per byte of block data.
func BenchmarkSeal(b *testing.B) {
	f := newBenchStore(b, 64)
	raw, err := bbolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, boltOptions())
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	ctx := context.Background()
	var sealTime, rawTime time.Duration
	var sealW, rawW int64
	var ratios []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for j := 0; j < sealBlocks; j += 64 {
			ops := make([]blobstore.Op, 64)
			for k := range ops {
				ops[k], _ = f.putOp(k)
			}
			if _, err := f.s.Apply(ctx, ops); err != nil {
				b.Fatal(err)
			}
		}
		err := raw.Update(func(tx *bbolt.Tx) error {
			hot, err := tx.CreateBucketIfNotExists([]byte("hot"))
			if err != nil {
				return err
			}
			for j := 0; j < sealBlocks; j++ {
				id := blobstore.NewID()
				nb, err := hot.CreateBucket(id[:])
				if err != nil {
					return err
				}
				if err := nb.Put(id[:], f.data[j%len(f.data)]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		seal := func() {
			w0, t0 := bytesWritten(), time.Now()
			rep, err := f.s.Seal(ctx)
			sealTime += time.Since(t0)
			sealW += bytesWritten() - w0
			if err != nil {
				b.Fatal(err)
			}
			if rep.Blocks != sealBlocks {
				b.Fatalf("the seal rewrote %d blocks, want %d", rep.Blocks, sealBlocks)
			}
		}
		rewrite := func() {
			w0, t0 := bytesWritten(), time.Now()
			err := raw.Update(func(tx *bbolt.Tx) error {
				hot := tx.Bucket([]byte("hot"))
				sealed, err := tx.CreateBucketIfNotExists([]byte("sealed"))
				if err != nil {
					return err
				}
				var ids [][]byte
				if err := hot.ForEachBucket(func(k []byte) error { ids = append(ids, bytes.Clone(k)); return nil }); err != nil {
					return err
				}
				mrand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
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
			})
			rawTime += time.Since(t0)
			rawW += bytesWritten() - w0
			if err != nil {
				b.Fatal(err)
			}
		}
		s0, r0 := sealTime, rawTime
		if i%2 == 0 {
			seal()
			rewrite()
		} else {
			rewrite()
			seal()
		}
		ratios = append(ratios, float64(rawTime-r0)/float64(sealTime-s0))
	}
	b.StopTimer()
	data := float64(sealBlocks*benchBlockSize) * float64(b.N)
	sealRate, rawRate := data/1e6/sealTime.Seconds(), data/1e6/rawTime.Seconds()
	b.ReportMetric(sealRate, "seal-MB/s")
	b.ReportMetric(rawRate, "raw-MB/s")
	b.ReportMetric(sealRate/rawRate, "seal/raw")
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "seal/raw-median-round")
	if sealW >= 0 && rawW >= 0 {
		b.ReportMetric(float64(sealW)/data, "seal-written/byte")
		b.ReportMetric(float64(rawW)/data, "raw-written/byte")
	}
}

// BenchmarkWritesDuringSeal times single-block creates (64 KiB, four
// writers) while a seal rewrites sealBlocks blocks, then as long again
// with no seal, and reports the median latency of each and their ratio.
func BenchmarkWritesDuringSeal(b *testing.B) {
	f := newBenchStore(b, 64)
	ctx := context.Background()
	var quiet, sealing []time.Duration
	run := func(into *[]time.Duration, during func()) {
		var mu sync.Mutex
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := 0; ; k++ {
					select {
					case <-stop:
						return
					default:
					}
					op, _ := f.putOp(k % len(f.data))
					t0 := time.Now()
					if _, err := f.s.Apply(ctx, []blobstore.Op{op}); err != nil {
						b.Error(err)
						return
					}
					d := time.Since(t0)
					mu.Lock()
					*into = append(*into, d)
					mu.Unlock()
				}
			}()
		}
		during()
		close(stop)
		wg.Wait()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for j := 0; j < sealBlocks; j += 64 {
			ops := make([]blobstore.Op, 64)
			for k := range ops {
				ops[k], _ = f.putOp(k)
			}
			if _, err := f.s.Apply(ctx, ops); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		var took time.Duration
		run(&sealing, func() {
			t0 := time.Now()
			if _, err := f.s.Seal(ctx); err != nil {
				b.Fatal(err)
			}
			took = time.Since(t0)
		})
		run(&quiet, func() { time.Sleep(took) })
		b.StopTimer()
		if _, err := f.s.Seal(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	med := func(ds []time.Duration) float64 {
		if len(ds) == 0 {
			return 0
		}
		slices.Sort(ds)
		return float64(ds[len(ds)/2].Microseconds()) / 1e3
	}
	mq, ms := med(quiet), med(sealing)
	b.ReportMetric(mq, "ms-median-write")
	b.ReportMetric(ms, "ms-median-write-during-seal")
	b.ReportMetric(ms/mq, "during/quiet")
	b.ReportMetric(float64(len(sealing)), "writes-during-seals")
}
