package bolt

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/wire"
	"go.etcd.io/bbolt"
)

// TestUpgradeFromVersion1 opens a file as the release before sealing left
// it (schema 1, no unsealed bucket): Open upgrades it, names every block
// unsealed so that the first seal rewrites the whole file out of its
// write order, and every block reads back before and after that seal.
func TestUpgradeFromVersion1(t *testing.T) {
	f := newFixture(t, wire.MinBlockSize)
	var blocks []testBlock
	var ops []blobstore.Op
	for i := 0; i < 40; i++ {
		b := newTestBlock()
		blocks = append(blocks, b)
		ops = append(ops, f.putOp(b, uint64(1+i%2)))
	}
	f.apply(ops...)
	if err := f.s.Close(); err != nil {
		t.Fatal(err)
	}
	// Make it a version 1 file.
	db, err := bbolt.Open(f.path, 0o600, boltOptions())
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		if err := tx.DeleteBucket(bucketUnsealed); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keySchema, binary.BigEndian.AppendUint32(nil, 1))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	s, err := Open(f.path, f.p)
	if err != nil {
		t.Fatalf("Open of a version 1 file: %v", err)
	}
	defer s.Close()
	ctx := context.Background()
	st, err := s.SealStats(ctx)
	if err != nil || st.Blocks != int64(len(blocks)) {
		t.Fatalf("after the upgrade %+v (%v); want all %d blocks awaiting a seal", st, err, len(blocks))
	}
	for _, b := range blocks {
		if _, err := s.Stat(ctx, b.id); err != nil {
			t.Fatalf("after the upgrade: %v", err)
		}
	}
	rep, err := s.Seal(ctx)
	if err != nil || rep.Blocks != int64(len(blocks)) {
		t.Fatalf("the first seal: %+v, %v; want all %d blocks rewritten", rep, err, len(blocks))
	}
	for _, b := range blocks {
		if _, err := s.Stat(ctx, b.id); err != nil {
			t.Fatalf("after the first seal: %v", err)
		}
	}
	err = s.view(func(tx *bbolt.Tx) error {
		if v := binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keySchema)); v != schemaVersion {
			t.Errorf("schema version %d after the upgrade, want %d", v, schemaVersion)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
