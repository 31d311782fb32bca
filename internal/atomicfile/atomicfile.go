// Package atomicfile writes small files (a session, a token wallet, a
// key, a report, a cached block) so that a reader, or the next run after a crash, finds
// either the old content or the new one, never a torn file.
//
// Downloads are not written here: they go through an os.Root, with
// O_DIRECT staging and the file's mode and time set before the rename
// (client's writeAtomic).
package atomicfile

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteFile writes data to path through a temporary file in the same
// directory: mode perm, flushed to disk, then renamed over path. The
// temporary file is removed on any failure.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return write(path, data, perm, true)
}

// WriteFileUnsynced is WriteFile without the flushes: a reader never
// sees a torn file, but after a crash the file may be empty or torn. It
// is for caches, whose readers check what they read and whose writers
// would otherwise wait for the disk once per entry.
func WriteFileUnsynced(path string, data []byte, perm fs.FileMode) error {
	return write(path, data, perm, false)
}

func write(path string, data []byte, perm fs.FileMode, sync bool) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	// A dot name keeps the temporary file out of listings and globs.
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}()
	// Chmod before writing, so a secret is never readable by others even
	// for a moment (CreateTemp makes 0600, but perm may be tighter still).
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if sync {
		if err := tmp.Sync(); err != nil {
			return err
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if !sync {
		return nil
	}
	// The rename is durable only once the directory is: a crash right
	// after could otherwise bring the old file back.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
