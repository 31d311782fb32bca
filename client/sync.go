package client

// Sync makes a folder and the account agree (docs/design.md §7).
//
// Every name is judged three ways: the folder now (local), the account's
// index now (remote), and the version both sides held at the end of the
// last sync that settled that name (the base, kept in the sync state on
// this machine). A side whose version differs from the base changed it;
// a change on one side is carried to the other; changes on both sides
// that differ keep both versions, the local one under a conflict name.
//
// Crash safety follows from the base being written only after a name's
// action is complete on both sides: a crash leaves a name either as it
// was (the next run redoes the action) or done on both sides but not yet
// recorded (the next run finds both sides equal and records it). An
// upload is journalled before its commit too, as pending: between its
// commit and its record the user may edit the file again, and the next
// run must not take its own upload in the index for another device's
// edit (syncState.expect); likewise a download before its rename
// (syncState.place). Names whose sides agree are recorded first,
// with the stat they were scanned with, never a later one: an edit made
// during a sync is never recorded as synced.
//
// A sync scans the folder, plans, then acts: every decision is the
// planner's (syncplan.go), which does no I/O, and this file does what it
// decided and keeps the journal.
//
// Local files are replaced by rename of a verified temporary file, and a
// local file is replaced, renamed or removed only if it is still the one
// that was scanned; the account changes only by index compare-and-swap.

import (
	"bytes"
	"context"
	cryptorand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/blindstore/blindstore/indexfile"
)

// SyncOptions configures a sync.
type SyncOptions struct {
	// Dir is the folder.
	Dir string
	// StateDir is where the sync state lives: the client's
	// configuration directory.
	StateDir string
	// DryRun plans and reports, and changes nothing on either side.
	DryRun bool
	// Device names this machine in conflict copies (default: the host
	// name).
	Device string
	// CaseInsensitive says whether the folder's file system folds case;
	// nil probes it.
	CaseInsensitive *bool
	// Event, if set, is told of each action as it is done (planned, in a
	// dry run) and of each name skipped.
	Event func(SyncEvent)
	// Now is the clock for conflict names (default time.Now).
	Now func() time.Time
}

// SyncOp is the kind of a sync action.
type SyncOp string

// The actions of a sync.
const (
	SyncUpload       SyncOp = "upload"        // a local addition or edit goes up
	SyncDownload     SyncOp = "download"      // a remote addition or edit comes down
	SyncRenameRemote SyncOp = "rename-remote" // a local rename, carried to the index
	SyncRenameLocal  SyncOp = "rename-local"  // a remote rename, carried to the folder
	SyncDeleteRemote SyncOp = "delete-remote" // a local deletion goes up
	SyncDeleteLocal  SyncOp = "delete-local"  // a remote deletion comes down
	SyncConflict     SyncOp = "conflict"      // both changed: the local version moves to To
	SyncSkip         SyncOp = "skip"          // left alone, for the reason in Msg
)

// SyncEvent is one action or skipped name.
type SyncEvent struct {
	Op   SyncOp `json:"op"`
	Name string `json:"name"`
	To   string `json:"to,omitempty"`
	Size uint64 `json:"size,omitempty"`
	Msg  string `json:"message,omitempty"`
}

// SyncReport sums up a sync.
type SyncReport struct {
	DryRun        bool        `json:"dry_run"`
	Uploaded      int         `json:"uploaded"`
	Downloaded    int         `json:"downloaded"`
	RenamedRemote int         `json:"renamed_remote"`
	RenamedLocal  int         `json:"renamed_local"`
	DeletedRemote int         `json:"deleted_remote"`
	DeletedLocal  int         `json:"deleted_local"`
	Conflicts     int         `json:"conflicts"`
	Skipped       int         `json:"skipped"`
	Unchanged     int         `json:"unchanged"`
	BytesUp       uint64      `json:"bytes_up"`
	BytesDown     uint64      `json:"bytes_down"`
	Events        []SyncEvent `json:"events"`
}

