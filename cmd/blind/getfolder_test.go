package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blindstore/blindstore/wire"
)

// A folder comes back whole with get, into a directory, without
// clobbering, escaping or following links; ls lists a folder; the
// markers that keep empty folders never show in ls.
func TestGetFolderAndLs(t *testing.T) {
	srv := startServer(t)
	u := newUser(t, srv.url, "gina")
	u.signup()
	src := t.TempDir()
	content := map[string]string{
		"photos/a.txt":          "alpha",
		"photos/sub/b.txt":      strings.Repeat("b", 3*capacity+7),
		"photos/sub/deep/c.txt": "",
		"other.txt":             "other",
	}
	for name, c := range content {
		writeFile(t, src, name, c)
	}
	if err := os.MkdirAll(filepath.Join(src, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	u.must("sync", src) // the empty folder goes up as its marker

	ls := u.must("ls").stdout
	if strings.Contains(ls, ".blindkeep") || strings.Contains(ls, "0001-01-01") {
		t.Fatalf("ls shows the index's own entries:\n%s", ls)
	}
	var files []struct {
		Name string `json:"name"`
	}
	if err := lsFiles(u.must("--json", "ls").stdout, &files); err != nil || len(files) != len(content) {
		t.Fatalf("ls --json: %v %v", files, err)
	}
	for _, f := range files {
		if _, ok := content[f.Name]; !ok {
			t.Fatalf("ls --json lists %q", f.Name)
		}
	}
	if err := lsFiles(u.must("--json", "ls", "photos/sub").stdout, &files); err != nil || len(files) != 2 {
		t.Fatalf("ls photos/sub: %v %v", files, err)
	}
	if out := u.must("ls", "photos").stdout; strings.Count(out, "\n") != 3 || strings.Contains(out, "other.txt") {
		t.Fatalf("ls photos:\n%s", out)
	}
	u.expect(wire.ExitNotFound, nil, "ls", "phot") // a folder, not a string prefix

	out := filepath.Join(t.TempDir(), "back")
	u.must("get", "photos", "-o", out)
	for name, c := range content {
		rel, ok := strings.CutPrefix(name, "photos/")
		if !ok {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(out, rel)); err != nil || string(b) != c {
			t.Fatalf("%s came back as %d bytes, %v", rel, len(b), err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "other.txt")); err == nil {
		t.Fatal("get photos wrote a file from outside the folder")
	}
	// The default output is the folder's last element, here.
	here := t.TempDir()
	if r := u.runIn(here, nil, nil, "get", "photos/sub"); r.code != 0 {
		t.Fatalf("get photos/sub: exit %d: %s", r.code, r.stderr)
	}
	if b, err := os.ReadFile(filepath.Join(here, "sub", "deep", "c.txt")); err != nil || len(b) != 0 {
		t.Fatalf("get photos/sub: %v", err)
	}
	// An empty folder comes back as one.
	u.must("get", "empty", "-o", filepath.Join(here, "e"))
	if fi, err := os.Stat(filepath.Join(here, "e")); err != nil || !fi.IsDir() {
		t.Fatalf("get of an empty folder: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(here, "e")); len(entries) != 0 {
		t.Fatalf("get of an empty folder wrote %v", entries)
	}

	// Existing files are kept without --force, and nothing is written.
	if err := os.WriteFile(filepath.Join(out, "a.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(out, "sub", "b.txt")); err != nil {
		t.Fatal(err)
	}
	u.expect(wire.ExitConflict, nil, "get", "photos", "-o", out)
	if b, _ := os.ReadFile(filepath.Join(out, "a.txt")); string(b) != "mine" {
		t.Fatal("get without --force overwrote a file")
	}
	if _, err := os.Stat(filepath.Join(out, "sub", "b.txt")); err == nil {
		t.Fatal("a refused get wrote files")
	}
	u.must("get", "photos", "-o", out, "--force")
	if b, _ := os.ReadFile(filepath.Join(out, "a.txt")); string(b) != "alpha" {
		t.Fatal("get --force did not overwrite")
	}

	// A symbolic link in the way is not followed, even with --force.
	linked := filepath.Join(t.TempDir(), "linked")
	elsewhere := t.TempDir()
	if err := os.MkdirAll(linked, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, filepath.Join(linked, "sub")); err != nil {
		t.Fatal(err)
	}
	u.expect(wire.ExitConflict, nil, "get", "photos", "-o", linked, "--force")
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
		t.Fatalf("get followed a link out of its directory: %v", entries)
	}
	u.expect(wire.ExitUsage, nil, "get", "photos", "-o", "-")
	u.expect(wire.ExitNotFound, nil, "get", "nothing-here")
	if entries, _ := filepath.Glob(filepath.Join(out, "*.part")); len(entries) > 0 {
		t.Fatalf("temporary files left: %v", entries)
	}
}
