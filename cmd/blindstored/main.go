// Command blindstored is the blindstore server: it serves the block API on
// the embedded store or on PostgreSQL, and runs the operator's one-off
// tasks (migrate, keygen, version).
//
// It never logs block IDs, proofs, ETags or client addresses.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/blindstore/blindstore/internal/cli"
	"github.com/blindstore/blindstore/wire"
)

// version is set at build time with -ldflags "-X main.version=…"; a plain
// `go build` reports the module version or "dev".
var version = ""

func versionString() string { return cli.Version(version) }

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// Exit codes: wire's table gives each kind of error its code, the same
// as blind's where they mean the same.
const (
	exitOK    = wire.ExitOK
	exitError = wire.ExitOther
	exitUsage = wire.ExitUsage
)

// exitCodesHelp documents the codes a command can exit with.
const exitCodesHelp = `Exit codes:
  0  success
  1  failure (one line on stderr says what, and what to do)
  2  bad usage (unknown command or flag, a malformed value)
  6  the store is unavailable: PostgreSQL cannot be reached, or answers that
     it cannot serve now; retrying later may help
`

// exitCode is the exit code of a command that failed with err: by the
// kind of the error, where it has one. Only the codes exitCodesHelp
// documents are used; a kind whose code it does not list (none reaches a
// command today) exits 1.
func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return exitUsage
	}
	if code := wire.KindOf(err).ExitCode(); code == wire.ExitNetwork {
		return code
	}
	return exitError
}

func commands(stdout, stderr io.Writer) map[string]*command {
	cmds := []*command{
		serveCommand(stdout, stderr),
		auditCommand(stdout, stderr),
		migrateCommand(stdout, stderr),
		purgeCommand(stdout, stderr),
		sealCommand(stdout, stderr),
		mergeCommand(stdout, stderr),
		keygenCommand(stdout),
		issuerCommand(stdout, stderr),
		versionCommand(stdout),
	}
	m := make(map[string]*command, len(cmds))
	for _, c := range cmds {
		m[c.name] = c
	}
	return m
}

func run(args []string, stdout, stderr io.Writer) int {
	cmds := commands(stdout, stderr)
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 1 {
			if c, ok := cmds[args[1]]; ok {
				c.printUsage(stdout)
				return exitOK
			}
		}
		printMainUsage(stdout, cmds)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] == "--version" || args[0] == "-version" {
		args = append([]string{"version"}, args[1:]...)
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "blindstored: unknown command %q (run 'blindstored --help')\n", args[0])
		return exitUsage
	}
	c, rest, set, err := c.dispatch(args[1:])
	if err == nil {
		err = c.parse(rest, stdout, set)
	}
	if err != nil {
		if errors.Is(err, errHelp) {
			return exitOK
		}
		fmt.Fprintf(stderr, "blindstored: %v (run 'blindstored %s --help')\n", err, c.name)
		return exitUsage
	}
	if err := c.run(c.args); err != nil {
		var u usageError
		if errors.As(err, &u) {
			fmt.Fprintf(stderr, "blindstored %s: %v (run 'blindstored %s --help')\n", c.name, err, c.name)
			return exitUsage
		}
		fmt.Fprintf(stderr, "blindstored %s: %v\n", c.name, err)
		return exitCode(err)
	}
	return exitOK
}

func printMainUsage(w io.Writer, cmds map[string]*command) {
	fmt.Fprintf(w, "blindstored %s: an anonymized blob store server.\n\nUsage: blindstored COMMAND [flags] [arguments]\n       blindstored --version\n\nCommands:\n", versionString())
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintf(w, "\nRun 'blindstored COMMAND --help' for a command's flags, which go before or after\nits arguments. Every flag falls back to an environment variable: --block-size\nto %s, and so on (the issuer's to %s…).\n\n", envName("block-size"), issuerEnvPrefix)
	fmt.Fprint(w, exitCodesHelp)
}

func versionCommand(stdout io.Writer) *command {
	c := &command{name: "version", summary: "Print the version.", flags: newFlagSet("version")}
	c.run = func(args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("unexpected arguments")}
		}
		fmt.Fprintf(stdout, "blindstored %s\n", versionString())
		return nil
	}
	return c
}

func keygenCommand(stdout io.Writer) *command {
	c := &command{name: "keygen", usage: "[--out FILE]", summary: "Generate a bucket key (64 hex characters) on stdout, or into a new file with mode 0600.", flags: newFlagSet("keygen")}
	out := c.flags.String("out", "", "write the key to this `file` (created with mode 0600; never overwritten) instead of stdout")
	c.run = func(args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("unexpected arguments")}
		}
		if *out == "" {
			k, _, err := newKeyHex()
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, k)
			return nil
		}
		if _, created, err := loadKey("", *out, true); err != nil {
			return err
		} else if !created {
			return fmt.Errorf("%s already exists; not overwriting a bucket key (losing it makes every block look expired)", *out)
		}
		fmt.Fprintf(stdout, "wrote a new bucket key to %s\n", *out)
		return nil
	}
	return c
}
