package postgres

import (
	"context"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/sealtest"
	"github.com/blindstore/blindstore/blobstore/storetest"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/internal/pgtest"
	"github.com/blindstore/blindstore/wire"
	"github.com/jackc/pgx/v5"
)

// rowVersion is the physical identity of a block's sealed row: the
// transaction that wrote it and where it lies. Unchanged means not
// rewritten.
func rowVersion(t *testing.T, conn *pgx.Conn, id wire.ID) string {
	t.Helper()
	var v string
	if err := conn.QueryRow(context.Background(), "SELECT xmin::text || ' ' || ctid::text FROM blocks WHERE id = $1", uuidOf(id)).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func count(t *testing.T, conn *pgx.Conn, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRenewalLeavesBlockRowAlone checks the point of keeping leases apart:
// a renewal writes a hot lease row, and the seal moves the sealed lease
// between partitions and leaves the sealed block row, and so its data,
// as it was.
func TestRenewalLeavesBlockRowAlone(t *testing.T) {
	url := pgtest.URL(t)
	s := openTest(t, url, blobstore.Params{BlockSize: 65536, Fingerprint: testParams().Fingerprint})
	conn := connect(t, url)
	b1, b2 := randBucket(t), randBucket(t)
	a := newOwned(t, 65536)
	mustApply(t, s, a.put(b1))
	mustSeal(t, s)
	before := rowVersion(t, conn, a.id)

	rs := mustApply(t, s, a.renew(b2))
	if rs[0].Status != blobstore.StatusRenewed {
		t.Fatalf("renew: %s, want renewed", rs[0].Status)
	}
	if n := count(t, conn, "SELECT count(*) FROM blocks_hot_a") + count(t, conn, "SELECT count(*) FROM blocks_hot_b"); n != 0 {
		t.Errorf("a renewal wrote %d hot block rows, want none", n)
	}
	if rep := mustSeal(t, s); rep.Blocks != 0 || rep.Leases != 1 || rep.Bytes != 0 {
		t.Errorf("sealing a renewal: %+v, want one lease and no block rewritten", rep)
	}
	if after := rowVersion(t, conn, a.id); after != before {
		t.Errorf("renewal and seal rewrote the block's row (%s became %s)", before, after)
	}
	inB1 := count(t, conn, "SELECT count(*) FROM "+partitionName(b1))
	inB2 := count(t, conn, "SELECT count(*) FROM "+partitionName(b2))
	if inB1 != 0 || inB2 != 1 {
		t.Errorf("after renewal and seal the old bucket's partition holds %d leases and the new one %d, want 0 and 1", inB1, inB2)
	}

	// An overwrite does rewrite the row, which is what changed.
	a.data = randBlock(t, 65536)
	mustApply(t, s, a.put(b2))
	mustSeal(t, s)
	if after := rowVersion(t, conn, a.id); after == before {
		t.Error("an overwrite and seal left the row as it was")
	}
	checkInvariants(t, conn)
	checkSealed(t, conn)
}

// checkInvariants verifies what the layers promise at any time: a sealed
// lease has a sealed block, no block has two sealed leases, a hot block
// row comes with a live hot lease row on its side, and every block whose
// newest lease is live has a block row in some layer.
func checkInvariants(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	for _, c := range []struct{ what, sql string }{
		{"sealed leases without a sealed block", "SELECT count(*) FROM leases l WHERE NOT EXISTS (SELECT 1 FROM blocks b WHERE b.id = l.id)"},
		{"blocks with several sealed leases", "SELECT count(*) FROM (SELECT id FROM leases GROUP BY id HAVING count(*) > 1) x"},
		{"hot block rows without a live hot lease on side a", "SELECT count(*) FROM blocks_hot_a b WHERE NOT EXISTS (SELECT 1 FROM leases_hot_a l WHERE l.id = b.id AND l.bucket IS NOT NULL)"},
		{"hot block rows without a live hot lease on side b", "SELECT count(*) FROM blocks_hot_b b WHERE NOT EXISTS (SELECT 1 FROM leases_hot_b l WHERE l.id = b.id AND l.bucket IS NOT NULL)"},
		{"live blocks without data", `SELECT count(*) FROM (
			SELECT id FROM leases_hot_a WHERE bucket IS NOT NULL UNION SELECT id FROM leases_hot_b WHERE bucket IS NOT NULL) h
			WHERE NOT EXISTS (SELECT 1 FROM blocks_hot_a x WHERE x.id = h.id)
			  AND NOT EXISTS (SELECT 1 FROM blocks_hot_b x WHERE x.id = h.id)
			  AND NOT EXISTS (SELECT 1 FROM blocks x WHERE x.id = h.id)`},
	} {
		if n := count(t, conn, c.sql); n != 0 {
			t.Errorf("%d %s", n, c.what)
		}
	}
}

// checkSealed verifies the state after a seal with no writer about: both
// hot sides empty, and sealed blocks and leases one to one.
func checkSealed(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	for _, c := range []struct{ what, sql string }{
		{"hot rows left", "SELECT (SELECT count(*) FROM leases_hot_a) + (SELECT count(*) FROM leases_hot_b) + (SELECT count(*) FROM blocks_hot_a) + (SELECT count(*) FROM blocks_hot_b)"},
		{"sealed blocks without a lease", "SELECT count(*) FROM blocks b WHERE NOT EXISTS (SELECT 1 FROM leases l WHERE l.id = b.id)"},
	} {
		if n := count(t, conn, c.sql); n != 0 {
			t.Errorf("after a seal: %d %s", n, c.what)
		}
	}
	checkInvariants(t, conn)
}

// TestPurgeRacingRenewals purges an expired bucket while its owners renew
// half of its blocks. Each renewal that succeeds must keep its block; the
// others are gone; and the store stays consistent either way.
func TestPurgeRacingRenewals(t *testing.T) {
	t.Run("sealed", func(t *testing.T) { testPurgeRacingRenewals(t, true) })
	t.Run("hot", func(t *testing.T) { testPurgeRacingRenewals(t, false) })
}

func testPurgeRacingRenewals(t *testing.T, sealFirst bool) {
	url := pgtest.URL(t)
	s := openTest(t, url, testParams())
	conn := connect(t, url)
	s.purgeChunk = 100 // many purge transactions, for renewals to fall between
	var afterFill func()
	if sealFirst {
		afterFill = func() { mustSeal(t, s) }
	}
	race := storetest.PurgeRacingRenewals(t, s, afterFill)
	checkInvariants(t, conn)
	if parts := count(t, conn, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'leases'::regclass"); parts != 0 {
		t.Errorf("after the purge leases has %d partitions, want none (renewals are not sealed yet)", parts)
	}
	mustSeal(t, s)
	checkSealed(t, conn)
	if parts := count(t, conn, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'leases'::regclass"); parts != 1 {
		t.Errorf("after the purge and a seal leases has %d partitions, want only the live one", parts)
	}
	for i, id := range race.Renewed {
		if _, err := s.Stat(context.Background(), id); err != nil {
			t.Fatalf("after the seal, renewed block %d reads %v", i, err)
		}
	}
	for i, id := range race.Gone {
		if _, err := s.Stat(context.Background(), id); !blobstore.IsNotFound(err) {
			t.Fatalf("after the seal, purged block %d reads %v, want not found", i, err)
		}
	}
}

// TestPartitionDroppedByAnotherInstance seals through one instance into a
// bucket whose partition another instance's purge dropped: the seal
// recreates it instead of failing.
func TestPartitionDroppedByAnotherInstance(t *testing.T) {
	url := pgtest.URL(t)
	p := testParams()
	writer, purger := openTest(t, url, p), openTest(t, url, p)
	b := randBucket(t)
	x, y := newOwned(t, testBlockSize), newOwned(t, testBlockSize)
	mustApply(t, writer, x.put(b))
	mustSeal(t, writer)
	n, err := purger.Purge(context.Background(), bucketer.LiveSet{}, false)
	if err != nil || n != 1 {
		t.Fatalf("Purge: %d, %v; want 1 block purged", n, err)
	}
	rs := mustApply(t, writer, y.put(b))
	if rs[0].Status != blobstore.StatusCreated {
		t.Fatalf("put after the partition was dropped: %s", rs[0].Status)
	}
	mustSeal(t, writer)
	got, _, err := writer.Read(context.Background(), y.id, nil)
	if err != nil || string(got) != string(y.data) {
		t.Fatalf("Read after recreating the partition: %v", err)
	}
	checkInvariants(t, connect(t, url))
}

// TestConcurrentMixedOpsOnOneBlock runs sealtest.OpsOnOneBlockDuringSeals:
// renewals move the block's lease between partitions and seals move its
// rows between the hot sides and the sealed part under the writers. The
// block must end with exactly one lease.
func TestConcurrentMixedOpsOnOneBlock(t *testing.T) {
	url := pgtest.URL(t)
	s := openTest(t, url, testParams())
	sealtest.OpsOnOneBlockDuringSeals(t, s)
	conn := connect(t, url)
	checkInvariants(t, conn)
	mustSeal(t, s)
	checkSealed(t, conn)
}
