package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/blindstore/blindstore/client"
	"github.com/blindstore/blindstore/client/format"
	"github.com/blindstore/blindstore/indexfile"
	"github.com/blindstore/blindstore/internal/cli"
)

func newCommand(name, usage, summary string, run func(a *app, c *command) error) *command {
	c := &command{Command: cli.Command{Program: "blind", Name: name, Usage: usage, Summary: summary, Flags: cli.NewFlagSet(name), Env: envPrefix}}
	c.run = func(a *app) error { return run(a, c) }
	return c
}

func commands(a *app) map[string]*command {
	var cmds []*command
	add := func(c *command) {
		a.g.register(c.Flags)
		cmds = append(cmds, c)
	}

	{
		c := newCommand("signup", "--user NAME [--invite CODE]", "Create an account and log in. Prints a recovery code once: keep it safe.\nPassword: prompt (asked twice) or BLIND_PASSWORD.", nil)
		user := c.Flags.String("user", "", "user `name`")
		device := c.Flags.String("device-key", "", "device key `file` mixed into the password (created if missing); every login then needs it")
		invite := c.Flags.String("invite", "", "invite `code` of the server's token issuer, for a server that charges for writes (kept in the configuration directory)")
		c.run = func(a *app) error { a.invite = *invite; return a.signup(c, *user, *device) }
		add(c)
	}
	{
		c := newCommand("login", "--user NAME [--recover]", "Log in, renew what is stale, and say until when the data is safe.\nPassword: prompt or BLIND_PASSWORD. With --recover (or BLIND_RECOVER=yes): the\nrecovery code from a prompt or BLIND_RECOVERY_CODE, and a new password from a\nprompt or BLIND_NEW_PASSWORD.", nil)
		user := c.Flags.String("user", "", "user `name`")
		device := c.Flags.String("device-key", "", "device key `file`, if the account has one")
		recovery := c.Flags.Bool("recover", false, "log in with the recovery code (BLIND_RECOVERY_CODE or a prompt) and set a new password")
		invite := c.Flags.String("invite", "", "invite `code` of the server's token issuer, for a server that charges for writes (kept in the configuration directory)")
		c.run = func(a *app) error { a.invite = *invite; return a.login(c, *user, *device, *recovery) }
		add(c)
	}
	{
		c := newCommand("logout", "", "Wipe the session from this machine (overwritten, then removed), and remove the\nblock cache.", nil)
		c.run = func(a *app) error {
			if len(c.Args) > 0 {
				return cli.Usagef("unexpected arguments")
			}
			had, err := wipeSession()
			if err != nil {
				return err
			}
			a.out(map[string]bool{"logged_out": had}, map[bool]string{true: "logged out\n", false: "not logged in\n"}[had])
			return nil
		}
		add(c)
	}
	{
		c := newCommand("put", "FILE|DIR... [--as NAME]", "Encrypt and store files, replacing files of the same names (an edit sends only\nthe changed chunks). A folder is stored with everything under it, as\nFOLDER/PATH; several files or folders go in one index update per few thousand\nfiles. \"-\" reads standard input and needs --as.", nil)
		as := c.Flags.String("as", "", "store under this `name` (default: the file's base name); with one folder, the name it is stored under")
		c.run = func(a *app) error { return a.put(c, *as) }
		add(c)
	}
	{
		c := newCommand("get", "NAME|FOLDER [-o PATH] [--offset N --length N]", "Fetch, verify and decrypt a file. It is written under a temporary name and moved\ninto place only once every block checks out against the encrypted index (its\nchunk's size and SHA-256, in order). With --offset or --length, only that range\nis fetched (only the blocks that hold it, each verified). A folder (what 'blind\nput FOLDER' stored) comes back whole into the directory PATH, each file the same\nway; nothing is written unless every file can be, and no name leads out of PATH.", nil)
		out := c.Flags.String("o", "", "output `path` (default: the name's last element, in the current directory; \"-\" for standard output); for a folder, the directory to write into")
		force := c.Flags.Bool("force", false, "overwrite existing output files")
		offset := c.Flags.Int64("offset", 0, "start at this byte `offset`")
		length := c.Flags.Int64("length", -1, "fetch at most this many `bytes` (default: to the end)")
		c.run = func(a *app) error {
			if a.flagSet(c, "offset") || a.flagSet(c, "length") {
				return a.getRange(c, *out, *force, *offset, *length)
			}
			return a.get(c, *out, *force)
		}
		add(c)
	}
	{
		c := newCommand("ls", "[FOLDER]", "List the account's files, or those under FOLDER. With --json: one object,\n{\"files\": [{\"name\", \"size\", \"mode\", \"mtime\", \"sha256\", \"blocks\", \"shared\",\n\"renewed_period\"}…]}.", nil)
		c.run = func(a *app) error { return a.ls(c) }
		add(c)
	}
	{
		c := newCommand("rm", "NAME", "Remove a file and delete its blocks.", nil)
		c.run = func(a *app) error {
			if len(c.Args) != 1 {
				return cli.Usagef("want one file name")
			}
			return a.withAccount(func(acc *client.Account) error {
				if err := acc.Remove(a.ctx, c.Args[0]); err != nil {
					return err
				}
				a.out(map[string]string{"removed": c.Args[0]}, fmt.Sprintf("removed %s\n", c.Args[0]))
				return nil
			})
		}
		add(c)
	}
	{
		c := newCommand("mv", "OLD NEW", "Rename a file (no data moves).", nil)
		c.run = func(a *app) error {
			if len(c.Args) != 2 {
				return cli.Usagef("want the old and the new name")
			}
			return a.withAccount(func(acc *client.Account) error {
				if err := acc.Rename(a.ctx, c.Args[0], c.Args[1]); err != nil {
					return err
				}
				a.out(map[string]string{"from": c.Args[0], "to": c.Args[1]}, fmt.Sprintf("renamed %s to %s\n", c.Args[0], c.Args[1]))
				return nil
			})
		}
		add(c)
	}
	{
		c := newCommand("share", "NAME [--revoke]", "Print a capability that lets anyone who holds it fetch this one file ('blind fetch'),\nwithout an account. Sharing again prints the same capability. --revoke deletes it.", nil)
		revoke := c.Flags.Bool("revoke", false, "stop sharing: the capability then finds nothing (copies already fetched stay fetched)")
		c.run = func(a *app) error { return a.share(c, *revoke) }
		add(c)
	}
	{
		c := newCommand("fetch", "CAP [-o PATH]", "Fetch a shared file with its capability; needs no account.", nil)
		out := c.Flags.String("o", "", "output `path` (default: the file's name, in the current directory; \"-\" for standard output)")
		force := c.Flags.Bool("force", false, "overwrite an existing output file")
		c.run = func(a *app) error { return a.fetch(c, *out, *force) }
		add(c)
	}
	{
		c := newCommand("passwd", "", "Change the password. Current password: prompt or BLIND_PASSWORD; new one: prompt\n(asked twice) or BLIND_NEW_PASSWORD. No data is re-encrypted.", nil)
		device := c.Flags.String("device-key", "", "device key `file`, if the account has one")
		c.run = func(a *app) error { return a.passwd(c, *device) }
		add(c)
	}
	{
		c := newCommand("renew", "[--export FILE | --from FILE]", "Renew every stale block of the account now. --export writes the renew proofs of\nevery block to FILE (mode 0600): whoever has it can keep the blocks alive but can\nnot read, change or delete them. --from renews from such a file, with no session.", nil)
		export := c.Flags.String("export", "", "write renew proofs to this `file` instead of renewing")
		from := c.Flags.String("from", "", "renew the blocks listed in this `file` (from --export)")
		invite := c.Flags.String("invite", "", "with --from on a server that charges for renewals: the invite `code` that fetches the tokens (kept in the configuration directory)")
		c.run = func(a *app) error { a.invite = *invite; return a.renew(c, *export, *from) }
		add(c)
	}
	{
		c := newCommand("status", "", "Show the account, its files, and until when its data is safe without another login.", nil)
		c.run = func(a *app) error { return a.status(c) }
		add(c)
	}
	{
		c := newCommand("delete-account", "[--yes]", "Delete every block of the account (files, shares, index, roots), then log out.", nil)
		yes := c.Flags.Bool("yes", false, "do not ask for confirmation")
		c.run = func(a *app) error { return a.deleteAccount(c, *yes) }
		add(c)
	}
	add(syncCommand())  // sync.go
	add(serveCommand()) // webdav.go

	meta, finish := metaCommands() // meta.go
	for _, c := range meta {
		add(c)
	}
	m := make(map[string]*command, len(cmds))
	for _, c := range cmds {
		m[c.Name] = c
	}
	finish(m)
	return m
}