// MarshalJSON writes the report with "events" always a list, empty when
// nothing happened: a reader of --json output iterates it without a
// null check.
func (r SyncReport) MarshalJSON() ([]byte, error) {
	type plain SyncReport // without this method
	p := plain(r)
	if p.Events == nil {
		p.Events = []SyncEvent{}
	}
	return json.Marshal(p)
}

// Changed reports whether the sync changed (or, dry, would change)
// anything.
func (r *SyncReport) Changed() bool {
	return r.Uploaded+r.Downloaded+r.RenamedRemote+r.RenamedLocal+r.DeletedRemote+r.DeletedLocal+r.Conflicts > 0
}

// Summary is the one line a user reads at the end.
func (r *SyncReport) Summary() string {
	verb := "synced"
	if r.DryRun {
		verb = "dry run, would sync"
	}
	s := fmt.Sprintf("%s: %d up (%s), %d down (%s), %d renamed, %d deleted, %d conflicts, %d skipped, %d unchanged",
		verb, r.Uploaded, FormatSize(r.BytesUp), r.Downloaded, FormatSize(r.BytesDown),
		r.RenamedRemote+r.RenamedLocal, r.DeletedRemote+r.DeletedLocal, r.Conflicts, r.Skipped, r.Unchanged)
	return s
}

