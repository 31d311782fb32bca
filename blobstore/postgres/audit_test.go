package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/audit"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/internal/pgtest"
)

// TestAuditReadsTheSchema audits a store in use: its blocks are counted
// in the live bucket and awaiting a seal, its schema and a spent token
// set beside it are what the design allows, and a planted column or
// table is a finding. The shared server's settings are its own, so only
// the schema's findings are checked.
func TestAuditReadsTheSchema(t *testing.T) {
	url := pgtest.URL(t)
	ctx := context.Background()
	key, err := bucketer.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	bk, err := bucketer.New(bucketer.Config{Key: key, Period: time.Hour, Retention: 3})
	if err != nil {
		t.Fatal(err)
	}
	s := openTest(t, url, blobstore.Params{BlockSize: testBlockSize, Fingerprint: bk.Fingerprint()})
	const n = 4
	var ops []blobstore.Op
	for range n {
		o := newOwned(t, testBlockSize)
		ops = append(ops, o.put(bk.Bucket(bk.Current())))
	}
	mustApply(t, s, ops...)
	conn := connect(t, url)
	exec := func(sql string) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec("CREATE TABLE spent_" + strings.Repeat("a", 52) + " (nonce bytea)")

	schemaFindings := func(rep *audit.Report) []string {
		var out []string
		for _, f := range rep.Findings {
			if strings.Contains(f, "beyond the design") || strings.Contains(f, "lacks column") {
				out = append(out, f)
			}
		}
		return out
	}
	rep, err := Audit(ctx, url, bk)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Store != "postgresql" || rep.Blocks != n || rep.LiveBuckets != 1 || rep.OtherSize != 0 || len(schemaFindings(rep)) != 0 {
		t.Errorf("audit of a clean store: %+v", rep)
	}
	if rep.AwaitingSeal == nil || rep.AwaitingSeal.Blocks != n {
		t.Errorf("audit of a clean store does not report what awaits a seal: %+v", rep.AwaitingSeal)
	}

	for _, p := range []struct{ plant, undo, finding string }{
		{"ALTER TABLE blocks ADD COLUMN created_at timestamptz", "ALTER TABLE blocks DROP COLUMN created_at", "column blocks.created_at"},
		{"CREATE TABLE users (name text)", "DROP TABLE users", "table users"},
	} {
		exec(p.plant)
		rep, err := Audit(ctx, url, bk)
		if err != nil {
			t.Fatal(err)
		}
		got := schemaFindings(rep)
		if len(got) != 1 || !strings.Contains(got[0], p.finding) {
			t.Errorf("after %q: findings %q, want one naming %s", p.plant, got, p.finding)
		}
		exec(p.undo)
	}
}
