// Command blind is the blindstore client: it signs up and logs in,
// stores, lists, fetches and shares files, all encrypted on this machine
// (package client), and tells the user until when their data is safe.
//
// It never prints or logs a password, a key, a proof or a block ID; the
// only secrets it prints are the ones the user asked for (a recovery code
// at signup, a capability from share).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/blindstore/blindstore/client"
	"github.com/blindstore/blindstore/client/blockcache"
	"github.com/blindstore/blindstore/internal/cli"
	"github.com/blindstore/blindstore/wire"
)

// exitCodesHelp documents wire's exit codes (wire.ExitOK and on), each
// kind of error's own: scripts rely on them, so none is ever renumbered.
const exitCodesHelp = `Exit codes:
  0  success
  1  other error
  2  bad usage (unknown command or flag, malformed capability or file name,
     a new password too easy to guess)
  3  authentication: wrong user name or password, unknown account (the two
     cannot be told apart, on purpose), not logged in, or the session no
     longer opens the account
  4  not found: no such file, or a shared file that is gone (expired or
     unshared), or a block the server no longer has
  5  conflict: the name or account exists, the output file exists, a file
     changed while it was read, or the index kept changing under an update
  6  network: the server is unreachable, unavailable, rate limiting, or
     answers something that is not the blindstore API
  7  tampering: the server returned data that was not written under that
     block's id and key, an older version, or blocks out of order; nothing
     of it was written out
  8  local I/O: reading or writing a local file failed (e.g. the disk is full)
  9  quota: the server charges write tokens and too few are left (or none
     can be fetched); nothing was written
`

const envPrefix = "BLIND_"

// version is set at build time (the Makefile's -ldflags "-X
// main.version=…"); cli.Version falls back to the module version or "dev".
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := startProfile(os.Getenv(envPrefix + "CPUPROFILE"))
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stopProfile()
	stop()
	os.Exit(code)
}

// startProfile writes a CPU profile of this run to path, if set: the
// bench (cmd/blindbench -client-profile) profiles the client this way,
// since the work it measures is a whole command.
func startProfile(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "blind: %s: %v (running without a profile)\n", envPrefix+"CPUPROFILE", err)
		if f != nil {
			f.Close()
		}
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// globals are the flags every command takes, before or after its name.
type globals struct {
	server   string
	json     bool
	caFile   string
	cacheMiB int64
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.server, "server", "http://127.0.0.1:7878", "blindstore server `URL`")
	fs.StringVar(&g.caFile, "ca-file", "", "trust only the certificate authorities in this PEM `file` for an https:// server (default: the system's)")
	fs.BoolVar(&g.json, "json", false, "print results as JSON (one object) for scripts; errors too, on stderr")
	fs.Int64Var(&g.cacheMiB, "cache-mib", blockcache.DefaultMaxBytes>>20, "keep at most this many `MiB` of the account's encrypted index blocks in the configuration directory, so that a command fetches only what changed since the last (0: no cache; 'blind logout' removes it)")
}

// app is one run of the command line.
type app struct {
	ctx    context.Context
	g      globals
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// loggedOut: the command wiped the session, which must not be
	// saved again.
	loggedOut bool
	// wallet holds the write tokens (tokens.go); invite is --invite.
	wallet *client.Wallet
	invite string
	// given holds the flags the user gave (command line or environment);
	// caPEM the CAs this run trusts (session.go).
	given map[string]bool
	caPEM []byte
}

type command struct {
	cli.Command
	run func(a *app) error
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	// The commands register the global flags too, which resets them to
	// their defaults: build them before parsing.
	cmds := commands(a)
	gfs, showVersion := globalFlags(&a.g)
	if err := gfs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printMainUsage(stdout)
			return wire.ExitOK
		}
		fmt.Fprintf(stderr, "blind: %v (run 'blind --help')\n", err)
		return wire.ExitUsage
	}
	if *showVersion {
		return printVersion(a, stdout)
	}
	set := map[string]bool{}
	gfs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	args = gfs.Args()
	if len(args) == 0 || args[0] == "help" {
		if len(args) > 1 {
			if args[1] == "--help" || args[1] == "-h" {
				args[1] = "help"
			}
			if c, ok := cmds[args[1]]; ok {
				c.PrintUsage(stdout)
				return wire.ExitOK
			}
		}
		printMainUsage(stdout)
		if len(args) == 0 {
			return wire.ExitUsage
		}
		return wire.ExitOK
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "blind: unknown command %q (run 'blind --help')\n", args[0])
		return wire.ExitUsage
	}
	if err := c.Parse(args[1:], stdout, set); err != nil {
		if errors.Is(err, cli.ErrHelp) {
			return wire.ExitOK
		}
		fmt.Fprintf(stderr, "blind: %v (run 'blind %s --help')\n", err, c.Name)
		return wire.ExitUsage
	}
	a.given = c.Given
	err := c.run(a)
	if a.wallet != nil {
		// Tokens taken out and not spent go back into the wallet file.
		if cerr := a.wallet.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if err == nil {
		return wire.ExitOK
	}
	code := exitCode(err)
	msg := err.Error()
	if code == wire.ExitUsage {
		msg += fmt.Sprintf(" (run 'blind %s --help')", c.Name)
	}
	if a.g.json {
		b, _ := json.Marshal(map[string]any{"error": msg, "exit_code": code, "kind": kindName(err)})
		fmt.Fprintf(stderr, "%s\n", b)
	} else {
		fmt.Fprintf(stderr, "blind %s: %s\n", c.Name, msg)
	}
	return code
}

func exitCode(err error) int {
	var u cli.UsageError
	if errors.As(err, &u) {
		return wire.ExitUsage
	}
	if errors.Is(err, context.Canceled) {
		return wire.ExitOther
	}
	return client.KindOf(err).ExitCode()
}

func kindName(err error) string {
	var u cli.UsageError
	if errors.As(err, &u) {
		return "usage"
	}
	return client.KindOf(err).String()
}

func printMainUsage(w io.Writer) {
	fmt.Fprint(w, `blind: the blindstore client. Files are encrypted on this machine; the server
keeps fixed-size ciphertext blocks it cannot read or link, and forgets what
nobody renews. Logging in renews your blocks: log in at least once per
retention time, or run 'blind renew' (from cron, say). 'blind status' says
until when your data is safe.

Usage: blind [--server URL] [--ca-file FILE] [--cache-mib N] [--json] COMMAND [flags] [arguments]
       blind --version

Commands:
`)
	cli.PrintCommands(w, commandList(commands(&app{})))
	fmt.Fprint(w, `
Run 'blind COMMAND --help' for a command's flags. Every flag falls back to an
environment variable: --server to BLIND_SERVER, --ca-file to BLIND_CA_FILE,
and so on; a yes/no variable takes 1/0, true/false, yes/no, on/off or y/n.
Passwords are read without echo from the terminal, or from BLIND_PASSWORD
(and BLIND_NEW_PASSWORD for a new one); a recovery code from
BLIND_RECOVERY_CODE (with 'blind login --recover'). The session is kept in
BLIND_CONFIG_DIR, else in the user's configuration directory under
blindstore/, readable only by you; it remembers the server and the
certificate authorities of --ca-file, so later commands need neither.
Beside it, the account's index blocks are cached as the ciphertext the
server holds, so that a command fetches only what changed since the last
(--cache-mib bounds it, 0 turns it off). 'blind logout' wipes both.
BLIND_NO_PROGRESS=yes turns the progress bar off.

`)
	fmt.Fprint(w, exitCodesHelp)
}
