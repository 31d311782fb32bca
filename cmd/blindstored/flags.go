package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/blindstore/blindstore/internal/cli"
)

// envPrefix is the prefix of every environment fallback: --block-size
// falls back to BLINDSTORE_BLOCK_SIZE.
const envPrefix = "BLINDSTORE_"

func envName(flagName string) string { return cli.EnvName(envPrefix, flagName) }

// command is one subcommand: its flags, a one-line summary and what it
// runs. Parsing, the environment fallbacks and the flag list of the help
// are internal/cli's, as in blind; this type only adds the program name
// and subcommands (issuer invite).
type command struct {
	name    string
	summary string
	usage   string // argument synopsis after the name
	flags   *flag.FlagSet
	run     func(args []string) error
	// env is the prefix of the command's environment fallbacks; ""
	// means envPrefix. The issuer has its own, so that it never picks
	// up a blob server's --data or --listen from a shared environment.
	env string
	// subs are subcommands, named by the first argument after the
	// command's own flags: `issuer invite`.
	subs map[string]*command
	// args are the positional arguments after parse.
	args []string
}

func (c *command) envPrefix() string {
	if c.env == "" {
		return envPrefix
	}
	return c.env
}

// envName is the environment variable a flag of c falls back to.
func (c *command) envName(flagName string) string { return cli.EnvName(c.envPrefix(), flagName) }

func newFlagSet(name string) *flag.FlagSet { return cli.NewFlagSet(name) }

// dispatch picks the subcommand args name, if any, with the arguments
// left for it. Flags of c given before the subcommand's name carry over
// to the subcommand's flag of the same name (`issuer --data DIR invite`),
// and are returned as set so that the environment does not override them.
func (c *command) dispatch(args []string) (*command, []string, map[string]bool, error) {
	if len(c.subs) == 0 {
		return c, args, nil, nil
	}
	if len(args) > 0 {
		if sc, ok := c.subs[args[0]]; ok {
			return sc, args[1:], nil, nil
		}
	}
	// Only flags before the first positional argument: the standard
	// parse stops there, which is where a subcommand's name stands.
	pre := newFlagSet(c.name)
	c.flags.VisitAll(func(f *flag.Flag) { pre.Var(f.Value, f.Name, f.Usage) })
	if err := pre.Parse(args); err != nil || pre.NArg() == 0 {
		return c, args, nil, nil // the full parse reports any error
	}
	sc, ok := c.subs[pre.Arg(0)]
	if !ok {
		return c, args, nil, nil
	}
	set := map[string]bool{}
	var err error
	pre.Visit(func(f *flag.Flag) {
		sf := sc.flags.Lookup(f.Name)
		if sf == nil {
			if err == nil {
				err = usageError{fmt.Errorf("%s: --%s goes with '%s', not '%s'", sc.name, f.Name, c.name, sc.name)}
			}
			return
		}
		if e := sf.Value.Set(f.Value.String()); e != nil && err == nil {
			err = usageError{fmt.Errorf("%s: --%s: %w", sc.name, f.Name, e)}
		}
		set[f.Name] = true
	})
	return sc, pre.Args()[1:], set, err
}

// parse parses args with internal/cli: flags before and after the
// positional arguments ("--" ends them), then the environment fills every
// flag not given, and the command line wins over the environment, which
// wins over the defaults. set lists flags given already (dispatch). --help
// prints the usage on helpOut and returns errHelp.
func (c *command) parse(args []string, helpOut io.Writer, set map[string]bool) error {
	cc := c.cli()
	err := cc.Parse(args, io.Discard, set)
	c.args = cc.Args
	var u cli.UsageError
	switch {
	case errors.Is(err, cli.ErrHelp):
		c.printUsage(helpOut)
		return errHelp
	case errors.As(err, &u):
		return usageError{u.Err}
	}
	return err
}

// cli is c as internal/cli's Command: it parses and prints the usage.
func (c *command) cli() *cli.Command {
	return &cli.Command{Program: "blindstored", Name: c.name, Usage: c.usage, Summary: c.summary, Flags: c.flags, Env: c.envPrefix()}
}

func (c *command) printUsage(w io.Writer) {
	c.cli().PrintUsage(w)
	if len(c.subs) > 0 {
		names := make([]string, 0, len(c.subs))
		for n := range c.subs {
			names = append(names, n)
		}
		fmt.Fprintf(w, "\nRun 'blindstored %s %s --help' for its own flags.\n", c.name, strings.Join(names, "|"))
	}
}

// usageError marks errors that mean the command line was wrong (exit 2).
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

var errHelp = errors.New("help requested")
