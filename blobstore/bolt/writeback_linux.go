package bolt

import (
	"os"

	"golang.org/x/sys/unix"
)

const writebackSupported = true

// startWriteback asks the kernel to start writing the file's dirty pages
// to disk, without waiting for any of it. f may be open read-only: the
// pages are the file's, whoever wrote them.
func startWriteback(f *os.File) error {
	return unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
}
