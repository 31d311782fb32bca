package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// envPrefix is the prefix of every environment fallback: --block-size
// falls back to BLINDSTORE_BLOCK_SIZE.
const envPrefix = "BLINDSTORE_"

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// command is one subcommand: its flags, a one-line summary and what it runs.
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
}

// envName is the environment variable a flag of c falls back to.
func (c *command) envName(flagName string) string {
	if c.env == "" {
		return envName(flagName)
	}
	return c.env + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse errors are printed once, by main
	return fs
}

// parse parses args, then fills every flag not given on the command line
// from its environment variable. Command-line flags win over the
// environment, the environment wins over defaults.
func (c *command) parse(args []string) error {
	if err := c.flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.printUsage(os.Stdout)
			return errHelp
		}
		return usageError{fmt.Errorf("%s: %w", c.name, err)}
	}
	set := map[string]bool{}
	c.flags.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	c.flags.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(c.envName(f.Name)); ok {
			if e := f.Value.Set(v); e != nil {
				err = usageError{fmt.Errorf("%s: environment %s: %w", c.name, c.envName(f.Name), e)}
			}
		}
	})
	return err
}

func (c *command) printUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: blindstored %s %s\n\n%s\n", c.name, c.usage, c.summary)
	has := false
	c.flags.VisitAll(func(*flag.Flag) { has = true })
	if !has {
		return
	}
	fmt.Fprintf(w, "\nFlags (each falls back to the environment variable shown):\n")
	c.flags.VisitAll(func(f *flag.Flag) {
		name, help := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(w, "%s\n      %s", line, help)
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "\n      env %s\n", c.envName(f.Name))
	})
}

// usageError marks errors that mean the command line was wrong (exit 2).
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

var errHelp = errors.New("help requested")
