package client

// Reshaping the tree: what a file manager's view of the account (the
// WebDAV server, internal/davserver) does to folders. Folders are name
// prefixes, so moving or deleting one touches every file under it: one
// index update for all of them, rather than one per file, and a folder
// emptied by it stays, as its DirMarker, the way sync keeps empty
// folders.

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/blindstore/blindstore/indexfile"
)

// Reshape is one index update: see Account.Reshape.
type Reshape struct {
	// Remove names files to delete; a name not in the index is an error
	// of KindNotFound.
	Remove []string
	// Rename moves files ([0] to [1]) after the removals; the new name
	// must be free.
	Rename [][2]string
	// Keep names folders that must exist afterwards: each one with no
	// file left under it gets its empty-folder marker (DirMarker).
	Keep []string
}

// Refresh reads the head, and the index if another device changed it
// since this account last read or wrote it: for a long-running view of
// the account that does not sync.
func (a *Account) Refresh(ctx context.Context) error { return a.refresh(ctx) }

// Reshape applies r in one index update, merging with concurrent ones as
// every update does; the blocks of removed files are deleted after it.
func (a *Account) Reshape(ctx context.Context, r Reshape) error {
	for _, mv := range r.Rename {
		if err := indexfile.ValidName(mv[1]); err != nil {
			return wrap(KindInvalid, "rename", err)
		}
	}
	var markers []indexfile.File
	if len(r.Keep) > 0 {
		cur, err := a.remote.CurrentPeriod(ctx)
		if err != nil {
			return err
		}
		for _, dir := range r.Keep {
			name := path.Join(dir, DirMarker)
			if err := indexfile.ValidName(name); err != nil {
				return wrap(KindInvalid, "folder", err)
			}
			// An empty stream: a fresh key and no blocks, as sync's
			// markers are put.
			f, _, _, err := a.upload(ctx, bytes.NewReader(nil), nil, 0, nil)
			if err != nil {
				return err
			}
			f.Name, f.Mode, f.ModTime, f.Renewed = name, 0o644, time.Now(), cur
			markers = append(markers, f)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	_, err := a.update(ctx, func(x *indexfile.Index) error {
		for _, n := range r.Remove {
			if !x.Remove(n) {
				return &Error{Kind: KindNotFound, Msg: fmt.Sprintf("no file %q in the account", n)}
			}
		}
		for _, mv := range r.Rename {
			if x.Lookup(mv[0]) == nil {
				return &Error{Kind: KindNotFound, Msg: fmt.Sprintf("no file %q in the account", mv[0])}
			}
			if x.Lookup(mv[1]) != nil {
				return &Error{Kind: KindConflict, Msg: fmt.Sprintf("a file %q already exists", mv[1])}
			}
			if err := x.Rename(mv[0], mv[1]); err != nil {
				return wrap(KindConflict, "rename", err)
			}
		}
		for _, m := range markers {
			if hasUnder(x, path.Dir(m.Name)) {
				continue
			}
			if err := x.Put(m); err != nil {
				return wrap(KindConflict, "folder", err)
			}
		}
		return nil
	})
	return err
}

// hasUnder reports whether any file of x lies under the folder dir.
func hasUnder(x *indexfile.Index, dir string) bool {
	prefix := dir + "/"
	// Files are sorted by name: those under dir start where prefix would.
	i, _ := slices.BinarySearchFunc(x.Files, prefix, func(f indexfile.File, p string) int { return strings.Compare(f.Name, p) })
	return i < len(x.Files) && strings.HasPrefix(x.Files[i].Name, prefix)
}
