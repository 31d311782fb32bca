package davserver

import (
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/blindstore/blindstore/client"
	"github.com/blindstore/blindstore/indexfile"
)

// entry is what a listing needs of one file of the index.
type entry struct {
	size  int64
	mtime time.Time
	mode  fs.FileMode
}

func entryOf(f *indexfile.File) entry {
	return entry{size: int64(f.Size), mtime: f.ModTime, mode: f.Mode}
}

// dirNode is one folder: a prefix of file names.
type dirNode struct {
	n        int            // files under it, markers included
	children map[string]int // base name of a child (file or folder) → files under it
	mtime    time.Time      // the newest file's
}

// tree is the index seen as folders, so that a PROPFIND's Stat of every
// child is a map lookup rather than a scan of the index. It is kept
// current by the server's own changes as they commit, and rebuilt
// whole when the index changed otherwise (another device, a merge).
type tree struct {
	gen   uint64 // the index generation it was built from
	files map[string]entry
	dirs  map[string]*dirNode // "" is the root, always there
}

func newTree(files []indexfile.File, gen uint64) *tree {
	t := &tree{gen: gen, files: make(map[string]entry, len(files)), dirs: map[string]*dirNode{"": {children: map[string]int{}}}}
	for i := range files {
		t.add(files[i].Name, entryOf(&files[i]))
	}
	return t
}

// walk calls f for every folder above name, from the root down, with the
// base name of the next element of name under it.
func walk(name string, f func(dir, child string)) {
	dir, rest := "", name
	for {
		child, tail, more := strings.Cut(rest, "/")
		f(dir, child)
		if !more {
			return
		}
		dir, rest = join(dir, child), tail
	}
}

func join(dir, base string) string {
	if dir == "" {
		return base
	}
	return dir + "/" + base
}

// parent is the folder holding name ("" for the root).
func parent(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[:i]
	}
	return ""
}

// add puts or replaces the file name.
func (t *tree) add(name string, e entry) {
	_, had := t.files[name]
	t.files[name] = e
	walk(name, func(dir, child string) {
		d := t.dirs[dir]
		if d == nil {
			d = &dirNode{children: map[string]int{}}
			t.dirs[dir] = d
		}
		if !had {
			d.n++
			d.children[child]++
		}
		if e.mtime.After(d.mtime) {
			d.mtime = e.mtime
		}
	})
}

// remove deletes the file name, and the folders it leaves empty.
func (t *tree) remove(name string) {
	if _, ok := t.files[name]; !ok {
		return
	}
	delete(t.files, name)
	walk(name, func(dir, child string) {
		d := t.dirs[dir]
		d.n--
		if d.children[child]--; d.children[child] == 0 {
			delete(d.children, child)
		}
		if d.n == 0 && dir != "" {
			delete(t.dirs, dir)
		}
	})
}

// under returns the names of the files under the folder dir, markers
// included, sorted.
func (t *tree) under(dir string) []string {
	var out []string
	var visit func(d string)
	visit = func(d string) {
		node := t.dirs[d]
		if node == nil {
			return
		}
		for c := range node.children {
			n := join(d, c)
			if _, ok := t.files[n]; ok {
				out = append(out, n)
			} else {
				visit(n)
			}
		}
	}
	visit(dir)
	sort.Strings(out)
	return out
}

// named returns the index names that name stands for: the file, or
// every file under the folder (markers included); none if neither.
func (t *tree) named(name string) []string {
	if _, ok := t.files[name]; ok && !client.Hidden(name) {
		return []string{name}
	}
	return t.under(name)
}

// stat describes name: a file (not a marker), a folder, or nothing.
func (t *tree) stat(name string) (*info, bool) {
	if e, ok := t.files[name]; ok && !client.Hidden(name) {
		return &info{name: name, e: e}, true
	}
	if d, ok := t.dirs[name]; ok {
		return &info{name: name, dir: true, e: entry{mtime: d.mtime}}, true
	}
	return nil, false
}

// list describes the folder dir's children, markers left out, sorted.
func (t *tree) list(dir string) []fs.FileInfo {
	d := t.dirs[dir]
	if d == nil {
		return nil
	}
	names := make([]string, 0, len(d.children))
	for c := range d.children {
		if c != client.DirMarker {
			names = append(names, c)
		}
	}
	sort.Strings(names)
	out := make([]fs.FileInfo, 0, len(names))
	for _, c := range names {
		if fi, ok := t.stat(join(dir, c)); ok {
			out = append(out, fi)
		}
	}
	return out
}
