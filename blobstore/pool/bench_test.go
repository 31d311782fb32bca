package pool

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/internal/pgtest"
	"github.com/blindstore/blindstore/internal/redistest"
)

// BenchmarkWriters16 puts new blocks from 16 concurrent writers, each one
// request at a time, through the Service: straight to the store (no
// pool), and through the in-process pool with no window and with the
// default 250 ms window. It reports puts a second and the mean latency.
//
//	go test -run '^$' -bench Writers16 -benchtime 400x ./blobstore/pool
func BenchmarkWriters16(b *testing.B) {
	for _, sk := range storeKinds {
		for _, c := range []struct {
			name   string
			window time.Duration
			pooled bool
		}{
			{"direct", 0, false},
			{"window=0", NoWindow, true},
			{"window=250ms", DefaultWindow, true},
		} {
			b.Run(sk.name+"/"+c.name, func(b *testing.B) {
				bk := testBucketer(b)
				st := sk.open(b, bk)
				cfg := blobstore.ServiceConfig{Store: st, Bucketer: bk, BlockSize: testBlockSize}
				if c.pooled {
					p := New(st, Options{Window: c.window, Logger: quietLogger()})
					defer p.Close()
					cfg.Committer = p
				}
				svc, err := blobstore.NewService(cfg)
				if err != nil {
					b.Fatal(err)
				}
				var lat atomic.Int64
				b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
				b.ResetTimer()
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						o := newOwned(b)
						t0 := time.Now()
						if _, err := svc.Put(context.Background(), blobstore.PutItem{ID: o.id, Proof: o.w, Data: o.data}); err != nil {
							b.Error(err)
							return
						}
						lat.Add(int64(time.Since(t0)))
					}
				})
				elapsed := time.Since(start)
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "puts/s")
				b.ReportMetric(float64(lat.Load())/float64(b.N)/1e6, "ms/put")
			})
		}
	}
}

// BenchmarkRedisWriters16 is BenchmarkWriters16 through the Redis pool on
// PostgreSQL, with two instances sharing it (writers alternate).
func BenchmarkRedisWriters16(b *testing.B) {
	for _, c := range []struct {
		name   string
		window time.Duration
	}{{"window=0", NoWindow}, {"window=250ms", DefaultWindow}} {
		b.Run(c.name, func(b *testing.B) {
			rc := redistest.Client(b)
			prefix := redistest.Prefix(b, rc)
			url := pgtest.URL(b)
			bk := testBucketer(b)
			var svcs []*blobstore.Service
			for range 2 {
				st := openPostgresAt(b, url, bk)
				p, err := NewRedis(context.Background(), rc, st, RedisOptions{Options: Options{Window: c.window, Logger: quietLogger()}, Prefix: prefix})
				if err != nil {
					b.Fatal(err)
				}
				defer p.Close()
				svc, err := blobstore.NewService(blobstore.ServiceConfig{Store: st, Bucketer: bk, BlockSize: testBlockSize, Committer: p})
				if err != nil {
					b.Fatal(err)
				}
				svcs = append(svcs, svc)
			}
			var lat, next atomic.Int64
			b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				svc := svcs[next.Add(1)%2]
				for pb.Next() {
					o := newOwned(b)
					t0 := time.Now()
					if _, err := svc.Put(context.Background(), blobstore.PutItem{ID: o.id, Proof: o.w, Data: o.data}); err != nil {
						b.Error(err)
						return
					}
					lat.Add(int64(time.Since(t0)))
				}
			})
			elapsed := time.Since(start)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "puts/s")
			b.ReportMetric(float64(lat.Load())/float64(b.N)/1e6, "ms/put")
		})
	}
}
