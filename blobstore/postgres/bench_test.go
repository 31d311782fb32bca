package postgres

import (
	"context"
	"crypto/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/internal/pgtest"
	"github.com/blindstore/blindstore/wire"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The benchmarks set the store beside what PostgreSQL does with the same
// rows and no store around it: COPY into a plain table of the same shape
// for writes, a primary-key SELECT for reads. On a shared machine the load
// drifts, so each benchmark runs the store and the raw variant in
// alternating rounds and reports both rates and their ratio (store/raw);
// ns/op covers one op of each. Run them with, e.g.
//
//	go test -run '^$' -bench . -benchtime 200x ./blobstore/postgres/

const benchBlockSize = 65536

// benchEnv is a fresh database with the store and a plain table beside it.
type benchEnv struct {
	s    *Store
	pool *pgxpool.Pool
	data [][]byte // random blocks, reused: their content does not matter
	tags []wire.ETag
	ph   wire.ProofHash
}

func newBenchEnv(b testing.TB) *benchEnv {
	b.Helper()
	url := pgtest.URL(b)
	ctx := context.Background()
	s, err := Open(ctx, url, blobstore.Params{BlockSize: benchBlockSize, Fingerprint: testParams().Fingerprint},
		Options{Logger: quietLogger(), MaxConns: 16})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = 16
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, `CREATE TABLE raw_blocks (
			id uuid PRIMARY KEY, proof_hash bytea NOT NULL, etag bytea NOT NULL, data bytea NOT NULL);
		ALTER TABLE raw_blocks ALTER COLUMN data SET STORAGE EXTERNAL`); err != nil {
		b.Fatal(err)
	}
	e := &benchEnv{s: s, pool: pool}
	for i := 0; i < 64; i++ {
		d := randBlock(b, benchBlockSize)
		e.data = append(e.data, d)
		e.tags = append(e.tags, wire.ETagOf(d))
	}
	var w wire.WriteProof
	if _, err := rand.Read(w[:]); err != nil {
		b.Fatal(err)
	}
	e.ph = w.Hash()
	return e
}

func (e *benchEnv) putOps(start, n int, bucket bucketer.Bucket) []blobstore.Op {
	ops := make([]blobstore.Op, n)
	for j := range ops {
		k := (start + j) % len(e.data)
		ops[j] = blobstore.Op{Kind: blobstore.OpPut, ID: wire.NewID(), ProofHash: e.ph, Data: e.data[k], ETag: e.tags[k], Bucket: bucket}
	}
	return ops
}

// rawRows are n rows for COPY, shaped like blocks.
func (e *benchEnv) rawRows(start, n int) [][]any {
	rows := make([][]any, n)
	for j := range rows {
		k := (start + j) % len(e.data)
		rows[j] = []any{uuidOf(wire.NewID()), e.ph[:], e.tags[k][:], e.data[k]}
	}
	return rows
}

func (e *benchEnv) rawCopy(ctx context.Context, rows [][]any) error {
	_, err := e.pool.CopyFrom(ctx, pgx.Identifier{"raw_blocks"}, []string{"id", "proof_hash", "etag", "data"}, pgx.CopyFromRows(rows))
	return err
}

// compare runs b.N ops of store and of raw, alternating rounds of at most
// round ops, each round spread over conc workers, and reports the rate of
// each and their ratio. An op moves bytes of block data.
func compare(b *testing.B, bytes int64, round, conc int, store, raw func(i int) error) {
	b.Helper()
	var times [2]time.Duration
	fns := [2]func(int) error{store, raw}
	b.ResetTimer()
	for done := 0; done < b.N; done += round {
		n := min(round, b.N-done)
		for v, fn := range fns {
			var next atomic.Int64
			next.Store(int64(done))
			var wg sync.WaitGroup
			var failed atomic.Bool
			t0 := time.Now()
			for w := 0; w < conc; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := int(next.Add(1)) - 1
						if i >= done+n || failed.Load() {
							return
						}
						if err := fn(i); err != nil {
							b.Error(err)
							failed.Store(true)
							return
						}
					}
				}()
			}
			wg.Wait()
			times[v] += time.Since(t0)
			if failed.Load() {
				b.FailNow()
			}
		}
	}
	b.StopTimer()
	mb := float64(bytes) * float64(b.N) / 1e6
	storeRate, rawRate := mb/times[0].Seconds(), mb/times[1].Seconds()
	b.ReportMetric(storeRate, "store-MB/s")
	b.ReportMetric(rawRate, "raw-MB/s")
	b.ReportMetric(storeRate/rawRate, "store/raw")
}

