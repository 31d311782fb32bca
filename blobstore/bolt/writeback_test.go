package bolt

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
)

// A commit kicks the writeback of the file while it runs, and stops when
// it returns: no kick outlives the commit.
func TestWritebackKicksOnlyDuringACommit(t *testing.T) {
	if !writebackSupported {
		t.Skip("no early writeback on this system")
	}
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	w := openWriteback(path)
	defer w.close()
	if w.f == nil {
		t.Fatal("the file could not be opened for writeback")
	}
	var kicks atomic.Int64
	old := kick
	kick = func(f *os.File) error { kicks.Add(1); return startWriteback(f) }
	defer func() { kick = old }()

	w.during(func() { time.Sleep(10 * kickEvery) })
	n := kicks.Load()
	if n == 0 {
		t.Fatalf("a commit of %v kicked no writeback", 10*kickEvery)
	}
	time.Sleep(5 * kickEvery)
	if m := kicks.Load(); m != n {
		t.Fatalf("%d kicks after the commit returned", m-n)
	}
}

// The kernel takes the kick through a read-only descriptor while another
// one has written the pages.
func TestWritebackThroughAReadOnlyFile(t *testing.T) {
	if !writebackSupported {
		t.Skip("no early writeback on this system")
	}
	path := filepath.Join(t.TempDir(), "f")
	wf, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer wf.Close()
	if _, err := wf.Write(bytes.Repeat([]byte{7}, 1<<20)); err != nil {
		t.Fatal(err)
	}
	w := openWriteback(path)
	defer w.close()
	if err := startWriteback(w.f); err != nil {
		t.Fatalf("writeback refused: %v", err)
	}
}

// A store's commits run under the writeback, and what they wrote is
// there after the store is opened again.
func TestWritebackStoreCommits(t *testing.T) {
	f := newFixture(t, 4096)
	if writebackSupported && f.s.wb.f == nil {
		t.Fatal("the store opened without its writeback")
	}
	var kicks atomic.Int64
	old := kick
	kick = func(f *os.File) error { kicks.Add(1); return startWriteback(f) }
	defer func() { kick = old }()
	var ops []blobstore.Op
	for range 512 {
		ops = append(ops, f.putOp(newTestBlock(), 1))
	}
	if _, err := f.s.Apply(context.Background(), ops); err != nil {
		t.Fatal(err)
	}
	if writebackSupported {
		t.Logf("%d kicks during a commit of %d blocks", kicks.Load(), len(ops))
	}
	if err := f.s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(f.path, f.p)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, op := range ops {
		data, etag, err := s.Read(context.Background(), op.ID, nil)
		if err != nil || etag != op.ETag || !bytes.Equal(data, op.Data) {
			t.Fatalf("a committed block after reopening: ETag %v (want %v), %d bytes, %v", etag, op.ETag, len(data), err)
		}
	}
}
