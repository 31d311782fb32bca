package client

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// syncState is what a folder and the account agreed on at the end of the
// last sync, name by name: the base of the three-way comparison. It is
// kept on this machine only (it holds file names), mode 0600.
type syncState struct {
	Version int                  `json:"version"`
	Dir     string               `json:"dir"`
	Files   map[string]syncEntry `json:"files"`
}

// syncEntry is one name's agreed version: its content and mode as the
// index holds them, and the local file's stat when it had that content,
// so that an unchanged file is recognised without reading it.
type syncEntry struct {
	Hash []byte      `json:"hash"`
	Mode fs.FileMode `json:"mode"`
	Size uint64      `json:"size"`
	Stat statKey     `json:"stat"`
}

const syncStateVersion = 1

// syncStatePath names the state of one folder for one account. The name
// is a hash, so that the configuration directory's listing says nothing
// of which folders are synced, and a folder synced with two accounts has
// two states that cannot be mixed up.
func syncStatePath(stateDir string, account []byte, absDir string) string {
	h := sha256.New()
	h.Write([]byte("blindstore/v1/sync\x00"))
	h.Write(account)
	h.Write([]byte(absDir))
	return filepath.Join(stateDir, "sync", hex.EncodeToString(h.Sum(nil)[:16])+".json")
}

func loadSyncState(path, absDir string) (*syncState, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &syncState{Version: syncStateVersion, Dir: absDir, Files: map[string]syncEntry{}}, nil
	}
	if err != nil {
		return nil, localError("reading the sync state", err)
	}
	var st syncState
	if err := json.Unmarshal(b, &st); err != nil || st.Version != syncStateVersion {
		// A damaged state is not a reason to delete anything: without a
		// base every difference becomes a two-sided addition, which sync
		// settles by keeping both versions.
		return nil, &Error{Kind: KindLocalIO, Msg: fmt.Sprintf("the sync state %s is damaged or from another version: move it away to start over (nothing is deleted without it)", path)}
	}
	if st.Files == nil {
		st.Files = map[string]syncEntry{}
	}
	return &st, nil
}

// save writes the state atomically: a crash leaves the old one or the
// new one, and either is a valid base (see sync.go).
func (st *syncState) save(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return localError("creating the sync state directory", err)
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, true, 0o600, time.Time{}, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}
