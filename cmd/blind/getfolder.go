package main

import (
	"fmt"
	"path"

	"github.com/blindstore/blindstore/client"
	"github.com/blindstore/blindstore/indexfile"
	"github.com/blindstore/blindstore/internal/cli"
)

// getFolder writes every file under folder into out (default: the
// folder's last element, in the current directory).
func (a *app) getFolder(acc *client.Account, folder, out string, force bool) error {
	if out == "-" {
		return cli.Usagef("%s is a folder: it cannot go to standard output (give -o DIR)", folder)
	}
	if out == "" {
		out = path.Base(folder)
	}
	var total int64
	for _, f := range acc.FilesUnder(folder) {
		total += int64(f.Size)
	}
	prog, done := a.progress("get "+folder, total)
	var wrote []map[string]any
	files, err := acc.GetFolder(a.ctx, folder, out, client.GetFolderOptions{Overwrite: force, Progress: prog,
		Wrote: func(f indexfile.File, rel string) {
			wrote = append(wrote, map[string]any{"name": f.Name, "path": path.Join(out, rel), "size": f.Size})
		}})
	done(err)
	if err != nil && len(files) > 0 {
		return fmt.Errorf("%w (%d files of the folder were written before it)", err, len(files))
	}
	if err != nil {
		return err
	}
	var bytes uint64
	for _, f := range files {
		bytes += f.Size
	}
	if wrote == nil {
		wrote = []map[string]any{}
	}
	a.out(map[string]any{"folder": folder, "path": out, "files": wrote},
		fmt.Sprintf("wrote %d files (%s) into %s\n", len(wrote), humanBytes(bytes), out))
	return nil
}

// userFiles leaves out the index's own entries (an empty folder's
// marker, which sync keeps): they are not the user's files.
func userFiles(files []indexfile.File) []indexfile.File {
	out := make([]indexfile.File, 0, len(files))
	for _, f := range files {
		if !client.Hidden(f.Name) {
			out = append(out, f)
		}
	}
	return out
}
