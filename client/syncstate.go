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
	"sync"
	"time"
)

// syncState is what a folder and the account agreed on at the end of the
// last sync, name by name: the base of the three-way comparison. It is
// kept on this machine only (it holds file names), mode 0600.
type syncState struct {
	Version int                  `json:"version"`
	Dir     string               `json:"dir"`
	Files   map[string]syncEntry `json:"files"`
	// Pending are entries a sync was committing to the index when it was
	// killed, or when the commit's outcome was unknown (a network
	// failure after the request was sent): see expect.
	Pending map[string]syncEntry `json:"pending,omitempty"`
	// journal, while a sync runs, gets every change of Files as it
	// happens, so that a sync killed before it saves the state still
	// knows what it settled (see set).
	journal *os.File
	// placing are the downloads a killed sync was moving into place
	// (see place), from its journal.
	placing map[string]syncEntry
	// mu guards the journal and Pending: expect is called from upload
	// goroutines.
	mu sync.Mutex
}

// journalLine is one change of the state: an entry set, or deleted; or,
// Pending, an entry about to be committed to the index (see expect).
type journalLine struct {
	Name    string     `json:"n"`
	Entry   *syncEntry `json:"e,omitempty"`
	Pending bool       `json:"p,omitempty"`
	// Placing: a download about to be moved into place (see place).
	Placing bool `json:"l,omitempty"`
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
		// No sync saved yet; a first sync that was killed left only its
		// journal, which counts all the same: without it, what that
		// sync uploaded would look like another device's addition.
		st := &syncState{Version: syncStateVersion, Dir: absDir, Files: map[string]syncEntry{}}
		st.replay(path + ".journal")
		return st, nil
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
		switch {
		case j.Placing && j.Entry != nil:
			if st.placing == nil {
				st.placing = map[string]syncEntry{}
			}
			st.placing[j.Name] = *j.Entry
			continue
		case j.Pending && j.Entry != nil:
			st.addPending(j.Name, *j.Entry)
		case j.Entry != nil:
			st.Files[j.Name] = *j.Entry
			delete(st.Pending, j.Name)
		default:
			delete(st.Files, j.Name)
			delete(st.Pending, j.Name)
		}
		delete(st.placing, j.Name)
	}
}

func (st *syncState) addPending(name string, e syncEntry) {
	if st.Pending == nil {
		st.Pending = map[string]syncEntry{}
	}
	st.Pending[name] = e
}

// openJournal starts journalling changes (not in a dry run).
func (st *syncState) openJournal(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return localError("creating the sync state directory", err)
	}
	f, err := os.OpenFile(path+".journal", os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return localError("opening the sync journal", err)
	}
	// A kill in the middle of a write leaves a torn last line; cut it
	// off, or this sync's first line would be glued to it and replay,
	// which stops at a line it cannot read, would miss all of them.
	if b, err := io.ReadAll(f); err == nil && len(b) > 0 && b[len(b)-1] != '\n' {
		if err := f.Truncate(int64(bytes.LastIndexByte(b, '\n') + 1)); err != nil {
			f.Close()
			return localError("repairing the sync journal", err)
		}
	}
	st.journal = f
	return nil
}

// set records name's new base. It goes to the journal right after the
// action it records, so that a kill between the two loses at most that
// one record: the next sync then finds the name changed on both sides,
// with the same content (recorded, no action) or, if the file was edited
// here meanwhile, with different content (a conflict copy: both versions
// kept, nothing lost). For an upload that would be wrong, the index's
// version being this device's own: it is journalled before its commit
// as well (expect).
func (st *syncState) set(name string, e syncEntry) {
	st.settle(name)
	st.Files[name] = e
	st.log(journalLine{Name: name, Entry: &e})
}

// settle ends name's pending commit, if any: the caller knows what it
// came to.
func (st *syncState) settle(name string) {
	st.mu.Lock()
	delete(st.Pending, name)
	st.mu.Unlock()
}

// expect journals that e is about to be committed to the index as name's
// version, with the local file's stat when it had that content: written
// before the commit, so that if a kill comes between the commit and
// set, the next sync learns from the index whether it happened
// (planner.settleJournal); the state keeps it until then if the sync ends
// without knowing. It leaves Files alone, and may be called from any
// goroutine.
func (st *syncState) expect(name string, e syncEntry) {
	st.mu.Lock()
	st.addPending(name, e)
	st.mu.Unlock()
	st.log(journalLine{Name: name, Entry: &e, Pending: true})
}

// place journals that the download e, whose temporary file has the
// stat e.Stat, is about to be renamed into place as name. A kill between
// the rename and set would leave the next sync a file it cannot tell
// from an edit made here; with this it knows the file it finds is the
// download if it is still the file placed (planner.settleJournal).
func (st *syncState) place(name string, e syncEntry) {
	st.log(journalLine{Name: name, Entry: &e, Placing: true})
}

func (st *syncState) del(name string) {
	st.settle(name)
	if _, ok := st.Files[name]; !ok {
		return
	}
	delete(st.Files, name)
	st.log(journalLine{Name: name})
}

func (st *syncState) log(j journalLine) {
	st.mu.Lock()
	defer st.mu.Unlock()
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
