package postgres

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The seal's benchmarks. Run them with, e.g.
//
//	go test -run '^$' -bench 'Seal' -benchtime 5x ./blobstore/postgres/
//
// BenchmarkSeal sets a seal beside what PostgreSQL does with the same
// rows and no store around it: INSERT … SELECT … ORDER BY random() from a
// table shaped like a hot side into one shaped like the sealed blocks.
// BenchmarkWritesDuringSeal times single writes with and without a seal
// running.

// sealRows is how many 64 KiB blocks one seal moves: 128 MiB, about
// what DESIGN.md §5 measured (131 MB in about 1 s).
const sealRows = 2048

// walBytes is the WAL written since lsn, and the new position.
func walBytes(ctx context.Context, b *testing.B, conn *pgx.Conn, lsn string) (int64, string) {
	var n int64
	var now string
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_lsn() - $1::pg_lsn, pg_current_wal_lsn()::text", lsn).Scan(&n, &now); err != nil {
		b.Fatal(err)
	}
	return n, now
}

// BenchmarkSeal seals sealRows new 64 KiB blocks (the seal's whole work:
// switch, merge, TRUNCATE) and, in the same rounds, moves the same number
// of rows with a raw INSERT … SELECT … ORDER BY random() between two
// plain tables shaped like the hot and sealed blocks. It reports both
// rates, their ratio (seal/raw, which must stay at 0.8 or more; also as
// the median of the rounds' ratios, which load on a shared machine
// disturbs less), and the write amplification of each: WAL bytes per
// byte of block data moved.
func BenchmarkSeal(b *testing.B) {
	e := newBenchEnv(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.s.pool.Config().ConnConfig.ConnString())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE raw_hot (LIKE blocks_hot_a INCLUDING ALL);
		CREATE TABLE raw_sealed (LIKE blocks INCLUDING ALL)`); err != nil {
		b.Fatal(err)
	}
	bucket := randBucket(b)
	var sealTime, rawTime time.Duration
	var sealWAL, rawWAL int64
	var ratios []float64 // per round: raw time / seal time
	var lsn string
	_, lsn = walBytes(ctx, b, conn, "0/0")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		fillStore := func() {
			for j := 0; j < sealRows; j += 64 {
				if _, err := e.s.Apply(ctx, e.putOps(j, 64, bucket)); err != nil {
					b.Fatal(err)
				}
			}
		}
		fillRaw := func() {
			for j := 0; j < sealRows; j += 64 {
				if _, err := e.pool.CopyFrom(ctx, pgx.Identifier{"raw_hot"}, []string{"id", "proof_hash", "etag", "data"}, pgx.CopyFromRows(e.rawRows(j, 64))); err != nil {
					b.Fatal(err)
				}
			}
		}
		// What was written last is likelier in the caches: alternate.
		if i%2 == 0 {
			fillStore()
			fillRaw()
		} else {
			fillRaw()
			fillStore()
		}
		if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
			b.Fatal(err)
		}
		_, lsn = walBytes(ctx, b, conn, lsn)
		b.StartTimer()

		seal := func() {
			t0 := time.Now()
			rep, err := e.s.Seal(ctx)
			sealTime += time.Since(t0)
			if err != nil {
				b.Fatal(err)
			}
			if rep.Blocks != sealRows {
				b.Fatalf("the seal moved %d blocks, want %d", rep.Blocks, sealRows)
			}
			var n int64
			n, lsn = walBytes(ctx, b, conn, lsn)
			sealWAL += n
		}
		raw := func() {
			t0 := time.Now()
			if _, err := conn.Exec(ctx, "INSERT INTO raw_sealed SELECT * FROM raw_hot ORDER BY random()"); err != nil {
				b.Fatal(err)
			}
			rawTime += time.Since(t0)
			var n int64
			n, lsn = walBytes(ctx, b, conn, lsn)
			rawWAL += n
		}
		// Alternate which goes first, so that neither always finds the
		// other's writes in the caches.
		s0, r0 := sealTime, rawTime
		if i%2 == 0 {
			seal()
			raw()
		} else {
			raw()
			seal()
		}
		ratios = append(ratios, float64(rawTime-r0)/float64(sealTime-s0))
		b.StopTimer()
		if _, err := conn.Exec(ctx, "TRUNCATE raw_hot"); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	data := float64(sealRows*benchBlockSize) * float64(b.N)
	sealRate, rawRate := data/1e6/sealTime.Seconds(), data/1e6/rawTime.Seconds()
	b.ReportMetric(sealRate, "seal-MB/s")
	b.ReportMetric(rawRate, "raw-MB/s")
	b.ReportMetric(sealRate/rawRate, "seal/raw")
	// The machine's load drifts: the median round says more than the sum.
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "seal/raw-median-round")
	b.ReportMetric(float64(sealWAL)/data, "seal-WAL/byte")
	b.ReportMetric(float64(rawWAL)/data, "raw-WAL/byte")
}

// BenchmarkWritesDuringSeal times single-block creates (64 KiB, four
// writers) for a while with no seal running, then while a seal moves
// sealRows blocks, and reports the median latency of each and their
// ratio, which must stay at 2 or less.
func BenchmarkWritesDuringSeal(b *testing.B) {
	e := newBenchEnv(b)
	ctx := context.Background()
	bucket := randBucket(b)
	var quiet, sealing []time.Duration
	write := func(stop <-chan struct{}, into *[]time.Duration, mu *sync.Mutex) {
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			t0 := time.Now()
			if _, err := e.s.Apply(ctx, e.putOps(k, 1, bucket)); err != nil {
				b.Error(err)
				return
			}
			d := time.Since(t0)
			mu.Lock()
			*into = append(*into, d)
			mu.Unlock()
		}
	}
	run := func(into *[]time.Duration, during func()) {
		var mu sync.Mutex
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var got []time.Duration
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() { defer wg.Done(); write(stop, &got, &mu) }()
		}
		during()
		close(stop)
		wg.Wait()
		*into = append(*into, got...)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for j := 0; j < sealRows; j += 64 {
			if _, err := e.s.Apply(ctx, e.putOps(j, 64, bucket)); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		var sealTook time.Duration
		run(&sealing, func() {
			t0 := time.Now()
			if _, err := e.s.Seal(ctx); err != nil {
				b.Fatal(err)
			}
			sealTook = time.Since(t0)
		})
		// As long again without a seal: what was written meanwhile is
		// sealed next round, outside the timing.
		run(&quiet, func() { time.Sleep(sealTook) })
		b.StopTimer()
		if _, err := e.s.Seal(ctx); err != nil {
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
