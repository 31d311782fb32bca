package bolt

import (
	"context"
	"strings"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/wire"
	"go.etcd.io/bbolt"
)

// TestAuditReadsTheLayout audits a clean file, then one with a bucket
// and a meta key planted beside the layout: the clean one has no
// findings and its blocks counted in the live bucket, the planted one a
// finding for each. A store in use and another key are refused.
func TestAuditReadsTheLayout(t *testing.T) {
	f := newFixture(t, wire.MinBlockSize)
	ctx := context.Background()
	const n = 5
	var ops []blobstore.Op
	for range n {
		ops = append(ops, f.putOp(newTestBlock(), f.bk.Current()))
	}
	f.apply(ops...)

	if _, err := Audit(ctx, f.path, f.bk); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("Audit of a store in use: %v, want an error saying it is in use", err)
	}
	if err := f.s.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := Audit(ctx, f.path, f.bk)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Store != "embedded" || rep.Blocks != n || rep.Buckets != 1 || rep.LiveBuckets != 1 || rep.OtherSize != 0 || len(rep.Findings) != 0 {
		t.Errorf("audit of a clean store: %+v", rep)
	}
	if rep.AwaitingSeal == nil || rep.AwaitingSeal.Blocks != n || rep.FreePages == nil {
		t.Errorf("audit of a clean store does not report what awaits a seal, or the free pages: %+v", rep)
	}

	if _, err := Audit(ctx, f.path, newBucketer(t)); err == nil || !strings.Contains(err.Error(), "another bucket key") {
		t.Errorf("Audit under another key: %v, want an error naming the bucket key", err)
	}

	db, err := bbolt.Open(f.path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		if _, err := tx.CreateBucket([]byte("users")); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put([]byte("created_at"), []byte("2026-01-01"))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	rep, err = Audit(ctx, f.path, f.bk)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`top-level bucket "users"`, `meta key "created_at"`} {
		found := false
		for _, got := range rep.Findings {
			found = found || strings.Contains(got, want)
		}
		if !found {
			t.Errorf("the audit of a planted file does not report %s: %q", want, rep.Findings)
		}
	}
	if rep.Blocks != n {
		t.Errorf("the audit of a planted file counts %d blocks, want %d", rep.Blocks, n)
	}
}
