package client

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/blindstore/blindstore/indexfile"
)

// tf is a file of a planner case, on any side: its content, mode and
// modification time (the stat a side's version was seen with).
type tf struct {
	data  string
	mode  fs.FileMode // 0: 0644
	mtime int64       // 0: 1
}

func (f tf) perm() fs.FileMode {
	if f.mode == 0 {
		return 0o644
	}
	return f.mode
}

func (f tf) hash() []byte {
	h := sha256.Sum256([]byte(f.data))
	return h[:]
}

// stat is the stat the file has locally; a marker has none.
func (f tf) stat(name string) statKey {
	if isMarker(name) {
		return statKey{}
	}
	mt := f.mtime
	if mt == 0 {
		mt = 1
	}
	return statKey{Size: int64(len(f.data)), MTime: mt, Mode: uint32(f.perm())}
}

func (f tf) entry(name string) syncEntry {
	return syncEntry{Hash: f.hash(), Mode: f.perm(), Size: uint64(len(f.data)), Stat: f.stat(name)}
}

func isMarker(name string) bool { return strings.HasSuffix("/"+name, "/"+DirMarker) }

type planCase struct {
	name                string
	local, remote, base map[string]tf
	pending, placing    map[string]tf
	ignore              string
	caseInsensitive     bool
	device              string
	// unreadable local files fail to hash; exists are in the folder but
	// were not scanned (ignored, links, temporary files).
	unreadable, exists []string
	want               []string
	// reads, if set, are the local files the planner must hash, and
	// the only ones.
	reads []string
}

var planNow = time.Date(2024, 5, 6, 7, 8, 9, 0, time.Local)

const stamp = "2024-05-06 070809"

func (c planCase) input(t *testing.T, reads map[string]int) syncInput {
	in := syncInput{
		local: map[string]localFile{}, remote: map[string]indexfile.File{},
		base: map[string]syncEntry{}, pending: map[string]syncEntry{}, placing: map[string]syncEntry{},
		caseInsensitive: c.caseInsensitive, device: c.device,
		now: func() time.Time { return planNow },
	}
	if in.device == "" {
		in.device = "laptop"
	}
	for n, f := range c.local {
		in.local[n] = localFile{stat: f.stat(n), mode: f.perm(), marker: isMarker(n)}
	}
	for n, f := range c.remote {
		in.remote[n] = indexfile.File{Name: n, Size: uint64(len(f.data)), Mode: f.perm(), Hash: [32]byte(f.hash())}
	}
	for n, f := range c.base {
		in.base[n] = f.entry(n)
	}
	for n, f := range c.pending {
		in.pending[n] = f.entry(n)
	}
	for n, f := range c.placing {
		in.placing[n] = f.entry(n)
	}
	if c.ignore != "" {
		ig, err := ParseIgnore(strings.NewReader(c.ignore))
		if err != nil {
			t.Fatal(err)
		}
		in.ignore = ig
	}
	in.hash = func(n string) ([]byte, error) {
		reads[n]++
		f, ok := c.local[n]
		switch {
		case !ok || isMarker(n):
			t.Errorf("hashed %q, which is no local file", n)
			return nil, errors.New("no such file")
		case slices.Contains(c.unreadable, n):
			return nil, errors.New("permission denied")
		}
		return f.hash(), nil
	}
	in.exists = func(n string) bool { return slices.Contains(c.exists, n) }
	return in
}

