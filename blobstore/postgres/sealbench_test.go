package postgres

import (
	"context"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/sealtest"
	"github.com/blindstore/blindstore/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// The seal's benchmarks. Run them with, e.g.
//
//	go test -run '^$' -bench 'Seal' -benchtime 5x ./blobstore/postgres/
//
// BenchmarkSeal sets a seal beside what PostgreSQL does with the same
// rows and no store around it: INSERT … SELECT … ORDER BY random() from a
// table shaped like a hot side into one shaped like the sealed blocks.
// Its ratio seal/raw must stay at 0.8 or more. BenchmarkWritesDuringSeal
// times single writes with and without a seal running; its ratio must
// stay at 2 or less.

// BenchmarkSeal runs sealtest.BenchSeal: a seal's whole work is its
// switch, merge and TRUNCATE. Write amplification is WAL bytes per byte
// of block data moved; a CHECKPOINT after the fills keeps the fills'
// full-page writes out of it.
func BenchmarkSeal(b *testing.B) {
	sealtest.BenchSeal(b, sealBench(b, "INSERT INTO raw_sealed SELECT * FROM raw_hot ORDER BY random()"))
}

// BenchmarkMerge runs sealtest.BenchMerge beside what PostgreSQL does to
// rewrite the same rows in place with no store around it: a DELETE …
// RETURNING feeding an INSERT … ORDER BY random() of the same table,
// then a VACUUM, as the merge does.
func BenchmarkMerge(b *testing.B) {
	sealtest.BenchMerge(b, sealBench(b, `WITH d AS (DELETE FROM raw_hot RETURNING *) INSERT INTO raw_hot SELECT * FROM d ORDER BY random()`,
		"VACUUM (TRUNCATE OFF) raw_hot"))
}

// BenchmarkWritesDuringMerge runs sealtest.BenchWritesDuringMerge.
func BenchmarkWritesDuringMerge(b *testing.B) {
	e := newBenchEnv(b)
	sealtest.BenchWritesDuringMerge(b, e.s, benchBlockSize)
}

// BenchmarkMergeAttack runs sealtest.BenchMergeAttack on a fresh
// database each round.
func BenchmarkMergeAttack(b *testing.B) {
	sealtest.BenchMergeAttack(b, attackConfig(func(t testing.TB) string { return pgtest.URL(t) }))
}

// sealBench is a fresh store and the raw baseline of the seal's and the
// merge's benchmarks, whose timed rewrite runs the statements rewrite.
func sealBench(b *testing.B, rewrite ...string) sealtest.SealBench {
	e := newBenchEnv(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.s.pool.Config().ConnConfig.ConnString())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(ctx) })
	if _, err := conn.Exec(ctx, `CREATE TABLE raw_hot (LIKE blocks_hot_a INCLUDING ALL);
		CREATE TABLE raw_sealed (LIKE blocks INCLUDING ALL)`); err != nil {
		b.Fatal(err)
	}
	exec := func(sql string) {
		if _, err := conn.Exec(ctx, sql); err != nil {
			b.Fatal(err)
		}
	}
	return sealtest.SealBench{
		Store:     e.s,
		BlockSize: benchBlockSize,
		Raw: sealtest.SealBaseline{
			Fill: func(b *testing.B, ops []blobstore.Op) {
				exec("TRUNCATE raw_hot")
				for j := 0; j < len(ops); j += 64 {
					var rows [][]any
					for _, op := range ops[j:min(j+64, len(ops))] {
						rows = append(rows, []any{uuidOf(op.ID), op.ProofHash[:], op.ETag[:], op.Data})
					}
					if _, err := e.pool.CopyFrom(ctx, pgx.Identifier{"raw_hot"}, []string{"id", "proof_hash", "etag", "data"}, pgx.CopyFromRows(rows)); err != nil {
						b.Fatal(err)
					}
				}
			},
			Rewrite: func(b *testing.B) {
				for _, q := range rewrite {
					exec(q)
				}
			},
		},
		Settle: func(b *testing.B) { exec("CHECKPOINT") },
		Written: func() int64 {
			var n int64
			if err := conn.QueryRow(ctx, "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").Scan(&n); err != nil {
				b.Fatal(err)
			}
			return n
		},
		WrittenName: "WAL",
	}
}

// BenchmarkWritesDuringSeal runs sealtest.BenchWritesDuringSeal.
func BenchmarkWritesDuringSeal(b *testing.B) {
	e := newBenchEnv(b)
	sealtest.BenchWritesDuringSeal(b, e.s, benchBlockSize)
}
