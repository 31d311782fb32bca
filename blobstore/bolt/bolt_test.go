package bolt

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/storetest"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/internal/wait"
	"github.com/blindstore/blindstore/wire"
	"go.etcd.io/bbolt"
)

// location returns the suite's locations: a fresh file each, opened by
// stores that commit in the given mode.
func location(mode commitMode) func(t *testing.T) storetest.Opener {
	return func(t *testing.T) storetest.Opener {
		path := filepath.Join(t.TempDir(), "data", "blocks.db")
		return func(t *testing.T, p blobstore.Params) (blobstore.Store, error) {
			s, err := Open(path, p)
			if err != nil {
				return nil, err
			}
			s.mode = mode
			return s, nil
		}
	}
}

func TestConformance(t *testing.T) { storetest.Run(t, location(commitGroup)) }

// The other commit modes exist for the benchmark; they must be correct
// too for the comparison to mean anything.
func TestConformanceSoloCommit(t *testing.T) { storetest.Run(t, location(commitSolo)) }
func TestConformanceBoltBatch(t *testing.T)  { storetest.Run(t, location(commitBoltBatch)) }

// TestConformanceSealing runs the suite with seals between Applies.
func TestConformanceSealing(t *testing.T) { storetest.RunSealing(t, location(commitGroup)) }

// fixture is a store with a key, for tests that build ops by hand.
type fixture struct {
	t    *testing.T
	path string
	p    blobstore.Params
	bk   *bucketer.Bucketer
	s    *Store
	r    *mrand.Rand
}

// newBucketer returns a bucketer of a new key: hourly periods, three of
// them live.
func newBucketer(t *testing.T) *bucketer.Bucketer {
	t.Helper()
	key, err := bucketer.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	bk, err := bucketer.New(bucketer.Config{Key: key, Period: time.Hour, Retention: 3})
	if err != nil {
		t.Fatal(err)
	}
	return bk
}

func newFixture(t *testing.T, blockSize int) *fixture {
	t.Helper()
	bk := newBucketer(t)
	var err error
	f := &fixture{
		t:    t,
		path: filepath.Join(t.TempDir(), "store", "blocks.db"),
		p:    blobstore.Params{BlockSize: blockSize, Fingerprint: bk.Fingerprint()},
		bk:   bk,
		r:    mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 1)),
	}
	f.s, err = Open(f.path, f.p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.s.Close() })
	return f
}

type testBlock struct {
	id wire.ID
	w  wire.WriteProof
}

func newTestBlock() testBlock {
	b := testBlock{id: wire.NewID()}
	if _, err := rand.Read(b.w[:]); err != nil {
		panic(err)
	}
	return b
}

func (f *fixture) data() []byte {
	d := make([]byte, f.p.BlockSize)
	for i := range d {
		d[i] = byte(f.r.Uint32())
	}
	return d
}

func (f *fixture) putOp(b testBlock, period uint64) blobstore.Op {
	d := f.data()
	return blobstore.Op{Kind: blobstore.OpPut, ID: b.id, ProofHash: b.w.Hash(), Data: d, ETag: wire.ETagOf(d), Bucket: f.bk.Bucket(period)}
}

func renewOp(b testBlock, bucket bucketer.Bucket) blobstore.Op {
	return blobstore.Op{Kind: blobstore.OpRenew, ID: b.id, ProofHash: b.w.Renew().Hash(), Bucket: bucket}
}

func (f *fixture) apply(ops ...blobstore.Op) []blobstore.Result {
	f.t.Helper()
	rs, err := f.s.Apply(context.Background(), ops)
	if err != nil {
		f.t.Fatalf("Apply of %d ops: %v", len(ops), err)
	}
	return rs
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	f := newFixture(t, wire.MinBlockSize)
	fi, err := os.Stat(f.path)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("store file mode %v, want 0600", m)
	}
	di, err := os.Stat(filepath.Dir(f.path))
	if err != nil {
		t.Fatal(err)
	}
	if m := di.Mode().Perm(); m != 0o700 {
		t.Errorf("created directory mode %v, want 0700", m)
	}
}

