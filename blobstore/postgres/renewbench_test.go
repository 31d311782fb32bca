package postgres

import (
	"context"
	"fmt"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/sealtest"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/internal/pgtest"
	"github.com/blindstore/blindstore/wire"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// BenchmarkRenew runs sealtest.BenchRenew, as make bench renews, with the
// blocks on the hot side (as after make bench's fill) or in the sealed
// part (an account logging in after a seal). The raw baseline is the
// same number of rows of a plain (id, bucket) table updated by id in
// transactions of the same size. Run:
//
//	go test -run '^$' -bench Renew -benchtime 3x ./blobstore/postgres/
func BenchmarkRenew(b *testing.B) {
	for _, sealed := range []bool{false, true} {
		b.Run(fmt.Sprintf("sealed=%v", sealed), func(b *testing.B) { benchRenew(b, sealed) })
	}
}

func benchRenew(b *testing.B, sealed bool) {
	url := pgtest.URL(b)
	ctx := context.Background()
	var fp bucketer.Fingerprint
	s, err := Open(ctx, url, blobstore.Params{BlockSize: sealtest.RenewBlockSize, Fingerprint: fp}, Options{Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	uuids := func(ids []wire.ID) []pgtype.UUID {
		us := make([]pgtype.UUID, len(ids))
		for i, id := range ids {
			us[i] = uuidOf(id)
		}
		return us
	}
	sealtest.BenchRenew(b, sealtest.RenewBench{
		Store:  s,
		Sealed: sealed,
		Raw: sealtest.RenewBaseline{
			Load: func(b *testing.B, ids []wire.ID, bucket bucketer.Bucket) {
				if _, err := pool.Exec(ctx, `CREATE TABLE raw_leases (id uuid PRIMARY KEY, bucket bytea NOT NULL)`); err != nil {
					b.Fatal(err)
				}
				if _, err := pool.Exec(ctx, `INSERT INTO raw_leases SELECT id, $2::bytea FROM unnest($1::uuid[]) AS id`, uuids(ids), bucket[:]); err != nil {
					b.Fatal(err)
				}
				// The store's tables too: both start analysed.
				if _, err := pool.Exec(ctx, `VACUUM ANALYZE`); err != nil {
					b.Fatal(err)
				}
			},
			Renew: func(b *testing.B, ids []wire.ID, bucket bucketer.Bucket) {
				if _, err := pool.Exec(ctx, `UPDATE raw_leases r SET bucket = $2::bytea FROM unnest($1::uuid[]) AS v(id) WHERE r.id = v.id`, uuids(ids), bucket[:]); err != nil {
					b.Fatal(err)
				}
			},
		},
	})
}
