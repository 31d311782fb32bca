package davserver

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/blindstore/blindstore/client"
	"github.com/blindstore/blindstore/indexfile"
)

func listNames(t *tree, dir string) []string {
	var out []string
	for _, fi := range t.list(dir) {
		n := fi.Name()
		if fi.IsDir() {
			n += "/"
		}
		out = append(out, n)
	}
	return out
}

// The tree answers what the index's names imply: folders exist while a
// file (or a marker) lies under them, markers are never listed, and
// adding and removing keeps it equal to a tree built anew.
func TestTree(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	files := []indexfile.File{
		{Name: "a/b/c.txt", Size: 3, ModTime: now},
		{Name: "a/d.txt", Size: 4, ModTime: now.Add(time.Hour)},
		{Name: "e/" + client.DirMarker, ModTime: now},
		{Name: "f", Size: 1, ModTime: now},
	}
	tr := newTree(files, 7)
	if got := listNames(tr, ""); !slices.Equal(got, []string{"a/", "e/", "f"}) {
		t.Errorf("root lists %q", got)
	}
	if got := listNames(tr, "e"); len(got) != 0 {
		t.Errorf("an empty folder lists %q", got)
	}
	if fi, ok := tr.stat("a"); !ok || !fi.IsDir() || !fi.ModTime().Equal(now.Add(time.Hour)) {
		t.Errorf("stat a: %v %v", fi, ok)
	}
	if _, ok := tr.stat("e/" + client.DirMarker); ok {
		t.Error("a marker stats as a file")
	}
	if got := tr.under("a"); !slices.Equal(got, []string{"a/b/c.txt", "a/d.txt"}) {
		t.Errorf("under a: %q", got)
	}
	tr.remove("a/b/c.txt")
	if _, ok := tr.stat("a/b"); ok {
		t.Error("a folder with nothing left under it is still there")
	}
	tr.add("a/d.txt", entry{size: 9, mtime: now})
	tr.add("g/h", entry{size: 2, mtime: now})
	fresh := newTree([]indexfile.File{
		{Name: "a/d.txt", Size: 9, ModTime: now},
		{Name: "e/" + client.DirMarker, ModTime: now},
		{Name: "f", Size: 1, ModTime: now},
		{Name: "g/h", Size: 2, ModTime: now},
	}, 0)
	for _, d := range []string{"", "a", "e", "g"} {
		if got, want := listNames(tr, d), listNames(fresh, d); !slices.Equal(got, want) {
			t.Errorf("%q after changes lists %q, a fresh tree %q", d, got, want)
		}
	}
	if len(tr.files) != len(fresh.files) || len(tr.dirs) != len(fresh.dirs) {
		t.Errorf("after changes: %d files, %d folders; a fresh tree %d, %d", len(tr.files), len(tr.dirs), len(fresh.files), len(fresh.dirs))
	}
}

func TestParseRange(t *testing.T) {
	for h, want := range map[string]*byteRange{
		"bytes=0-99":    {0, 100},
		"bytes=100-100": {100, 1},
		"bytes=5-":      nil,
		"bytes=-5":      nil,
		"bytes=0-1,4-5": nil,
		"bytes=9-3":     nil,
		"items=0-1":     nil,
		"bytes=x-1":     nil,
		"":              nil,
	} {
		got := parseRange(h)
		if (got == nil) != (want == nil) || (got != nil && *got != *want) {
			t.Errorf("parseRange(%q) = %v, want %v", h, got, want)
		}
	}
}

// An empty namespace prefix is refused (litmus's propfind_invalid2);
// well-formed bodies pass through whole.
func TestCheckXMLBody(t *testing.T) {
	for body, bad := range map[string]bool{
		`<D:propfind xmlns:D="DAV:"><D:prop><bar:foo xmlns:bar=""/></D:prop></D:propfind>`: true,
		`<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>`:                             false,
		`<propfind xmlns="DAV:"><prop><foo xmlns=""/></prop></propfind>`:                   false,
	} {
		r, _ := http.NewRequest("PROPFIND", "/", strings.NewReader(body))
		msg := checkXMLBody(r)
		if (msg != "") != bad {
			t.Errorf("%s: %q", body, msg)
		}
		rest := new(strings.Builder)
		if _, err := io.Copy(rest, r.Body); err != nil || rest.String() != body {
			t.Errorf("%s: the body passed on is %q", body, rest)
		}
	}
}
