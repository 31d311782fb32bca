//go:build linux

package client

import (
	"io/fs"
	"syscall"
)

// statKey is what sync compares to decide, without reading it, that a
// local file is the one it last synced. The change time and inode catch
// an edit that restores the modification time (as some editors and
// archivers do) and a file replaced by another of the same size.
type statKey struct {
	Size  int64  `json:"size"`
	MTime int64  `json:"mtime"`
	CTime int64  `json:"ctime"`
	Ino   uint64 `json:"ino"`
	Mode  uint32 `json:"mode"`
}

func statKeyOf(fi fs.FileInfo) statKey {
	k := statKey{Size: fi.Size(), MTime: fi.ModTime().UnixNano(), Mode: uint32(fi.Mode())}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		k.CTime = st.Ctim.Nano()
		k.Ino = uint64(st.Ino)
	}
	return k
}

// withoutCTime is k less its change time, which a rename changes.
func (k statKey) withoutCTime() statKey {
	k.CTime = 0
	return k
}
