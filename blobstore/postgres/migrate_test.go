package postgres

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/internal/pgtest"
	"github.com/blindstore/blindstore/migrations"
	"github.com/blindstore/blindstore/wire"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	tern "github.com/jackc/tern/v2/migrate"
)

// TestConcurrentMigrators starts several migrators at once on a fresh
// database, as several instances starting together would: all succeed,
// and each migration is applied exactly once (tern's advisory lock).
func TestConcurrentMigrators(t *testing.T) {
	url := pgtest.URL(t)
	const n = 6
	var applied atomic.Int32
	var start, done sync.WaitGroup
	start.Add(1)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			errs[i] = migrateURL(context.Background(), url, quietLogger(), func(int32, string) { applied.Add(1) })
		}()
	}
	start.Done()
	done.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migrator %d of %d: %v", i+1, n, err)
		}
	}
	if got := applied.Load(); got != int32(KnownVersion()) {
		t.Errorf("%d migrators applied %d migrations in all, want each of the %d applied once", n, got, KnownVersion())
	}
	conn := connect(t, url)
	v, ok, err := schemaVersion(context.Background(), conn)
	if err != nil || !ok || v != int32(KnownVersion()) {
		t.Errorf("schema version after the race = %d (exists %v, err %v), want %d", v, ok, err, KnownVersion())
	}
	// The exported entry point is a no-op on a migrated database, and the
	// store opens on it.
	if err := Migrate(context.Background(), url); err != nil {
		t.Errorf("Migrate of an up-to-date database: %v", err)
	}
	openTest(t, url, testParams())
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	url := pgtest.URL(t)
	p := testParams()
	openTest(t, url, p).Close()
	conn := connect(t, url)
	if _, err := conn.Exec(context.Background(), "UPDATE "+versionTable+" SET version = version + 1"); err != nil {
		t.Fatal(err)
	}
	for _, opt := range []Options{{}, {NoMigrate: true}} {
		opt.Logger = quietLogger()
		s, err := Open(context.Background(), url, p, opt)
		if err == nil {
			s.Close()
			t.Fatalf("Open (NoMigrate %v) of a schema newer than the binary succeeded", opt.NoMigrate)
		}
		if !strings.Contains(err.Error(), "newer") || !strings.Contains(err.Error(), "upgrade blindstored") {
			t.Errorf("Open (NoMigrate %v): error %q does not say the schema is newer and what to do", opt.NoMigrate, err)
		}
	}
	if err := Migrate(context.Background(), url); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("Migrate of a newer schema: got %v, want a refusal saying it is newer", err)
	}
}

