package bolt

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/wire"
	"go.etcd.io/bbolt"
)

// The benchmarks compare the store with raw bbolt doing the same puts and
// gets without our logic: a flat bucket of id → data (what one writes
// first), and one nested bucket per block (our data layout alone). Run:
//
//	go test -run '^$' -bench 'Put|Read|Stat|Concurrent' -benchtime 2000x ./blobstore/bolt/
//	go test -run '^$' -bench Purge -benchtime 20x ./blobstore/bolt/

const benchBlockSize = wire.DefaultBlockSize

// bytesWritten returns the bytes this process has passed to write calls
// so far (Linux), or -1 where that is not known.
func bytesWritten() int64 {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "wchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// reportWritten reports KiB written per block since w0.
func reportWritten(b *testing.B, w0 int64, blocks int) {
	if w0 < 0 || blocks == 0 {
		return
	}
	b.ReportMetric(float64(bytesWritten()-w0)/1024/float64(blocks), "KiB-written/block")
}

type benchFixture struct {
	s      *Store
	bucket bucketer.Bucket
	data   [][]byte
	etags  []wire.ETag
}

func newBenchStore(b *testing.B, slots int) *benchFixture {
	b.Helper()
	var fp bucketer.Fingerprint
	s, err := Open(filepath.Join(b.TempDir(), "blocks.db"), blobstore.Params{BlockSize: benchBlockSize, Fingerprint: fp})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	f := &benchFixture{s: s}
	rand.Read(f.bucket[:])
	for i := 0; i < slots; i++ {
		d := make([]byte, benchBlockSize)
		rand.Read(d)
		f.data = append(f.data, d)
		f.etags = append(f.etags, wire.ETagOf(d))
	}
	return f
}

// putOp builds a create of a fresh block, as the service would: ETags are
// computed once up front, since hashing is the service's work, not the
// store's.
func (f *benchFixture) putOp(slot int) (blobstore.Op, wire.WriteProof) {
	var w wire.WriteProof
	rand.Read(w[:])
	return blobstore.Op{Kind: blobstore.OpPut, ID: wire.NewID(), ProofHash: w.Hash(), Data: f.data[slot], ETag: f.etags[slot], Bucket: f.bucket}, w
}

var batchSizes = []int{1, 16, 64, 256}

// BenchmarkApplyPut writes new 64 KiB blocks through Apply, batch blocks
// per call; an op is one block.
func BenchmarkApplyPut(b *testing.B) {
	for _, sync := range syncModes {
		for _, batch := range batchSizes {
			b.Run(fmt.Sprintf("%s/batch=%d", sync.name, batch), func(b *testing.B) {
				f := newBenchStore(b, batch)
				f.s.db.NoSync = sync.noSync
				ops := make([]blobstore.Op, 0, batch)
				ctx := context.Background()
				b.SetBytes(benchBlockSize)
				w0 := bytesWritten()
				b.ResetTimer()
				for i := 0; i < b.N; i += batch {
					ops = ops[:0]
					for j := 0; j < batch && i+j < b.N; j++ {
						op, _ := f.putOp(j)
						ops = append(ops, op)
					}
					if _, err := f.s.Apply(ctx, ops); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				reportWritten(b, w0, b.N)
			})
		}
	}
}

// syncModes run the write benchmarks with bbolt's fsync, as the store
// always does, and without it (never in production): fsync latency on a
// shared machine swings by several times from run to run and hides the
// cost of the code, which the runs without fsync compare.
var syncModes = []struct {
	name   string
	noSync bool
}{{"fsync", false}, {"nosync", true}}

// rawDB opens bbolt with the store's options and one bucket.
func rawDB(b *testing.B) *bbolt.DB {
	b.Helper()
	db, err := bbolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, boltOptions())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	if err := db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket(bucketBlocks); return err }); err != nil {
		b.Fatal(err)
	}
	return db
}

func rawPut(tx *bbolt.Tx, nested bool, id, data []byte) error {
	bk := tx.Bucket(bucketBlocks)
	if !nested {
		return bk.Put(id, data)
	}
	nb, err := bk.CreateBucketIfNotExists(id)
	if err != nil {
		return err
	}
	return nb.Put(id, data)
}