func (a *app) remote(server string) (*client.Remote, error) {
	hc, err := a.httpClient() // pin.go
	if err != nil {
		return nil, err
	}
	r, err := client.NewRemote(server, hc)
	if err != nil {
		return nil, err
	}
	a.attachWallet(r, hc) // tokens.go
	return r, nil
}

func readDeviceKey(path string, create bool) (*format.DeviceKey, error) {
	if path == "" {
		return nil, nil
	}
	d, err := client.ReadDeviceKeyFile(path)
	if err == nil {
		return &d, nil
	}
	if !create || !os.IsNotExist(unwrapAll(err)) {
		return nil, &client.Error{Kind: client.KindLocalIO, Msg: "the device key", Err: err}
	}
	if d, err = format.NewDeviceKey(); err != nil {
		return nil, err
	}
	if err := client.WriteDeviceKeyFile(path, d); err != nil {
		return nil, &client.Error{Kind: client.KindLocalIO, Msg: "the device key", Err: err}
	}
	return &d, nil
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		next := u.Unwrap()
		if next == nil {
			return err
		}
		err = next
	}
}

func (a *app) saveAccount(acc *client.Account, deviceKeyFile string) error {
	s := &session{State: acc.State(), DeviceKeyFile: deviceKeyFile, CAPEM: string(a.caPEM)}
	return saveSession(s)
}

