//go:build !linux

package client

import "io/fs"

// statKey: see syncstat_linux.go. Elsewhere size, time and mode are all
// there is without reading the file.
type statKey struct {
	Size  int64  `json:"size"`
	MTime int64  `json:"mtime"`
	Mode  uint32 `json:"mode"`
}

func statKeyOf(fi fs.FileInfo) statKey {
	return statKey{Size: fi.Size(), MTime: fi.ModTime().UnixNano(), Mode: uint32(fi.Mode())}
}

// withoutCTime: see syncstat_linux.go; there is no change time here.
func (k statKey) withoutCTime() statKey { return k }