// render lists a plan as the executor carries it out.
func render(p *syncPlan) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	refused := func(n string) string {
		if caseClash(p.folded, n) {
			return " (refused: case)"
		}
		return ""
	}
	for _, r := range p.records {
		add("record %s", r.name)
	}
	for _, e := range p.skips {
		add("skip %s: %s", e.Name, e.Msg)
	}
	if p.unchanged > 0 {
		add("unchanged %d", p.unchanged)
	}
	for _, n := range p.settled {
		add("settled %s", n)
	}
	for _, n := range p.forget {
		add("forget %s", n)
	}
	for _, c := range p.conflicts {
		add("conflict %s -> %s%s", c[0], c[1], refused(c[1]))
	}
	for _, mv := range p.renamesLocal {
		add("rename-local %s -> %s%s", mv[0], mv[1], refused(mv[1]))
	}
	for _, n := range p.downloads {
		add("download %s%s", n, refused(n))
	}
	for _, n := range p.deletesLocal {
		add("delete-local %s", n)
	}
	for _, mv := range p.renamesRemote {
		add("rename-remote %s -> %s", mv[0], mv[1])
	}
	for _, n := range p.deletesRemote {
		add("delete-remote %s", n)
	}
	for _, n := range p.uploads {
		add("upload %s", n)
	}
	return out
}