// FormatSize writes a byte count for people: 512 B, 1.5 KiB, 3.0 GiB.
func FormatSize(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func (r *SyncReport) add(opt *SyncOptions, e SyncEvent) {
	switch e.Op {
	case SyncUpload:
		r.Uploaded++
		r.BytesUp += e.Size
	case SyncDownload:
		r.Downloaded++
		r.BytesDown += e.Size
	case SyncRenameRemote:
		r.RenamedRemote++
	case SyncRenameLocal:
		r.RenamedLocal++
	case SyncDeleteRemote:
		r.DeletedRemote++
	case SyncDeleteLocal:
		r.DeletedLocal++
	case SyncConflict:
		r.Conflicts++
	case SyncSkip:
		r.Skipped++
	}
	r.Events = append(r.Events, e)
	if opt.Event != nil {
		opt.Event(e)
	}
}

// localFile is a file found in the folder.
type localFile struct {
	stat statKey
	mode fs.FileMode
	// marker: an empty folder, seen as its DirMarker (syncignore.go).
	marker bool
}

var emptyHash = sha256.Sum256(nil)

// syncRun is one sync in progress.
type syncRun struct {
	a      *Account
	opt    SyncOptions
	root   *os.Root
	ignore *Ignore
	state  *syncState
	local  map[string]localFile
	remote map[string]indexfile.File
	rep    *SyncReport
	// hashes caches local content hashes computed in this run.
	hashes map[string][]byte
	// folded maps a case-folded name to the names (local or remote)
	// that fold to it, on a case-insensitive file system.
	folded map[string][]string
}

// Sync runs one sync of opt.Dir with the account; see the file comment.
// It returns an error only for what stops the whole sync (the server
// unreachable, the folder unreadable); a name that cannot be synced is
// skipped, reported, and tried again by the next sync.
func (a *Account) Sync(ctx context.Context, opt SyncOptions) (*SyncReport, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Device == "" {
		opt.Device, _ = os.Hostname()
		if opt.Device == "" {
			opt.Device = "device"
		}
	}
	abs, err := filepath.Abs(opt.Dir)
	if err != nil {
		return nil, localError("the folder", err)
	}
	if fi, err := os.Stat(abs); err != nil {
		return nil, localError("the folder", err)
	} else if !fi.IsDir() {
		return nil, &Error{Kind: KindInvalid, Msg: fmt.Sprintf("%s is not a folder", opt.Dir)}
	}
	if opt.StateDir == "" {
		return nil, &Error{Kind: KindInvalid, Msg: "sync needs a state directory"}
	}
	statePath := syncStatePath(opt.StateDir, a.headLoc.ID[:], abs)
	unlock, err := lockFile(statePath + ".lock")
	if err != nil {
		return nil, err
	}
	defer unlock()
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, localError("opening the folder", err)
	}
	defer root.Close()
	st, err := loadSyncState(statePath, abs)
	if err != nil {
		return nil, err
	}
	if !opt.DryRun {
		if err := st.openJournal(statePath); err != nil {
			return nil, err
		}
		defer func() {
			if st.journal != nil {
				st.journal.Close()
			}
		}()
	}
	r := &syncRun{a: a, opt: opt, root: root, state: st, rep: &SyncReport{DryRun: opt.DryRun}, hashes: map[string][]byte{}}
	if b, err := root.ReadFile(IgnoreFile); err == nil {
		if r.ignore, err = ParseIgnore(bytes.NewReader(b)); err != nil {
			return nil, &Error{Kind: KindInvalid, Msg: err.Error()}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, localError("reading "+IgnoreFile, err)
	}
	if err := a.refresh(ctx); err != nil {
		return nil, err
	}
	a.mu.Lock()
	if err := a.needIndex(ctx); err != nil {
		a.mu.Unlock()
		return nil, err
	}
	r.remote = make(map[string]indexfile.File, len(a.index.Files))
	for _, f := range a.index.Files {
		r.remote[f.Name] = f
	}
	a.mu.Unlock()
	if err := r.scan(); err != nil {
		return nil, err
	}
	ci := opt.CaseInsensitive
	if ci == nil {
		v := probeCaseInsensitive(abs)
		ci = &v
	}
	p := planSync(syncInput{
		local: r.local, remote: r.remote,
		base: st.Files, pending: st.Pending, placing: st.placing,
		ignore: r.ignore, caseInsensitive: *ci,
		device: opt.Device, now: opt.Now,
		hash: r.localHash,
		exists: func(n string) bool {
			_, err := root.Lstat(n)
			return !errors.Is(err, fs.ErrNotExist)
		},
	})
	// What a killed sync left pending is settled now: recorded if it
	// came to pass, dropped otherwise (the base before it stands).
	for _, rec := range p.records {
		st.set(rec.name, rec.entry)
	}
	st.Pending, st.placing = nil, nil
	r.folded = p.folded
	for _, e := range p.skips {
		r.rep.add(&r.opt, e)
	}
	r.rep.Unchanged += p.unchanged
	syncHook("planned", "")
	err = r.execute(ctx, p)
	if !opt.DryRun {
		// What was settled is recorded even when the sync stopped early:
		// the state holds only names complete on both sides.
		if serr := st.save(statePath); serr != nil && err == nil {
			err = serr
		}
	}
	return r.rep, err
}

// refresh reads the head, and the index if the head changed since this
// account last read or wrote it.
func (a *Account) refresh(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, etag, err := a.readHead(ctx)
	if err != nil {
		return err
	}
	if etag == a.etag && a.index != nil {
		return nil
	}
	return a.load(ctx)
}

// testSyncHook, set only by tests, is called at the points where a kill
// or a concurrent edit of a file would find a sync's state half done: a
// test stops the sync there (by panicking) or edits a file there.
var testSyncHook func(point, name string)

func syncHook(point, name string) {
	if testSyncHook != nil {
		testSyncHook(point, name)
	}
}

// syncPartTag marks the temporary files of sync's downloads, which a
// later sync removes if a kill left them behind.
const syncPartTag = partTag + "sync-"

// isPartFile reports our own temporary files (writeAtomic's), which
// are never synced.
func isPartFile(base string) bool {
	return strings.HasPrefix(base, ".") && strings.Contains(base, partTag) && strings.HasSuffix(base, ".part")
}

// scan lists the folder's regular files, and its empty folders as
// markers, leaving out what is ignored and warning about what cannot be
// synced.
func (r *syncRun) scan() error {
	r.local = map[string]localFile{}
	kept := map[string]int{} // directory → children kept
	var dirs []string
	err := fs.WalkDir(r.root.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			if name == "." {
				return err
			}
			r.skip(name, "cannot be read: "+err.Error())
			return nil
		}
		if name == "." {
			return nil
		}
		verdict, why := classifyScanned(name, d.Type(), r.ignore)
		switch verdict {
		case scanRemove:
			// A download of a sync that was killed: this sync holds the
			// folder's lock, so no other sync is writing it.
			_ = r.root.Remove(name)
			return nil
		case scanOurs:
			return nil
		case scanIgnore, scanSkip:
			if verdict == scanSkip {
				r.skip(name, why)
			}
			return skipDirOrNil(d)
		case scanDir:
			kept[path.Dir(name)]++
			dirs = append(dirs, name)
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			r.skip(name, "cannot be read: "+err.Error())
			return nil
		}
		kept[path.Dir(name)]++
		r.local[name] = localFile{stat: statKeyOf(fi), mode: fi.Mode().Perm()}
		return nil
	})
	if err != nil {
		return localError("reading the folder", err)
	}
	for _, m := range emptyDirMarkers(dirs, kept) {
		mode := fs.FileMode(0o755)
		if fi, err := r.root.Lstat(path.Dir(m)); err == nil {
			mode = fi.Mode().Perm()
		}
		r.local[m] = localFile{marker: true, mode: mode}
	}
	return nil
}