func TestOpenNoMigrateNeedsMigratedSchema(t *testing.T) {
	url := pgtest.URL(t)
	s, err := Open(context.Background(), url, testParams(), Options{NoMigrate: true, Logger: quietLogger()})
	if err == nil {
		s.Close()
		t.Fatal("Open with NoMigrate of an empty database succeeded")
	}
	if !strings.Contains(err.Error(), "blindstored migrate") {
		t.Errorf("error %q does not tell to run blindstored migrate", err)
	}
	if err := Migrate(context.Background(), url); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	s, err = Open(context.Background(), url, testParams(), Options{NoMigrate: true, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Open with NoMigrate after Migrate: %v", err)
	}
	s.Close()
}

func TestOpenRefusesOtherParams(t *testing.T) {
	url := pgtest.URL(t)
	p := testParams()
	openTest(t, url, p).Close()

	other := p
	other.BlockSize = 2 * p.BlockSize
	_, err := Open(context.Background(), url, other, Options{Logger: quietLogger()})
	if !errors.Is(err, blobstore.ErrParamsMismatch) || !strings.Contains(err.Error(), "--block-size 1024") {
		t.Errorf("Open with another block size: %v; want ErrParamsMismatch naming the stored size", err)
	}
	other = testParams()
	_, err = Open(context.Background(), url, other, Options{Logger: quietLogger()})
	if !errors.Is(err, blobstore.ErrParamsMismatch) || !strings.Contains(err.Error(), "bucket key") {
		t.Errorf("Open with another bucket key: %v; want ErrParamsMismatch naming the bucket key", err)
	}
}

// TestMissingDatabaseIsNotUnavailable: a wrong URL will not pass by
// waiting, so it must not be reported as a store that is briefly down.
func TestMissingDatabaseIsNotUnavailable(t *testing.T) {
	url := pgtest.URL(t)
	bad := strings.Replace(url, "blindstore_test_", "blindstore_missing_", 1)
	_, err := Open(context.Background(), bad, testParams(), Options{Logger: quietLogger()})
	if err == nil {
		t.Fatal("Open of a missing database succeeded")
	}
	if k := wire.KindOf(err); k == wire.KindUnavailable {
		t.Errorf("Open of a missing database: %v is of KindUnavailable", err)
	}
}

func TestUnreachableIsUnavailable(t *testing.T) {
	// Port 1 on loopback: nothing listens there, the connection is refused.
	_, err := Open(context.Background(), "postgres://postgres@127.0.0.1:1/x?sslmode=disable", testParams(), Options{Logger: quietLogger()})
	if err == nil {
		t.Fatal("Open of an unreachable server succeeded")
	}
	if k := wire.KindOf(err); k != wire.KindUnavailable {
		t.Errorf("Open of an unreachable server: kind %v (%v), want KindUnavailable", k, err)
	}
}

// TestMigrationSealsAnExistingStore builds a store at schema version 1,
// as the release before sealing wrote it (one transaction per block, so
// the rows' xmin and places follow the order of writes), migrates it, and
// checks that every block is still there and readable, and that the
// migration rewrote the rows: one transaction for all, in an order that is
// not the write order.
func TestMigrationSealsAnExistingStore(t *testing.T) {
	url := pgtest.URL(t)
	ctx := context.Background()
	conn := connect(t, url)
	m, err := tern.NewMigrator(ctx, conn, versionTable)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.LoadMigrations(migrations.FS); err != nil {
		t.Fatal(err)
	}
	if err := m.MigrateTo(ctx, 1); err != nil {
		t.Fatal(err)
	}
	p := testParams()
	var bs [8]byte
	binary.BigEndian.PutUint64(bs[:], uint64(p.BlockSize))
	if _, err := conn.Exec(ctx, "INSERT INTO meta (key, value) VALUES ('block_size', $1), ('fingerprint', $2)", bs[:], p.Fingerprint[:]); err != nil {
		t.Fatal(err)
	}
	bucket := randBucket(t)
	if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s PARTITION OF leases FOR VALUES IN ('\x%s'::bytea)`,
		partitionName(bucket), hex.EncodeToString(bucket[:]))); err != nil {
		t.Fatal(err)
	}
	// The setup needs no durability, only one transaction per block.
	if _, err := conn.Exec(ctx, "SET synchronous_commit = off"); err != nil {
		t.Fatal(err)
	}
	const n = 200
	blocks := make([]owned, n)
	for i := range blocks {
		blocks[i] = newOwned(t, testBlockSize)
		o := blocks[i]
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		b.Queue("INSERT INTO blocks (id, proof_hash, etag, data) VALUES ($1, $2, $3, $4)", uuidOf(o.id), hashOf(o.w), etagOf(o.data), o.data)
		b.Queue("INSERT INTO leases (bucket, id) VALUES ($1, $2)", bucket[:], uuidOf(o.id))
		b.Queue("COMMIT")
		if err := conn.SendBatch(ctx, b).Close(); err != nil {
			t.Fatal(err)
		}
	}
	if x := count(t, conn, "SELECT count(DISTINCT xmin::text) FROM blocks"); x != n {
		t.Fatalf("before the migration the blocks carry %d transaction ids, want %d", x, n)
	}

	s := openTest(t, url, p) // migrates
	for i, o := range blocks {
		got, etag, err := s.Read(ctx, o.id, nil)
		if err != nil || string(got) != string(o.data) || etag != wire.ETagOf(o.data) {
			t.Fatalf("block %d after the migration: %v", i, err)
		}
	}
	st, err := s.Stats(ctx)
	if err != nil || st.Blocks != n || st.Buckets[bucket] != n {
		t.Fatalf("Stats after the migration: %+v, %v", st, err)
	}
	for _, table := range []string{"blocks", "leases"} {
		if x := count(t, conn, "SELECT count(DISTINCT xmin::text) FROM "+table); x != 1 {
			t.Errorf("after the migration %s carries %d transaction ids, want the migration's alone", table, x)
		}
	}
	// Physical order against write order: the migration rewrote rows in a
	// random order, so the rank correlation is near zero (|ρ| < 0.3 fails
	// by chance with probability below 1e-4 at n = 200).
	rank := make(map[wire.ID]int, n)
	for i, o := range blocks {
		rank[o.id] = i
	}
	rows, err := conn.Query(ctx, "SELECT id FROM blocks ORDER BY ctid")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[pgtype.UUID])
	if err != nil {
		t.Fatal(err)
	}
	var d2 float64
	for pos, id := range ids {
		d := float64(pos - rank[id.Bytes])
		d2 += d * d
	}
	rho := 1 - 6*d2/(float64(n)*(float64(n)*float64(n)-1))
	t.Logf("rank correlation of physical order with write order after the migration: %.3f", rho)
	if rho > 0.3 || rho < -0.3 {
		t.Errorf("after the migration the rows lie in write order (ρ = %.3f)", rho)
	}
	checkSealed(t, conn)
}

func etagOf(d []byte) []byte { e := wire.ETagOf(d); return e[:] }

func hashOf(w wire.WriteProof) []byte { h := w.Hash(); return h[:] }
