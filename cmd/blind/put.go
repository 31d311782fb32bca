package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/blindstore/blindstore/client"
	"github.com/blindstore/blindstore/indexfile"
	"github.com/blindstore/blindstore/internal/cli"
)

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// putMany stores several files and folders. Every name is checked before
// anything is sent; a file that changes while it is read is left out
// with a warning and the exit code says so (5), the others are stored.
func (a *app) putMany(args []string, as string) error {
	if as != "" && (len(args) != 1 || !isDir(args[0])) {
		return cli.Usagef("--as names one file or one folder")
	}
	var srcs []client.LocalSource
	seen := map[string]string{}
	var total int64
	add := func(p, name string) error {
		if err := indexfile.ValidName(name); err != nil {
			return cli.Usagef("%s cannot be stored as %q: %v", p, name, err)
		}
		if other, ok := seen[name]; ok {
			return cli.Usagef("%s and %s would both be stored as %q", other, p, name)
		}
		seen[name] = p
		s, err := client.NewLocalSource(p, name)
		if err != nil {
			return err
		}
		total += s.Size
		srcs = append(srcs, s)
		return nil
	}
	var skippedLinks int
	for _, arg := range args {
		if arg == "-" {
			return cli.Usagef("standard input goes alone, with --as")
		}
		if !isDir(arg) {
			if err := add(arg, filepath.Base(arg)); err != nil {
				return err
			}
			continue
		}
		base := as
		if base == "" {
			abs, err := filepath.Abs(arg)
			if err != nil {
				return &client.Error{Kind: client.KindLocalIO, Msg: "the folder", Err: err}
			}
			base = filepath.Base(abs)
		}
		err := filepath.WalkDir(arg, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return &client.Error{Kind: client.KindLocalIO, Msg: "reading " + p, Err: err}
			}
			if d.IsDir() {
				return nil
			}
			if !d.Type().IsRegular() {
				skippedLinks++
				fmt.Fprintf(a.stderr, "warning: %s is not a regular file: skipped\n", p)
				return nil
			}
			rel, err := filepath.Rel(arg, p)
			if err != nil {
				return err
			}
			return add(p, path.Join(base, filepath.ToSlash(rel)))
		})
		if err != nil {
			return err
		}
	}
	if len(srcs) == 0 {
		return cli.Usagef("no regular files to store")
	}
	return a.withAccount(func(acc *client.Account) error {
		prog, done := a.progress(fmt.Sprintf("put %d files", len(srcs)), total)
		var sent int64
		var stored []fileOut
		var failed []string
		err := acc.PutLocal(a.ctx, srcs, func(s client.LocalSource, f indexfile.File) {
			stored = append(stored, fileJSON(&f))
			sent += s.Size
			if prog != nil {
				prog(sent)
			}
		}, func(s client.LocalSource, err error) {
			failed = append(failed, s.Name)
			fmt.Fprintf(a.stderr, "warning: %s: %v\n", s.Name, err)
		})
		done(err)
		if err != nil {
			return err
		}
		var bytes uint64
		for _, f := range stored {
			bytes += f.Size
		}
		a.out(map[string]any{"stored": stored, "failed": failed},
			fmt.Sprintf("stored %d files (%s)\n", len(stored), humanBytes(bytes)))
		if len(failed) > 0 {
			return &client.Error{Kind: client.KindConflict, Msg: fmt.Sprintf("%d files changed while they were read and were not stored (%s): put them again", len(failed), strings.Join(failed, ", "))}
		}
		return nil
	})
}

// getRange writes a range of a file, fetching only the blocks that hold
// it.
func (a *app) getRange(c *command, out string, force bool, offset, length int64) error {
	if len(c.Args) != 1 {
		return cli.Usagef("want one file name")
	}
	if offset < 0 {
		return cli.Usagef("--offset must be 0 or more")
	}
	if length < 0 {
		length = 1<<63 - 1 - offset
	}
	name := c.Args[0]
	return a.withAccount(func(acc *client.Account) error {
		if out == "-" {
			_, err := acc.GetRange(a.ctx, name, offset, length, a.stdout)
			return err
		}
		if _, err := acc.Lookup(name); err != nil {
			return err
		}
		if out == "" {
			out = path.Base(name)
		}
		return client.WriteFileAtomic(out, force, 0o644, time.Time{}, func(w io.Writer) error {
			_, err := acc.GetRange(a.ctx, name, offset, length, w)
			return err
		})
	})
}
