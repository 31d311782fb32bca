//go:build !unix

package client

import (
	"os"
	"path/filepath"
)

// lockFile: see synclock_unix.go. Without flock, the lock is a file
// created exclusively; a killed sync leaves it behind, and the message
// says so.
func lockFile(path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, localError("creating the sync state directory", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, &Error{Kind: KindConflict, Msg: "another sync of this folder is running (or one was killed: remove " + path + ")"}
	}
	f.Close()
	return func() { os.Remove(path) }, nil
}
