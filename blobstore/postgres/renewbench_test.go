package postgres

import (
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/internal/pgtest"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// BenchmarkRenew renews an account of renewAccount blocks as make bench
// does: shuffled requests of renewBatch (the service's RenewBatch; the
// write pool never splits a request, so each is one Apply), one at a
// time as the pool commits them. Blocks lie on the hot side (as after
// make bench's fill) or in the sealed part (an account logging in after
// a seal). Each iteration renews the whole account into a fresh bucket
// and, in the same iteration, runs the raw baseline: the same number of
// rows of a plain (id, bucket) table updated by id in transactions of the
// same size. Run:
//
//	go test -run '^$' -bench Renew -benchtime 3x ./blobstore/postgres/
const (
	renewAccount   = 100_000
	renewBlockSize = 4096
	renewBatch     = 4096 // blobstore.DefaultLimits.RenewBatch
)

func BenchmarkRenew(b *testing.B) {
	for _, sealed := range []bool{false, true} {
		b.Run(fmt.Sprintf("sealed=%v", sealed), func(b *testing.B) { benchRenew(b, sealed) })
	}
}

func benchRenew(b *testing.B, sealed bool) {
	url := pgtest.URL(b)
	ctx := context.Background()
	var fp bucketer.Fingerprint
	s, err := Open(ctx, url, blobstore.Params{BlockSize: renewBlockSize, Fingerprint: fp}, Options{Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)

	type block struct {
		id blobstore.ID
		ph blobstore.ProofHash
	}
	blocks := make([]block, renewAccount)
	var bucket bucketer.Bucket
	rand.Read(bucket[:])
	data := randBlock(b, renewBlockSize)
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
	if sealed {
		if _, err := s.Seal(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE raw_leases (id uuid PRIMARY KEY, bucket bytea NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	ids := make([]pgtype.UUID, len(blocks))
	for i := range blocks {
		ids[i] = uuidOf(blocks[i].id)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO raw_leases SELECT id, $2::bytea FROM unnest($1::uuid[]) AS id`, ids, bucket[:]); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE`); err != nil {
		b.Fatal(err)
	}

	var storeTime, rawTime time.Duration
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		mrand.Shuffle(len(blocks), func(i, j int) { blocks[i], blocks[j] = blocks[j], blocks[i] })
		rand.Read(bucket[:])
		t0 := time.Now()
		for lo := 0; lo < len(blocks); lo += renewBatch {
			hi := min(lo+renewBatch, len(blocks))
			ops := make([]blobstore.Op, 0, hi-lo)
			for i := lo; i < hi; i++ {
				ops = append(ops, blobstore.Op{Kind: blobstore.OpRenew, ID: blocks[i].id, ProofHash: blocks[i].ph, Bucket: bucket})
			}
			rs, err := s.Apply(ctx, ops)
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

		t0 = time.Now()
		for lo := 0; lo < len(blocks); lo += renewBatch {
			hi := min(lo+renewBatch, len(blocks))
			batch := make([]pgtype.UUID, 0, hi-lo)
			for i := lo; i < hi; i++ {
				batch = append(batch, uuidOf(blocks[i].id))
			}
			if _, err := pool.Exec(ctx, `UPDATE raw_leases r SET bucket = $2::bytea FROM unnest($1::uuid[]) AS v(id) WHERE r.id = v.id`, batch, bucket[:]); err != nil {
				b.Fatal(err)
			}
		}
		rawTime += time.Since(t0)
	}
	b.StopTimer()
	total := float64(b.N * len(blocks))
	b.ReportMetric(total/storeTime.Seconds(), "blocks/s")
	b.ReportMetric(total/rawTime.Seconds(), "raw-blocks/s")
	b.ReportMetric(rawTime.Seconds()/storeTime.Seconds(), "store/raw")
}