// safety prints until when the data is safe, and warns on stderr when
// that is near.
func (a *app) safety(acc *client.Account) (time.Time, bool) {
	safe := acc.SafeUntil()
	near := acc.Config().ExpiryNear(safe, time.Now())
	if near {
		fmt.Fprintf(a.stderr, "warning: this account's data will be deleted on %s unless you log in or run 'blind renew' before then\n", safe.Local().Format(time.RFC1123))
	}
	return safe, near
}

func safeText(safe time.Time) string {
	return fmt.Sprintf("your data is safe until %s without another login\n", safe.Local().Format(time.RFC1123))
}

func (a *app) signup(c *command, user, deviceFile string) error {
	if len(c.Args) > 0 {
		return cli.Usagef("unexpected arguments")
	}
	if user == "" {
		return cli.Usagef("--user is required")
	}
	pw, err := a.secret("BLIND_PASSWORD", "Password: ", true)
	if err != nil {
		return err
	}
	if err := checkNewPassword(pw, user); err != nil { // password.go
		return err
	}
	dev, err := readDeviceKey(deviceFile, true)
	if err != nil {
		return err
	}
	r, err := a.remote(a.g.server)
	if err != nil {
		return err
	}
	if err := a.prepareTokens(r, a.invite); err != nil {
		return err
	}
	cache, err := a.blockCache()
	if err != nil {
		return err
	}
	acc, code, err := client.Signup(a.ctx, r, user, pw, dev, cache...)
	if err != nil {
		return err
	}
	if err := a.saveAccount(acc, deviceFile); err != nil {
		return err
	}
	safe, _ := a.safety(acc)
	a.out(map[string]any{"user": user, "server": r.URL(), "recovery_code": code.String(), "safe_until": safe},
		fmt.Sprintf("signed up and logged in as %s\n\nRecovery code (shown only now; write it down and keep it apart from your password):\n\n    %s\n\nWith it, 'blind login --recover' sets a new password if you forget yours.\n%s",
			user, code.String(), safeText(safe)))
	return nil
}

