package client

// Fetching a folder: every file under a name, written into a local
// directory with the safety of sync's downloads (a verified temporary
// file renamed into place, names checked, nothing written outside the
// directory, nothing clobbered unless asked).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/blindstore/blindstore/indexfile"
)

// Under reports whether the file name is folder itself or lies under it.
// folder "" is the whole account; a trailing slash changes nothing.
func Under(name, folder string) bool {
	folder = strings.TrimRight(folder, "/")
	return folder == "" || name == folder || strings.HasPrefix(name, folder+"/")
}

// FilesUnder returns the account's files under folder (see Under),
// markers included.
func (a *Account) FilesUnder(folder string) []indexfile.File {
	files := a.Files()
	// Filtered in place: Files made the slice, and an account of many
	// files would otherwise be copied again as out grows.
	out := files[:0]
	for _, f := range files {
		if Under(f.Name, folder) {
			out = append(out, f)
		}
	}
	clear(files[len(out):])
	return out
}

// GetFolderOptions tune GetFolder.
type GetFolderOptions struct {
	// Overwrite replaces existing files; without it an existing file is
	// an error and nothing is written.
	Overwrite bool
	// Progress is told the bytes written so far, over all the files.
	Progress Progress
	// Wrote is called after each file is in place, with its path
	// relative to the directory.
	Wrote func(f indexfile.File, rel string)
}

// GetFolder writes every file under folder into dir (created if
// missing), each as its name relative to folder: photos/2024/a.jpg of
// the folder photos goes to dir/2024/a.jpg. Empty folders kept by sync
// are created. Every target is checked before anything is fetched: a
// symbolic link or a file in the way of a folder is an error, and so is
// an existing file without Overwrite. dir is opened as an os.Root, so
// that no name can lead out of it.
func (a *Account) GetFolder(ctx context.Context, folder, dir string, opt GetFolderOptions) ([]indexfile.File, error) {
	folder = strings.TrimRight(folder, "/")
	if folder == "" {
		return nil, &Error{Kind: KindInvalid, Msg: "no folder name"}
	}
	files := a.FilesUnder(folder)
	if len(files) == 0 {
		return nil, &Error{Kind: KindNotFound, Msg: fmt.Sprintf("no file or folder %q in the account", folder)}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, localError("creating "+dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, localError("opening "+dir, err)
	}
	defer root.Close()
	rels := make([]string, len(files))
	for i := range files {
		rel := strings.TrimPrefix(files[i].Name, folder+"/")
		if err := indexfile.ValidName(rel); err != nil || rel == files[i].Name {
			return nil, &Error{Kind: KindInvalid, Msg: fmt.Sprintf("%q cannot be written under %s", files[i].Name, dir)}
		}
		if err := checkTarget(root, rel, Hidden(rel), opt.Overwrite); err != nil {
			return nil, err
		}
		rels[i] = rel
	}
	var base int64
	var done []indexfile.File
	for i := range files {
		f, rel := &files[i], rels[i]
		if Hidden(rel) {
			if err := root.MkdirAll(path.Dir(rel), f.Mode.Perm()|0o700); err != nil {
				return done, localError("creating "+path.Dir(rel), err)
			}
			continue
		}
		if err := root.MkdirAll(path.Dir(rel), 0o755); err != nil {
			return done, localError("creating "+path.Dir(rel), err)
		}
		var prog Progress
		if opt.Progress != nil {
			start := base
			prog = func(n int64) { opt.Progress(start + n) }
		}
		err := writeAtomic(root, rel, partTag, f.Mode, f.ModTime,
			func(w io.Writer) error { return download(ctx, a.remote, a.cfg, f, w, prog) },
			func(tmp string) error {
				if opt.Overwrite {
					return root.Rename(tmp, rel)
				}
				// A hard link fails if the file appeared since the
				// check: no clobbering even in a race.
				if err := root.Link(tmp, rel); err != nil {
					if errors.Is(err, fs.ErrExist) {
						return &Error{Kind: KindConflict, Msg: fmt.Sprintf("%s exists; not overwriting it (use --force)", path.Join(dir, rel))}
					}
					return err
				}
				return root.Remove(tmp)
			})
		if err != nil {
			return done, fmt.Errorf("%s: %w", f.Name, err)
		}
		base += int64(f.Size)
		if opt.Progress != nil {
			opt.Progress(base)
		}
		done = append(done, *f)
		if opt.Wrote != nil {
			opt.Wrote(*f, rel)
		}
	}
	return done, nil
}

// checkTarget refuses a target whose parent folders are not plain
// folders (see plainParents), or that exists when it must not.
func checkTarget(root *os.Root, rel string, folderOnly, overwrite bool) error {
	if err := plainParents(root, rel); err != nil || folderOnly {
		return err
	}
	fi, err := root.Lstat(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return localError("checking "+rel, err)
	case fi.IsDir():
		return &Error{Kind: KindConflict, Msg: fmt.Sprintf("a folder is in the way (%s)", rel)}
	case !overwrite:
		return &Error{Kind: KindConflict, Msg: fmt.Sprintf("%s exists; not overwriting it (use --force)", rel)}
	}
	return nil
}

// plainParents refuses a name below root whose parent folders are not
// plain folders: a symbolic link is not followed, even one that stays
// inside root, so that it cannot redirect a write. It stops at the
// first parent that does not exist (none below it can).
func plainParents(root *os.Root, rel string) error {
	for i := 0; i < len(rel); i++ {
		if rel[i] != '/' {
			continue
		}
		fi, err := root.Lstat(rel[:i])
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil
		case err != nil:
			return localError("checking "+rel[:i], err)
		case fi.Mode()&fs.ModeSymlink != 0:
			return &Error{Kind: KindConflict, Msg: fmt.Sprintf("a symbolic link is in the way (%s): not following it", rel[:i])}
		case !fi.IsDir():
			return &Error{Kind: KindConflict, Msg: fmt.Sprintf("a file is in the way (%s)", rel[:i])}
		}
	}
	return nil
}
