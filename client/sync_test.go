package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// device is one machine syncing a folder with the account.
type device struct {
	t     *testing.T
	acc   *Account
	dir   string
	state string
	name  string
	opt   func(*SyncOptions)
}

func newDevice(t *testing.T, acc *Account, name string) *device {
	return &device{t: t, acc: acc, dir: t.TempDir(), state: t.TempDir(), name: name}
}

func (d *device) sync() *SyncReport {
	d.t.Helper()
	opt := SyncOptions{Dir: d.dir, StateDir: d.state, Device: d.name}
	if d.opt != nil {
		d.opt(&opt)
	}
	rep, err := d.acc.Sync(context.Background(), opt)
	if err != nil {
		d.t.Fatalf("%s: sync: %v", d.name, err)
	}
	return rep
}

func (d *device) write(name string, data []byte, mode fs.FileMode) {
	d.t.Helper()
	p := filepath.Join(d.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		d.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		d.t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		d.t.Fatal(err)
	}
}

func (d *device) read(name string) []byte {
	d.t.Helper()
	b, err := os.ReadFile(filepath.Join(d.dir, filepath.FromSlash(name)))
	if err != nil {
		d.t.Fatalf("%s: %v", d.name, err)
	}
	return b
}

// has fails the test, saying failure with what name holds, unless name
// holds want.
func (d *device) has(name, want, failure string) {
	d.t.Helper()
	if got := string(d.read(name)); got != want {
		d.t.Fatalf(failure, got)
	}
}

// tree lists the folder: regular files with content and mode, and empty
// directories, our temporary files included (there must be none).
func (d *device) tree() map[string]string {
	d.t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(d.dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || p == d.dir {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, d.dir+string(filepath.Separator)))
		fi, err := e.Info()
		if err != nil {
			return err
		}
		if e.IsDir() {
			if ents, _ := os.ReadDir(p); len(ents) == 0 {
				out[rel+"/"] = fi.Mode().Perm().String()
			}
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[rel] = fi.Mode().Perm().String() + " " + fi.ModTime().UTC().Format(time.RFC3339Nano) + " " + string(bytesHash(b))
		return nil
	})
	if err != nil {
		d.t.Fatal(err)
	}
	return out
}

func bytesHash(b []byte) string {
	if len(b) < 32 {
		return string(b)
	}
	return string(b[:16]) + "…" + string(rune(len(b)))
}

