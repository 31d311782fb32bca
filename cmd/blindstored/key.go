package main

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/blindstore/blindstore/bucketer"
)

// parseKey accepts a bucket key as 64 hex characters (surrounding white
// space ignored) or as 32 raw bytes.
func parseKey(b []byte) ([]byte, error) {
	t := bytes.TrimSpace(b)
	if len(t) == 2*bucketer.KeySize {
		k := make([]byte, bucketer.KeySize)
		if _, err := hex.Decode(k, t); err == nil {
			return k, nil
		}
	}
	if len(b) == bucketer.KeySize {
		return append([]byte(nil), b...), nil
	}
	return nil, fmt.Errorf("a bucket key is %d bytes: 64 hex characters (as printed by 'blindstored keygen') or 32 raw bytes", bucketer.KeySize)
}

// loadKey returns the bucket key: from hexKey if given, else from the file
// at path. When neither exists and create is set, it writes a new key to
// path (mode 0600) and reports created, so that the caller can remove it
// again if the store refuses the new key.
func loadKey(hexKey, path string, create bool) (key []byte, created bool, err error) {
	if hexKey != "" {
		k, err := parseKey([]byte(hexKey))
		if err != nil {
			return nil, false, fmt.Errorf("--bucket-key: %w", err)
		}
		return k, false, nil
	}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		k, err := parseKey(b)
		if err != nil {
			return nil, false, fmt.Errorf("bucket key file %s: %w", path, err)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			return nil, false, fmt.Errorf("bucket key file %s is readable by others (mode %v); run: chmod 600 %s", path, fi.Mode().Perm(), path)
		}
		return k, false, nil
	case !errors.Is(err, fs.ErrNotExist) || !create:
		return nil, false, fmt.Errorf("read bucket key: %w", err)
	}
	k, err := bucketer.NewKey()
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("create key directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("create bucket key file: %w", err)
	}
	if _, err := fmt.Fprintf(f, "%x\n", k); err != nil {
		f.Close()
		os.Remove(path)
		return nil, false, fmt.Errorf("write bucket key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, false, fmt.Errorf("sync bucket key file: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, false, fmt.Errorf("close bucket key file: %w", err)
	}
	return k, true, nil
}

func newKeyHex() (string, []byte, error) {
	k, err := bucketer.NewKey()
	if err != nil {
		return "", nil, err
	}
	return hex.EncodeToString(k), k, nil
}
