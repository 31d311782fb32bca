package client

// The planner: every decision of a sync (see sync.go's file comment),
// taken from what the scan, the index and the sync state say, with no
// file or network I/O of its own, so that each case can be tested on its
// own. The executor around it (sync.go) scans, plans, then acts, and
// keeps the journal.

import (
	"bytes"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/blindstore/blindstore/indexfile"
)

// syncInput is what a sync's plan is decided from.
type syncInput struct {
	// local is the folder as scanned (its ignored names left out).
	local map[string]localFile
	// remote is the index's files.
	remote map[string]indexfile.File
	// base is the sync state's Files: each name's version at the end of
	// the last sync that settled it.
	base map[string]syncEntry
	// pending and placing are the commits and downloads a killed sync
	// left unfinished (syncState.Pending and .placing).
	pending, placing map[string]syncEntry
	ignore           *Ignore
	// caseInsensitive: the folder's file system folds case.
	caseInsensitive bool
	// device names this machine in conflict copies; now stamps them.
	device string
	now    func() time.Time
	// hash returns the content hash of the local file name. The planner
	// asks only when it must (a stat differs from the base, a new file
	// has the size of a deleted one), so the caller reads lazily, and
	// once per name.
	hash func(name string) ([]byte, error)
	// exists reports whether something the scan left out (an ignored
	// name, a link, a temporary file) is at name in the folder: a
	// conflict copy does not take that name.
	exists func(name string) bool
}

// syncRecord is a name's base, learned before the comparison.
type syncRecord struct {
	name  string
	entry syncEntry
}

// syncPlan is what a sync will do, in the order it does it.
type syncPlan struct {
	// records are bases learned from a killed sync's journal (its
	// pending commits the index holds, its downloads found in place):
	// recorded first, and the comparison is made against them.
	records []syncRecord
	// skips are names left alone, with the reason.
	skips     []SyncEvent
	unchanged int
	// settled are names whose sides agree: their base is (re)recorded.
	settled []string
	// forget are names gone from both sides.
	forget []string
	// conflicts: both changed. The local version moves to the conflict
	// name (second), then goes up, and the remote one comes down.
	conflicts     [][2]string
	renamesLocal  [][2]string
	downloads     []string
	deletesLocal  []string
	renamesRemote [][2]string
	deletesRemote []string
	uploads       []string
	// folded maps a case-folded name to the names (local or remote)
	// that fold to it, on a case-insensitive file system: a name whose
	// group holds two is not written (safeParents).
	folded map[string][]string
}

// planner is one planSync in progress.
type planner struct {
	in   syncInput
	base map[string]syncEntry
	p    *syncPlan
}

// planSync decides every name's action. It reads only its input (hash
// and exists are the caller's), and changes none of it.
func planSync(in syncInput) *syncPlan {
	pl := &planner{in: in, base: in.base, p: &syncPlan{}}
	pl.settleJournal()
	pl.compare()
	pl.pairRenames()
	pl.foldCase()
	pl.nameConflicts()
	return pl.p
}

