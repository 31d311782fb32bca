package postgres

import (
	"context"
	"crypto/rand"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/internal/pgtest"
	"github.com/blindstore/blindstore/wire"
	"github.com/jackc/pgx/v5"
)

const testBlockSize = wire.MinBlockSize

func testParams() blobstore.Params {
	var fp bucketer.Fingerprint
	if _, err := rand.Read(fp[:]); err != nil {
		panic(err)
	}
	return blobstore.Params{BlockSize: testBlockSize, Fingerprint: fp}
}

func randBucket(t testing.TB) bucketer.Bucket {
	var b bucketer.Bucket
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return b
}

func randBlock(t testing.TB, size int) []byte {
	d := make([]byte, size)
	if _, err := rand.Read(d); err != nil {
		t.Fatal(err)
	}
	return d
}

type owned struct {
	id   wire.ID
	w    wire.WriteProof
	data []byte
}

func newOwned(t testing.TB, size int) owned {
	o := owned{id: wire.NewID(), data: randBlock(t, size)}
	if _, err := rand.Read(o.w[:]); err != nil {
		t.Fatal(err)
	}
	return o
}

func (o owned) put(bucket bucketer.Bucket) blobstore.Op {
	return blobstore.Op{Kind: blobstore.OpPut, ID: o.id, ProofHash: o.w.Hash(), Data: o.data, ETag: wire.ETagOf(o.data), Bucket: bucket}
}

func (o owned) del() blobstore.Op {
	return blobstore.Op{Kind: blobstore.OpDelete, ID: o.id, ProofHash: o.w.Hash()}
}

func (o owned) renew(bucket bucketer.Bucket) blobstore.Op {
	return blobstore.Op{Kind: blobstore.OpRenew, ID: o.id, ProofHash: o.w.Renew().Hash(), Bucket: bucket}
}

