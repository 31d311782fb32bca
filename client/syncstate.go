package client

import (
	"bytes"
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
	// journal, while a sync runs, gets every change of Files as it
	// happens, so that a sync killed before it saves the state still
	// knows what it settled (see set).
	journal *os.File
}

// journalLine is one change of the state: an entry set, or deleted.
type journalLine struct {
	Name  string     `json:"n"`
	Entry *syncEntry `json:"e,omitempty"`
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
	st.replay(path + ".journal")
	return &st, nil
}

// replay applies the journal of a sync that was killed. A torn last line
// (the kill came mid-write) ends it: what it described is found again by
// comparing both sides.
func (st *syncState) replay(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		var j journalLine
		if len(line) == 0 || json.Unmarshal(line, &j) != nil {
			break
		}
		if j.Entry != nil {
			st.Files[j.Name] = *j.Entry
		} else {
			delete(st.Files, j.Name)
		}
	}
}

// openJournal starts journalling changes (not in a dry run).
func (st *syncState) openJournal(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return localError("creating the sync state directory", err)
	}
	f, err := os.OpenFile(path+".journal", os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return localError("opening the sync journal", err)
	}
	st.journal = f
	return nil
}

// set records name's new base. It goes to the journal right after the
// action it records, so that a kill between the two loses at most that
// one record: the next sync then sees the name added on both sides, with
// the same content (no action) or, after a download, the older content
// here (a conflict copy: both versions kept, nothing lost).
func (st *syncState) set(name string, e syncEntry) {
	st.Files[name] = e
	st.log(journalLine{Name: name, Entry: &e})
}

func (st *syncState) del(name string) {
	if _, ok := st.Files[name]; !ok {
		return
	}
	delete(st.Files, name)
	st.log(journalLine{Name: name})
}

func (st *syncState) log(j journalLine) {
	if st.journal == nil {
		return
	}
	b, _ := json.Marshal(j)
	// One write per line: a kill leaves whole lines and at most one torn
	// one at the end. Not synced to disk: the journal is for a killed
	// process, and after a power cut comparing both sides is the answer.
	_, _ = st.journal.Write(append(b, '\n'))
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
	if err := WriteFileAtomic(path, true, 0o600, time.Time{}, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	}); err != nil {
		return err
	}
	// The state now holds everything the journal said.
	if st.journal != nil {
		st.journal.Close()
		st.journal = nil
	}
	if err := os.Remove(path + ".journal"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return localError("removing the sync journal", err)
	}
	return nil
}