func (a *app) login(c *command, user, deviceFile string, recovery bool) error {
	if len(c.Args) > 0 {
		return cli.Usagef("unexpected arguments")
	}
	if user == "" {
		return cli.Usagef("--user is required")
	}
	dev, err := readDeviceKey(deviceFile, false)
	if err != nil {
		return err
	}
	r, err := a.remote(a.g.server)
	if err != nil {
		return err
	}
	if err := a.prepareTokens(r, a.invite); err != nil {
		return err
	}
	cache, err := a.blockCache()
	if err != nil {
		return err
	}
	var acc *client.Account
	if recovery {
		s, err := a.secret("BLIND_RECOVERY_CODE", "Recovery code: ", false)
		if err != nil {
			return err
		}
		code, err := format.ParseRecoveryCode(s)
		if err != nil {
			return cli.UsageError{Err: err}
		}
		pw, err := a.secret("BLIND_NEW_PASSWORD", "New password: ", true)
		if err != nil {
			return err
		}
		if err := checkNewPassword(pw, user); err != nil {
			return err
		}
		if acc, err = client.LoginRecovery(a.ctx, r, code, user, pw, dev, cache...); err != nil {
			return err
		}
	} else {
		pw, err := a.secret("BLIND_PASSWORD", "Password: ", false)
		if err != nil {
			return err
		}
		if acc, err = client.Login(a.ctx, r, user, pw, dev, cache...); err != nil {
			return err
		}
	}
	rep, err := a.renewPaid(acc)
	if err != nil {
		return err
	}
	if err := a.saveAccount(acc, deviceFile); err != nil {
		return err
	}
	// The login read the whole index: the listing ls reads is built
	// from it now, rather than by decrypting the index again.
	acc.KeepListing()
	for _, name := range rep.Damaged {
		fmt.Fprintf(a.stderr, "warning: %s has blocks the server no longer has; it cannot be fetched\n", name)
	}
	safe, near := a.safety(acc)
	a.out(map[string]any{"user": user, "server": r.URL(), "files": len(acc.Files()), "renewal": rep, "safe_until": safe, "expiry_near": near},
		fmt.Sprintf("logged in as %s: %d files; renewed %d stale blocks\n%s", user, len(acc.Files()), rep.Renewed, safeText(safe)))
	return nil
}

// withAccount opens the session's account, renews it if a period
// boundary passed since its last renewal, runs f, and saves the session.
func (a *app) withAccount(f func(acc *client.Account) error) error {
	return a.withAccountOpts(nil, f)
}

// withAccountOpts is withAccount with options for the account: a
// command that reads or changes one file passes client.WithLazyIndex,
// so that it reads only that file's leaves of the index.
func (a *app) withAccountOpts(opts []client.Option, f func(acc *client.Account) error) error {
	s, err := loadSession()
	if err != nil {
		return err
	}
	if err := a.pinSession(s); err != nil { // pin.go
		return err
	}
	r, err := a.remote(s.Server)
	if err != nil {
		return err
	}
	if err := a.prepareTokens(r, ""); err != nil {
		return err
	}
	cache, err := a.blockCache()
	if err != nil {
		return err
	}
	acc, err := client.Resume(a.ctx, r, s.State, append(cache, opts...)...)
	if err != nil {
		return err
	}
	if acc.Stale(acc.Config().CurrentPeriod) {
		if _, err := a.renewPaid(acc); err != nil {
			return err
		}
	}
	ferr := f(acc)
	if a.loggedOut {
		return ferr
	}
	if err := a.saveAccount(acc, s.DeviceKeyFile); err != nil && ferr == nil {
		return err
	}
	return ferr
}

func (a *app) put(c *command, as string) error {
	if len(c.Args) == 0 {
		return cli.Usagef("want a file or folder")
	}
	if len(c.Args) > 1 || isDir(c.Args[0]) {
		return a.putMany(c.Args, as) // put.go
	}
	src := c.Args[0]
	name := as
	if name == "" {
		if src == "-" {
			return cli.Usagef("reading standard input needs --as NAME")
		}
		name = filepath.Base(src)
	}
	return a.withAccountOpts([]client.Option{client.WithLazyIndex()}, func(acc *client.Account) error {
		var f any
		var size uint64
		if src == "-" {
			prog, done := a.progress("put "+name, -1)
			file, err := acc.Put(a.ctx, a.stdin, client.PutInfo{Name: name, Mode: 0o644, ModTime: time.Now()}, prog)
			done(err)
			if err != nil {
				return err
			}
			f, size = fileJSON(&file), file.Size
		} else {
			var total int64 = -1
			if fi, err := os.Stat(src); err == nil {
				total = fi.Size()
			}
			prog, done := a.progress("put "+name, total)
			file, err := acc.PutFile(a.ctx, src, name, prog)
			done(err)
			if err != nil {
				return err
			}
			f, size = fileJSON(&file), file.Size
		}
		a.out(f, fmt.Sprintf("stored %s (%s)\n", name, humanBytes(size)))
		return nil
	})
}