func TestOpenRefusesInvalidAndForeign(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "a.db"), blobstore.Params{BlockSize: 1000}); err == nil {
		t.Error("Open with a block size that is not a power of two succeeded")
	}

	foreign := filepath.Join(dir, "foreign.db")
	db, err := bbolt.Open(foreign, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = Open(foreign, blobstore.Params{BlockSize: wire.MinBlockSize})
	if err == nil || errors.Is(err, blobstore.ErrParamsMismatch) {
		t.Errorf("Open of a bbolt file that is not a store: got %v, want a refusal that is not a params mismatch", err)
	}
}

func TestOpenLockedFile(t *testing.T) {
	old := lockTimeout
	lockTimeout = 100 * time.Millisecond
	defer func() { lockTimeout = old }()
	f := newFixture(t, wire.MinBlockSize)
	s, err := Open(f.path, f.p)
	if err == nil {
		_ = s.Close()
		t.Fatal("a second Open of a store in use succeeded")
	}
	if !bytes.Contains([]byte(err.Error()), []byte("locked")) {
		t.Errorf("a second Open of a store in use: error %q does not say the file is locked", err)
	}
}

func TestParamsMismatchMessage(t *testing.T) {
	f := newFixture(t, wire.MinBlockSize)
	if err := f.s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := Open(f.path, blobstore.Params{BlockSize: 4096, Fingerprint: f.p.Fingerprint})
	if !errors.Is(err, blobstore.ErrParamsMismatch) || !bytes.Contains([]byte(err.Error()), []byte("--block-size 1024")) {
		t.Errorf("block size mismatch: error %q should wrap ErrParamsMismatch and say to run with --block-size 1024", err)
	}
	_, err = Open(f.path, blobstore.Params{BlockSize: wire.MinBlockSize})
	if !errors.Is(err, blobstore.ErrParamsMismatch) || !bytes.Contains([]byte(err.Error()), []byte("bucket key")) {
		t.Errorf("fingerprint mismatch: error %q should wrap ErrParamsMismatch and name the bucket key", err)
	}
}

// waitQueued waits until n calls wait in the group-commit queue.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	err := wait.For(5*time.Second, time.Millisecond, func() bool {
		s.group.mu.Lock()
		defer s.group.mu.Unlock()
		return len(s.group.queue) >= n
	})
	if err != nil {
		t.Fatalf("timed out waiting for %d queued calls", n)
	}
}

// waitLeaderCommitting waits until a leader has taken its batch off the
// queue, so later callers queue for the next commit.
func waitLeaderCommitting(t *testing.T, s *Store) {
	t.Helper()
	err := wait.For(5*time.Second, time.Millisecond, func() bool {
		s.group.mu.Lock()
		defer s.group.mu.Unlock()
		return s.group.busy && len(s.group.queue) == 0
	})
	if err != nil {
		t.Fatal("timed out waiting for a leader to start its commit")
	}
}

// holdWriter starts a write transaction so that the next commit waits
// for it; release lets it go.
func holdWriter(t *testing.T, s *Store) (release func()) {
	t.Helper()
	tx, err := s.db.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := tx.Rollback(); err != nil {
			t.Error(err)
		}
	}
}

type outcome struct {
	rs  []blobstore.Result
	err error
}

func (f *fixture) applyAsync(ctx context.Context, ops ...blobstore.Op) <-chan outcome {
	ch := make(chan outcome, 1)
	go func() {
		rs, err := f.s.Apply(ctx, ops)
		ch <- outcome{rs, err}
	}()
	return ch
}

