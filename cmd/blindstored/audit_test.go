package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blindstore/blindstore/internal/pgtest"
	"github.com/blindstore/blindstore/wire"
	"github.com/jackc/pgx/v5"
	"go.etcd.io/bbolt"
)

// auditJSON runs blindstored audit --json and decodes its report.
func auditJSON(t *testing.T, args ...string) (auditReport, string, int) {
	t.Helper()
	out, code := runCLI(t, nil, append([]string{"audit", "--json"}, args...)...)
	var rep auditReport
	if i := strings.Index(out, "{"); i >= 0 {
		if err := json.NewDecoder(strings.NewReader(out[i:])).Decode(&rep); err != nil {
			t.Fatalf("audit --json: %v\n%s", err, out)
		}
	}
	return rep, out, code
}

// writeBlocks puts n new blocks through the API and returns their ids and
// proofs.
func writeBlocks(t *testing.T, url string, n, bs int) ([]wire.ID, []wire.WriteProof) {
	t.Helper()
	ids := make([]wire.ID, n)
	proofs := make([]wire.WriteProof, n)
	data := make([]byte, bs)
	for i := range ids {
		rand.Read(data)
		rand.Read(proofs[i][:])
		ids[i] = wire.NewID()
		if _, err := putBlock(context.Background(), url, ids[i], proofs[i], data); err != nil {
			t.Fatal(err)
		}
	}
	return ids, proofs
}

// boltRecordSize is the size of a block's record in the embedded store's
// file, for planting one.
const boltRecordSize = wire.HashSize + wire.ETagSize

func hasFinding(rep auditReport, part string) bool {
	for _, f := range rep.Findings {
		if strings.Contains(f, part) {
			return true
		}
	}
	return false
}