func (a *app) get(c *command, out string, force bool) error {
	if len(c.Args) != 1 {
		return cli.Usagef("want one file name")
	}
	name := c.Args[0]
	return a.withAccount(func(acc *client.Account) error {
		f, err := acc.Lookup(name)
		if client.KindOf(err) == client.KindNotFound && len(acc.FilesUnder(name)) > 0 {
			return a.getFolder(acc, name, out, force) // getfolder.go
		}
		if err != nil {
			return err
		}
		prog, done := a.progress("get "+name, int64(f.Size))
		if out == "-" {
			_, err := acc.Get(a.ctx, name, a.stdout, prog)
			done(err)
			return err
		}
		if out == "" {
			out = path.Base(name)
		}
		err = client.WriteFileAtomic(out, force, f.Mode, f.ModTime, func(w io.Writer) error {
			_, err := acc.Get(a.ctx, name, w, prog)
			return err
		})
		done(err)
		if err != nil {
			return err
		}
		a.out(map[string]any{"name": name, "path": out, "size": f.Size}, fmt.Sprintf("wrote %s (%s)\n", out, humanBytes(f.Size)))
		return nil
	})
}

func (a *app) ls(c *command) error {
	if len(c.Args) > 1 {
		return cli.Usagef("want at most one folder")
	}
	folder := ""
	if len(c.Args) == 1 {
		folder = c.Args[0]
	}
	// The listing comes from the listing cache when it is that of the
	// index the head lists: the index itself is then not read.
	return a.withAccountOpts([]client.Option{client.WithLazyIndex()}, func(acc *client.Account) error {
		all, err := acc.List(a.ctx)
		if err != nil {
			return err
		}
		found := false
		files := all[:0]
		for _, f := range all {
			if !client.Under(f.Name, folder) {
				continue
			}
			found = true // markers included: an empty folder is there
			if !client.Hidden(f.Name) {
				files = append(files, f)
			}
		}
		if folder != "" && !found {
			return &client.Error{Kind: client.KindNotFound, Msg: fmt.Sprintf("no file or folder %q in the account", folder)}
		}
		w := bufio.NewWriterSize(a.stdout, 64<<10)
		if a.g.json {
			// What a.out prints of {"files": [...]}, an entry at a time
			// rather than in one buffer of the whole account.
			w.WriteString(`{"files":[`)
			for i := range files {
				b, err := json.Marshal(listedJSON(&files[i]))
				if err != nil {
					return err
				}
				if i > 0 {
					w.WriteByte(',')
				}
				w.Write(b)
			}
			w.WriteString("]}\n")
			return w.Flush()
		}
		var lastSize uint64
		var lastSec int64
		sizeText, timeText := "", ""
		for i := range files {
			f := &files[i]
			// Many files share a size or a second: format each once.
			if i == 0 || f.Size != lastSize {
				lastSize, sizeText = f.Size, fmt.Sprintf("%10s", humanBytes(f.Size))
			}
			if sec := f.ModTime.Unix(); i == 0 || sec != lastSec {
				lastSec, timeText = sec, f.ModTime.Local().Format("2006-01-02 15:04")
			}
			w.WriteString(sizeText)
			w.WriteString("  ")
			w.WriteString(timeText)
			w.WriteString("  ")
			w.WriteString(f.Name)
			if f.Shared {
				w.WriteString("  (shared)")
			}
			w.WriteByte('\n')
		}
		return w.Flush()
	})
}

func (a *app) share(c *command, revoke bool) error {
	if len(c.Args) != 1 {
		return cli.Usagef("want one file name")
	}
	name := c.Args[0]
	return a.withAccount(func(acc *client.Account) error {
		if revoke {
			if err := acc.Unshare(a.ctx, name); err != nil {
				return err
			}
			a.out(map[string]string{"unshared": name}, fmt.Sprintf("%s is no longer shared\n", name))
			return nil
		}
		cp, err := acc.Share(a.ctx, name)
		if err != nil {
			return err
		}
		a.out(map[string]string{"name": name, "capability": cp.String()}, cp.String()+"\n")
		return nil
	})
}