// BenchmarkWrite writes 64 KiB blocks: in batches of 64 per transaction
// (an op is one batch), and one block per transaction from 8 concurrent
// writers (an op is one block).
func BenchmarkWrite(b *testing.B) {
	e := newBenchEnv(b)
	ctx := context.Background()
	bucket := randBucket(b)
	const batch = 64

	b.Run("batch64", func(b *testing.B) {
		compare(b, batch*benchBlockSize, 4, 1,
			func(i int) error { _, err := e.s.Apply(ctx, e.putOps(i*batch, batch, bucket)); return err },
			func(i int) error { return e.rawCopy(ctx, e.rawRows(i*batch, batch)) })
	})
	b.Run("concurrent1", func(b *testing.B) {
		compare(b, benchBlockSize, 256, 8,
			func(i int) error { _, err := e.s.Apply(ctx, e.putOps(i, 1, bucket)); return err },
			func(i int) error { return e.rawCopy(ctx, e.rawRows(i, 1)) })
	})
}

// BenchmarkRead reads 64 KiB blocks by id, one at a time and from 8
// concurrent readers.
func BenchmarkRead(b *testing.B) {
	e := newBenchEnv(b)
	ctx := context.Background()
	const n = 1024
	bucket := randBucket(b)
	storeIDs := make([]wire.ID, 0, n)
	for i := 0; i < n; i += 64 {
		ops := e.putOps(i, 64, bucket)
		for _, op := range ops {
			storeIDs = append(storeIDs, op.ID)
		}
		if _, err := e.s.Apply(ctx, ops); err != nil {
			b.Fatal(err)
		}
	}
	rawIDs := make([]pgtype.UUID, 0, n)
	for i := 0; i < n; i += 64 {
		rows := e.rawRows(i, 64)
		for _, r := range rows {
			rawIDs = append(rawIDs, r[0].(pgtype.UUID))
		}
		if err := e.rawCopy(ctx, rows); err != nil {
			b.Fatal(err)
		}
	}
	for _, t := range []string{"blocks", "raw_blocks"} {
		if _, err := e.pool.Exec(ctx, "VACUUM ANALYZE "+t); err != nil {
			b.Fatal(err)
		}
	}
	bufs := sync.Pool{New: func() any { return make([]byte, 0, benchBlockSize) }}
	store := func(i int) error {
		buf := bufs.Get().([]byte)
		buf, _, err := e.s.Read(ctx, storeIDs[i%n], buf)
		bufs.Put(buf)
		return err
	}
	raw := func(i int) error {
		var data []byte
		return e.pool.QueryRow(ctx, "SELECT data FROM raw_blocks WHERE id = $1", rawIDs[i%n]).Scan(&data)
	}
	b.Run("serial", func(b *testing.B) { compare(b, benchBlockSize, 64, 1, store, raw) })
	b.Run("concurrent", func(b *testing.B) { compare(b, benchBlockSize, 256, 8, store, raw) })
}

// BenchmarkPurge purges N expired 64 KiB blocks lying beside no live
// blocks in one database and beside 10×N live ones in another, alternating,
// and reports both times: a purge reads only the expired bucket's
// partition, so the two must be about the same. Everything is sealed
// before the purge, as the scheduler seals before the purge at a period's
// end; the seal is not timed.
func BenchmarkPurge(b *testing.B) {
	const n = 500
	ctx := context.Background()
	type side struct {
		e     *benchEnv
		live  bucketer.LiveSet
		taken time.Duration
	}
	fill := func(e *benchEnv, count int, bucket bucketer.Bucket) {
		for i := 0; i < count; i += 64 {
			if _, err := e.s.Apply(ctx, e.putOps(i, min(64, count-i), bucket)); err != nil {
				b.Fatal(err)
			}
		}
	}
	var sides [2]*side
	for k, liveBlocks := range []int{0, 10 * n} {
		sd := &side{e: newBenchEnv(b)}
		bk := randBucket(b)
		sd.live = bucketer.LiveSet{Buckets: []bucketer.Bucket{bk}}
		fill(sd.e, liveBlocks, bk)
		if _, err := sd.e.s.Seal(ctx); err != nil {
			b.Fatal(err)
		}
		sides[k] = sd
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, sd := range sides {
			b.StopTimer()
			fill(sd.e, n, randBucket(b))
			if _, err := sd.e.s.Seal(ctx); err != nil {
				b.Fatal(err)
			}
			// Settle the writes so the purge does not pay for them.
			if _, err := sd.e.pool.Exec(ctx, "CHECKPOINT"); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			t0 := time.Now()
			got, err := sd.e.s.Purge(ctx, sd.live, false)
			sd.taken += time.Since(t0)
			if err != nil {
				b.Fatal(err)
			}
			if got != n {
				b.Fatalf("purged %d blocks, want %d", got, n)
			}
		}
	}
	b.StopTimer()
	for k, sd := range sides {
		st, err := sd.e.s.Stats(ctx)
		if want := int64(k * 10 * n); err != nil || st.Blocks != want {
			b.Fatalf("after purging, %d blocks (%v); want the %d live ones", st.Blocks, err, want)
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 / float64(b.N) }
	b.ReportMetric(ms(sides[0].taken), "ms/purge-beside-0-live")
	b.ReportMetric(ms(sides[1].taken), "ms/purge-beside-10N-live")
	b.ReportMetric(float64(sides[1].taken)/float64(sides[0].taken), "10N/0")
}