func rawGet(tx *bbolt.Tx, nested bool, id []byte) []byte {
	bk := tx.Bucket(bucketBlocks)
	if !nested {
		return bk.Get(id)
	}
	return bk.Bucket(id).Get(id)
}

var rawLayouts = []struct {
	name   string
	nested bool
}{{"flat", false}, {"nested", true}}

// BenchmarkRawPut is BenchmarkApplyPut's baseline: bbolt puts of id →
// data, nothing else.
func BenchmarkRawPut(b *testing.B) {
	for _, sync := range syncModes {
		for _, l := range rawLayouts {
			for _, batch := range batchSizes {
				b.Run(fmt.Sprintf("%s/%s/batch=%d", sync.name, l.name, batch), func(b *testing.B) {
					db := rawDB(b)
					db.NoSync = sync.noSync
					f := newBenchStore(b, batch)
					b.SetBytes(benchBlockSize)
					w0 := bytesWritten()
					b.ResetTimer()
					for i := 0; i < b.N; i += batch {
						err := db.Update(func(tx *bbolt.Tx) error {
							for j := 0; j < batch && i+j < b.N; j++ {
								id := wire.NewID()
								if err := rawPut(tx, l.nested, id[:], f.data[j]); err != nil {
									return err
								}
							}
							return nil
						})
						if err != nil {
							b.Fatal(err)
						}
					}
					b.StopTimer()
					reportWritten(b, w0, b.N)
				})
			}
		}
	}
}

const readBlocks = 1024

