package client

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// stagedSizes straddle the staging buffers and directMin, where the
// writer changes how it writes.
var stagedSizes = []int{
	0, 1, 4095, 4096, stageSize - 1, stageSize, stageSize + 1,
	directMin - 1, directMin, directMin + 1, directMin + 4096,
	directMin + stageSize + 12345, 3*directMin + 7,
}

// writeStaged writes data to a new file in dir through a stagedWriter,
// in uneven pieces as fetchChunks hands chunks, and returns the writer
// (closed) and what the file holds.
func writeStaged(t *testing.T, dir string, data []byte, mayDirect bool) (*stagedWriter, []byte) {
	t.Helper()
	f, err := os.CreateTemp(dir, "staged-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	w := newStagedWriter(f, mayDirect)
	for p, i := data, 0; len(p) > 0; i++ {
		k := min(len(p), 1+(i*40503)%(3*65536))
		n, err := w.Write(p[:k])
		if err != nil || n != k {
			t.Fatalf("Write: %d, %v", n, err)
		}
		p = p[k:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// The writers write at offsets; the file's own offset must still
	// end past the data, as after sequential writes.
	if at, err := f.Seek(0, io.SeekCurrent); err != nil || at != int64(len(data)) {
		t.Fatalf("the file's offset is %d after %d bytes (%v)", at, len(data), err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return w, got
}

func TestStagedWriterWritesEveryByteInOrder(t *testing.T) {
	dir := t.TempDir()
	data := randomBytes(stagedSizes[len(stagedSizes)-1])
	for _, mayDirect := range []bool{true, false} {
		for _, n := range stagedSizes {
			w, got := writeStaged(t, dir, data[:n], mayDirect)
			if !bytes.Equal(got, data[:n]) {
				t.Fatalf("mayDirect %v, %d bytes: the file holds %d other bytes", mayDirect, n, len(got))
			}
			if !mayDirect && w.directBytes.Load() != 0 {
				t.Fatalf("%d bytes written direct though O_DIRECT was not to be tried", w.directBytes.Load())
			}
			if n < directMin && w.directBytes.Load() != 0 {
				t.Fatalf("a file of %d bytes, under directMin, had %d written direct", n, w.directBytes.Load())
			}
		}
	}
}

// A write that fails reaches the caller, from Write or Close, and the
// writer neither blocks nor writes on after it.
func TestStagedWriterReportsWriteErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ro")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path) // read-only: every write fails
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := newStagedWriter(f, true)
	data := randomBytes(3 * directMin)
	done := make(chan error, 1)
	go func() {
		var werr error
		for p := data; len(p) > 0 && werr == nil; p = p[min(len(p), 65536):] {
			_, werr = w.Write(p[:min(len(p), 65536)])
		}
		done <- errors.Join(werr, w.Close())
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("writes to a read-only file reported no error")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the staged writer blocked after a write error")
	}
	if err := w.Close(); err == nil {
		t.Fatal("a second Close forgot the write error")
	}
}

// writeAtomic leaves nothing behind when fill fails after the staging
// buffers went to the disk, and places a whole file with its mode and
// time otherwise.
func TestWriteAtomicStaged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	data := randomBytes(directMin + stageSize + 777)
	boom := errors.New("fill failed")
	// Failing within the first buffer (no goroutine yet) and past
	// directMin (direct writes under way).
	for _, n := range []int{10, len(data)} {
		err := WriteFileAtomic(path, false, 0o640, time.Time{}, func(w io.Writer) error {
			if _, err := w.Write(data[:n]); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("got %v, want the fill's error", err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("a failed write of %d bytes left %d files behind", n, len(entries))
		}
	}
	mtime := time.Unix(1_700_000_000, 0)
	if err := WriteFileAtomic(path, false, 0o640, mtime, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the placed file holds %d other bytes (%v)", len(got), err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(mtime) {
		t.Fatalf("placed with mode %v and time %v (%v)", fi.Mode(), fi.ModTime(), err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("%d files in the directory, want the one placed", len(entries))
	}
}