// Every decision of a sync, from the three views of each name and what a
// killed sync left in its journal; no files, no server.
func TestPlanSync(t *testing.T) {
	v0, v1, v2 := tf{data: "version 0"}, tf{data: "version 1, longer"}, tf{data: "version 2, longest"}
	touched := tf{data: v0.data, mtime: 2}
	exec := tf{data: v0.data, mode: 0o755}
	keep := tf{mode: 0o755}
	cases := []planCase{
		{name: "nothing anywhere"},
		{
			name:  "unchanged: not read",
			local: map[string]tf{"a": v0, "b": v1}, remote: map[string]tf{"a": v0, "b": v1}, base: map[string]tf{"a": v0, "b": v1},
			want: []string{"unchanged 2"}, reads: []string{},
		},
		{
			name:  "touched, not changed: read, and recorded with its new stat",
			local: map[string]tf{"a": touched}, remote: map[string]tf{"a": v0}, base: map[string]tf{"a": v0},
			want: []string{"settled a"}, reads: []string{"a"},
		},
		{
			name:  "only local changed",
			local: map[string]tf{"a": v1}, remote: map[string]tf{"a": v0}, base: map[string]tf{"a": v0},
			want: []string{"upload a"}, reads: []string{"a"},
		},
		{
			name:  "only the local mode changed",
			local: map[string]tf{"a": exec}, remote: map[string]tf{"a": v0}, base: map[string]tf{"a": v0},
			want: []string{"upload a"},
		},
		{
			name:  "only remote changed: the local file is not read",
			local: map[string]tf{"a": v0}, remote: map[string]tf{"a": v1}, base: map[string]tf{"a": v0},
			want: []string{"download a"}, reads: []string{},
		},
		{
			name:  "only the remote mode changed",
			local: map[string]tf{"a": v0}, remote: map[string]tf{"a": exec}, base: map[string]tf{"a": v0},
			want: []string{"download a"},
		},
		{
			name:  "both changed, differently: a conflict copy beside it",
			local: map[string]tf{"docs/plan.txt": v1}, remote: map[string]tf{"docs/plan.txt": v2}, base: map[string]tf{"docs/plan.txt": v0},
			want: []string{"conflict docs/plan.txt -> docs/plan (conflict laptop " + stamp + ").txt"},
		},
		{
			name:  "both changed alike",
			local: map[string]tf{"a": v1}, remote: map[string]tf{"a": v1}, base: map[string]tf{"a": v0},
			want: []string{"settled a"},
		},
		{
			name:  "both changed, the local file unreadable",
			local: map[string]tf{"a": v1, "b": v0}, remote: map[string]tf{"a": v2, "b": v0}, base: map[string]tf{"a": v0, "b": v0},
			unreadable: []string{"a"},
			want:       []string{"skip a: cannot be read: permission denied", "unchanged 1"},
		},
		{
			name:  "edited here, deleted there: the edit wins",
			local: map[string]tf{"a": v1}, base: map[string]tf{"a": v0},
			want: []string{"upload a"},
		},
		{
			name:   "deleted here, edited there: the edit wins",
			remote: map[string]tf{"a": v1}, base: map[string]tf{"a": v0},
			want: []string{"download a"},
		},
		{
			name:  "unchanged here, deleted there",
			local: map[string]tf{"a": v0}, base: map[string]tf{"a": v0},
			want: []string{"delete-local a"},
		},
		{
			name:  "touched here, deleted there: still a deletion",
			local: map[string]tf{"a": touched}, base: map[string]tf{"a": v0},
			want: []string{"delete-local a"}, reads: []string{"a"},
		},
		{
			name:   "deleted here, unchanged there",
			remote: map[string]tf{"a": v0}, base: map[string]tf{"a": v0},
			want: []string{"delete-remote a"},
		},
		{
			name: "deleted on both sides: forgotten",
			base: map[string]tf{"a": v0},
			want: []string{"forget a"},
		},
		{
			name:  "new on both sides, same content",
			local: map[string]tf{"a": v1}, remote: map[string]tf{"a": v1},
			want: []string{"settled a"}, reads: []string{"a"},
		},
		{
			name:  "new on both sides, different content",
			local: map[string]tf{"a.txt": v1}, remote: map[string]tf{"a.txt": v2},
			want: []string{"conflict a.txt -> a (conflict laptop " + stamp + ").txt"},
		},
		{
			name:  "new on both sides, same content, another mode",
			local: map[string]tf{"run": exec}, remote: map[string]tf{"run": v0},
			want: []string{"conflict run -> run (conflict laptop " + stamp + ")"},
		},
		{
			name:  "new on both sides, the local file unreadable",
			local: map[string]tf{"a": v1}, remote: map[string]tf{"a": v1}, unreadable: []string{"a"},
			want: []string{"skip a: cannot be read: permission denied"},
		},
		{
			name:  "new here, new there",
			local: map[string]tf{"mine": v1}, remote: map[string]tf{"theirs": v2},
			want: []string{"download theirs", "upload mine"},
		},
		{
			name:   "conflict names: no extension, a taken name, a device name with a slash",
			local:  map[string]tf{".bashrc": v1, "n.md": v1, "n (conflict my-host " + stamp + ").md": v0},
			remote: map[string]tf{".bashrc": v2, "n.md": v2},
			base:   map[string]tf{".bashrc": v0, "n.md": v0},
			exists: []string{".bashrc (conflict my-host " + stamp + ")"},
			device: "my/host",
			want: []string{
				"conflict .bashrc -> .bashrc (conflict my-host " + stamp + " 2)",
				"conflict n.md -> n (conflict my-host " + stamp + " 2).md",
				"upload n (conflict my-host " + stamp + ").md",
			},
		},
		{
			name:  "renamed here: the index entry moves, nothing is sent; only a file of a deleted one's size is read",
			local: map[string]tf{"new/a": v0, "other": v2}, remote: map[string]tf{"a": v0}, base: map[string]tf{"a": v0},
			want: []string{"rename-remote a -> new/a", "upload other"}, reads: []string{"new/a"},
		},
		{
			name:  "renamed and changed here: no rename",
			local: map[string]tf{"b": {data: "version 0 and 1"}}, remote: map[string]tf{"a": {data: "version 0 and 2"}}, base: map[string]tf{"a": {data: "version 0 and 2"}},
			want: []string{"delete-remote a", "upload b"}, reads: []string{"b"},
		},
		{
			name:  "renamed here with another mode: no rename",
			local: map[string]tf{"b": exec}, remote: map[string]tf{"a": v0}, base: map[string]tf{"a": v0},
			want: []string{"delete-remote a", "upload b"},
		},
		{
			name:  "renamed here, the new file unreadable: sent",
			local: map[string]tf{"b": v0}, remote: map[string]tf{"a": v0}, base: map[string]tf{"a": v0}, unreadable: []string{"b"},
			want: []string{"delete-remote a", "upload b"},
		},
		{
			name:  "renamed there: the local file moves",
			local: map[string]tf{"a": v0}, remote: map[string]tf{"archive/a": v0}, base: map[string]tf{"a": v0},
			want: []string{"rename-local a -> archive/a"}, reads: []string{},
		},
		{
			name:  "two copies renamed there: paired one to one, in name order",
			local: map[string]tf{"a": v0, "b": v0}, remote: map[string]tf{"c": v0, "d": v0}, base: map[string]tf{"a": v0, "b": v0},
			want: []string{"rename-local a -> c", "rename-local b -> d"},
		},
		{
			name:  "renamed there and edited there: no rename",
			local: map[string]tf{"a": v0}, remote: map[string]tf{"b": v1}, base: map[string]tf{"a": v0},
			want: []string{"download b", "delete-local a"},
		},
		{
			name:   "empty folders: kept as markers, never read, never taken for renames",
			local:  map[string]tf{"kept/" + DirMarker: keep, "new/" + DirMarker: keep, "e": {}},
			remote: map[string]tf{"kept/" + DirMarker: keep, "gone/" + DirMarker: keep, "theirs/" + DirMarker: keep},
			base:   map[string]tf{"kept/" + DirMarker: keep, "gone/" + DirMarker: keep},
			want: []string{
				"unchanged 1", "download theirs/" + DirMarker, "delete-remote gone/" + DirMarker,
				"upload e", "upload new/" + DirMarker,
			},
			reads: []string{},
		},
		{
			name:  "empty folder: removed there; new on both sides",
			local: map[string]tf{"d/" + DirMarker: keep, "both/" + DirMarker: keep}, remote: map[string]tf{"both/" + DirMarker: keep},
			base: map[string]tf{"d/" + DirMarker: keep},
			want: []string{"settled both/" + DirMarker, "delete-local d/" + DirMarker},
		},
		{
			name:  "a remote marker whose entry changed is no change",
			local: map[string]tf{"d/" + DirMarker: keep}, remote: map[string]tf{"d/" + DirMarker: {data: "x"}},
			base: map[string]tf{"d/" + DirMarker: keep},
			want: []string{"unchanged 1"},
		},
		{
			name:   "ignored: neither downloaded, deleted nor forgotten",
			ignore: "*.o\ncache/\n!keep.o\n",
			local:  map[string]tf{"src.c": v0},
			remote: map[string]tf{"fresh.o": v1, "kept.o": v0, "cache/x": v0, "keep.o": v2, "src.c": v0},
			base:   map[string]tf{"kept.o": v0, "gone.o": v0, "src.c": v0},
			want:   []string{"unchanged 1", "download keep.o"},
		},
		{
			name:  "a pending commit the index holds is the base: the file is unchanged",
			local: map[string]tf{"a": v1}, remote: map[string]tf{"a": v1}, base: map[string]tf{"a": v0}, pending: map[string]tf{"a": v1},
			want: []string{"record a", "unchanged 1"}, reads: []string{},
		},
		{
			name:  "a pending commit of a new file the index holds, edited since: no conflict",
			local: map[string]tf{"a": v2}, remote: map[string]tf{"a": v1}, pending: map[string]tf{"a": v1},
			want: []string{"record a", "upload a"},
		},
		{
			name:   "a pending commit of a file deleted since",
			remote: map[string]tf{"a": v1}, pending: map[string]tf{"a": v1},
			want: []string{"record a", "delete-remote a"},
		},
		{
			name:  "a pending commit the index does not hold is dropped",
			local: map[string]tf{"a": v1}, remote: map[string]tf{"a": v0}, base: map[string]tf{"a": v0}, pending: map[string]tf{"a": v1, "b": v1},
			want: []string{"upload a"},
		},
		{
			name:  "a pending commit the index holds with another mode is dropped",
			local: map[string]tf{"a": v1}, remote: map[string]tf{"a": v1}, base: map[string]tf{"a": v0}, pending: map[string]tf{"a": {data: v1.data, mode: 0o600}},
			want: []string{"settled a"},
		},
		{
			name:  "a download placed by a killed sync is the base",
			local: map[string]tf{"a": v1}, remote: map[string]tf{"a": v1}, base: map[string]tf{"a": v0}, placing: map[string]tf{"a": v1},
			want: []string{"record a", "unchanged 1"}, reads: []string{},
		},
		{
			name:  "a placed download edited since: the base stays, both versions are kept",
			local: map[string]tf{"a": {data: v2.data, mtime: 5}}, remote: map[string]tf{"a": v1}, base: map[string]tf{"a": v0}, placing: map[string]tf{"a": v1},
			want: []string{"conflict a -> a (conflict laptop " + stamp + ")"},
		},
		{
			name:  "a placed download whose rename never happened",
			local: map[string]tf{"a": v0}, remote: map[string]tf{"a": v1}, base: map[string]tf{"a": v0}, placing: map[string]tf{"a": v1, "b": v1},
			want: []string{"download a"},
		},
		{
			name:            "case-insensitive: names differing in case are not written",
			caseInsensitive: true,
			local:           map[string]tf{"a.txt": v0, "x": v0},
			remote:          map[string]tf{"Readme": v1, "README": v2, "A.txt": v1, "y/B": v0},
			base:            map[string]tf{"x": v0},
			want: []string{
				"rename-local x -> y/B", "download A.txt (refused: case)", "download README (refused: case)",
				"download Readme (refused: case)", "upload a.txt",
			},
		},
		{
			name:   "case-sensitive: they are",
			local:  map[string]tf{"a.txt": v0},
			remote: map[string]tf{"Readme": v1, "README": v2, "A.txt": v1},
			want:   []string{"download A.txt", "download README", "download Readme", "upload a.txt"},
		},
		{
			name:            "case-insensitive: a rename onto a name in use is not done",
			caseInsensitive: true,
			local:           map[string]tf{"a": v0, "B": v1},
			remote:          map[string]tf{"b": v0, "B": v1},
			base:            map[string]tf{"a": v0, "B": v1},
			want:            []string{"unchanged 1", "rename-local a -> b (refused: case)"},
		},
		{
			name:       "skips come first, in name order, then every action in its phase",
			local:      map[string]tf{"z": v1, "m": v1, "c": touched, "u": v1},
			remote:     map[string]tf{"z": v2, "m": v2, "c": v0, "d": v0},
			base:       map[string]tf{"z": v0, "c": v0, "d": v0},
			unreadable: []string{"z", "m"},
			want: []string{
				"skip m: cannot be read: permission denied", "skip z: cannot be read: permission denied",
				"settled c", "delete-remote d", "upload u",
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reads := map[string]int{}
			in := c.input(t, reads)
			before := maps.Clone(in.base)
			pendingBefore, localBefore := maps.Clone(in.pending), maps.Clone(in.local)
			got := render(planSync(in))
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Fatalf("plan:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(c.want, "\n  "))
			}
			if c.reads != nil {
				names := slices.Sorted(maps.Keys(reads))
				if !slices.Equal(names, c.reads) {
					t.Fatalf("read %v, want %v", names, c.reads)
				}
			}
			// The planner changes none of its input: the executor
			// records what it decided.
			if !maps.EqualFunc(before, in.base, sameEntry) || !maps.EqualFunc(pendingBefore, in.pending, sameEntry) || !maps.Equal(localBefore, in.local) {
				t.Fatal("the planner changed its input")
			}
		})
	}
}