// TestGroupCommitTaintedCaller makes one caller's writes fail half way in
// a shared transaction: that caller alone fails, none of its writes
// survive, and the callers beside it commit.
func TestGroupCommitTaintedCaller(t *testing.T) {
	f := newFixture(t, wire.MinBlockSize)
	plug, bad, ok1, ok2 := newTestBlock(), newTestBlock(), newTestBlock(), newTestBlock()
	boom := errors.New("injected write failure")
	testHookAfterRecord = func(ch *blobstore.Change) error {
		if ch.ID == bad.id {
			return boom
		}
		return nil
	}
	defer func() { testHookAfterRecord = nil }()

	release := holdWriter(t, f.s)
	ctx := context.Background()
	plugDone := f.applyAsync(ctx, f.putOp(plug, 1))
	// The plug's leader has left the queue and waits for the writer lock.
	waitLeaderCommitting(t, f.s)
	c1 := f.applyAsync(ctx, f.putOp(ok1, 1))
	waitQueued(t, f.s, 1)
	cb := f.applyAsync(ctx, f.putOp(ok2, 1), f.putOp(bad, 1))
	waitQueued(t, f.s, 2)
	c2 := f.applyAsync(ctx, renewOp(ok1, f.bk.Bucket(2)))
	waitQueued(t, f.s, 3)
	release()

	if o := <-plugDone; o.err != nil || o.rs[0].Status != blobstore.StatusCreated {
		t.Errorf("plug: %v %v", o.rs, o.err)
	}
	if o := <-c1; o.err != nil || o.rs[0].Status != blobstore.StatusCreated {
		t.Errorf("caller before the failing one: %v %v", o.rs, o.err)
	}
	if o := <-cb; !errors.Is(o.err, boom) {
		t.Errorf("failing caller: got %v, want the injected failure", o.err)
	}
	if o := <-c2; o.err != nil || o.rs[0].Status != blobstore.StatusRenewed {
		t.Errorf("caller after the failing one (renewing the first caller's block): %v %v", o.rs, o.err)
	}
	for name, id := range map[string]wire.ID{"ok2 (same batch as the failure)": ok2.id, "bad": bad.id} {
		if _, err := f.s.Stat(ctx, id); !blobstore.IsNotFound(err) {
			t.Errorf("block %s of the failed caller: Stat %v, want not found", name, err)
		}
	}
	st, err := f.s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Blocks != 2 || st.Buckets[f.bk.Bucket(1)] != 1 || st.Buckets[f.bk.Bucket(2)] != 1 {
		t.Errorf("Stats after a failed caller: %d blocks, %v", st.Blocks, st.Buckets)
	}
}

// TestGroupCommitAbandon cancels a caller while it waits for a commit:
// it returns at once with its context's error, and its ops are never
// written, while the others commit.
func TestGroupCommitAbandon(t *testing.T) {
	f := newFixture(t, wire.MinBlockSize)
	plug, gone1, kept, gone2 := newTestBlock(), newTestBlock(), newTestBlock(), newTestBlock()
	release := holdWriter(t, f.s)
	bg := context.Background()
	plugDone := f.applyAsync(bg, f.putOp(plug, 1))
	waitLeaderCommitting(t, f.s)
	// The queue: a caller that will give up, one that waits, and another
	// that gives up, so that one abandoned call is at the head when
	// leadership passes and one is behind the next leader.
	ctx1, cancel1 := context.WithCancel(bg)
	gone1Done := f.applyAsync(ctx1, f.putOp(gone1, 1))
	waitQueued(t, f.s, 1)
	keptDone := f.applyAsync(bg, f.putOp(kept, 1))
	waitQueued(t, f.s, 2)
	ctx2, cancel2 := context.WithCancel(bg)
	gone2Done := f.applyAsync(ctx2, f.putOp(gone2, 1))
	waitQueued(t, f.s, 3)
	cancel1()
	cancel2()
	for i, done := range []<-chan outcome{gone1Done, gone2Done} {
		select {
		case o := <-done:
			if !errors.Is(o.err, context.Canceled) {
				t.Errorf("cancelled caller %d: got %v, want context.Canceled", i+1, o.err)
			}
		case <-time.After(5 * time.Second):
			release()
			t.Fatalf("cancelled caller %d did not return while the commit was held", i+1)
		}
	}
	release()
	if o := <-plugDone; o.err != nil {
		t.Error(o.err)
	}
	if o := <-keptDone; o.err != nil || o.rs[0].Status != blobstore.StatusCreated {
		t.Errorf("caller queued between the cancelled ones: %v %v", o.rs, o.err)
	}
	for i, b := range []testBlock{gone1, gone2} {
		if _, err := f.s.Stat(bg, b.id); !blobstore.IsNotFound(err) {
			t.Errorf("block of cancelled caller %d: Stat %v, want not found", i+1, err)
		}
	}
	if _, err := f.s.Stat(bg, kept.id); err != nil {
		t.Errorf("block of the caller between them: %v", err)
	}
	// The queue is empty again and the next caller leads at once.
	f.apply(renewOp(kept, f.bk.Bucket(2)))
}