// settleJournal learns what a killed sync's unfinished work came to.
// A pending commit (syncState.expect) the index holds did reach it, and
// is the name's base, as it would have been had the sync not been
// killed. Without this the base would stay the version before, and the
// next edit of the file would look like an edit on both sides, the
// index's version being this device's own upload: a conflict, and the
// file replaced by its older version. An entry the index does not hold
// never got there (or was replaced since, which the base before it
// handles): it is dropped. Likewise a download a killed sync was moving
// into place (syncState.place) is the name's base if the local file, as
// scanned, is the one it placed; if the rename never happened or the
// file changed since, the base stays as it was.
func (pl *planner) settleJournal() {
	var recs []syncRecord
	for _, name := range slices.Sorted(maps.Keys(pl.in.pending)) {
		e := pl.in.pending[name]
		if f, ok := pl.in.remote[name]; ok && bytes.Equal(f.Hash[:], e.Hash) && f.Mode == e.Mode {
			recs = append(recs, syncRecord{name, e})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(pl.in.placing)) {
		e := pl.in.placing[name]
		if l, ok := pl.in.local[name]; ok && !l.marker && samePlaced(l.stat, e.Stat) {
			e.Stat = l.stat
			recs = append(recs, syncRecord{name, e})
		}
	}
	if len(recs) == 0 {
		return
	}
	pl.base = maps.Clone(pl.in.base)
	if pl.base == nil {
		pl.base = map[string]syncEntry{}
	}
	for _, r := range recs {
		pl.base[r.name] = r.entry
	}
	pl.p.records = recs
}

func (pl *planner) skip(name, why string) {
	pl.p.skips = append(pl.p.skips, SyncEvent{Op: SyncSkip, Name: name, Msg: why})
}

// sameContent reports whether the local file holds what the index entry
// (or base) describes: same hash and mode. Markers only need to exist.
func (pl *planner) sameContent(name string, hash []byte, mode fs.FileMode) (bool, error) {
	l := pl.in.local[name]
	if l.marker {
		return true, nil
	}
	h, err := pl.in.hash(name)
	if err != nil {
		return false, err
	}
	return bytes.Equal(h, hash) && l.mode == mode, nil
}

// localChanged reports whether the local file differs from its base,
// reading it only when its stat differs.
func (pl *planner) localChanged(name string, b syncEntry) (bool, error) {
	l := pl.in.local[name]
	if l.marker || l.stat == b.Stat {
		return false, nil
	}
	same, err := pl.sameContent(name, b.Hash, b.Mode)
	return !same, err
}

func remoteChanged(f indexfile.File, b syncEntry) bool {
	if path.Base(f.Name) == DirMarker {
		return false
	}
	return !bytes.Equal(f.Hash[:], b.Hash) || f.Mode != b.Mode
}

// compare judges each name three ways: local, remote, base.
func (pl *planner) compare() {
	in, p := pl.in, pl.p
	names := map[string]bool{}
	for n := range in.local {
		names[n] = true
	}
	for n := range in.remote {
		if !in.ignore.Match(n, false) {
			names[n] = true
		}
	}
	for n := range pl.base {
		if !in.ignore.Match(n, false) {
			names[n] = true
		}
	}
	for _, n := range slices.Sorted(maps.Keys(names)) {
		b, inB := pl.base[n]
		_, inL := in.local[n]
		rf, inR := in.remote[n]
		switch {
		case !inL && !inR:
			if inB {
				p.forget = append(p.forget, n)
			}
		case inL && !inR && !inB:
			p.uploads = append(p.uploads, n)
		case !inL && inR && !inB:
			p.downloads = append(p.downloads, n)
		case inL && inR && !inB:
			same, err := pl.sameContent(n, rf.Hash[:], rf.Mode)
			switch {
			case err != nil:
				pl.skip(n, "cannot be read: "+err.Error())
			case same:
				p.settled = append(p.settled, n)
			default:
				p.conflicts = append(p.conflicts, [2]string{n})
			}
		default: // in the base
			lc, err := false, error(nil)
			if inL {
				if lc, err = pl.localChanged(n, b); err != nil {
					pl.skip(n, "cannot be read: "+err.Error())
					continue
				}
			}
			rc := inR && remoteChanged(rf, b)
			switch {
			case inL && inR && !lc && !rc:
				if in.local[n].stat != b.Stat {
					p.settled = append(p.settled, n) // touched, not changed
				} else {
					p.unchanged++
				}
			case inL && inR && lc && !rc:
				p.uploads = append(p.uploads, n)
			case inL && inR && !lc && rc:
				p.downloads = append(p.downloads, n)
			case inL && inR: // both changed
				if same, err := pl.sameContent(n, rf.Hash[:], rf.Mode); err == nil && same {
					p.settled = append(p.settled, n)
				} else {
					p.conflicts = append(p.conflicts, [2]string{n})
				}
			case inL && !inR && lc: // edited here, deleted there: the edit wins
				p.uploads = append(p.uploads, n)
			case inL && !inR:
				p.deletesLocal = append(p.deletesLocal, n)
			case !inL && inR && rc: // deleted here, edited there: the edit wins
				p.downloads = append(p.downloads, n)
			default:
				p.deletesRemote = append(p.deletesRemote, n)
			}
		}
	}
}

// pairRenames turns a deletion on one side plus an addition of the same
// content on that side into a rename, so that a renamed file moves
// instead of being sent again.
func (pl *planner) pairRenames() {
	p := pl.p
	// Local renames: a name deleted here (unchanged there) and a new
	// local name with its content. Only a file of a deleted one's size
	// is read to find out.
	p.uploads, p.deletesRemote, p.renamesRemote = pl.pair(p.uploads, p.deletesRemote, func(n string, sizes map[uint64]bool) ([]byte, fs.FileMode, bool) {
		_, inB := pl.base[n]
		_, inR := pl.in.remote[n]
		l := pl.in.local[n]
		if inB || inR || l.marker || !sizes[uint64(l.stat.Size)] {
			return nil, 0, false
		}
		h, err := pl.in.hash(n)
		return h, l.mode, err == nil
	})
	// Remote renames: a name deleted there (unchanged here) and a new
	// remote name with its content.
	p.downloads, p.deletesLocal, p.renamesLocal = pl.pair(p.downloads, p.deletesLocal, func(n string, _ map[uint64]bool) ([]byte, fs.FileMode, bool) {
		_, inB := pl.base[n]
		_, inL := pl.in.local[n]
		rf := pl.in.remote[n]
		return rf.Hash[:], rf.Mode, !inB && !inL
	})
}

// pair matches added names with deleted ones of the same content (hash
// and mode, per content) and returns the adds and deletes left, and the
// renames (deleted → added).
func (pl *planner) pair(adds, deletes []string, content func(n string, sizes map[uint64]bool) ([]byte, fs.FileMode, bool)) ([]string, []string, [][2]string) {
	if len(adds) == 0 || len(deletes) == 0 {
		return adds, deletes, nil
	}
	byContent := map[string][]string{}
	sizes := map[uint64]bool{}
	for _, n := range deletes {
		if Hidden(n) {
			continue
		}
		b := pl.base[n]
		k := fmt.Sprintf("%x %o", b.Hash, b.Mode)
		byContent[k] = append(byContent[k], n)
		sizes[b.Size] = true
	}
	var restAdds []string
	var renames [][2]string
	renamed := map[string]bool{}
	for _, n := range adds {
		h, mode, ok := content(n, sizes)
		k := fmt.Sprintf("%x %o", h, mode)
		if !ok || len(byContent[k]) == 0 {
			restAdds = append(restAdds, n)
			continue
		}
		old := byContent[k][0]
		byContent[k] = byContent[k][1:]
		renames = append(renames, [2]string{old, n})
		renamed[old] = true
	}
	var restDeletes []string
	for _, n := range deletes {
		if !renamed[n] {
			restDeletes = append(restDeletes, n)
		}
	}
	return restAdds, restDeletes, renames
}

// foldCase groups, on a case-insensitive file system, the local and
// remote names by their folded form: two names of one group would be
// one file there.
func (pl *planner) foldCase() {
	if !pl.in.caseInsensitive {
		return
	}
	folded := map[string][]string{}
	fold := func(n string) {
		k := strings.ToLower(n)
		if !slices.Contains(folded[k], n) {
			folded[k] = append(folded[k], n)
		}
	}
	// Sorted, so that a group lists its names the same way every time.
	for _, n := range slices.Sorted(maps.Keys(pl.in.local)) {
		fold(n)
	}
	for _, n := range slices.Sorted(maps.Keys(pl.in.remote)) {
		fold(n)
	}
	pl.p.folded = folded
}

// caseClash reports whether name would be one file with another name
// of the folder or the index, in the groups foldCase made: it is not
// written.
func caseClash(folded map[string][]string, name string) bool {
	return len(folded[strings.ToLower(name)]) > 1
}

// nameConflicts picks the conflict copies' names, in the order they are
// made.
func (pl *planner) nameConflicts() {
	chosen := map[string]bool{}
	for i, c := range pl.p.conflicts {
		to := conflictName(c[0], pl.in.device, pl.in.now(), func(n string) bool {
			_, inL := pl.in.local[n]
			_, inR := pl.in.remote[n]
			return inL || inR || chosen[n] || pl.in.exists(n)
		})
		chosen[to] = true
		pl.p.conflicts[i][1] = to
	}
}

// conflictName is where the local version of a file changed on both
// sides goes: next to it, saying whose and when, as Dropbox does; the
// first such name not taken.
func conflictName(name, device string, now time.Time, taken func(string) bool) string {
	dir, base := path.Split(name)
	ext := path.Ext(base)
	if ext == base { // ".bashrc": no extension
		ext = ""
	}
	stem := strings.TrimSuffix(base, ext)
	device = strings.Map(func(c rune) rune {
		if c == '/' || c == '\\' || c < 0x20 {
			return '-'
		}
		return c
	}, device)
	stamp := now.Format("2006-01-02 150405")
	for i := 1; ; i++ {
		suffix := ""
		if i > 1 {
			suffix = fmt.Sprintf(" %d", i)
		}
		c := fmt.Sprintf("%s%s (conflict %s %s%s)%s", dir, stem, device, stamp, suffix, ext)
		if !taken(c) {
			return c
		}
	}
}

// scanVerdict is what the scan does with an entry of the folder.
type scanVerdict int

const (
	scanFile   scanVerdict = iota // a regular file: synced
	scanDir                       // a folder: walked, and kept as a marker if nothing in it is
	scanOurs                      // our own (a temporary file, the ignore file): left out
	scanRemove                    // a download of a killed sync: removed
	scanIgnore                    // ignored: left out, and a folder is not walked
	scanSkip                      // not synced, reported with the reason
)

// classifyScanned decides, from its name and type alone, what the scan
// does with an entry of the folder.
func classifyScanned(name string, typ fs.FileMode, ig *Ignore) (scanVerdict, string) {
	dir := typ.IsDir()
	base, parent := path.Base(name), path.Dir(name)
	if isPartFile(base) || (parent == "." && base == IgnoreFile) {
		if strings.Contains(base, syncPartTag) && !dir {
			return scanRemove, ""
		}
		return scanOurs, ""
	}
	if ig.Match(name, dir) {
		return scanIgnore, ""
	}
	if indexfile.ValidName(name) != nil {
		return scanSkip, "its name cannot be stored (control characters, backslashes or too long)"
	}
	switch {
	case typ&fs.ModeSymlink != 0:
		return scanSkip, "a symbolic link: not synced"
	case dir:
		return scanDir, ""
	case !typ.IsRegular():
		return scanSkip, "not a regular file: not synced"
	case base == DirMarker:
		return scanSkip, DirMarker + " is reserved for empty folders"
	}
	return scanFile, ""
}

// emptyDirMarkers names the markers of the folders (dirs) in which the
// scan kept nothing (kept counts, per folder, the files and folders kept
// in it): an empty folder is synced as its marker.
func emptyDirMarkers(dirs []string, kept map[string]int) []string {
	var out []string
	for _, d := range dirs {
		if kept[d] == 0 {
			out = append(out, d+"/"+DirMarker)
		}
	}
	return out
}
