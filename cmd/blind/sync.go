package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/blindstore/blindstore/client"
	"github.com/blindstore/blindstore/internal/cli"
)

func syncCommand() *command {
	c := newCommand("sync", "DIR [--watch] [--dry-run]", "Make a folder and the account agree, both ways. Additions, edits (sent as deltas),\n"+
		"renames and deletions on either side are carried to the other; a file changed on\n"+
		"both sides since the last sync keeps both versions, this device's under a\n"+
		"conflict name next to it. Symbolic links and special files are skipped with a\n"+
		"warning; names listed in DIR/.blindignore are left alone on both sides (one\n"+
		"pattern per line: *.tmp, /build, cache/, !keep.tmp). The sync state is kept in\n"+
		"the configuration directory. With --watch it keeps running: it syncs when the\n"+
		"folder changes and every --interval, and renews the account at each period\n"+
		"boundary, so a running watch keeps the data alive.", nil)
	watch := c.Flags.Bool("watch", false, "keep running: sync on change and every --interval, renew at each period boundary")
	dry := c.Flags.Bool("dry-run", false, "say what a sync would do, and do nothing")
	interval := c.Flags.Duration("interval", 30*time.Second, "with --watch, how often to look for other devices' changes")
	device := c.Flags.String("device", "", "this device's `name` in conflict copies (default: the host name)")
	c.run = func(a *app) error {
		if len(c.Args) != 1 {
			return cli.Usagef("want one folder")
		}
		if *watch && *dry {
			return cli.Usagef("--watch and --dry-run do not go together")
		}
		if *interval < time.Second {
			return cli.Usagef("--interval must be at least 1s")
		}
		return a.sync(c.Args[0], *watch, *dry, *interval, *device)
	}
	return c
}

func (a *app) sync(dir string, watch, dry bool, interval time.Duration, device string) error {
	if fi, err := os.Stat(dir); err != nil {
		return &client.Error{Kind: client.KindLocalIO, Msg: "the folder", Err: err}
	} else if !fi.IsDir() {
		return cli.Usagef("%s is not a folder", dir)
	}
	stateDir, err := configDir()
	if err != nil {
		return err
	}
	s, err := loadSession()
	if err != nil {
		return err
	}
	opt := client.SyncOptions{Dir: dir, StateDir: stateDir, DryRun: dry, Device: device}
	// Each action is printed as it happens, so that a long sync shows
	// its progress; with --json the report comes whole at the end.
	if !a.g.json {
		opt.Event = func(e client.SyncEvent) { fmt.Fprintln(a.stdout, eventText(e)) }
	}
	return a.withAccount(func(acc *client.Account) error {
		if !watch {
			rep, err := acc.Sync(a.ctx, opt)
			if rep != nil {
				a.out(rep, rep.Summary()+"\n")
			}
			return err
		}
		wo := client.WatchOptions{
			SyncOptions: opt,
			Interval:    interval,
			Renew:       func(context.Context) error { _, err := a.renewPaid(acc); return err },
			Synced: func(rep *client.SyncReport, err error) {
				if err != nil {
					fmt.Fprintf(a.stderr, "blind sync: %v (trying again)\n", err)
				} else if rep.Changed() || rep.Skipped > 0 {
					if a.g.json {
						b, _ := json.Marshal(rep)
						fmt.Fprintf(a.stdout, "%s\n", b)
					} else {
						fmt.Fprintf(a.stdout, "%s %s\n", time.Now().Format("15:04:05"), rep.Summary())
					}
				}
				a.persist(acc, s.DeviceKeyFile)
			},
			Renewed: func(err error) {
				if err != nil {
					fmt.Fprintf(a.stderr, "blind sync: renewing: %v (trying again at the next boundary)\n", err)
				}
				a.persist(acc, s.DeviceKeyFile)
			},
		}
		fmt.Fprintf(a.stderr, "watching %s (Ctrl-C to stop)\n", dir)
		return acc.Watch(a.ctx, wo)
	})
}

// persist saves the session during a long-running command, so that a
// kill loses nothing it learned (the head generation it has seen).
func (a *app) persist(acc *client.Account, deviceKeyFile string) {
	if err := a.saveAccount(acc, deviceKeyFile); err != nil {
		fmt.Fprintf(a.stderr, "blind sync: saving the session: %v\n", err)
	}
}

