package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/blindstore/blindstore/internal/atomicfile"

	"github.com/blindstore/blindstore/client"
	"github.com/blindstore/blindstore/client/blockcache"
	"github.com/blindstore/blindstore/internal/cli"
	"golang.org/x/term"
)

// The session file holds what acting without the password needs: the
// server, the user name and the account's secrets (client.State), never
// the password. It is as secret as the password: mode 0600 in a 0700
// directory, written atomically, overwritten before it is removed.

const sessionFile = "session.json"

// cacheDir, in the configuration directory, holds the account's index
// blocks as the ciphertext the server holds (package blockcache), so
// that a command fetches only the index blocks that changed since the
// last one. It reveals nothing the session file beside it does not:
// whoever has the session can fetch the same blocks and decrypt them.
// logout removes it with the session.
const cacheDir = "cache"

type session struct {
	client.State
	DeviceKeyFile string `json:"device_key_file,omitempty"`
	// CAPEM holds the certificates of the --ca-file given at login, not
	// the file's path: the session then works where the file is not
	// (a moved or deleted file, a sandboxed service such as
	// contrib/systemd's sync unit), and replacing the file cannot change
	// whom a logged-in client trusts. An explicit --ca-file replaces it.
	CAPEM string `json:"ca_pem,omitempty"`
}

func configDir() (string, error) {
	if d := os.Getenv("BLIND_CONFIG_DIR"); d != "" {
		return d, nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", &client.Error{Kind: client.KindLocalIO, Msg: "no configuration directory: set BLIND_CONFIG_DIR", Err: err}
	}
	return filepath.Join(d, "blindstore"), nil
}

func sessionPath() (string, error) {
	d, err := configDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, sessionFile), nil
}

var errNoSession = &client.Error{Kind: client.KindAuth, Msg: "not logged in: run 'blind login' (or 'blind signup') first"}

func loadSession() (*session, error) {
	p, err := sessionPath()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoSession
	}
	if err != nil {
		return nil, &client.Error{Kind: client.KindLocalIO, Msg: "reading the session", Err: err}
	}
	var s session
	if err := json.Unmarshal(b, &s); err != nil || s.Server == "" {
		return nil, &client.Error{Kind: client.KindAuth, Msg: "the session file is damaged: run 'blind logout', then 'blind login'"}
	}
	return &s, nil
}

func saveSession(s *session) error {
	dir, err := configDir()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return &client.Error{Kind: client.KindLocalIO, Msg: "creating the configuration directory", Err: err}
	}
	// MkdirAll leaves an existing directory's mode alone: tighten it.
	if err := os.Chmod(dir, 0o700); err != nil {
		return &client.Error{Kind: client.KindLocalIO, Msg: "securing the configuration directory", Err: err}
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, sessionFile), append(b, '\n'), 0o600); err != nil {
		return &client.Error{Kind: client.KindLocalIO, Msg: "writing the session", Err: err}
	}
	return nil
}

// blockCache returns the options that give an account the block cache
// of --cache-mib, none when it is 0. A cache that cannot be opened is
// only slower: the command runs without it, with a warning.
func (a *app) blockCache() ([]client.Option, error) {
	if a.g.cacheMiB < 0 || a.g.cacheMiB > maxCacheMiB {
		return nil, cli.Usagef("--cache-mib must be 0 (no cache) to %d", maxCacheMiB)
	}
	if a.g.cacheMiB == 0 {
		return nil, nil
	}
	d, err := configDir()
	if err == nil {
		if err = os.MkdirAll(d, 0o700); err == nil {
			var c *blockcache.Cache
			if c, err = blockcache.Open(filepath.Join(d, cacheDir), a.g.cacheMiB<<20); err == nil {
				return []client.Option{client.WithBlockCache(c)}, nil
			}
		}
	}
	fmt.Fprintf(a.stderr, "warning: running without the block cache, so the whole index is fetched (%v)\n", err)
	return nil, nil
}

// The block cache keeps the listing too (client/listing.go).
var _ client.ListingCache = (*blockcache.Cache)(nil)

// maxCacheMiB bounds --cache-mib (1 TiB), far above any index.
const maxCacheMiB = 1 << 20

// wipeSession overwrites the session file with zeros, then removes it,
// and removes the block cache. It reports whether there was a session.
func wipeSession() (bool, error) {
	p, err := sessionPath()
	if err != nil {
		return false, err
	}
	if err := blockcache.Remove(filepath.Join(filepath.Dir(p), cacheDir)); err != nil {
		return false, &client.Error{Kind: client.KindLocalIO, Msg: "logging out: removing the block cache", Err: err}
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, &client.Error{Kind: client.KindLocalIO, Msg: "logging out", Err: err}
	}
	if f, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
		_, _ = f.Write(make([]byte, fi.Size()))
		_ = f.Sync()
		f.Close()
	}
	if err := os.Remove(p); err != nil {
		return true, &client.Error{Kind: client.KindLocalIO, Msg: "removing the session", Err: err}
	}
	return true, nil
}

// isTerminal reports whether f is a terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// secret reads a secret from the environment variable env, or without
// echo from the terminal. confirm asks twice.
func (a *app) secret(env, prompt string, confirm bool) (string, error) {
	if v, ok := os.LookupEnv(env); ok {
		return v, nil
	}
	in, ok := a.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return "", cli.Usagef("no terminal to ask for %s: set %s", strings.TrimSuffix(strings.ToLower(prompt), ": "), env)
	}
	fmt.Fprint(a.stderr, prompt)
	b, err := term.ReadPassword(int(in.Fd()))
	fmt.Fprintln(a.stderr)
	if err != nil {
		return "", &client.Error{Kind: client.KindLocalIO, Msg: "reading from the terminal", Err: err}
	}
	if confirm {
		fmt.Fprint(a.stderr, "Again: ")
		b2, err := term.ReadPassword(int(in.Fd()))
		fmt.Fprintln(a.stderr)
		if err != nil {
			return "", &client.Error{Kind: client.KindLocalIO, Msg: "reading from the terminal", Err: err}
		}
		if string(b) != string(b2) {
			return "", cli.Usagef("the two entries differ")
		}
	}
	return string(b), nil
}

// confirm asks a yes/no question on the terminal.
func (a *app) confirm(question, want string) (bool, error) {
	in, ok := a.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return false, cli.Usagef("no terminal to confirm on: pass --yes")
	}
	fmt.Fprintf(a.stderr, "%s Type %q to confirm: ", question, want)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		return false, &client.Error{Kind: client.KindLocalIO, Msg: "reading from the terminal", Err: err}
	}
	return strings.TrimSpace(line) == want, nil
}

// out prints v as JSON with --json, else text.
func (a *app) out(v any, text string) {
	if a.g.json {
		b, _ := json.Marshal(v)
		fmt.Fprintf(a.stdout, "%s\n", b)
		return
	}
	if text != "" {
		io.WriteString(a.stdout, text)
	}
}