// BenchmarkRead reads random blocks of a store of 1024 blocks of 64 KiB
// into a reused buffer.
func BenchmarkRead(b *testing.B) {
	f := newBenchStore(b, 64)
	ids := make([]wire.ID, 0, readBlocks)
	ctx := context.Background()
	for len(ids) < readBlocks {
		var ops []blobstore.Op
		for j := 0; j < 64; j++ {
			op, _ := f.putOp(j)
			ops = append(ops, op)
			ids = append(ids, op.ID)
		}
		if _, err := f.s.Apply(ctx, ops); err != nil {
			b.Fatal(err)
		}
	}
	dst := make([]byte, 0, benchBlockSize)
	b.SetBytes(benchBlockSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var err error
		if dst, _, err = f.s.Read(ctx, ids[(i*7919)%readBlocks], dst); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStat measures the cost of finding a block by probing time
// buckets: with 1 time bucket present, and with 14 (R = 13 live ones and
// one expired that awaits its purge), the block in a random one.
func BenchmarkStat(b *testing.B) {
	for _, nb := range []int{1, 14} {
		b.Run(fmt.Sprintf("buckets=%d", nb), func(b *testing.B) {
			f := newBenchStore(b, 1)
			ctx := context.Background()
			ids := make([]wire.ID, 0, readBlocks)
			for len(ids) < readBlocks {
				var ops []blobstore.Op
				for j := 0; j < 64; j++ {
					op, _ := f.putOp(0)
					op.Bucket[0] = byte(len(ids) % nb)
					ops = append(ops, op)
					ids = append(ids, op.ID)
				}
				if _, err := f.s.Apply(ctx, ops); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := f.s.Stat(ctx, ids[(i*7919)%readBlocks]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRawRead is BenchmarkRead's baseline: a bbolt View, a Get and
// a copy.
func BenchmarkRawRead(b *testing.B) {
	for _, l := range rawLayouts {
		b.Run(l.name, func(b *testing.B) {
			db := rawDB(b)
			f := newBenchStore(b, 1)
			ids := make([][]byte, readBlocks)
			err := db.Update(func(tx *bbolt.Tx) error {
				for i := range ids {
					id := wire.NewID()
					ids[i] = id[:]
					if err := rawPut(tx, l.nested, ids[i], f.data[0]); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			dst := make([]byte, 0, benchBlockSize)
			b.SetBytes(benchBlockSize)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				err := db.View(func(tx *bbolt.Tx) error {
					dst = append(dst[:0], rawGet(tx, l.nested, ids[(i*7919)%readBlocks])...)
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

const concurrentCallers = 16

// BenchmarkApplyConcurrent has 16 goroutines each Apply one 64 KiB put at
// a time, under each commit mode; an op is one Apply.
func BenchmarkApplyConcurrent(b *testing.B) {
	modes := []struct {
		name string
		mode commitMode
	}{{"solo", commitSolo}, {"boltbatch", commitBoltBatch}, {"group", commitGroup}}
	for _, m := range modes {
		b.Run("commit="+m.name, func(b *testing.B) {
			f := newBenchStore(b, concurrentCallers)
			f.s.mode = m.mode
			ctx := context.Background()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.SetBytes(benchBlockSize)
			w0 := bytesWritten()
			b.ResetTimer()
			for g := 0; g < concurrentCallers; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						op, _ := f.putOp(g)
						if _, err := f.s.Apply(ctx, []blobstore.Op{op}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			reportWritten(b, w0, b.N)
		})
	}
}

// BenchmarkRawConcurrent is BenchmarkApplyConcurrent's baseline: 16
// goroutines each doing one bbolt Update of one put.
func BenchmarkRawConcurrent(b *testing.B) {
	db := rawDB(b)
	f := newBenchStore(b, 1)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.SetBytes(benchBlockSize)
	b.ResetTimer()
	for g := 0; g < concurrentCallers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				id := wire.NewID()
				if err := db.Update(func(tx *bbolt.Tx) error { return rawPut(tx, true, id[:], f.data[0]) }); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

const purgeExpired = 256

// BenchmarkPurge purges 256 expired 64 KiB blocks lying beside 0 and
// beside 2560 live ones; an op is one purge of all 256.
func BenchmarkPurge(b *testing.B) {
	for _, sync := range syncModes {
		for _, live := range []int{0, 10 * purgeExpired} {
			b.Run(fmt.Sprintf("%s/live=%d", sync.name, live), func(b *testing.B) {
				f := newBenchStore(b, 64)
				f.s.db.NoSync = sync.noSync
				var expired, liveBucket bucketer.Bucket
				rand.Read(expired[:])
				rand.Read(liveBucket[:])
				ctx := context.Background()
				fill := func(n int, bucket bucketer.Bucket) {
					for n > 0 {
						var ops []blobstore.Op
						for j := 0; j < 64 && j < n; j++ {
							op, _ := f.putOp(j)
							op.Bucket = bucket
							ops = append(ops, op)
						}
						if _, err := f.s.Apply(ctx, ops); err != nil {
							b.Fatal(err)
						}
						n -= len(ops)
					}
				}
				fill(live, liveBucket)
				ls := bucketer.LiveSet{Current: 1, Buckets: []bucketer.Bucket{liveBucket}}
				var written int64
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					fill(purgeExpired, expired)
					w0 := bytesWritten()
					b.StartTimer()
					n, err := f.s.Purge(ctx, ls, false)
					b.StopTimer()
					written += bytesWritten() - w0
					if err != nil || n != purgeExpired {
						b.Fatalf("purge: %d, %v; want %d", n, err, purgeExpired)
					}
					b.StartTimer()
				}
				b.StopTimer()
				b.ReportMetric(float64(written)/1024/float64(b.N), "KiB-written/purge")
			})
		}
	}
}

// BenchmarkOpen reopens a store of 2048 blocks of 64 KiB (warm page
// cache): with NoFreelistSync, bbolt walks the whole tree at open to
// rebuild its freelist, so open time grows with the store.
func BenchmarkOpen(b *testing.B) {
	const blocks = 2048
	f := newBenchStore(b, 64)
	ctx := context.Background()
	for n := 0; n < blocks; n += 64 {
		var ops []blobstore.Op
		for j := 0; j < 64; j++ {
			op, _ := f.putOp(j)
			op.Bucket[0] = byte(n % 13)
			ops = append(ops, op)
		}
		if _, err := f.s.Apply(ctx, ops); err != nil {
			b.Fatal(err)
		}
	}
	path := f.s.path
	if err := f.s.Close(); err != nil {
		b.Fatal(err)
	}
	var fp bucketer.Fingerprint
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := Open(path, blobstore.Params{BlockSize: benchBlockSize, Fingerprint: fp})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