func skipDirOrNil(d fs.DirEntry) error {
	if d.IsDir() {
		return fs.SkipDir
	}
	return nil
}

func (r *syncRun) skip(name, why string) {
	r.rep.add(&r.opt, SyncEvent{Op: SyncSkip, Name: name, Msg: why})
}

// localHash returns the content hash of a local file, reading it once
// per run.
func (r *syncRun) localHash(name string) ([]byte, error) {
	if h, ok := r.hashes[name]; ok {
		return h, nil
	}
	if r.local[name].marker {
		return emptyHash[:], nil
	}
	fh, err := r.root.Open(name)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return nil, err
	}
	sum := h.Sum(nil)
	r.hashes[name] = sum
	return sum, nil
}

// recordPlaced sets name's base to the index entry f, just put in place
// in the folder (downloaded, or renamed) as the file whose stat was
// placed. The file's stat now is recorded only if it is still that file
// (its rename changed only its change time): were the user to edit it
// between the rename and now, recording the edit's stat would mark the
// edit as synced, and it would never go up. Otherwise no stat is
// recorded, and the next sync reads the file to know.
func (r *syncRun) recordPlaced(name string, f indexfile.File, placed statKey) {
	e := syncEntry{Hash: append([]byte(nil), f.Hash[:]...), Mode: f.Mode, Size: f.Size}
	if !r.local[name].marker && !Hidden(name) {
		if fi, err := r.root.Lstat(name); err == nil {
			if now := statKeyOf(fi); samePlaced(now, placed) {
				e.Stat = now
			}
		}
	}
	r.state.set(name, e)
}

// samePlaced reports whether now is the stat of the file whose stat was
// placed, before a rename that changed only its change time.
func samePlaced(now, placed statKey) bool {
	return placed != statKey{} && now.withoutCTime() == placed.withoutCTime()
}

// recordAs is record with the stat that was scanned (an upload: the
// content read is the content scanned, or the put was refused).
func (r *syncRun) recordAs(name string, f indexfile.File, st statKey) {
	r.state.set(name, syncEntry{Hash: append([]byte(nil), f.Hash[:]...), Mode: f.Mode, Size: f.Size, Stat: st})
}