func sameTrees(t *testing.T, a, b *device) {
	t.Helper()
	ta, tb := a.tree(), b.tree()
	var diffs []string
	for k, v := range ta {
		if tb[k] != v {
			diffs = append(diffs, k+": "+a.name+" has "+v+", "+b.name+" has "+tb[k])
		}
	}
	for k, v := range tb {
		if _, ok := ta[k]; !ok {
			diffs = append(diffs, k+": only "+b.name+" has "+v)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Fatalf("folders differ:\n%s", strings.Join(diffs, "\n"))
	}
}

func twoDevices(t *testing.T) (*testServer, *device, *device) {
	s := newTestServer(t)
	a, loc := newTestAccount(t, s)
	b, err := login(context.Background(), s.remote(t), "", loc)
	if err != nil {
		t.Fatal(err)
	}
	return s, newDevice(t, a, "laptop"), newDevice(t, b, "desk")
}

func count(rep *SyncReport) map[SyncOp]int {
	m := map[SyncOp]int{}
	for _, e := range rep.Events {
		m[e.Op]++
	}
	return m
}

// Two devices: an initial sync each way, edits (as deltas), deletions,
// renames (no data sent), empty folders, modes and times kept, and a
// concurrent edit that keeps both versions.
func TestSyncTwoDevices(t *testing.T) {
	s, a, b := twoDevices(t)
	c := PayloadCapacity(testBlockSize)
	big := randomBytes(40 * c)
	a.write("notes/todo.txt", []byte("buy milk\n"), 0o600)
	a.write("big.bin", big, 0o644)
	a.write("run.sh", []byte("#!/bin/sh\necho hi\n"), 0o755)
	if err := os.MkdirAll(filepath.Join(a.dir, "empty", "deeper"), 0o750); err != nil {
		t.Fatal(err)
	}
	if rep := a.sync(); rep.Uploaded != 4 || rep.Downloaded != 0 {
		t.Fatalf("first sync: %+v", rep)
	}
	if rep := b.sync(); rep.Downloaded != 4 || rep.Uploaded != 0 {
		t.Fatalf("second device: %+v", rep)
	}
	sameTrees(t, a, b)
	if rep := a.sync(); rep.Changed() || rep.Unchanged != 4 {
		t.Fatalf("nothing changed, yet: %+v", rep)
	}

	// An edit in the middle of the big file goes up as a delta.
	edited := append(append(append([]byte{}, big[:20*c]...), []byte("inserted")...), big[20*c:]...)
	a.write("big.bin", edited, 0o644)
	before := s.blocks(t)
	if rep := a.sync(); rep.Uploaded != 1 {
		t.Fatalf("edit: %+v", rep)
	}
	if grown := s.blocks(t) - before; grown > 8 {
		t.Fatalf("an 8-byte insertion stored %d more blocks", grown)
	}
	if rep := b.sync(); rep.Downloaded != 1 {
		t.Fatalf("edit on the other device: %+v", rep)
	}
	if !bytes.Equal(b.read("big.bin"), edited) {
		t.Fatal("the edit did not come down")
	}

	// A rename moves the index entry; no file data is sent.
	if err := os.Rename(filepath.Join(b.dir, "big.bin"), filepath.Join(b.dir, "archive", "big.bin")); err == nil {
		t.Fatal("renamed into a folder that does not exist")
	}
	if err := os.MkdirAll(filepath.Join(b.dir, "archive"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(b.dir, "big.bin"), filepath.Join(b.dir, "archive", "big.bin")); err != nil {
		t.Fatal(err)
	}
	rep := b.sync()
	if n := count(rep); n[SyncRenameRemote] != 1 || rep.Uploaded != 0 || rep.BytesUp != 0 {
		t.Fatalf("rename: %+v", rep)
	}
	rep = a.sync()
	if n := count(rep); n[SyncRenameLocal] != 1 || rep.Downloaded != 0 {
		t.Fatalf("rename on the other device: %+v", rep)
	}
	sameTrees(t, a, b)

	// Deletions both ways; a folder emptied on one side goes on the other.
	if err := os.Remove(filepath.Join(a.dir, "run.sh")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(b.dir, "notes")); err != nil {
		t.Fatal(err)
	}
	if rep := a.sync(); rep.DeletedRemote != 1 {
		t.Fatalf("local deletion: %+v", rep)
	}
	if rep := b.sync(); rep.DeletedRemote != 1 || rep.DeletedLocal != 1 {
		t.Fatalf("deletions: %+v", rep)
	}
	if rep := a.sync(); rep.DeletedLocal != 1 {
		t.Fatalf("remote deletion: %+v", rep)
	}
	if _, err := os.Stat(filepath.Join(a.dir, "notes")); !os.IsNotExist(err) {
		t.Fatalf("the emptied folder stayed: %v", err)
	}
	sameTrees(t, a, b)

	// The same file edited on both devices: both versions are kept.
	a.write("shared.txt", []byte("v1"), 0o644)
	a.sync()
	b.sync()
	a.write("shared.txt", []byte("laptop's edit"), 0o644)
	b.write("shared.txt", []byte("desk's longer edit"), 0o644)
	a.sync()
	rep = b.sync()
	if rep.Conflicts != 1 {
		t.Fatalf("concurrent edit: %+v", rep)
	}
	a.sync()
	sameTrees(t, a, b)
	b.has("shared.txt", "laptop's edit", "shared.txt = %q, want the version synced first")
	var copies []string
	for name := range b.tree() {
		if strings.HasPrefix(name, "shared (conflict desk ") {
			copies = append(copies, name)
		}
	}
	if len(copies) != 1 || string(b.read(copies[0])) != "desk's longer edit" {
		t.Fatalf("conflict copies: %v", copies)
	}
	// Two converged devices have nothing left to do.
	if rep := a.sync(); rep.Changed() {
		t.Fatalf("after convergence: %+v", rep)
	}
	if rep := b.sync(); rep.Changed() {
		t.Fatalf("after convergence: %+v", rep)
	}
}

// An edit on one side and a deletion on the other: the edit wins, on
// either side.
func TestSyncEditBeatsDeletion(t *testing.T) {
	_, a, b := twoDevices(t)
	a.write("x", []byte("one"), 0o644)
	a.write("y", []byte("two"), 0o644)
	a.sync()
	b.sync()
	a.write("x", []byte("one, edited"), 0o644)
	if err := os.Remove(filepath.Join(b.dir, "x")); err != nil {
		t.Fatal(err)
	}
	b.write("y", []byte("two, edited"), 0o644)
	if err := os.Remove(filepath.Join(a.dir, "y")); err != nil {
		t.Fatal(err)
	}
	a.sync()
	b.sync()
	a.sync()
	sameTrees(t, a, b)
	if string(a.read("x")) != "one, edited" || string(a.read("y")) != "two, edited" {
		t.Fatalf("x=%q y=%q", a.read("x"), a.read("y"))
	}
}

// Names from the account never write outside the folder: a symbolic
// link in the way is not followed, and on a case-insensitive file system
// names that differ only in case are refused. Links and special files in
// the folder are skipped with a warning.
func TestSyncUnsafeNames(t *testing.T) {
	_, a, b := twoDevices(t)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(b.dir, "link")); err != nil {
		t.Fatal(err)
	}
	putBytes(t, a.acc, "link/evil.txt", []byte("x"))
	putBytes(t, a.acc, "Readme", []byte("one"))
	putBytes(t, a.acc, "README", []byte("two"))
	yes := true
	b.opt = func(o *SyncOptions) { o.CaseInsensitive = &yes }
	rep := b.sync()
	skipped := map[string]string{}
	for _, e := range rep.Events {
		if e.Op == SyncSkip {
			skipped[e.Name] = e.Msg
		}
	}
	if !strings.Contains(skipped["link/evil.txt"], "symbolic link") {
		t.Fatalf("link/evil.txt: %q", skipped["link/evil.txt"])
	}
	if !strings.Contains(skipped["link"], "symbolic link") {
		t.Fatalf("the local link was not reported: %v", skipped)
	}
	if !strings.Contains(skipped["Readme"], "case") || !strings.Contains(skipped["README"], "case") {
		t.Fatalf("case collisions: %v", skipped)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("wrote %d entries outside the folder", len(ents))
	}
	for _, n := range []string{"Readme", "README"} {
		if _, err := os.Lstat(filepath.Join(b.dir, n)); !os.IsNotExist(err) {
			t.Fatalf("%s was written: %v", n, err)
		}
	}
	// Nothing skipped was taken for a deletion: the account keeps all.
	b.acc.mu.Lock()
	n := len(b.acc.index.Files)
	b.acc.mu.Unlock()
	if n != 3 {
		t.Fatalf("the account holds %d files, want 3", n)
	}
	// On a case-sensitive file system both come down.
	no := false
	b.opt = func(o *SyncOptions) { o.CaseInsensitive = &no }
	if rep := b.sync(); rep.Downloaded != 2 {
		t.Fatalf("case-sensitive: %+v", rep)
	}
}

func TestSyncIgnore(t *testing.T) {
	_, a, b := twoDevices(t)
	a.write(IgnoreFile, []byte("# build output\n*.o\n/secret.txt\ncache/\n!keep.o\n"), 0o644)
	a.write("main.o", []byte("obj"), 0o644)
	a.write("keep.o", []byte("obj"), 0o644)
	a.write("secret.txt", []byte("s"), 0o644)
	a.write("sub/secret.txt", []byte("not top level"), 0o644)
	a.write("cache/x", []byte("c"), 0o644)
	a.write("src/cache/y", []byte("c"), 0o644)
	a.sync()
	b.sync()
	got := b.tree()
	var names []string
	for n := range got {
		names = append(names, n)
	}
	sort.Strings(names)
	// src holds only an ignored folder: it comes down empty.
	want := "keep.o src/ sub/secret.txt"
	if strings.Join(names, " ") != want {
		t.Fatalf("synced %v, want %s", names, want)
	}
	// An ignored name is not downloaded either, and not deleted.
	putBytes(t, b.acc, "fresh.o", []byte("remote"))
	if rep := a.sync(); rep.Downloaded != 0 {
		t.Fatalf("downloaded an ignored name: %+v", rep)
	}
	if _, err := b.acc.Lookup("fresh.o"); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseIgnore(strings.NewReader("[unclosed\n")); err == nil {
		t.Fatal("a malformed pattern was accepted")
	}
}

// A file that is not the one scanned, or changes while it is read, is
// not uploaded torn: it is skipped and the next sync sends it whole.
func TestSyncTornFile(t *testing.T) {
	_, a, b := twoDevices(t)
	a.write("growing.log", []byte("first line\n"), 0o644)
	root, err := os.OpenRoot(a.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	fi, _ := root.Lstat("growing.log")
	rd := &scannedReader{open: func() (*os.File, error) { return root.Open("growing.log") }, name: "growing.log", want: statKeyOf(fi)}
	buf := make([]byte, 4)
	if _, err := rd.Read(buf); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(filepath.Join(a.dir, "growing.log"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("second line\n")
	f.Close()
	var rerr error
	for rerr == nil {
		_, rerr = rd.Read(buf)
	}
	rd.close()
	if KindOf(rerr) != KindConflict {
		t.Fatalf("reading a file that grew: %v", rerr)
	}
	a.sync()
	b.sync()
	b.has("growing.log", "first line\nsecond line\n", "got %q")
}

// A dry run reports what a sync would do and changes nothing on either
// side; the state is not written.
func TestSyncDryRun(t *testing.T) {
	_, a, b := twoDevices(t)
	a.write("one", []byte("1"), 0o644)
	putBytes(t, b.acc, "two", []byte("2"))
	a.opt = func(o *SyncOptions) { o.DryRun = true }
	rep := a.sync()
	if rep.Uploaded != 1 || rep.Downloaded != 1 || !rep.DryRun {
		t.Fatalf("dry run: %+v", rep)
	}
	if _, err := os.Stat(filepath.Join(a.dir, "two")); !os.IsNotExist(err) {
		t.Fatal("a dry run downloaded")
	}
	if _, err := a.acc.Lookup("one"); KindOf(err) != KindNotFound {
		t.Fatalf("a dry run uploaded: %v", err)
	}
	a.opt = nil
	if rep := a.sync(); rep.Uploaded != 1 || rep.Downloaded != 1 {
		t.Fatalf("real run after the dry one: %+v", rep)
	}
}

// Even an entry that bypassed the index's name checks (which refuse such
// names when an index is decoded) cannot write outside the folder: the
// download path refuses it, and os.Root would too.
func TestSyncDownloadRefusesEscapingNames(t *testing.T) {
	_, a, _ := twoDevices(t)
	putBytes(t, a.acc, "real", []byte("x"))
	f, err := a.acc.Lookup("real")
	if err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(a.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	r := &syncRun{a: a.acc, root: root, local: map[string]localFile{}, state: &syncState{Files: map[string]syncEntry{}}, rep: &SyncReport{}}
	parent := filepath.Dir(a.dir)
	for _, name := range []string{"../escaped", "/tmp/escaped", "a/../../escaped", "./x", "a//b"} {
		g := f
		g.Name = name
		if _, err := r.download(context.Background(), g); err == nil {
			t.Fatalf("%q was written", name)
		}
	}
	if _, err := os.Lstat(filepath.Join(parent, "escaped")); !os.IsNotExist(err) {
		t.Fatal("a file was written outside the folder")
	}
	if _, err := os.Lstat("/tmp/escaped"); err == nil {
		t.Fatal("a file was written at an absolute path")
	}
}

// errKilled stands for SIGKILL in syncKilledAt.
var errKilled = errors.New("killed")

// syncKilledAt runs a sync that stops at point (see testSyncHook) as a
// killed one would: it panics out there, so the journal holds what was
// written so far and the state is not saved. (The folder's lock, which
// a kill releases with the process, is released by Sync's defer.)
func (d *device) syncKilledAt(point string) {
	d.t.Helper()
	testSyncHook = func(p, _ string) {
		if p == point {
			panic(errKilled)
		}
	}
	defer func() {
		testSyncHook = nil
		if r := recover(); r != errKilled {
			if r != nil {
				panic(r)
			}
			d.t.Fatalf("%s: the sync never reached %s", d.name, point)
		}
	}()
	d.sync()
}

// The sequences that lost the newer version in TestSyncKilledConverges
// (cmd/blind): a sync killed after its upload reached the index but
// before it journalled it, and, for a file already synced before, the
// next sync killed too before it saved; then the file is edited again.
// The version that went up is this device's own, not another device's
// edit: the new edit goes up, no conflict, and the file keeps it.
func TestSyncKilledAfterUpload(t *testing.T) {
	_, a, b := twoDevices(t)
	a.write("old.txt", []byte("v0"), 0o644)
	a.sync()
	b.sync()

	// A new file (round 6, then 7, of the failing run).
	a.write("new.txt", []byte("new, first version"), 0o644)
	a.syncKilledAt("put-committed")
	b.sync()
	b.has("new.txt", "new, first version", "the killed sync's upload did not reach the index: %q")
	a.write("new.txt", []byte("new, second and longer version"), 0o644)
	if rep := a.sync(); rep.Conflicts != 0 || rep.Uploaded != 1 {
		t.Fatalf("edit after a killed upload: %+v", rep)
	}
	a.has("new.txt", "new, second and longer version", "the newer local version was replaced by %q")

	// A file in the base (rounds 5 to 7): its upload killed after the
	// commit, the next sync, which finds both sides equal, killed as
	// well before it saves.
	a.write("old.txt", []byte("v1, an edit"), 0o644)
	a.syncKilledAt("put-committed")
	b.sync()
	b.has("old.txt", "v1, an edit", "the killed sync's upload did not reach the index: %q")
	a.write("other.txt", []byte("keeps the next sync busy"), 0o644)
	a.syncKilledAt("put-committed")
	a.write("old.txt", []byte("v2, the edit after that"), 0o644)
	if rep := a.sync(); rep.Conflicts != 0 || rep.Uploaded != 1 {
		t.Fatalf("edit after killed syncs: %+v", rep)
	}
	a.has("old.txt", "v2, the edit after that", "the newer local version was replaced by %q")
	b.sync()
	sameTrees(t, a, b)
	b.has("old.txt", "v2, the edit after that", "the other device has %q")
}

// A file edited while a sync runs, after the scan, is not recorded as
// synced: a file found touched but not changed (settled) and a file just
// downloaded are recorded with the stat they had when their content was
// known, so that the edit is seen by the next sync and not overwritten
// by the next remote change.
func TestSyncEditDuringSync(t *testing.T) {
	_, a, b := twoDevices(t)
	a.write("settled.txt", []byte("v0"), 0o644)
	a.sync()
	b.sync()

	// Touched: the sync finds it equal to the base and settles it; the
	// user edits it meanwhile; then the other device edits it too.
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(a.dir, "settled.txt"), old, old); err != nil {
		t.Fatal(err)
	}
	testSyncHook = func(p, _ string) {
		if p == "planned" {
			a.write("settled.txt", []byte("edited during the sync"), 0o644)
		}
	}
	a.sync()
	testSyncHook = nil
	b.write("settled.txt", []byte("the other device's edit"), 0o644)
	b.sync()
	a.sync()
	b.sync()
	sameTrees(t, a, b)
	kept := false
	for name := range a.tree() {
		if strings.HasPrefix(name, "settled") && string(a.read(name)) == "edited during the sync" {
			kept = true
		}
	}
	if !kept {
		t.Fatalf("the edit made during the sync was lost: %v", a.tree())
	}

	// Downloaded: the user edits the file right after it is moved into
	// place.
	b.write("down.txt", []byte("from the other device"), 0o644)
	b.sync()
	testSyncHook = func(p, n string) {
		if p == "downloaded" && n == "down.txt" {
			a.write("down.txt", []byte("edited as soon as it came down"), 0o644)
		}
	}
	a.sync()
	testSyncHook = nil
	if rep := a.sync(); rep.Uploaded != 1 {
		t.Fatalf("the edit of a downloaded file did not go up: %+v", rep)
	}
	b.sync()
	sameTrees(t, a, b)
	b.has("down.txt", "edited as soon as it came down", "the other device has %q")
}

// A sync killed after it moved a download into place but before it
// journalled it: the next sync knows the file it finds is the download,
// so that the other device's next edit of it comes down with no
// conflict copy of the version downloaded.
func TestSyncKilledAfterDownload(t *testing.T) {
	_, a, b := twoDevices(t)
	b.write("doc.txt", []byte("v0"), 0o644)
	b.sync()
	a.sync()
	b.write("doc.txt", []byte("v1, an edit"), 0o644)
	b.sync()
	a.syncKilledAt("downloaded")
	a.has("doc.txt", "v1, an edit", "the killed sync did not move its download into place: %q")
	b.write("doc.txt", []byte("v2, the edit after that"), 0o644)
	b.sync()
	if rep := a.sync(); rep.Conflicts != 0 || rep.Downloaded != 1 {
		t.Fatalf("edit after a killed download: %+v", rep)
	}
	sameTrees(t, a, b)
	a.has("doc.txt", "v2, the edit after that", "a has %q")
}

// The very first sync of a folder killed after its upload reached the
// index: there is no saved state yet, only the journal, and the next
// sync must read it all the same. Then a file edited again goes up (no
// conflict, no older version over it), and a file deleted meanwhile is
// deleted on the other side (not brought back).
func TestSyncFirstSyncKilled(t *testing.T) {
	_, a, b := twoDevices(t)
	a.write("edited.txt", []byte("first version"), 0o644)
	a.write("deleted.txt", []byte("to be deleted"), 0o644)
	a.syncKilledAt("put-committed")
	b.sync()
	b.has("edited.txt", "first version", "the killed sync's upload did not reach the index: %q")
	a.write("edited.txt", []byte("second, longer version"), 0o644)
	if err := os.Remove(filepath.Join(a.dir, "deleted.txt")); err != nil {
		t.Fatal(err)
	}
	if rep := a.sync(); rep.Conflicts != 0 || rep.Uploaded != 1 || rep.DeletedRemote != 1 || rep.Downloaded != 0 {
		t.Fatalf("after a killed first sync: %+v", rep)
	}
	b.sync()
	sameTrees(t, a, b)
	b.has("edited.txt", "second, longer version", "the other device has %q")
}

// A journal whose last line a kill tore is cut back to its whole lines
// before a sync appends to it: the lines of that sync are read back, not
// lost behind the torn one.
func TestSyncJournalTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	e := syncEntry{Hash: []byte{1}, Mode: 0o644, Size: 1}
	whole, _ := json.Marshal(journalLine{Name: "before", Entry: &e})
	if err := os.WriteFile(path+".journal", append(append(whole, '\n'), `{"n":"torn","e":{"ha`...), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := loadSyncState(path, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.openJournal(path); err != nil {
		t.Fatal(err)
	}
	st.set("after", e)
	st.journal.Close()
	again, err := loadSyncState(path, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := again.Files["before"]; !ok {
		t.Fatal("the line before the torn one was lost")
	}
	if _, ok := again.Files["after"]; !ok {
		t.Fatal("the line written after the torn one was lost")
	}
	if _, ok := again.Files["torn"]; ok {
		t.Fatal("the torn line was read")
	}
}

// A report with no events lists them as [] in JSON, not null, whether it
// is marshalled by value or by pointer; events round-trip.
func TestSyncReportJSONEvents(t *testing.T) {
	for _, v := range []any{SyncReport{Unchanged: 3}, &SyncReport{}} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"events":[]`) {
			t.Fatalf("an empty report: %s", b)
		}
	}
	rep := &SyncReport{Uploaded: 1, Events: []SyncEvent{{Op: SyncUpload, Name: "a", Size: 2}}}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back SyncReport
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Uploaded != 1 || len(back.Events) != 1 || back.Events[0] != rep.Events[0] {
		t.Fatalf("round trip: %s gave %+v", b, back)
	}
}
