package postgres

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/internal/pgtest"
	"github.com/blindstore/blindstore/migrations"
	"github.com/blindstore/blindstore/wire"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	tern "github.com/jackc/tern/v2/migrate"
)

// TestRenewalUpdateChecksWhatItRead runs the hot lease update as a
// renewal sends it, with the xmin its unlocked read saw: once another
// transaction has written the row since, the update changes nothing and
// fails as a retryable serialization failure; with the row's current
// xmin it renews.
func TestRenewalUpdateChecksWhatItRead(t *testing.T) {
	url := pgtest.URL(t)
	ctx := context.Background()
	s := openTest(t, url, testParams())
	conn := connect(t, url)
	b1, b2, b3 := randBucket(t), randBucket(t), randBucket(t)
	a := newOwned(t, testBlockSize)
	mustApply(t, s, a.put(b1))
	l := s.layer()

	xminOf := func() uint32 {
		var x pgtype.Uint32
		if err := conn.QueryRow(ctx, "SELECT xmin FROM "+l.leasesHot+" WHERE id = $1", uuidOf(a.id)).Scan(&x); err != nil {
			t.Fatal(err)
		}
		return x.Uint32
	}
	update := func(seen uint32, bucket []byte) error {
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, l.updateHot, []pgtype.UUID{uuidOf(a.id)}, [][]byte{bucket}, []uint32{seen}); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}
	bucketOf := func() []byte {
		var b []byte
		if err := conn.QueryRow(ctx, "SELECT bucket FROM "+l.leasesHot+" WHERE id = $1", uuidOf(a.id)).Scan(&b); err != nil {
			t.Fatal(err)
		}
		return b
	}

	seen := xminOf()
	// Another writer rewrites the row after the read.
	if _, err := conn.Exec(ctx, "UPDATE "+l.leasesHot+" SET bucket = bucket WHERE id = $1", uuidOf(a.id)); err != nil {
		t.Fatal(err)
	}
	err := update(seen, b2[:])
	if err == nil || pgCode(err) != codeSerialization || !retryable(err) {
		t.Fatalf("update with the xmin read before another write: %v (code %q), want a retryable serialization failure", err, pgCode(err))
	}
	if got := bucketOf(); string(got) != string(b1[:]) {
		t.Fatalf("the refused update left bucket %x, want %x", got, b1[:])
	}
	if err := update(xminOf(), b3[:]); err != nil {
		t.Fatalf("update with the current xmin: %v", err)
	}
	if got := bucketOf(); string(got) != string(b3[:]) {
		t.Fatalf("after the update the bucket is %x, want %x", got, b3[:])
	}
}

// TestRenewalsRacingDeletes renews blocks over and over while another
// writer deletes them. Renewals lock no row, so a renewal may read a
// block live and reach its update after the delete committed: it must
// then run again and find the block gone, never stamp a bucket on the
// tombstone, which would bring back a block whose data is deleted.
func TestRenewalsRacingDeletes(t *testing.T) {
	for _, sealed := range []bool{false, true} {
		t.Run(fmt.Sprintf("sealed=%v", sealed), func(t *testing.T) { testRenewalsRacingDeletes(t, sealed) })
	}
}

func testRenewalsRacingDeletes(t *testing.T, sealed bool) {
	url := pgtest.URL(t)
	ctx := context.Background()
	s := openTest(t, url, testParams())
	conn := connect(t, url)
	const n = 120
	bucket := randBucket(t)
	blocks := make([]owned, n)
	var puts []blobstore.Op
	for i := range blocks {
		blocks[i] = newOwned(t, testBlockSize)
		puts = append(puts, blocks[i].put(bucket))
	}
	mustApply(t, s, puts...)
	if sealed {
		mustSeal(t, s)
	}

	var wg sync.WaitGroup
	deleted := make(chan struct{})
	errs := make(chan error, 8)
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; ; round++ {
				select {
				case <-deleted:
					if round > 0 {
						return
					}
				default:
				}
				order := rand.Perm(n)
				for lo := 0; lo < n; lo += 40 {
					var ops []blobstore.Op
					b := randBucket(t)
					for _, i := range order[lo:min(lo+40, n)] {
						ops = append(ops, blocks[i].renew(b))
					}
					rs, err := s.Apply(ctx, ops)
					if err != nil {
						errs <- fmt.Errorf("renew: %w", err)
						return
					}
					for _, r := range rs {
						if r.Status != blobstore.StatusRenewed && r.Status != blobstore.StatusCurrent && r.Status != blobstore.StatusNotFound {
							errs <- fmt.Errorf("renew answered %v", r.Status)
							return
						}
					}
				}
			}
		}()
	}
	for _, i := range rand.Perm(n) {
		rs, err := s.Apply(ctx, []blobstore.Op{blocks[i].del()})
		if err != nil {
			t.Fatalf("delete: %v", err)
		}
		if rs[0].Status != blobstore.StatusDeleted {
			t.Fatalf("delete answered %v, want deleted", rs[0].Status)
		}
	}
	close(deleted)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, o := range blocks {
		if _, _, err := s.Read(ctx, o.id, nil); wire.KindOf(err) != wire.KindNotFound {
			t.Fatalf("block %d after its delete: %v, want not found", i, err)
		}
	}
	st, err := s.Stats(ctx)
	if err != nil || st.Blocks != 0 {
		t.Fatalf("Stats after every block was deleted: %+v, %v", st, err)
	}
	checkInvariants(t, conn)
}