func (a *app) fetch(c *command, out string, force bool) error {
	if len(c.Args) != 1 {
		return cli.Usagef("want one capability")
	}
	cp, err := client.ParseCapability(c.Args[0])
	if err != nil {
		return cli.UsageError{Err: err}
	}
	server := a.g.server
	r, err := a.remote(server)
	if err != nil {
		return err
	}
	f, err := client.OpenCapability(a.ctx, r, cp)
	if err != nil {
		return err
	}
	prog, done := a.progress("fetch "+f.Name, int64(f.Size))
	if out == "-" {
		err := client.FetchFile(a.ctx, r, f, a.stdout, prog)
		done(err)
		return err
	}
	if out == "" {
		out = f.Name
	}
	err = client.WriteFileAtomic(out, force, f.Mode, f.ModTime, func(w io.Writer) error {
		return client.FetchFile(a.ctx, r, f, w, prog)
	})
	done(err)
	if err != nil {
		return err
	}
	a.out(map[string]any{"name": f.Name, "path": out, "size": f.Size}, fmt.Sprintf("wrote %s (%s)\n", out, humanBytes(f.Size)))
	return nil
}

func (a *app) passwd(c *command, deviceFile string) error {
	if len(c.Args) > 0 {
		return cli.Usagef("unexpected arguments")
	}
	return a.withAccount(func(acc *client.Account) error {
		if acc.User() == "" {
			return cli.Usagef("the session has no user name: log in again")
		}
		s, _ := loadSession()
		if deviceFile == "" && s != nil {
			deviceFile = s.DeviceKeyFile
		}
		dev, err := readDeviceKey(deviceFile, false)
		if err != nil {
			return err
		}
		cur, err := a.secret("BLIND_PASSWORD", "Current password: ", false)
		if err != nil {
			return err
		}
		pw, err := a.secret("BLIND_NEW_PASSWORD", "New password: ", true)
		if err != nil {
			return err
		}
		if err := checkNewPassword(pw, acc.User()); err != nil {
			return err
		}
		if err := acc.Passwd(a.ctx, acc.User(), cur, pw, dev); err != nil {
			return err
		}
		a.out(map[string]bool{"changed": true}, "password changed\n")
		return nil
	})
}

func (a *app) renew(c *command, export, from string) error {
	if len(c.Args) > 0 || (export != "" && from != "") {
		return cli.Usagef("give at most one of --export and --from, and no arguments")
	}
	if from != "" {
		fh, err := os.Open(from)
		if err != nil {
			return &client.Error{Kind: client.KindLocalIO, Msg: "reading the export", Err: err}
		}
		defer fh.Close()
		l, items, err := client.ReadRenewList(fh)
		if err != nil {
			return err
		}
		server := a.g.server
		if !a.given["server"] {
			server = l.Server
		}
		r, err := a.remote(server)
		if err != nil {
			return err
		}
		if err := a.prepareTokens(r, a.invite); err != nil {
			return err
		}
		res, err := client.RenewFrom(a.ctx, r, items)
		if err != nil {
			return err
		}
		cfg, err := r.Config(a.ctx)
		if err != nil {
			return err
		}
		if len(res.Missing)+len(res.Refused) > 0 {
			fmt.Fprintf(a.stderr, "warning: %d of %d blocks are gone or refused: the export is older than the account's index (export again)\n", len(res.Missing)+len(res.Refused), len(items))
		}
		safe := cfg.SafeUntil(cfg.CurrentPeriod)
		a.out(map[string]any{"renewed": res.Renewed, "current": res.Current, "missing": len(res.Missing) + len(res.Refused), "safe_until": safe},
			fmt.Sprintf("renewed %d blocks (%d already current)\nthe listed blocks are safe until %s\n", res.Renewed, res.Current, safe.Local().Format(time.RFC1123)))
		return nil
	}
	return a.withAccount(func(acc *client.Account) error {
		if export != "" {
			l := acc.ExportRenewals()
			b, err := json.Marshal(l)
			if err != nil {
				return err
			}
			if err := client.WriteFileAtomic(export, true, 0o600, time.Time{}, func(w io.Writer) error {
				_, err := w.Write(append(b, '\n'))
				return err
			}); err != nil {
				return err
			}
			if err := recordExport(export, l.Generation); err != nil {
				return err
			}
			a.out(map[string]any{"exported": len(l.Blocks), "path": export}, fmt.Sprintf("wrote the renew proofs of %d blocks to %s\n", len(l.Blocks), export))
			return nil
		}
		rep, err := acc.Renew(a.ctx)
		if err != nil {
			return err
		}
		safe, _ := a.safety(acc)
		a.out(map[string]any{"renewal": rep, "safe_until": safe}, fmt.Sprintf("renewed %d stale blocks\n%s", rep.Renewed, safeText(safe)))
		return nil
	})
}