// TestMoveBucketLosesUncommittedWrites pins down a bbolt behaviour that
// the move from schema 3 (migrate.go) must not meet: MoveBucket of a
// subtree written in the same transaction moves the subtree as last
// committed. The move only moves data subtrees committed before it, and
// writes nothing else in its transactions.
func TestMoveBucketLosesUncommittedWrites(t *testing.T) {
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "move.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		a, _ := tx.CreateBucket([]byte("a"))
		b, _ := tx.CreateBucket([]byte("b"))
		x, _ := a.CreateBucket([]byte("x"))
		if err := x.Put([]byte("k"), make([]byte, 8192)); err != nil {
			return err
		}
		return a.MoveBucket([]byte("x"), b)
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.View(func(tx *bbolt.Tx) error {
		if n := len(tx.Bucket([]byte("b")).Bucket([]byte("x")).Get([]byte("k"))); n != 0 {
			t.Errorf("bbolt now keeps a write made before MoveBucket in the same transaction (%d bytes)", n)
		}
		return nil
	})
}

// TestGroupCommitWriteThenMove has callers that share one transaction
// write, renew, rewrite and renew the same blocks again (the sequences
// where schema 3, which moved data subtrees, could lose data). Every
// block must read back as last written, in the right time bucket, before
// and after a reopen.
func TestGroupCommitWriteThenMove(t *testing.T) {
	f := newFixture(t, wire.MinBlockSize)
	ctx := context.Background()
	old := newTestBlock()
	oldOp := f.putOp(old, 1)
	f.apply(oldOp)
	fresh := newTestBlock()

	release := holdWriter(t, f.s)
	plug := f.applyAsync(ctx, f.putOp(newTestBlock(), 1))
	waitLeaderCommitting(t, f.s)
	rewrite := f.putOp(old, 1)
	freshOp := f.putOp(fresh, 1)
	steps := [][]blobstore.Op{
		{renewOp(old, f.bk.Bucket(2))}, // moves a committed subtree
		{rewrite},                      // back to bucket 1, written
		{renewOp(old, f.bk.Bucket(3))}, // moves what was just written
		{freshOp},                      // created in this transaction
		{renewOp(fresh, f.bk.Bucket(2))},
		{renewOp(fresh, f.bk.Bucket(3))},
	}
	want := []blobstore.Status{blobstore.StatusRenewed, blobstore.StatusReplaced, blobstore.StatusRenewed, blobstore.StatusCreated, blobstore.StatusRenewed, blobstore.StatusRenewed}
	var dones []<-chan outcome
	for i, ops := range steps {
		dones = append(dones, f.applyAsync(ctx, ops...))
		waitQueued(t, f.s, i+1)
	}
	release()
	if o := <-plug; o.err != nil {
		t.Fatal(o.err)
	}
	for i, done := range dones {
		o := <-done
		if o.err != nil || o.rs[0].Status != want[i] {
			t.Errorf("step %d: %v %v, want %s", i+1, o.rs, o.err, want[i])
		}
	}
	check := func(when string) {
		t.Helper()
		for name, c := range map[string]struct {
			b  testBlock
			op blobstore.Op
		}{"rewritten block": {old, rewrite}, "new block": {fresh, freshOp}} {
			got, etag, err := f.s.Read(ctx, c.b.id, nil)
			if err != nil || !bytes.Equal(got, c.op.Data) || etag != c.op.ETag {
				t.Errorf("%s %s: err %v, data intact %v", name, when, err, bytes.Equal(got, c.op.Data))
			}
		}
		st, err := f.s.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Blocks != 3 || st.Buckets[f.bk.Bucket(1)] != 1 || st.Buckets[f.bk.Bucket(3)] != 2 {
			t.Errorf("Stats %s: %d blocks, %d in bucket 1 and %d in bucket 3; want 3, 1, 2", when,
				st.Blocks, st.Buckets[f.bk.Bucket(1)], st.Buckets[f.bk.Bucket(3)])
		}
	}
	check("after the shared commit")
	if err := f.s.Close(); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.s, err = Open(f.path, f.p); err != nil {
		t.Fatal(err)
	}
	check("after reopen")
}

