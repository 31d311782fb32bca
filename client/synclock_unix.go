//go:build unix

package client

import (
	"os"
	"path/filepath"
	"syscall"
)

// lockFile takes an exclusive lock on path, so that two syncs of one
// folder (a --watch left running, and another by hand) never interleave.
// The lock goes with the process: a killed sync leaves no stale lock.
func lockFile(path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, localError("creating the sync state directory", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, localError("opening the sync lock", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, &Error{Kind: KindConflict, Msg: "another sync of this folder is running"}
	}
	return func() { f.Close() }, nil
}