// TestMigrationKeepsHotRowsForRenewal builds a store at schema version 2
// with blocks on the active hot side and in the sealed part, migrates it,
// and checks that the hot lease tables now leave room for renewals in
// place, that every block reads and renews as before, and that once a
// seal has emptied the side and renewals filled it anew, a renewal of a
// hot block leaves its lease row on its page (a heap-only update, which
// adds no index entry); several pages' worth of rows, so that a page
// packed full would have sent rows elsewhere.
func TestMigrationKeepsHotRowsForRenewal(t *testing.T) {
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
	if err := m.MigrateTo(ctx, 2); err != nil {
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
	// As version 2 left them: sealed blocks, and blocks written since
	// the last seal on side a.
	const n = 600
	blocks := make([]owned, n)
	b := &pgx.Batch{}
	for i := range blocks {
		blocks[i] = newOwned(t, testBlockSize)
		o := blocks[i]
		bt, lt := "blocks", "leases"
		if i%2 == 1 {
			bt, lt = "blocks_hot_a", "leases_hot_a"
		}
		b.Queue("INSERT INTO "+bt+" (id, proof_hash, etag, data) VALUES ($1, $2, $3, $4)", uuidOf(o.id), hashOf(o.w), etagOf(o.data), o.data)
		b.Queue("INSERT INTO "+lt+" (bucket, id) VALUES ($1, $2)", bucket[:], uuidOf(o.id))
	}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}

	s := openTest(t, url, p) // migrates
	for _, table := range []string{"leases_hot_a", "leases_hot_b"} {
		var opts []string
		if err := conn.QueryRow(ctx, "SELECT coalesce(reloptions, '{}') FROM pg_class WHERE relname = $1", table).Scan(&opts); err != nil {
			t.Fatal(err)
		}
		if len(opts) != 1 || opts[0] != "fillfactor=50" {
			t.Errorf("%s after the migration has options %q, want fillfactor=50", table, opts)
		}
	}
	renewAll := func(what string) {
		t.Helper()
		b := randBucket(t)
		var ops []blobstore.Op
		for _, o := range blocks {
			ops = append(ops, o.renew(b))
		}
		for i, r := range mustApply(t, s, ops...) {
			if r.Status != blobstore.StatusRenewed {
				t.Fatalf("%s: block %d answered %v, want renewed", what, i, r.Status)
			}
		}
		for i, o := range blocks {
			got, etag, err := s.Read(ctx, o.id, nil)
			if err != nil || string(got) != string(o.data) || etag != wire.ETagOf(o.data) {
				t.Fatalf("%s: block %d: %v", what, i, err)
			}
		}
	}
	renewAll("renewal after the migration")
	mustSeal(t, s)
	checkSealed(t, conn)

	// Written anew after the seal, the active side's rows renew in place.
	renewAll("renewal after the seal")
	l := s.layer()
	before := pages(t, conn, l.leasesHot)
	if len(before) != n {
		t.Fatalf("%s holds %d rows, want %d", l.leasesHot, len(before), n)
	}
	if n := len(distinct(before)); n < 3 {
		t.Fatalf("the lease rows lie on %d pages: too few to tell", n)
	}
	renewAll("second renewal after the seal")
	moved := 0
	for id, pg := range pages(t, conn, l.leasesHot) {
		if before[id] != pg {
			moved++
		}
	}
	if moved != 0 {
		t.Errorf("%d of %d renewals moved the lease row to another page", moved, n)
	}
	checkInvariants(t, conn)
}

// pages maps each row of table to the page holding it.
func pages(t *testing.T, conn *pgx.Conn, table string) map[[16]byte]int64 {
	t.Helper()
	rows := mustQuery(t, conn, "SELECT id, (ctid::text::point)[0]::bigint FROM "+table)
	defer rows.Close()
	m := map[[16]byte]int64{}
	for rows.Next() {
		var id pgtype.UUID
		var pg int64
		if err := rows.Scan(&id, &pg); err != nil {
			t.Fatal(err)
		}
		m[id.Bytes] = pg
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

func distinct(m map[[16]byte]int64) map[int64]bool {
	d := map[int64]bool{}
	for _, v := range m {
		d[v] = true
	}
	return d
}
