package indexfile

// Merging, docs/spec.md §12.4: when two devices update the index at once, the
// one whose compare-and-swap of the root fails re-reads the index, merges
// and retries. Merge is three-way, by name, against the last index both
// started from (base):
//
//	base  ours   theirs   result
//	–     x      –        x            added on one side
//	a     a      y        y            changed (or deleted) on one side only
//	a     x      x        x            the same change on both
//	a     –      –        –            deleted on both
//	a     x      –        x            changed on one, deleted on the other:
//	                                   the change wins, nothing is lost
//	a/–   x      y        newer, and the other under a conflict name
//
// "Changed" compares everything but Renewed; when both sides hold the same
// version, the result keeps the later renewal. The index's own Renewed
// (that of every block of the account) is the earlier of the two sides'.
// Newer means the later ModTime; on a tie theirs (already on the server)
// keeps the name. A conflict copy is named like Syncthing's, after the
// losing version's modification time:
// "dir/report.conflict-20250102-150405.txt", with "-2", "-3", … appended
// if that is taken.
//
// Two files cannot be a file and a directory at once ("a" and "a/b", added
// on different devices): the file in the way moves to a conflict name too.

import (
	"bytes"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// maxElemLen is the longest file name element most file systems accept;
// a conflict name stays within it when the original did.
const maxElemLen = 255

// Merge returns the index that combines the changes ours and theirs made
// to base. A nil index is an empty one. The result shares no memory with
// the inputs, and its Generation is one past the larger of the two.
func Merge(base, ours, theirs *Index) *Index {
	b, o, t := byName(base), byName(ours), byName(theirs)
	names := make([]string, 0, len(o)+len(t))
	for _, m := range []map[string]*File{b, o, t} {
		for n := range m {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)

	// The account's blocks are known renewed only as far as both sides
	// know it: the other side's new blocks may be older than our
	// renewal, when a period began between the two.
	out := &Index{Generation: max(gen(ours), gen(theirs)) + 1, Renewed: min(renewedOf(ours), renewedOf(theirs))}
	var losers []File
	for _, n := range names {
		bf, of, tf := b[n], o[n], t[n]
		switch {
		case sameVersion(of, tf):
			if of != nil {
				f := of.clone()
				f.Renewed = max(of.Renewed, tf.Renewed)
				out.Files = append(out.Files, f)
			}
		case sameVersion(of, bf): // only theirs changed
			if tf != nil {
				out.Files = append(out.Files, tf.clone())
			}
		case sameVersion(tf, bf): // only ours changed
			if of != nil {
				out.Files = append(out.Files, of.clone())
			}
		case of == nil:
			out.Files = append(out.Files, tf.clone())
		case tf == nil:
			out.Files = append(out.Files, of.clone())
		default:
			win, lose := tf, of
			if of.ModTime.After(tf.ModTime) {
				win, lose = of, tf
			}
			out.Files = append(out.Files, win.clone())
			losers = append(losers, lose.clone())
		}
	}

	taken := make(map[string]struct{}, len(out.Files)+len(losers))
	for i := range out.Files {
		taken[out.Files[i].Name] = struct{}{}
	}
	for _, f := range losers {
		f.Name = conflictName(f.Name, f.ModTime, taken)
		taken[f.Name] = struct{}{}
		out.Files = append(out.Files, f)
	}
	// Names only ever change in their last element, so moving every file
	// that is in the way of a directory leaves none in the way.
	var blockers []string
	for i := range out.Files {
		if dir, ok := blockingDir(out.Files[i].Name, taken); ok {
			blockers = append(blockers, dir)
		}
	}
	slices.Sort(blockers)
	blockers = slices.Compact(blockers)
	for i := range out.Files {
		f := &out.Files[i]
		if _, ok := slices.BinarySearch(blockers, f.Name); ok {
			delete(taken, f.Name)
			f.Name = conflictName(f.Name, f.ModTime, taken)
			taken[f.Name] = struct{}{}
		}
	}
	slices.SortFunc(out.Files, compareFiles)
	return out
}

func gen(x *Index) uint64 {
	if x == nil {
		return 0
	}
	return x.Generation
}

func renewedOf(x *Index) uint64 {
	if x == nil {
		return 0
	}
	return x.Renewed
}

func byName(x *Index) map[string]*File {
	if x == nil {
		return nil
	}
	m := make(map[string]*File, len(x.Files))
	for i := range x.Files {
		m[x.Files[i].Name] = &x.Files[i]
	}
	return m
}

// sameVersion reports whether a and b are the same version of a file (or
// both absent): equal in everything but Renewed.
func sameVersion(a, b *File) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Name == b.Name && a.Size == b.Size && a.Mode == b.Mode &&
		a.ModTime.Equal(b.ModTime) && a.Hash == b.Hash && a.Key == b.Key &&
		a.KeyShared == b.KeyShared && bytes.Equal(a.Inline, b.Inline) &&
		slices.Equal(a.Chunks, b.Chunks) && slices.Equal(a.Manifest, b.Manifest)
}

// conflictName returns a name for a conflict copy of name that is not in
// taken and not a directory of any name in taken. The stem is shortened
// to keep the name within MaxNameLen (and its last element within 255
// bytes if it was); a directory so deep that not even the suffix fits
// gives way to the top level.
func conflictName(name string, mtime time.Time, taken map[string]struct{}) string {
	dir, elem := path.Split(name)
	ext := path.Ext(elem)
	if ext == elem || ext == "." { // ".bashrc", "notes.": no extension to keep
		ext = ""
	}
	stem := elem[:len(elem)-len(ext)]
	stamp := ".conflict-" + mtime.UTC().Format("20060102-150405")
	for i := 1; ; i++ {
		suffix := stamp
		if i > 1 {
			suffix = fmt.Sprintf("%s-%d", stamp, i)
		}
		d, x := dir, ext
		if len(d)+1+len(suffix) > MaxNameLen {
			d = "" // no room in that directory at all: the top level has
		}
		if len(d)+1+len(suffix)+len(x) > MaxNameLen {
			x = "" // no room for the extension
		}
		limit := MaxNameLen - len(d)
		if len(elem) <= maxElemLen {
			limit = min(limit, maxElemLen)
		}
		c := d + truncateUTF8(stem, limit-len(suffix)-len(x)) + suffix + x
		if _, ok := taken[c]; ok {
			continue
		}
		if isDir(c, taken) {
			continue
		}
		return c
	}
}

// isDir reports whether any name in taken lies under dir.
func isDir(dir string, taken map[string]struct{}) bool {
	for n := range taken {
		if strings.HasPrefix(n, dir+"/") {
			return true
		}
	}
	return false
}

// truncateUTF8 shortens s to at most n bytes without splitting a rune.
func truncateUTF8(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