func sameEntry(a, b syncEntry) bool {
	return string(a.Hash) == string(b.Hash) && a.Mode == b.Mode && a.Size == b.Size && a.Stat == b.Stat
}

// A record the planner learns from the journal is the entry the killed
// sync wrote, with, for a placed download, the stat the file has now.
func TestPlanSyncRecords(t *testing.T) {
	v1 := tf{data: "downloaded"}
	c := planCase{
		local: map[string]tf{"placed": v1, "pend": v1}, remote: map[string]tf{"placed": v1, "pend": v1},
		pending: map[string]tf{"pend": v1}, placing: map[string]tf{"placed": v1},
	}
	in := c.input(t, map[string]int{})
	p := planSync(in)
	if len(p.records) != 2 {
		t.Fatalf("records: %+v", p.records)
	}
	for _, r := range p.records {
		if !sameEntry(r.entry, v1.entry(r.name)) || r.entry.Stat != in.local[r.name].stat {
			t.Fatalf("%s recorded as %+v, want %+v", r.name, r.entry, v1.entry(r.name))
		}
	}
	// A placed download not yet renamed has no stat to compare.
	in.placing["placed"] = syncEntry{Hash: v1.hash(), Mode: v1.perm(), Size: uint64(len(v1.data))}
	in.pending = nil
	if p := planSync(in); len(p.records) != 0 {
		t.Fatalf("a download with no placed stat was recorded: %+v", p.records)
	}
}

