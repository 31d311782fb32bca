package client

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"strings"
)

// IgnoreFile is the name of the per-folder file of patterns that sync
// leaves alone, in both directions. Like Syncthing's .stignore, it is
// this device's own and is not synced.
const IgnoreFile = ".blindignore"

// DirMarker is the name under which an empty folder is kept in the
// index: an empty file inside it. The index lists files only; a marker is
// how a folder with nothing in it survives a round trip, as .gitkeep
// does in Git. Sync writes and reads markers, never materialises one.
const DirMarker = ".blindkeep"

// Hidden reports whether name is one of the index's own entries (an
// empty folder's marker) rather than a file of the user's: listings
// leave them out, sync and GetFolder turn them into folders.
func Hidden(name string) bool { return path.Base(name) == DirMarker }

// Ignore is a parsed .blindignore: one pattern per line, blank lines and
// lines starting with # skipped, the last matching line deciding.
//
//	*.tmp     a base name at any depth (path.Match syntax)
//	/build    anchored at the folder's top
//	logs/     a directory (and everything under it), at any depth
//	a/*.o     a pattern with a slash is anchored, as in Git
//	!keep.tmp a negation: matched names are synced after all
//
// A name is also ignored when a directory above it is.
type Ignore struct {
	rules []ignoreRule
}

type ignoreRule struct {
	pattern  string
	anchored bool
	dirOnly  bool
	negate   bool
}

// ParseIgnore reads patterns; a malformed one is an error naming its
// line, so that a typo does not silently sync what the user meant to
// keep out.
func ParseIgnore(r io.Reader) (*Ignore, error) {
	ig := &Ignore{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), " \t\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var ru ignoreRule
		if strings.HasPrefix(line, "!") {
			ru.negate, line = true, line[1:]
		}
		if strings.HasSuffix(line, "/") {
			ru.dirOnly, line = true, strings.TrimRight(line, "/")
		}
		if strings.HasPrefix(line, "/") {
			ru.anchored, line = true, strings.TrimLeft(line, "/")
		}
		if strings.Contains(line, "/") {
			ru.anchored = true
		}
		if line == "" {
			return nil, fmt.Errorf("%s line %d: empty pattern", IgnoreFile, n)
		}
		if _, err := path.Match(line, ""); err != nil {
			return nil, fmt.Errorf("%s line %d: %q: %v", IgnoreFile, n, line, err)
		}
		ru.pattern = line
		ig.rules = append(ig.rules, ru)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return ig, nil
}

// Match reports whether the slash-separated relative name (a directory if
// dir) is ignored, itself or through a directory above it.
func (ig *Ignore) Match(name string, dir bool) bool {
	if ig == nil || len(ig.rules) == 0 {
		return false
	}
	// A directory above that is ignored hides everything under it.
	for i := 0; i < len(name); i++ {
		if name[i] == '/' && ig.match(name[:i], true) {
			return true
		}
	}
	return ig.match(name, dir)
}

func (ig *Ignore) match(name string, dir bool) bool {
	ignored := false
	for _, ru := range ig.rules {
		if ru.dirOnly && !dir {
			continue
		}
		subject := name
		if !ru.anchored {
			subject = path.Base(name)
		}
		if ok, _ := path.Match(ru.pattern, subject); ok {
			ignored = !ru.negate
		}
	}
	return ignored
}