func (r *syncRun) execute(ctx context.Context, p *syncPlan) error {
	dry := r.opt.DryRun
	if !dry {
		// Names whose sides agree are recorded first, as they were
		// scanned (and read): a kill during the actions then does not
		// leave them without a base, which would make their next edit
		// look like an edit on both sides; and a file the user edits
		// while this sync runs is not recorded with the edit's stat,
		// which would mark the edit as synced.
		for _, n := range p.settled {
			r.recordAs(n, r.remote[n], r.local[n].stat)
		}
		for _, n := range p.forget {
			r.state.del(n)
		}
	}
	// Conflicts first: the local version moves aside, then it goes up
	// under its new name and the remote one comes down.
	for _, c := range p.conflicts {
		n, to := c[0], c[1]
		r.rep.add(&r.opt, SyncEvent{Op: SyncConflict, Name: n, To: to})
		if dry {
			continue
		}
		if err := r.moveLocal(n, to); err != nil {
			r.skip(n, err.Error())
			continue
		}
		l := r.local[n]
		delete(r.local, n)
		if fi, err := r.root.Lstat(to); err == nil {
			l.stat = statKeyOf(fi)
		}
		r.local[to] = l
		p.downloads = append(p.downloads, n)
		p.uploads = append(p.uploads, to)
	}
	for _, mv := range p.renamesLocal {
		r.rep.add(&r.opt, SyncEvent{Op: SyncRenameLocal, Name: mv[0], To: mv[1]})
		if dry {
			continue
		}
		if err := r.moveLocal(mv[0], mv[1]); err != nil {
			r.skip(mv[0], err.Error())
			continue
		}
		r.state.del(mv[0])
		r.pruneDirs(path.Dir(mv[0]))
		r.recordPlaced(mv[1], r.remote[mv[1]], r.local[mv[0]].stat)
	}
	for _, n := range p.downloads {
		if err := ctx.Err(); err != nil {
			return err
		}
		f := r.remote[n]
		if dry {
			r.rep.add(&r.opt, SyncEvent{Op: SyncDownload, Name: n, Size: f.Size})
			continue
		}
		placed, err := r.download(ctx, f)
		if err != nil {
			if k := KindOf(err); k == KindNetwork || errors.Is(err, context.Canceled) {
				return err
			}
			r.skip(n, err.Error())
			continue
		}
		r.rep.add(&r.opt, SyncEvent{Op: SyncDownload, Name: n, Size: f.Size})
		syncHook("downloaded", n)
		r.recordPlaced(n, f, placed)
	}
	for _, n := range p.deletesLocal {
		r.rep.add(&r.opt, SyncEvent{Op: SyncDeleteLocal, Name: n})
		if dry {
			continue
		}
		if err := r.deleteLocal(n); err != nil {
			r.skip(n, err.Error())
			continue
		}
		r.state.del(n)
	}
	if err := r.updateRemote(ctx, p); err != nil {
		return err
	}
	return r.upload(ctx, p.uploads)
}

// safeParents refuses a name whose parent directories are not plain
// directories inside the folder (a symbolic link or a file in the way),
// or that collides with another name on a case-insensitive file system.
// os.Root already refuses paths that leave the folder; this also keeps
// a link to elsewhere inside the folder from redirecting a write.
func (r *syncRun) safeParents(name string) error {
	if err := indexfile.ValidName(name); err != nil {
		return &Error{Kind: KindInvalid, Msg: "the account holds a name that cannot be written safely"}
	}
	if caseClash(r.folded, name) {
		return &Error{Kind: KindConflict, Msg: "its name differs only in case from another, and this file system does not tell them apart"}
	}
	return plainParents(r.root, name)
}

// stillScanned reports whether name is still the file that was scanned
// (or, if it was not there, still absent): the user may be writing it.
func (r *syncRun) stillScanned(name string) error {
	l, had := r.local[name]
	fi, err := r.root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !had:
		return nil
	case err != nil && had:
		return &Error{Kind: KindConflict, Msg: "it changed during the sync: next time"}
	case err != nil:
		return localError("checking "+name, err)
	case !had || statKeyOf(fi) != l.stat:
		return &Error{Kind: KindConflict, Msg: "it changed during the sync: next time"}
	}
	return nil
}