// What the scan does with each entry of the folder.
func TestClassifyScanned(t *testing.T) {
	ig, err := ParseIgnore(strings.NewReader("*.o\ncache/\n!keep.o\n"))
	if err != nil {
		t.Fatal(err)
	}
	const file, dir, link, pipe = fs.FileMode(0), fs.ModeDir, fs.ModeSymlink, fs.ModeNamedPipe
	cases := []struct {
		name string
		typ  fs.FileMode
		want scanVerdict
		why  string
	}{
		{"notes.txt", file, scanFile, ""},
		{"sub/dir", dir, scanDir, ""},
		{".notes.txt.blind-sync-0123.part", file, scanRemove, ""},
		{"sub/.x.blind-sync-0123.part", file, scanRemove, ""},
		{".notes.txt.blind-0123.part", file, scanOurs, ""},
		{".odd.blind-sync-0123.part", dir, scanOurs, ""},
		{IgnoreFile, file, scanOurs, ""},
		{"sub/" + IgnoreFile, file, scanFile, ""},
		{"main.o", file, scanIgnore, ""},
		{"keep.o", file, scanFile, ""},
		{"cache", dir, scanIgnore, ""},
		{"src/cache", dir, scanIgnore, ""},
		{"cache", file, scanFile, ""},
		{"cache/x", file, scanIgnore, ""},
		{"bad\\name", file, scanSkip, "its name cannot be stored (control characters, backslashes or too long)"},
		{"bad\x01dir", dir, scanSkip, "its name cannot be stored (control characters, backslashes or too long)"},
		{"link", link, scanSkip, "a symbolic link: not synced"},
		{"fifo", pipe, scanSkip, "not a regular file: not synced"},
		{"sub/" + DirMarker, file, scanSkip, DirMarker + " is reserved for empty folders"},
		{DirMarker, dir, scanDir, ""},
	}
	for _, c := range cases {
		got, why := classifyScanned(c.name, c.typ, ig)
		if got != c.want || why != c.why {
			t.Errorf("%q (%v): %d %q, want %d %q", c.name, c.typ, got, why, c.want, c.why)
		}
	}
	if got, _ := classifyScanned("main.o", file, nil); got != scanFile {
		t.Errorf("with no ignore file, main.o: %d", got)
	}
}

// An empty folder is kept as its marker; a folder holding anything kept
// (a file or a folder) is not.
func TestEmptyDirMarkers(t *testing.T) {
	got := emptyDirMarkers([]string{"a", "a/b", "c", "d"}, map[string]int{"a": 1, "c": 2, ".": 4})
	want := []string{"a/b/" + DirMarker, "d/" + DirMarker}
	if !slices.Equal(got, want) {
		t.Fatalf("markers %v, want %v", got, want)
	}
}
