//go:build unix

package davserver

import (
	"errors"
	"os"
	"syscall"
)

// lockJournal takes an exclusive lock on path, so that two servers of
// one account and configuration never replay and commit one journal
// twice. The lock goes with the process: a killed server leaves none.
func lockJournal(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, errors.New("another blind serve webdav of this account and configuration is running")
	}
	return func() { f.Close() }, nil
}
