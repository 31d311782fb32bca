package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/sealtest"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/wire"
	"go.etcd.io/bbolt"
)

// oldBlock is a block as a schema 3 file held it.
type oldBlock struct {
	id     wire.ID
	w      wire.WriteProof
	data   []byte
	bucket bucketer.Bucket
}

func (b oldBlock) meta() blobstore.Meta {
	return blobstore.Meta{ProofHash: b.w.Hash(), ETag: wire.ETagOf(b.data), Bucket: b.bucket}
}

// writeSchema3 writes blocks into a new file at path exactly as schema 3
// laid them out (leases/{bucket}/{id} → record, data/{bucket}/{id}/{id} →
// ciphertext, every block unsealed, some of them unmerged too), with the
// writes of that release: one transaction per batch of puts.
func writeSchema3(t *testing.T, path string, p blobstore.Params, blocks []oldBlock, unmerged map[wire.ID]bool) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(path, 0o600, boltOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		for _, name := range [][]byte{bucketOldLeases, bucketOldData, bucketUnsealed, bucketUnmerged} {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		for _, kv := range []struct{ k, v []byte }{
			{keySchema, binary.BigEndian.AppendUint32(nil, 3)},
			{keyBlockSize, binary.BigEndian.AppendUint64(nil, uint64(p.BlockSize))},
			{keyFingerprint, bytes.Clone(p.Fingerprint[:])},
			{keyHighestPeriod, binary.BigEndian.AppendUint64(nil, 7)},
		} {
			if err := meta.Put(kv.k, kv.v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for lo := 0; lo < len(blocks); lo += 500 {
		err := db.Update(func(tx *bbolt.Tx) error {
			for _, b := range blocks[lo:min(lo+500, len(blocks))] {
				m := b.meta()
				lb, err := tx.Bucket(bucketOldLeases).CreateBucketIfNotExists(b.bucket[:])
				if err != nil {
					return err
				}
				if err := lb.Put(bytes.Clone(b.id[:]), encodeRecord(&m)); err != nil {
					return err
				}
				tb, err := tx.Bucket(bucketOldData).CreateBucketIfNotExists(b.bucket[:])
				if err != nil {
					return err
				}
				nb, err := tb.CreateBucket(bytes.Clone(b.id[:]))
				if err != nil {
					return err
				}
				if err := nb.Put(bytes.Clone(b.id[:]), b.data); err != nil {
					return err
				}
				mark := tx.Bucket(bucketUnsealed)
				if unmerged[b.id] {
					mark = tx.Bucket(bucketUnmerged)
				}
				if err := mark.Put(bytes.Clone(b.id[:]), []byte{unsealedData}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// oldBlocks makes n blocks spread over three time buckets.
func oldBlocks(f *fixture, n int) ([]oldBlock, map[wire.ID]bool) {
	blocks := make([]oldBlock, n)
	unmerged := map[wire.ID]bool{}
	for i := range blocks {
		tb := newTestBlock()
		blocks[i] = oldBlock{id: tb.id, w: tb.w, data: f.data(), bucket: f.bk.Bucket(uint64(5 + i%3))}
		if i%4 == 0 {
			unmerged[tb.id] = true
		}
	}
	return blocks, unmerged
}

// checkMigrated checks that every block reads back with its data, ETag,
// proof hash and time bucket, that the old buckets are gone and that the
// store takes writes, seals and merges.
func checkMigrated(t *testing.T, f *fixture, s *Store, blocks []oldBlock, unmerged map[wire.ID]bool) {
	t.Helper()
	ctx := context.Background()
	st, err := s.Stats(ctx)
	if err != nil || st.Blocks != int64(len(blocks)) {
		t.Fatalf("Stats after the move: %+v, %v; want %d blocks", st, err, len(blocks))
	}
	perBucket := map[bucketer.Bucket]int64{}
	for _, b := range blocks {
		perBucket[b.bucket]++
	}
	for bk, n := range perBucket {
		if st.Buckets[bk] != n {
			t.Errorf("a time bucket holds %d blocks after the move, want %d", st.Buckets[bk], n)
		}
	}
	err = s.view(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if v := binary.BigEndian.Uint32(meta.Get(keySchema)); v != schemaVersion {
			t.Errorf("schema %d after the move, want %d", v, schemaVersion)
		}
		if meta.Get(keyMigrating) != nil {
			t.Error("the migrating key is left after the move")
		}
		if binary.BigEndian.Uint64(meta.Get(keyHighestPeriod)) != 7 {
			t.Error("the highest period changed in the move")
		}
		for _, name := range [][]byte{bucketOldLeases, bucketOldData} {
			if tx.Bucket(name) != nil {
				t.Errorf("the old %q bucket is left after the move", name)
			}
		}
		records := checkLeasesShape(t, tx.Bucket(bucketSets), tx.Bucket(bucketRecords))
		checkDataShape(t, tx.Bucket(bucketBlocks), records, f.p.BlockSize)
		// What awaited a seal or a merge still does.
		if n := tx.Bucket(bucketUnsealed).Stats().KeyN; n != len(blocks)-len(unmerged) {
			t.Errorf("%d blocks unsealed after the move, want %d", n, len(blocks)-len(unmerged))
		}
		if n := tx.Bucket(bucketUnmerged).Stats().KeyN; n != len(unmerged) {
			t.Errorf("%d blocks unmerged after the move, want %d", n, len(unmerged))
		}
		// The proof hash and time bucket, as Plan will read them.
		p := newProbe(tx)
		for _, b := range blocks {
			m, err := decodeRecord(tx.Bucket(bucketRecords).Get(b.id[:]), p.find(b.id[:]))
			if err != nil || m != b.meta() {
				t.Fatalf("a block's metadata after the move: %+v, %v; want %+v", m, err, b.meta())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		got, etag, err := s.Read(ctx, b.id, nil)
		if err != nil || !bytes.Equal(got, b.data) || etag != wire.ETagOf(b.data) {
			t.Fatalf("a block reads back wrong after the move: %v", err)
		}
	}
	// Each kind of op on a moved block, with the proofs it was written
	// with: a renewal, an overwrite and a delete.
	b0, b1, b2 := blocks[0], blocks[1], blocks[2]
	renew := blobstore.Op{Kind: blobstore.OpRenew, ID: b0.id, ProofHash: b0.w.Renew().Hash(), Bucket: f.bk.Bucket(8)}
	d := f.data()
	over := blobstore.Op{Kind: blobstore.OpPut, ID: b1.id, ProofHash: b1.w.Hash(), Data: d, ETag: wire.ETagOf(d), Bucket: f.bk.Bucket(8)}
	del := blobstore.Op{Kind: blobstore.OpDelete, ID: b2.id, ProofHash: b2.w.Hash()}
	rs, err := s.Apply(ctx, []blobstore.Op{renew, over, del})
	if err != nil {
		t.Fatal(err)
	}
	want := []blobstore.Status{blobstore.StatusRenewed, blobstore.StatusReplaced, blobstore.StatusDeleted}
	for i, r := range rs {
		if r.Status != want[i] {
			t.Errorf("op %d on a moved block: %v, want %v", i, r.Status, want[i])
		}
	}
	if _, err := s.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Merge(ctx, bucketer.LiveSet{Current: 8, Buckets: []bucketer.Bucket{f.bk.Bucket(8), f.bk.Bucket(7)}}); err != nil {
		t.Fatal(err)
	}
	checkFile(t, s)
	for i, b := range blocks[1:] {
		got, _, err := s.Read(ctx, b.id, nil)
		switch {
		case i == 0 && (err != nil || !bytes.Equal(got, d)):
			t.Errorf("the overwritten block after seal and merge: %v", err)
		case i == 1 && !errors.Is(err, blobstore.ErrNotFound):
			t.Errorf("the deleted block after seal and merge: %v", err)
		case i > 1 && (err != nil || !bytes.Equal(got, b.data)):
			t.Fatalf("a moved block after seal and merge: %v", err)
		}
	}
}

// smallSteps makes the move's steps small for the test, so that a few
// hundred blocks take several.
func smallSteps(t *testing.T) {
	old := migrateChunk
	migrateChunk = 200
	t.Cleanup(func() { migrateChunk = old })
}

// TestMigrateFromSchema3 writes a file in schema 3's layout, with more
// blocks than one step of the move takes, and opens it: Open moves it to
// schema 4 and every block reads back with its data, ETag, proof hash
// and time bucket.
func TestMigrateFromSchema3(t *testing.T) {
	f := newFixture(t, wire.MinBlockSize)
	if err := f.s.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "old", "blocks.db")
	smallSteps(t)
	blocks, unmerged := oldBlocks(f, migrateChunk+migrateChunk/2)
	writeSchema3(t, path, f.p, blocks, unmerged)
	steps := 0
	testHookMigrateStep = func() error { steps++; return nil }
	defer func() { testHookMigrateStep = nil }()
	s, err := Open(path, f.p)
	if err != nil {
		t.Fatalf("Open of a schema 3 file: %v", err)
	}
	defer s.Close()
	if steps < 1 {
		t.Errorf("the move of %d blocks took %d steps besides its last; want more than one transaction", len(blocks), steps)
	}
	checkMigrated(t, f, s, blocks, unmerged)
}

// TestMigrateInterrupted stops the move after each of its steps in turn
// (as a kill between two commits would), checks that an older build
// refuses the half-moved file and that the store opens with no block
// lost once the move is resumed.
func TestMigrateInterrupted(t *testing.T) {
	f := newFixture(t, wire.MinBlockSize)
	if err := f.s.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "old", "blocks.db")
	smallSteps(t)
	blocks, unmerged := oldBlocks(f, 2*migrateChunk+30)
	writeSchema3(t, path, f.p, blocks, unmerged)
	defer func() { testHookMigrateStep = nil }()
	stop := errors.New("stopped")
	for attempt := 1; ; attempt++ {
		steps := 0
		testHookMigrateStep = func() error {
			steps++
			if steps == 1 {
				return stop
			}
			return nil
		}
		s, err := Open(path, f.p)
		if err == nil {
			defer s.Close()
			if attempt < 3 {
				t.Fatalf("the move finished at attempt %d; want at least three steps", attempt)
			}
			checkMigrated(t, f, s, blocks, unmerged)
			return
		}
		if !errors.Is(err, stop) {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
		if attempt > 10 {
			t.Fatal("the move does not progress")
		}
		// Half moved: the file says schema 4 with the migrating key, so
		// a build of schema 3 refuses it, and every block is in exactly
		// one of the layouts.
		db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		err = db.View(func(tx *bbolt.Tx) error {
			meta := tx.Bucket(bucketMeta)
			if v := binary.BigEndian.Uint32(meta.Get(keySchema)); v != schemaVersion || meta.Get(keyMigrating) == nil {
				t.Errorf("attempt %d: a half-moved file has schema %d, migrating %v", attempt, v, meta.Get(keyMigrating) != nil)
			}
			n := tx.Bucket(bucketRecords).Stats().KeyN
			_ = tx.Bucket(bucketOldLeases).ForEachBucket(func(k []byte) error {
				n += tx.Bucket(bucketOldLeases).Bucket(k).Stats().KeyN
				return nil
			})
			if n != len(blocks) {
				t.Errorf("attempt %d: %d blocks in the two layouts, want %d", attempt, n, len(blocks))
			}
			for err := range tx.Check() {
				t.Errorf("attempt %d: %v", attempt, err)
			}
			return nil
		})
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// migrateChild opens the schema 3 file at path with small steps, saying
// "s" after each committed one, until TestMigrateSurvivesKill kills it.
func migrateChild(path string) {
	fp, err := hex.DecodeString(os.Getenv("BOLT_MIGRATE_FP"))
	if err != nil || len(fp) != len(bucketer.Fingerprint{}) {
		fmt.Println("bad fingerprint")
		os.Exit(2)
	}
	p := blobstore.Params{BlockSize: wire.MinBlockSize}
	copy(p.Fingerprint[:], fp)
	migrateChunk = 50
	testHookMigrateStep = func() error {
		fmt.Println("s")
		return nil
	}
	s, err := Open(path, p)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	_ = s.Close()
	fmt.Println("done")
	os.Exit(0)
}

// TestMigrateSurvivesKill kills a process in the middle of the move to
// schema 4, three times over on one file (once right after a step
// committed, twice at a random instant of the step after it), then lets
// Open finish the move: every block reads back with its ETag, proof hash
// and time bucket, and the file passes bbolt's check after each kill.
func TestMigrateSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process to kill")
	}
	f := newFixture(t, wire.MinBlockSize)
	if err := f.s.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "old", "blocks.db")
	blocks, unmerged := oldBlocks(f, 2000)
	writeSchema3(t, path, f.p, blocks, unmerged)
	fp := f.p.Fingerprint
	for round, delay := range []time.Duration{0, time.Duration(mrand.IntN(3000)) * time.Microsecond, time.Duration(mrand.IntN(3000)) * time.Microsecond} {
		cmd, sc := sealtest.StartChild(t, "BOLT_MIGRATE_CHILD="+path, "BOLT_MIGRATE_FP="+hex.EncodeToString(fp[:]))
		steps := 0
		for sc.Scan() && steps < 3 {
			if sc.Text() != "s" {
				t.Fatalf("round %d: the child said %q", round+1, sc.Text())
			}
			steps++
		}
		time.Sleep(delay)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if steps < 3 {
			t.Fatalf("round %d: the child finished the move in %d steps before the kill; want more steps", round+1, steps)
		}
		db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		err = db.View(func(tx *bbolt.Tx) error {
			for err := range tx.Check() {
				return err
			}
			return nil
		})
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatalf("round %d: the file fails bbolt's check after the kill: %v", round+1, err)
		}
	}
	s, err := Open(path, f.p)
	if err != nil {
		t.Fatalf("Open after the kills: %v", err)
	}
	defer s.Close()
	checkMigrated(t, f, s, blocks, unmerged)
}