func eventText(e client.SyncEvent) string {
	switch e.Op {
	case client.SyncUpload:
		return fmt.Sprintf("up       %s (%s)", e.Name, humanBytes(e.Size))
	case client.SyncDownload:
		return fmt.Sprintf("down     %s (%s)", e.Name, humanBytes(e.Size))
	case client.SyncRenameRemote, client.SyncRenameLocal:
		side := "up"
		if e.Op == client.SyncRenameLocal {
			side = "down"
		}
		return fmt.Sprintf("rename   %s -> %s (%s)", e.Name, e.To, side)
	case client.SyncDeleteRemote:
		return fmt.Sprintf("delete   %s (up)", e.Name)
	case client.SyncDeleteLocal:
		return fmt.Sprintf("delete   %s (down)", e.Name)
	case client.SyncConflict:
		return fmt.Sprintf("conflict %s: both changed; this device's version kept as %s", e.Name, e.To)
	default:
		return fmt.Sprintf("skip     %s: %s", e.Name, e.Msg)
	}
}

// The renewal export record: where and when 'blind renew --export' last
// wrote, so that 'blind status' can say how old the export is and what
// it misses.
const exportRecordFile = "renew-export.json"

type exportRecord struct {
	Path       string    `json:"path"`
	Written    time.Time `json:"written"`
	Generation uint64    `json:"generation"`
}

func recordExport(path string, generation uint64) error {
	d, err := configDir()
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	b, _ := json.Marshal(exportRecord{Path: abs, Written: time.Now().UTC(), Generation: generation})
	if err := os.MkdirAll(d, 0o700); err != nil {
		return &client.Error{Kind: client.KindLocalIO, Msg: "the configuration directory", Err: err}
	}
	return client.WriteFileAtomic(filepath.Join(d, exportRecordFile), true, 0o600, time.Time{}, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// exportStatus compares the last export with the account: its age, and
// the blocks the account needs that it does not list (written since).
type exportStatus struct {
	Path      string    `json:"path"`
	Written   time.Time `json:"written"`
	Present   bool      `json:"present"`
	Blocks    int       `json:"blocks"`
	Missing   int       `json:"missing"` // blocks of the account not in the export
	Outdated  bool      `json:"outdated"`
	AgeSecond int64     `json:"age_seconds"`
}

func (a *app) exportStatus(acc *client.Account) (*exportStatus, string) {
	d, err := configDir()
	if err != nil {
		return nil, ""
	}
	b, err := os.ReadFile(filepath.Join(d, exportRecordFile))
	if err != nil {
		return nil, "export:  none ('blind renew --export FILE' lets a cron job keep the data alive)\n"
	}
	var rec exportRecord
	if json.Unmarshal(b, &rec) != nil {
		return nil, ""
	}
	st := &exportStatus{Path: rec.Path, Written: rec.Written, AgeSecond: int64(time.Since(rec.Written).Seconds())}
	age := time.Since(rec.Written).Round(time.Minute)
	fh, err := os.Open(rec.Path)
	if err != nil {
		st.Outdated = true
		return st, fmt.Sprintf("export:  %s, written %s ago, is gone: export again\n", rec.Path, age)
	}
	defer fh.Close()
	_, items, err := client.ReadRenewList(fh)
	if err != nil {
		st.Outdated = true
		return st, fmt.Sprintf("export:  %s, written %s ago, is not readable as an export: export again\n", rec.Path, age)
	}
	st.Present, st.Blocks = true, len(items)
	listed := make(map[string]struct{}, len(items))
	for _, it := range items {
		listed[it.ID.String()] = struct{}{}
	}
	for _, e := range acc.ExportRenewals().Blocks {
		if _, ok := listed[e.ID]; !ok {
			st.Missing++
		}
	}
	st.Outdated = st.Missing > 0
	text := fmt.Sprintf("export:  %s, written %s ago, covers every block\n", rec.Path, age)
	if st.Missing > 0 {
		text = fmt.Sprintf("export:  %s, written %s ago, misses %d blocks written since: export again\n", rec.Path, age, st.Missing)
	}
	return st, text
}