// download writes the index entry f into the folder: to a temporary file
// beside it, verified, then renamed over what was scanned. It returns
// the stat of the file it placed, as it was before the rename.
func (r *syncRun) download(ctx context.Context, f indexfile.File) (placed statKey, err error) {
	name := f.Name
	if err := r.safeParents(name); err != nil {
		return placed, err
	}
	if Hidden(name) {
		dir := path.Dir(name)
		if fi, err := r.root.Lstat(dir); err == nil && !fi.IsDir() {
			return placed, &Error{Kind: KindConflict, Msg: fmt.Sprintf("a file is in the way (%s)", dir)}
		}
		if err := r.root.MkdirAll(dir, f.Mode|0o700); err != nil {
			return placed, localError("creating "+dir, err)
		}
		return placed, nil
	}
	dir := path.Dir(name)
	if err := r.root.MkdirAll(dir, 0o755); err != nil {
		return placed, localError("creating "+dir, err)
	}
	err = writeAtomic(r.root, name, syncPartTag, f.Mode, f.ModTime,
		func(w io.Writer) error { return download(ctx, r.a.remote, r.a.cfg, &f, w, nil) },
		func(tmp string) error {
			// Only over the file that was scanned: the user may be
			// writing it right now.
			if err := r.stillScanned(name); err != nil {
				return err
			}
			fi, err := r.root.Lstat(tmp)
			if err != nil {
				return err
			}
			placed = statKeyOf(fi)
			r.state.place(name, syncEntry{Hash: append([]byte(nil), f.Hash[:]...), Mode: f.Mode, Size: f.Size, Stat: placed})
			return r.root.Rename(tmp, name)
		})
	if err != nil {
		return statKey{}, err
	}
	syncDir(r.root, dir)
	return placed, nil
}

// moveLocal renames a local file the sync scanned.
func (r *syncRun) moveLocal(from, to string) error {
	if err := r.safeParents(to); err != nil {
		return err
	}
	if err := r.stillScanned(from); err != nil {
		return err
	}
	if _, err := r.root.Lstat(to); !errors.Is(err, fs.ErrNotExist) {
		return &Error{Kind: KindConflict, Msg: fmt.Sprintf("%s exists", to)}
	}
	if err := r.root.MkdirAll(path.Dir(to), 0o755); err != nil {
		return localError("creating "+path.Dir(to), err)
	}
	if err := r.root.Rename(from, to); err != nil {
		return localError("renaming "+from, err)
	}
	syncDir(r.root, path.Dir(to))
	return nil
}

// deleteLocal removes a file deleted on the other side, if it is still
// the one scanned; a marker removes its folder if it is still empty.
func (r *syncRun) deleteLocal(name string) error {
	if Hidden(name) {
		dir := path.Dir(name)
		if err := r.root.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			if errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
				return nil // something was put in it meanwhile: it stays
			}
			return localError("removing "+dir, err)
		}
		r.pruneDirs(path.Dir(dir))
		return nil
	}
	if err := r.stillScanned(name); err != nil {
		return err
	}
	if err := r.root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return localError("removing "+name, err)
	}
	r.pruneDirs(path.Dir(name))
	return nil
}

// pruneDirs removes dir and its parents while they are empty and the
// account keeps no marker for them: a folder emptied because its files
// went away on the other side goes too, rather than coming back as an
// empty folder.
func (r *syncRun) pruneDirs(dir string) {
	for dir != "." && dir != "/" && dir != "" {
		if _, ok := r.remote[dir+"/"+DirMarker]; ok {
			return
		}
		if err := r.root.Remove(dir); err != nil {
			return
		}
		dir = path.Dir(dir)
	}
}

