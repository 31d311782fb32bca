package bolt

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"testing"

	"github.com/blindstore/blindstore/wire"
	"go.etcd.io/bbolt"
)

// TestUpgradeFromVersion1 opens a file as the release before sealing left
// it (schema 1: the layout of schema 3, with no unsealed bucket): Open
// upgrades it, names every block unsealed so that the first seal
// rewrites the whole file out of its write order, moves it to schema 4,
// and every block reads back before and after that seal.
func TestUpgradeFromVersion1(t *testing.T) {
	f := newFixture(t, wire.MinBlockSize)
	if err := f.s.Close(); err != nil {
		t.Fatal(err)
	}
	f.path = filepath.Join(t.TempDir(), "v1", "blocks.db")
	old, _ := oldBlocks(f, 40)
	writeSchema3(t, f.path, f.p, old, nil)
	var blocks []testBlock
	for _, b := range old {
		blocks = append(blocks, testBlock{id: b.id, w: b.w})
	}
	// Make it a version 1 file.
	db, err := bbolt.Open(f.path, 0o600, boltOptions())
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketUnsealed, bucketUnmerged} {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
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