// TestFileHoldsOnlyAllowedShapes runs a workload, then walks every bucket
// and key of the file, read-only, and checks that only the layout of the
// package doc exists: privacy checked by test, not by reading the code.
// It also scans the raw file for the proofs the workload used: only
// their hashes may ever reach the disk, even in freed pages. After a
// seal, the unsealed bucket is empty and no freed page holds ciphertext
// that was overwritten, deleted or purged.
func TestFileHoldsOnlyAllowedShapes(t *testing.T) {
	t.Run("unsealed", func(t *testing.T) { testFileShapes(t, false) })
	t.Run("sealed", func(t *testing.T) { testFileShapes(t, true) })
}

func testFileShapes(t *testing.T, seal bool) {
	f := newFixture(t, 4096)
	ctx := context.Background()
	var blocks []testBlock
	var ops []blobstore.Op
	var dead [][]byte // ciphertext no longer in the store
	live := map[wire.ID][]byte{}
	for i := 0; i < 300; i++ {
		b := newTestBlock()
		blocks = append(blocks, b)
		op := f.putOp(b, uint64(1+i%4))
		live[b.id] = op.Data
		ops = append(ops, op)
		if len(ops) == 50 {
			f.apply(ops...)
			ops = nil
		}
	}
	for i, b := range blocks {
		switch i % 6 {
		case 0:
			op := f.putOp(b, 4) // overwrite
			dead = append(dead, live[b.id])
			live[b.id] = op.Data
			f.apply(op)
		case 1:
			f.apply(renewOp(b, f.bk.Bucket(5)))
		case 2:
			dead = append(dead, live[b.id])
			delete(live, b.id)
			f.apply(blobstore.Op{Kind: blobstore.OpDelete, ID: b.id, ProofHash: b.w.Hash()})
		}
	}
	if _, err := f.s.Purge(ctx, f.bk.LiveAt(5), false); err != nil {
		t.Fatal(err)
	}
	for i, b := range blocks {
		// What the purge deleted: blocks of periods 1 and 2 never renewed
		// nor overwritten.
		if p := uint64(1 + i%4); p < 3 && i%6 != 0 && i%6 != 1 && i%6 != 2 {
			dead = append(dead, live[b.id])
			delete(live, b.id)
		}
	}
	if err := f.s.SetHighestPeriod(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if seal {
		rep, err := f.s.Seal(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("seal: %+v", rep)
		mrep, err := f.s.Merge(ctx, bucketer.LiveSet{Current: 5, Buckets: []bucketer.Bucket{{0xff}, {0xfe}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("merge: %+v", mrep)
	}
	if err := f.s.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := bbolt.Open(f.path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bbolt.Tx) error {
		var tops []string
		if err := tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			tops = append(tops, string(name))
			return nil
		}); err != nil {
			return err
		}
		if fmt.Sprint(tops) != "[blocks buckets meta records unmerged unsealed]" {
			t.Errorf("top-level buckets %v, want exactly blocks, buckets, meta, records, unmerged, unsealed", tops)
		}
		checkMetaShape(t, tx.Bucket(bucketMeta), seal)
		records := checkLeasesShape(t, tx.Bucket(bucketSets), tx.Bucket(bucketRecords))
		checkDataShape(t, tx.Bucket(bucketBlocks), records, f.p.BlockSize)
		n := checkUnsealedShape(t, tx.Bucket(bucketUnsealed))
		if seal && n != 0 {
			t.Errorf("after a seal %d blocks are still unsealed", n)
		}
		if !seal && n < len(records) {
			t.Errorf("%d blocks unsealed, fewer than the %d written since the store was created", n, len(records))
		}
		if n := checkUnsealedShape(t, tx.Bucket(bucketUnmerged)); seal && n != 0 {
			t.Errorf("after a seal and a merge %d blocks are still unmerged", n)
		}
		for _, name := range [][]byte{bucketMeta, bucketRecords, bucketBlocks, bucketSets, bucketUnsealed, bucketUnmerged} {
			if seq := tx.Bucket(name).Sequence(); seq != 0 {
				t.Errorf("bucket %s has sequence %d; no counter may be stored", name, seq)
			}
		}
		if len(records) < 100 || len(records) != len(live) {
			t.Errorf("the workload left %d blocks (%d expected): too few for the walk to mean much, or wrong", len(records), len(live))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	raw, err := os.ReadFile(f.path)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range blocks {
		r := b.w.Renew()
		if bytes.Contains(raw, b.w[:]) || bytes.Contains(raw, r[:]) {
			t.Fatalf("the raw file holds a write or renew proof of block %d", i)
		}
	}
	// Ciphertext is random: 32 bytes of it found in the file are it.
	for _, d := range live {
		if !bytes.Contains(raw, d[1000:1032]) {
			t.Fatal("a live block's ciphertext is not in the file")
		}
	}
	left := 0
	for _, d := range dead {
		if bytes.Contains(raw, d[1000:1032]) {
			left++
		}
	}
	t.Logf("%d of %d overwritten, deleted or purged ciphertexts remain in the file", left, len(dead))
	if seal && left > 0 {
		t.Errorf("after a seal %d of %d overwritten, deleted or purged ciphertexts remain in freed pages", left, len(dead))
	}
}

// checkUnsealedShape checks unsealed/{id} → flags ‖ time buckets and
// returns the number of blocks in it.
func checkUnsealedShape(t *testing.T, un *bbolt.Bucket) int {
	t.Helper()
	n := 0
	_ = un.ForEach(func(k, v []byte) error {
		n++
		switch {
		case len(k) != 16 || wire.ID(k).Validate() != nil:
			t.Errorf("unsealed holds a %d-byte key that is not a v4 block id", len(k))
		case un.Bucket(k) != nil:
			t.Error("unsealed holds a bucket")
		case len(v) < 1 || (len(v)-1)%bucketer.BucketSize != 0 || v[0]&^unsealedData != 0:
			t.Errorf("an unsealed entry of %d bytes is not a flag and time buckets", len(v))
		}
		return nil
	})
	return n
}

func checkMetaShape(t *testing.T, meta *bbolt.Bucket, merged bool) {
	t.Helper()
	want := map[string]int{"schema": 4, "block_size": 8, "fingerprint": 32, "highest_period": 8}
	if merged {
		want["merged"] = 16 // the closed period of the live set merged
	}
	seen := 0
	_ = meta.ForEach(func(k, v []byte) error {
		n, ok := want[string(k)]
		switch {
		case !ok:
			t.Errorf("meta holds an unexpected key of %d bytes", len(k))
		case meta.Bucket(k) != nil:
			t.Errorf("meta key %q is a bucket", k)
		case len(v) != n:
			t.Errorf("meta %q has %d bytes, want %d", k, len(v), n)
		default:
			seen++
		}
		return nil
	})
	if seen != len(want) {
		t.Errorf("meta holds %d of its %d keys", seen, len(want))
	}
}

// checkLeasesShape checks buckets/{time bucket}/{id} → (empty) and
// records/{id} → record: every block in exactly one time bucket, with a
// record, and no record without a time bucket. It returns the time
// bucket of every block.
func checkLeasesShape(t *testing.T, sets, recs *bbolt.Bucket) map[wire.ID][]byte {
	t.Helper()
	records := map[wire.ID][]byte{}
	_ = sets.ForEach(func(k, v []byte) error {
		set := sets.Bucket(k)
		if len(k) != bucketer.BucketSize || set == nil {
			t.Errorf("buckets holds a %d-byte key that is not a time bucket", len(k))
			return nil
		}
		if set.Sequence() != 0 {
			t.Error("a time bucket's set has a sequence")
		}
		inner := 0
		_ = set.ForEach(func(id, v []byte) error {
			inner++
			switch {
			case len(id) != 16 || wire.ID(id).Validate() != nil:
				t.Errorf("a time bucket's set holds a %d-byte key that is not a v4 block id", len(id))
			case set.Bucket(id) != nil || len(v) != 0:
				t.Errorf("a time bucket's set holds a value of %d bytes (or a bucket), want none", len(v))
			case records[wire.ID(id)] != nil:
				t.Error("a block is in two time buckets")
			default:
				records[wire.ID(id)] = bytes.Clone(k)
			}
			return nil
		})
		if inner == 0 {
			t.Error("an empty time bucket's set was left behind")
		}
		return nil
	})
	n := 0
	_ = recs.ForEach(func(id, rec []byte) error {
		n++
		switch {
		case len(id) != 16 || wire.ID(id).Validate() != nil:
			t.Errorf("records holds a %d-byte key that is not a v4 block id", len(id))
		case recs.Bucket(id) != nil || len(rec) != recordSize:
			t.Errorf("a record holds %d bytes (or is a bucket), want exactly %d", len(rec), recordSize)
		case records[wire.ID(id)] == nil:
			t.Error("a record's block is in no time bucket")
		}
		return nil
	})
	if recs.Sequence() != 0 {
		t.Error("records has a sequence")
	}
	if n != len(records) {
		t.Errorf("%d records, %d blocks in time buckets", n, len(records))
	}
	return records
}

// checkDataShape checks blocks/{id}/{id} → ciphertext against the
// blocks in time buckets.
func checkDataShape(t *testing.T, data *bbolt.Bucket, records map[wire.ID][]byte, blockSize int) {
	t.Helper()
	n := 0
	_ = data.ForEach(func(k, v []byte) error {
		n++
		nb := data.Bucket(k)
		if len(k) != 16 || nb == nil || records[wire.ID(k)] == nil {
			t.Errorf("blocks holds a %d-byte key that is not the data bucket of a block in a time bucket", len(k))
			return nil
		}
		if nb.Sequence() != 0 {
			t.Error("a block's data bucket has a sequence")
		}
		inner := 0
		_ = nb.ForEach(func(k2, v2 []byte) error {
			inner++
			if !bytes.Equal(k2, k) || nb.Bucket(k2) != nil || len(v2) != blockSize {
				t.Errorf("a block's data bucket holds a %d-byte key with %d bytes, want its own id with %d bytes", len(k2), len(v2), blockSize)
			}
			return nil
		})
		if inner != 1 {
			t.Errorf("a block's data bucket holds %d keys, want 1", inner)
		}
		return nil
	})
	if n != len(records) {
		t.Errorf("blocks holds %d blocks, the time buckets %d", n, len(records))
	}
}

// TestGroupCommitPanic: a commit that panics fails its callers with an
// error and leaves the store usable, instead of leaving later callers
// waiting for a leader that died.
func TestGroupCommitPanic(t *testing.T) {
	f := newFixture(t, wire.MinBlockSize)
	bad := newTestBlock()
	testHookAfterRecord = func(ch *blobstore.Change) error {
		if ch.ID == bad.id {
			panic("injected")
		}
		return nil
	}
	defer func() { testHookAfterRecord = nil }()
	if _, err := f.s.Apply(context.Background(), []blobstore.Op{f.putOp(bad, 1)}); err == nil {
		t.Fatal("Apply whose commit panicked succeeded")
	}
	if _, err := f.s.Stat(context.Background(), bad.id); !blobstore.IsNotFound(err) {
		t.Errorf("block of the panicked commit: Stat %v, want not found", err)
	}
	done := make(chan outcome, 1)
	go func() {
		rs, err := f.s.Apply(context.Background(), []blobstore.Op{f.putOp(newTestBlock(), 1)})
		done <- outcome{rs, err}
	}()
	select {
	case o := <-done:
		if o.err != nil || o.rs[0].Status != blobstore.StatusCreated {
			t.Errorf("Apply after a panicked commit: %v %v", o.rs, o.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Apply after a panicked commit hangs")
	}
}