func openTest(t testing.TB, url string, p blobstore.Params) *Store {
	t.Helper()
	s, err := Open(context.Background(), url, p, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustApply(t testing.TB, s *Store, ops ...blobstore.Op) []blobstore.Result {
	t.Helper()
	rs, err := s.Apply(context.Background(), ops)
	if err != nil {
		t.Fatalf("Apply of %d ops: %v", len(ops), err)
	}
	return rs
}

func mustSeal(t testing.TB, s *Store) blobstore.SealReport {
	t.Helper()
	rep, err := s.Seal(context.Background())
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return rep
}

func connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestSchemaHoldsOnlyWhatTheDesignAllows reads information_schema over
// every table and partition of a store in use and accepts exactly the
// columns docs/design.md §3 allows: no time, size, user or sequence, no
// defaults, no identity or generated columns, no sequences.
func TestSchemaHoldsOnlyWhatTheDesignAllows(t *testing.T) {
	url := pgtest.URL(t)
	s := openTest(t, url, testParams())
	b1, b2 := randBucket(t), randBucket(t)
	a, b := newOwned(t, testBlockSize), newOwned(t, testBlockSize)
	mustApply(t, s, a.put(b1), b.put(b2))
	mustSeal(t, s)
	// And rows on a hot side too: a renewal, an overwrite and a delete.
	c := newOwned(t, testBlockSize)
	mustApply(t, s, a.renew(b2), c.put(b1))
	mustApply(t, s, b.put(b2), c.del())
	if err := s.SetHighestPeriod(context.Background(), 42); err != nil {
		t.Fatal(err)
	}
	conn := connect(t, url)
	ctx := context.Background()

	blockCols := map[string]string{"id": "uuid", "proof_hash": "bytea", "etag": "bytea", "data": "bytea"}
	hotLeaseCols := map[string]string{"id": "uuid", "bucket": "bytea"}
	allowed := map[string]map[string]string{
		"blocks":       blockCols,
		"blocks_hot_a": blockCols,
		"blocks_hot_b": blockCols,
		"leases":       {"bucket": "bytea", "id": "uuid"},
		"leases_hot_a": hotLeaseCols,
		"leases_hot_b": hotLeaseCols,
		"meta":         {"key": "text", "value": "bytea"},
		versionTable:   {"version": "integer"}, // the schema version, docs/design.md §3
	}

	// Partitions are checked as their parent.
	parentOf := map[string]string{}
	rows, err := conn.Query(ctx, `SELECT c.relname, p.relname FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
		WHERE c.relkind IN ('r', 'p')`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var child, parent string
		if err := rows.Scan(&child, &parent); err != nil {
			t.Fatal(err)
		}
		parentOf[child] = parent
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(parentOf) != 2 {
		t.Errorf("expected 2 lease partitions after writing into 2 buckets, found %d", len(parentOf))
	}
	for child, parent := range parentOf {
		if parent != "leases" {
			t.Errorf("table %s inherits from %s; only leases has partitions", child, parent)
		}
		// The name is the bucket's keyed hex: it reveals no order.
		want := map[string]bool{partitionName(b1): true, partitionName(b2): true}
		if !want[child] {
			t.Errorf("lease partition %s is not named after a bucket written to", child)
		}
	}

	forbiddenName := regexp.MustCompile(`(?i)time|date|size|len|user|owner|seq|serial|count|created|updated|modified|ts$|_at$|addr|ip`)
	forbiddenType := regexp.MustCompile(`(?i)time|date|interval|serial|oid|xid|pg_lsn|inet|cidr`)
	rows, err = conn.Query(ctx, `SELECT table_name, column_name, data_type, coalesce(column_default, ''), is_identity, is_generated
		FROM information_schema.columns
		WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_schema NOT LIKE 'pg_toast%'
		ORDER BY table_name, ordinal_position`)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]map[string]bool{}
	var ncols int
	for rows.Next() {
		var table, col, typ, def, identity, generated string
		if err := rows.Scan(&table, &col, &typ, &def, &identity, &generated); err != nil {
			t.Fatal(err)
		}
		ncols++
		logical := table
		if p, ok := parentOf[table]; ok {
			logical = p
		}
		cols, ok := allowed[logical]
		if !ok {
			t.Errorf("table %s is not part of the design", table)
			continue
		}
		if seen[table] == nil {
			seen[table] = map[string]bool{}
		}
		seen[table][col] = true
		if want, ok := cols[col]; !ok {
			t.Errorf("column %s.%s is not part of the design", table, col)
		} else if typ != want {
			t.Errorf("column %s.%s has type %s, want %s", table, col, typ, want)
		}
		if col != "version" && forbiddenName.MatchString(col) {
			t.Errorf("column %s.%s has a name of the forbidden kind (time, size, user, sequence)", table, col)
		}
		if forbiddenType.MatchString(typ) {
			t.Errorf("column %s.%s has a forbidden type %s", table, col, typ)
		}
		if def != "" {
			t.Errorf("column %s.%s has a default (%s); none may", table, col, def)
		}
		if identity != "NO" || generated != "NEVER" {
			t.Errorf("column %s.%s is an identity or generated column", table, col)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for table, cols := range seen {
		logical := table
		if p, ok := parentOf[table]; ok {
			logical = p
		}
		if len(cols) != len(allowed[logical]) {
			t.Errorf("table %s has %d of its %d columns", table, len(cols), len(allowed[logical]))
		}
	}
	if want := 3*4 + 3*2 + 2 + 1 + 2*len(parentOf); ncols != want {
		t.Errorf("found %d columns in all, want %d", ncols, want)
	}

	var nseq int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_class WHERE relkind = 'S'").Scan(&nseq); err != nil {
		t.Fatal(err)
	}
	if nseq != 0 {
		t.Errorf("the database has %d sequences; the store may have none", nseq)
	}

	// meta holds the deployment's parameters and nothing else.
	keys, err := pgx.CollectRows(mustQuery(t, conn, "SELECT key FROM meta ORDER BY key"), pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	// The period merge's two keys appear once a seal or a merge ran.
	keys = slices.DeleteFunc(keys, func(k string) bool { return k == metaMerged || k == metaUnmerged })
	if got := strings.Join(keys, ","); got != "block_size,fingerprint,highest_period,hot_side" {
		t.Errorf("meta holds keys %s, want block_size,fingerprint,highest_period,hot_side (and merged, unmerged)", got)
	}

	// Block data is stored out of line and uncompressed, so a row that is
	// not rewritten never has its data rewritten.
	for _, table := range []string{"blocks", "blocks_hot_a", "blocks_hot_b"} {
		var storage string
		if err := conn.QueryRow(ctx, `SELECT attstorage::text FROM pg_attribute
			WHERE attrelid = $1::regclass AND attname = 'data'`, table).Scan(&storage); err != nil {
			t.Fatal(err)
		}
		if storage != "e" {
			t.Errorf("%s.data has storage %q, want e (EXTERNAL)", table, storage)
		}
	}
}

func mustQuery(t testing.TB, conn *pgx.Conn, sql string, args ...any) pgx.Rows {
	t.Helper()
	rows, err := conn.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}
