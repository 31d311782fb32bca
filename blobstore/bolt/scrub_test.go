package bolt

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/wire"
	"go.etcd.io/bbolt"
)

// TestScrubZeroesEveryFreePage writes 64 KiB blocks (runs of 17 pages,
// which the scrub's walk skips past) over more pages than one scrub step
// examines, then seals, overwrites and deletes some, seals and merges.
// After each seal and merge every page bbolt reports free is all zeros,
// read one by one without the walk's skipping; after the merge each live
// block's ciphertext is in the file exactly once (its place before the
// merge was scrubbed) and no dead one is.
func TestScrubZeroesEveryFreePage(t *testing.T) {
	f := newFixture(t, wire.DefaultBlockSize)
	ctx := context.Background()
	live := map[wire.ID][]byte{}
	var dead [][]byte
	var blocks []testBlock
	for i := 0; i < 400; i += 40 {
		var ops []blobstore.Op
		for range 40 {
			b := newTestBlock()
			blocks = append(blocks, b)
			op := f.putOp(b, 1)
			live[b.id] = op.Data
			ops = append(ops, op)
		}
		f.apply(ops...)
	}
	if _, err := f.s.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	checkFreePagesZero(t, f.s, "after the first seal")
	for i, b := range blocks {
		switch i % 4 {
		case 0:
			op := f.putOp(b, 1)
			dead = append(dead, live[b.id])
			live[b.id] = op.Data
			f.apply(op)
		case 1:
			dead = append(dead, live[b.id])
			delete(live, b.id)
			f.apply(blobstore.Op{Kind: blobstore.OpDelete, ID: b.id, ProofHash: b.w.Hash()})
		}
	}
	if _, err := f.s.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	checkFreePagesZero(t, f.s, "after the second seal")
	rep, err := f.s.Merge(ctx, bucketer.LiveSet{Current: 2, Buckets: []bucketer.Bucket{f.bk.Bucket(2), f.bk.Bucket(1)}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Blocks != int64(len(live)) {
		t.Errorf("the merge rewrote %d blocks, want the %d live", rep.Blocks, len(live))
	}
	checkFreePagesZero(t, f.s, "after the merge")
	checkFile(t, f.s)
	raw, err := os.ReadFile(f.path)
	if err != nil {
		t.Fatal(err)
	}
	// Ciphertext is random: 32 bytes of it found in the file are it.
	for id, d := range live {
		if n := bytes.Count(raw, d[40000:40032]); n != 1 {
			t.Errorf("a live block's ciphertext is in the file %d times after the merge, want once", n)
		}
		got, _, err := f.s.Read(ctx, id, nil)
		if err != nil || !bytes.Equal(got, d) {
			t.Fatalf("a live block reads back wrong after the merge: %v", err)
		}
	}
	for _, d := range dead {
		if bytes.Contains(raw, d[40000:40032]) {
			t.Error("an overwritten or deleted block's ciphertext remains in the file")
		}
	}
}

// TestScrubStepStartingInsideARun starts scrub steps on every page of
// the file, most of them inside a run of pages in use (as a step may
// after commits moved things between two steps): no page in use is
// zeroed, and every block still reads back.
func TestScrubStepStartingInsideARun(t *testing.T) {
	f := newFixture(t, wire.DefaultBlockSize)
	ctx := context.Background()
	live := map[wire.ID][]byte{}
	var ops []blobstore.Op
	for range 30 {
		b := newTestBlock()
		op := f.putOp(b, 1)
		live[b.id] = op.Data
		ops = append(ops, op)
	}
	f.apply(ops...)
	if _, err := f.s.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	file, err := os.OpenFile(f.path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	ps := f.s.pageSize
	buf, zeros := make([]byte, 64*ps), make([]byte, 64*ps)
	tx, err := f.s.db.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	end := int(tx.Size()) / ps
	for from := 2; from < end; from++ {
		if _, _, err := scrubRange(tx, file, from, 5, ps, buf, zeros); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	checkFile(t, f.s)
	for id, d := range live {
		got, _, err := f.s.Read(ctx, id, nil)
		if err != nil || !bytes.Equal(got, d) {
			t.Fatalf("a block reads back wrong after the scrub steps: %v", err)
		}
	}
}

// checkFreePagesZero reads every page bbolt reports free and fails on
// one that is not all zeros.
func checkFreePagesZero(t *testing.T, s *Store, when string) {
	t.Helper()
	file, err := os.Open(s.path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	page, zeros := make([]byte, s.pageSize), make([]byte, s.pageSize)
	free, dirty := 0, 0
	err = s.db.View(func(tx *bbolt.Tx) error {
		end := int(tx.Size()) / s.pageSize
		for id := 2; id < end; id++ {
			info, err := tx.Page(id)
			if err != nil {
				return err
			}
			if info == nil || info.Type != "free" {
				continue
			}
			free++
			if _, err := file.ReadAt(page, int64(id)*int64(s.pageSize)); err != nil {
				return err
			}
			if !bytes.Equal(page, zeros) {
				dirty++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d free pages", when, free)
	if dirty > 0 {
		t.Errorf("%s: %d of %d free pages are not zeroed", when, dirty, free)
	}
}
