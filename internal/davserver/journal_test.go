package davserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func journalFixture(t *testing.T, dir string, key [32]byte) *fixture {
	return newFixture(t, func(o *Options) { o.JournalDir, o.JournalKey = dir, key })
}

func randomKey(t *testing.T) [32]byte {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		t.Fatal(err)
	}
	return k
}

// Journaled PUTs are read back at once (GET, PROPFIND), a MOVE and a
// DELETE right after them find them in the index, and a clean stop
// commits everything and removes the journal.
func TestJournalReadYourWrites(t *testing.T) {
	dir, key := t.TempDir(), randomKey(t)
	f := journalFixture(t, dir, key)
	if code, _ := f.do(t, "MKCOL", "/d/", nil); code != http.StatusCreated {
		t.Fatalf("MKCOL: %d", code)
	}
	files := map[string][]byte{}
	for i := range 40 {
		files[fmt.Sprintf("/d/f%02d", i)] = randomData(1000+i, uint64(i))
	}
	var wg sync.WaitGroup
	for name, data := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, _ := f.do(t, "PUT", name, data); code != http.StatusCreated {
				t.Errorf("PUT %s: %d", name, code)
			}
		}()
	}
	wg.Wait()
	for name, data := range files {
		if code, got := f.do(t, "GET", name, nil); code != http.StatusOK || !bytes.Equal(got, data) {
			t.Errorf("GET %s: %d, %d bytes, want %d", name, code, len(got), len(data))
		}
	}
	if code, got := f.do(t, "GET", "/d/f07", nil, "Range", "bytes=10-19"); code != http.StatusPartialContent || !bytes.Equal(got, files["/d/f07"][10:20]) {
		t.Errorf("range GET: %d %q", code, got)
	}
	code, body := f.do(t, "PROPFIND", "/d/", nil, "Depth", "1")
	if code != http.StatusMultiStatus || strings.Count(string(body), "<D:href>/d/f") != len(files) {
		t.Errorf("PROPFIND: %d, %d files listed, want %d", code, strings.Count(string(body), "<D:href>/d/f"), len(files))
	}
	if code, _ := f.do(t, "MOVE", "/d/f00", nil, "Destination", f.url+"/d/moved"); code != http.StatusCreated {
		t.Errorf("MOVE: %d", code)
	}
	if code, _ := f.do(t, "DELETE", "/d/f01", nil); code != http.StatusNoContent {
		t.Errorf("DELETE: %d", code)
	}
	// A version written over one still waiting is the one that stays.
	files["/d/f02"] = []byte("second version")
	if code, _ := f.do(t, "PUT", "/d/f02", files["/d/f02"]); code != http.StatusCreated && code != http.StatusNoContent {
		t.Errorf("PUT over: %d", code)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := f.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	files["/d/moved"] = files["/d/f00"]
	delete(files, "/d/f00")
	delete(files, "/d/f01")
	for name, data := range files {
		var buf bytes.Buffer
		if _, err := f.acc.GetRange(t.Context(), strings.TrimPrefix(name, "/"), 0, int64(len(data)), &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
			t.Errorf("%s in the account: %v, %d bytes, want %d", name, err, buf.Len(), len(data))
		}
	}
	if _, err := f.acc.Lookup("d/f01"); err == nil {
		t.Errorf("d/f01 is in the account after its DELETE")
	}
	if _, err := os.Stat(journalPath(dir, key)); !os.IsNotExist(err) {
		t.Errorf("the journal is still there after a clean stop: %v", err)
	}
}