// updateRemote carries local renames and deletions to the index in one
// update, each only if the entry is still the version the base holds:
// another device may have changed it since it was read.
func (r *syncRun) updateRemote(ctx context.Context, p *syncPlan) error {
	for _, mv := range p.renamesRemote {
		r.rep.add(&r.opt, SyncEvent{Op: SyncRenameRemote, Name: mv[0], To: mv[1]})
	}
	for _, n := range p.deletesRemote {
		r.rep.add(&r.opt, SyncEvent{Op: SyncDeleteRemote, Name: n})
	}
	if r.opt.DryRun || len(p.renamesRemote)+len(p.deletesRemote) == 0 {
		return nil
	}
	base := func(n string) []byte { return r.state.Files[n].Hash }
	for _, mv := range p.renamesRemote {
		b := r.state.Files[mv[0]]
		r.state.expect(mv[1], syncEntry{Hash: b.Hash, Mode: b.Mode, Size: b.Size, Stat: r.local[mv[1]].stat})
	}
	r.a.mu.Lock()
	x, err := r.a.update(ctx, func(x *indexfile.Index) error {
		for _, mv := range p.renamesRemote {
			if f := x.Lookup(mv[0]); f != nil && bytes.Equal(f.Hash[:], base(mv[0])) && x.Lookup(mv[1]) == nil {
				_ = x.Rename(mv[0], mv[1]) // refused only for a name in the way: left for the next sync
			}
		}
		for _, n := range p.deletesRemote {
			if f := x.Lookup(n); f != nil && bytes.Equal(f.Hash[:], base(n)) {
				x.Remove(n)
			}
		}
		return nil
	})
	r.a.mu.Unlock()
	if err != nil {
		return err
	}
	for _, mv := range p.renamesRemote {
		if f := x.Lookup(mv[1]); f != nil && x.Lookup(mv[0]) == nil {
			r.state.del(mv[0])
			r.remote[mv[1]] = *f
			delete(r.remote, mv[0])
			r.recordAs(mv[1], *f, r.local[mv[1]].stat)
		}
	}
	for _, n := range p.deletesRemote {
		if x.Lookup(n) == nil {
			r.state.del(n)
		}
	}
	return nil
}

// upload puts the named local files (localput.go), each read only if it
// is still the file scanned and refused if it changes while it is read.
func (r *syncRun) upload(ctx context.Context, names []string) error {
	sort.Strings(names)
	srcs := make([]LocalSource, len(names))
	for i, name := range names {
		l := r.local[name]
		srcs[i] = LocalSource{Name: name, Mode: l.mode, Size: l.stat.Size, marker: l.marker, stat: l.stat}
		if l.marker {
			continue
		}
		srcs[i].open = func() (*os.File, error) { return r.root.Open(name) }
		if r.opt.DryRun {
			continue
		}
		// The journal learns each version before it is committed (see
		// syncState.expect), from the entry the upload made of it.
		srcs[i].pending = func(f indexfile.File) {
			r.state.expect(name, syncEntry{Hash: f.Hash[:], Mode: l.mode, Size: f.Size, Stat: l.stat})
		}
	}
	if r.opt.DryRun {
		for _, s := range srcs {
			r.rep.add(&r.opt, SyncEvent{Op: SyncUpload, Name: s.Name, Size: uint64(s.Size)})
		}
		return nil
	}
	return r.a.putLocal(ctx, srcs, func(s LocalSource, f indexfile.File) {
		r.rep.add(&r.opt, SyncEvent{Op: SyncUpload, Name: f.Name, Size: f.Size})
		r.recordAs(f.Name, f, s.stat)
		r.remote[f.Name] = f
	}, func(s LocalSource, err error) { r.skip(s.Name, err.Error()) })
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = cryptorand.Read(b)
	return hex.EncodeToString(b)
}

// syncDir makes a rename in dir durable. Failure is not fatal: the
// rename itself happened; only its durability across a power cut is in
// doubt, and the next sync checks content anyway.
func syncDir(root *os.Root, dir string) {
	if d, err := root.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// probeCaseInsensitive reports whether the file system holding dir
// folds case, by creating a file with a lower-case name and looking it
// up in upper case.
func probeCaseInsensitive(dir string) bool {
	f, err := os.CreateTemp(dir, ".blind-case-probe-*.part")
	if err != nil {
		return false
	}
	name := f.Name()
	f.Close()
	defer os.Remove(name)
	base := filepath.Base(name)
	upper := filepath.Join(filepath.Dir(name), strings.ToUpper(base))
	if upper == name {
		return false
	}
	_, err = os.Lstat(upper)
	return err == nil
}