// The embedded store: a clean store passes; a running server's store is
// refused with what to do; another key is refused; and a bucket, a meta
// key, a block of another size and a bucket of no period planted in the
// file are each reported, with exit 1.
func TestAuditEmbedded(t *testing.T) {
	data := t.TempDir()
	const bs = 4096
	// No scheduled seal: the one at start, when late, would seal some of
	// the writes the counts below expect to await one.
	s := startServer(t, nil, "--data", data, "--block-size", "4096", "--purge-every", "0", "--pool-window", "0", "--seal-every", "0")
	ids, proofs := writeBlocks(t, s.url, 6, bs)
	// A delete frees pages that keep the block's ciphertext until a seal.
	req, _ := http.NewRequest("DELETE", s.url+"/v1/blocks/"+ids[5].String(), nil)
	req.Header.Set("Blind-Proof", wire.EncodeProof(proofs[5]))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %v %v", resp, err)
	}
	if out, code := runCLI(t, nil, "audit", "--data", data); code != exitError || !strings.Contains(out, "in use") {
		t.Fatalf("audit of a store in use: exit %d\n%s", code, out)
	}
	s.kill(t)

	rep, out, code := auditJSON(t, "--data", data)
	if code != 0 || rep.Blocks != 5 || rep.Buckets != 1 || rep.LiveBuckets != 1 || rep.OtherSize != 0 || len(rep.Findings) != 0 {
		t.Fatalf("audit of a clean store: exit %d\n%s", code, out)
	}
	if rep.AwaitingSeal == nil || rep.AwaitingSeal.Blocks != 6 || rep.FreePages == nil {
		t.Fatalf("audit does not report what awaits a seal: %s", out)
	}
	text, code := runCLI(t, nil, "audit", "--data", data)
	if code != 0 || !strings.Contains(text, "no findings") || !strings.Contains(text, "awaiting a seal") {
		t.Fatalf("audit text: exit %d\n%s", code, text)
	}
	for _, id := range ids {
		if strings.Contains(text+out, id.String()) {
			t.Fatal("the audit names a block")
		}
	}
	other, _ := runCLI(t, nil, "keygen")
	if out, code := runCLI(t, nil, "audit", "--data", data, "--bucket-key", strings.TrimSpace(other)); code != exitError || !strings.Contains(out, "another bucket key") {
		t.Fatalf("audit under another key: exit %d\n%s", code, out)
	}

	// Plant what the design forbids.
	db, err := bbolt.Open(filepath.Join(data, "blocks.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		users, err := tx.CreateBucket([]byte("users"))
		if err != nil {
			return err
		}
		if err := users.Put([]byte("alice"), []byte("x")); err != nil {
			return err
		}
		if err := tx.Bucket([]byte("meta")).Put([]byte("created_at"), []byte("2026-01-01")); err != nil {
			return err
		}
		// A block of 100 bytes, and one in a bucket of no period (with
		// a record and no data).
		sets, records, blocks := tx.Bucket([]byte("buckets")), tx.Bucket([]byte("records")), tx.Bucket([]byte("blocks"))
		var live []byte
		_ = sets.ForEach(func(k, _ []byte) error { live = append([]byte(nil), k...); return nil })
		odd := wire.NewID()
		if err := sets.Bucket(live).Put(odd[:], []byte{}); err != nil {
			return err
		}
		if err := records.Put(odd[:], make([]byte, boltRecordSize)); err != nil {
			return err
		}
		nb, err := blocks.CreateBucket(odd[:])
		if err != nil {
			return err
		}
		if err := nb.Put(odd[:], make([]byte, 100)); err != nil {
			return err
		}
		stray := make([]byte, 16)
		rand.Read(stray)
		sl, err := sets.CreateBucket(stray)
		if err != nil {
			return err
		}
		lost := wire.NewID()
		if err := sl.Put(lost[:], []byte{}); err != nil {
			return err
		}
		return records.Put(lost[:], make([]byte, boltRecordSize))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	rep, out, code = auditJSON(t, "--data", data)
	if code != exitError {
		t.Fatalf("audit of a planted store: exit %d\n%s", code, out)
	}
	for _, want := range []string{`"users"`, `"created_at"`, "not 4096 bytes", "no period of this bucket key"} {
		if !hasFinding(rep, want) {
			t.Errorf("the audit does not report %s:\n%s", want, out)
		}
	}
	if rep.OtherSize != 1 || rep.UnknownBlocks != 1 || rep.Blocks != 7 {
		t.Errorf("planted: %d of another size, %d in unknown buckets, %d blocks", rep.OtherSize, rep.UnknownBlocks, rep.Blocks)
	}
}

// PostgreSQL, on a private cluster: a clean store passes; a planted
// column, table or sequence, and each setting that would leak (reloaded
// or, for track_commit_timestamp and archive_mode, after a restart), and
// a replication slot are reported with exit 1.
func TestAuditPostgres(t *testing.T) {
	c := pgtest.StartCluster(t)
	const bs = 4096
	data := t.TempDir()
	s := startServer(t, nil, "--store", c.URL(), "--data", data, "--block-size", "4096", "--purge-every", "0", "--pool-window", "0", "--seal-every", "0")
	writeBlocks(t, s.url, 4, bs)
	s.kill(t)
	args := []string{"--store", c.URL(), "--data", data}

	rep, out, code := auditJSON(t, args...)
	if code != 0 || rep.Blocks != 4 || rep.LiveBuckets != 1 || len(rep.Findings) != 0 || rep.AwaitingSeal == nil || rep.AwaitingSeal.Blocks != 4 {
		t.Fatalf("audit of a clean PostgreSQL store: exit %d\n%s", code, out)
	}

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	exec := func(sql string) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	for _, p := range []struct{ plant, undo, finding string }{
		{"ALTER TABLE blocks ADD COLUMN created_at timestamptz", "ALTER TABLE blocks DROP COLUMN created_at", "column blocks.created_at"},
		{"ALTER TABLE leases_hot_a ADD COLUMN seq bigint", "ALTER TABLE leases_hot_a DROP COLUMN seq", "column leases_hot_a.seq"},
		{"CREATE TABLE users (name text)", "DROP TABLE users", "table users"},
		{"CREATE SEQUENCE write_seq", "DROP SEQUENCE write_seq", "sequence write_seq"},
		{"INSERT INTO meta VALUES ('last_write', '\\x00')", "DELETE FROM meta WHERE key = 'last_write'", `"last_write"`},
		{"SELECT pg_create_physical_replication_slot('standby1')", "SELECT pg_drop_replication_slot('standby1')", "replication slot standby1"},
	} {
		exec(p.plant)
		rep, out, code := auditJSON(t, args...)
		if code != exitError || !hasFinding(rep, p.finding) {
			t.Errorf("after %q: exit %d, want a finding naming %s\n%s", p.plant, code, p.finding, out)
		}
		exec(p.undo)
	}
	// Settings a reload applies.
	reload := func(settings ...string) {
		t.Helper()
		for _, st := range settings {
			exec("ALTER SYSTEM SET " + st)
		}
		exec("SELECT pg_reload_conf()")
		time.Sleep(300 * time.Millisecond) // the postmaster signals the backends
	}
	for _, p := range []struct{ set, reset, finding string }{
		{"log_statement = 'all'", "log_statement = DEFAULT", "log_statement is all"},
		{"log_min_duration_statement = 0", "log_min_duration_statement = DEFAULT", "log_min_duration_statement"},
		{"log_connections = on", "log_connections = DEFAULT", "log_connections"},
		{"wal_keep_size = '64MB'", "wal_keep_size = DEFAULT", "wal_keep_size"},
		{"log_parameter_max_length_on_error = -1", "log_parameter_max_length_on_error = DEFAULT", "log_parameter_max_length_on_error"},
	} {
		reload(p.set)
		rep, out, code := auditJSON(t, args...)
		if code != exitError || !hasFinding(rep, p.finding) {
			t.Errorf("with %s: exit %d, want a finding naming %s\n%s", p.set, code, p.finding, out)
		}
		reload(p.reset)
	}
	if rep, out, code := auditJSON(t, args...); code != 0 || len(rep.Findings) != 0 {
		t.Fatalf("after undoing every plant: exit %d\n%s", code, out)
	}
	// Settings that need a restart.
	exec("ALTER SYSTEM SET track_commit_timestamp = on")
	exec("ALTER SYSTEM SET archive_mode = on")
	exec("ALTER SYSTEM SET archive_command = '/bin/true'")
	conn.Close(ctx)
	c.Stop(t)
	c.Start(t)
	rep, out, code = auditJSON(t, args...)
	if code != exitError || !hasFinding(rep, "track_commit_timestamp") || !hasFinding(rep, "archive_mode") {
		t.Fatalf("with track_commit_timestamp and archive_mode on: exit %d\n%s", code, out)
	}
}
