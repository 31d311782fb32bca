//go:build linux

package client

import (
	"bytes"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// takesDirect reports whether dir's file system takes direct writes.
func takesDirect(t *testing.T, dir string) bool {
	t.Helper()
	f, err := os.CreateTemp(dir, "probe-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, ok := directAlign(f); !ok {
		return false
	}
	return setDirect(f, true) == nil
}

// On a file system that takes O_DIRECT a large file goes direct, all but
// its unaligned tail, and the file is left without O_DIRECT. /dev/shm is
// tmpfs, which takes it since Linux 6.6 and refuses it before: there the
// writer must fall back and still write every byte.
func TestStagedWriterDirect(t *testing.T) {
	dirs := []string{t.TempDir()}
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "blind-directio-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		dirs = append(dirs, d)
	}
	data := randomBytes(3*directMin + 7)
	for _, dir := range dirs {
		direct := takesDirect(t, dir)
		t.Logf("%s: O_DIRECT taken: %v", dir, direct)
		for _, n := range []int{directMin, directMin + 4096 + 5, len(data)} {
			w, got := writeStaged(t, dir, data[:n], true)
			if !bytes.Equal(got, data[:n]) {
				t.Fatalf("%s, %d bytes: the file holds %d other bytes", dir, n, len(got))
			}
			switch {
			case direct && w.directBytes.Load() < int64(n-4096):
				t.Fatalf("%s, %d bytes: only %d written direct", dir, n, w.directBytes.Load())
			case !direct && w.directBytes.Load() != 0:
				t.Fatalf("%s refuses O_DIRECT, yet %d bytes went direct", dir, w.directBytes.Load())
			}
		}
	}
}

// The kernel refuses a direct write at an unaligned offset (EINVAL): the
// writer then writes that buffer and the rest through the page cache,
// which is how it meets any refusal it did not foresee.
func TestStagedWriterFallsBackWhenTheKernelRefuses(t *testing.T) {
	dir := t.TempDir()
	f, err := os.CreateTemp(dir, "skewed-")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if align, ok := directAlign(f); !ok || align == 1 {
		t.Skipf("%s takes direct writes at any offset, or none: no refusal to provoke", dir)
	}
	head := []byte("an unaligned head")
	if _, err := f.Write(head); err != nil {
		t.Fatal(err)
	}
	data := randomBytes(2*directMin + 99)
	w := newStagedWriter(f, true)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("a refused direct write surfaced: %v", err)
	}
	if w.directBytes.Load() != 0 {
		t.Fatalf("%d bytes written direct at an unaligned offset", w.directBytes.Load())
	}
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil || fl&unix.O_DIRECT != 0 {
		t.Fatalf("the file is left with flags %#x (%v)", fl, err)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil || !bytes.Equal(got, append(head, data...)) {
		t.Fatalf("the file holds %d other bytes (%v)", len(got), err)
	}
}