func (a *app) flagSet(c *command, name string) bool {
	set := false
	c.Flags.Visit(func(f *flagT) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

func (a *app) status(c *command) error {
	if len(c.Args) > 0 {
		return cli.Usagef("unexpected arguments")
	}
	return a.withAccount(func(acc *client.Account) error {
		files := userFiles(acc.Files())
		var total uint64
		shared := 0
		for i := range files {
			total += files[i].Size
			if len(files[i].Manifest) > 0 {
				shared++
			}
		}
		safe, near := a.safety(acc)
		cfg := acc.Config()
		tokens, tokensText, err := a.tokenStatus(acc) // tokens.go
		if err != nil {
			return err
		}
		export, exportText := a.exportStatus(acc) // sync.go
		a.out(map[string]any{
			"server": acc.Remote().URL(), "user": acc.User(), "files": len(files), "bytes": total, "shared": shared,
			"generation": acc.Generation(), "safe_until": safe, "expiry_near": near,
			"period_seconds": cfg.PeriodSeconds, "retention_periods": cfg.RetentionPeriods, "tokens": tokens,
			"export": export,
		}, fmt.Sprintf("server:  %s\nuser:    %s\nfiles:   %d (%s), %d shared\n%s%s%s",
			acc.Remote().URL(), acc.User(), len(files), humanBytes(total), shared, tokensText, exportText, safeText(safe)))
		return nil
	})
}

func (a *app) deleteAccount(c *command, yes bool) error {
	if len(c.Args) > 0 {
		return cli.Usagef("unexpected arguments")
	}
	return a.withAccount(func(acc *client.Account) error {
		if !yes {
			ok, err := a.confirm(fmt.Sprintf("This deletes every file of %s on %s, for good.", acc.User(), acc.Remote().URL()), "delete")
			if err != nil {
				return err
			}
			if !ok {
				return cli.Usagef("not confirmed; nothing deleted")
			}
		}
		if err := acc.Delete(a.ctx); err != nil {
			return err
		}
		a.loggedOut = true
		if _, err := wipeSession(); err != nil {
			return err
		}
		a.out(map[string]bool{"deleted": true}, "account deleted and logged out\n")
		return nil
	})
}

type fileOut struct {
	Name    string    `json:"name"`
	Size    uint64    `json:"size"`
	Mode    string    `json:"mode"`
	ModTime time.Time `json:"mtime"`
	SHA256  string    `json:"sha256"`
	Blocks  int       `json:"blocks"`
	Shared  bool      `json:"shared"`
	Renewed uint64    `json:"renewed_period"`
}

func fileJSON(f *indexFile) fileOut {
	return fileOut{Name: f.Name, Size: f.Size, Mode: fmt.Sprintf("%04o", uint32(f.Mode)), ModTime: f.ModTime,
		SHA256: fmt.Sprintf("%x", f.Hash), Blocks: len(f.Chunks), Shared: len(f.Manifest) > 0, Renewed: f.Renewed}
}

// listedJSON is fileJSON of a listing's entry.
func listedJSON(f *client.Listed) fileOut {
	return fileOut{Name: f.Name, Size: f.Size, Mode: fmt.Sprintf("%04o", uint32(f.Mode)), ModTime: f.ModTime,
		SHA256: fmt.Sprintf("%x", f.Hash), Blocks: f.Blocks, Shared: f.Shared, Renewed: f.Renewed}
}

func humanBytes(n uint64) string { return client.FormatSize(n) }

type (
	flagT     = flag.Flag
	indexFile = indexfile.File
)