// A journal left by a crash is replayed: its puts not marked done are
// served at once and committed, a done one is not put again, a record
// cut short at the end is ignored, and nothing of it is in clear.
func TestJournalReplay(t *testing.T) {
	dir, key := t.TempDir(), randomKey(t)
	path := journalPath(dir, key)
	j, live, err := openJournal(path, key)
	if err != nil || len(live) != 0 {
		t.Fatalf("a new journal: %v, %d entries", err, len(live))
	}
	now := time.Now()
	entries := []journalEntry{
		{seq: 1, name: "a/one.txt", mode: 0o644, mtime: now, data: []byte("the first file, never committed")},
		{seq: 2, name: "a/done.txt", mode: 0o644, mtime: now, data: []byte("committed, and marked so")},
		{seq: 3, name: "b/.blindkeep", mode: 0o644, mtime: now},
		{seq: 4, name: "a/two.txt", mode: 0o600, mtime: now, data: randomData(5000, 9)},
	}
	var off int64
	for _, e := range entries {
		off = j.put(e)
	}
	j.done([]uint64{2})
	if err := j.sync(off); err != nil {
		t.Fatal(err)
	}
	// The crash: the file flushed as it was, its lock let go.
	j.mu.Lock()
	j.w.Flush()
	j.f.Close()
	j.mu.Unlock()
	j.unlock()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if bytes.Contains(raw, []byte(e.name)) || (len(e.data) > 0 && bytes.Contains(raw, e.data[:16])) {
			t.Fatalf("the journal holds %s in clear", e.name)
		}
	}
	// A record cut short: its length, half its body.
	cut := append(raw, 0, 0, 1, 0)
	cut = append(cut, make([]byte, 100)...)
	if err := os.WriteFile(path, cut, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readJournal(path, randomKey(t)); err == nil {
		t.Errorf("the journal opened under another key")
	}

	f := journalFixture(t, dir, key)
	for _, e := range []journalEntry{entries[0], entries[3]} {
		if code, got := f.do(t, "GET", "/"+e.name, nil); code != http.StatusOK || !bytes.Equal(got, e.data) {
			t.Errorf("GET %s after the replay: %d, %d bytes", e.name, code, len(got))
		}
	}
	if code, _ := f.do(t, "PROPFIND", "/b/", nil, "Depth", "0"); code != http.StatusMultiStatus {
		t.Errorf("the empty folder of the journal: PROPFIND %d", code)
	}
	if code, _ := f.do(t, "GET", "/a/done.txt", nil); code != http.StatusNotFound {
		t.Errorf("a put the journal marked done was put again: GET %d", code)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := f.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, e := range []journalEntry{entries[0], entries[3]} {
		file, err := f.acc.Lookup(e.name)
		if err != nil || file.Size != uint64(len(e.data)) || file.Mode != e.mode {
			t.Errorf("%s in the account: %+v, %v", e.name, file, err)
		}
	}
	if _, err := f.acc.Lookup("b/.blindkeep"); err != nil {
		t.Errorf("the empty folder's marker: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the journal is still there after a clean stop: %v", err)
	}
}

// Two servers of one journal: the second is refused.
func TestJournalLocked(t *testing.T) {
	dir, key := t.TempDir(), randomKey(t)
	j, _, err := openJournal(journalPath(dir, key), key)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close(true)
	if _, _, err := openJournal(journalPath(dir, key), key); err == nil || !strings.Contains(err.Error(), "another blind serve webdav") {
		t.Errorf("a second server of the journal: %v", err)
	}
}

// Clients that make a folder at the same time, as rclone's transfers
// do before each PUT, take its MKCOL's 405 (made) or 423 (being made by
// another) as done and PUT into it at once: the folder must be there.
func TestJournalFolderRace(t *testing.T) {
	f := journalFixture(t, t.TempDir(), randomKey(t))
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 1500; i += 64 {
				// A new folder every 16 files: each is made while the
				// others' PUTs keep the journal busy.
				dir := fmt.Sprintf("/r%03d/", i/16)
				switch code, _ := f.do(t, "MKCOL", dir, nil); code {
				case http.StatusCreated, http.StatusMethodNotAllowed, http.StatusLocked:
				default:
					t.Errorf("MKCOL %s: %d", dir, code)
					return
				}
				if code, _ := f.do(t, "PUT", fmt.Sprintf("%sf%04d", dir, i), []byte("x")); code != http.StatusCreated {
					t.Errorf("PUT into %s right after its MKCOL: %d", dir, code)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// A journal rewritten while files are still waiting (a server too busy
// to be idle; here at every batch) keeps them: all are read back, and
// all are in the account after the stop.
func TestJournalCompact(t *testing.T) {
	dir, key := t.TempDir(), randomKey(t)
	f := journalFixture(t, dir, key)
	f.FS().small.compact = 1 // before any request starts its goroutine
	files := map[string][]byte{}
	for i := range 200 {
		files[fmt.Sprintf("/c%03d", i)] = randomData(700+i, uint64(100+i))
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for name, data := range files {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if code, _ := f.do(t, "PUT", name, data); code != http.StatusCreated {
				t.Errorf("PUT %s: %d", name, code)
			}
			if code, got := f.do(t, "GET", name, nil); code != http.StatusOK || !bytes.Equal(got, data) {
				t.Errorf("GET %s: %d, %d bytes", name, code, len(got))
			}
		}()
	}
	wg.Wait()
	// What a crash now would leave: every file not yet committed.
	live, err := readJournal(journalPath(dir, key), key)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range live {
		if want, ok := files["/"+e.name]; !ok || !bytes.Equal(e.data, want) {
			t.Errorf("the compacted journal holds %s wrong", e.name)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := f.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		var buf bytes.Buffer
		if _, err := f.acc.GetRange(t.Context(), name[1:], 0, int64(len(data)), &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
			t.Errorf("%s in the account: %v", name, err)
		}
	}
}
