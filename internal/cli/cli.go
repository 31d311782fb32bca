// Package cli is what blindstore's command lines share: subcommands with
// their own flags, an environment fallback for every flag (--block-size
// falls back to PREFIX_BLOCK_SIZE), flags accepted before and after
// positional arguments, and help text that names each flag's variable.
//
// It never prints a flag's value: a flag may carry a secret.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Command is one subcommand.
type Command struct {
	Name    string
	Usage   string // argument synopsis after the name
	Summary string // one line, or a paragraph
	Flags   *flag.FlagSet
	// Env is the environment prefix, e.g. "BLIND_".
	Env string
	// Args are the positional arguments after Parse.
	Args []string
}

// NewFlagSet returns a flag set that reports nothing itself: Parse's
// caller prints one line.
func NewFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// EnvName returns the environment variable a flag falls back to.
func EnvName(prefix, flagName string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// ErrHelp is returned by Parse when --help was asked for; the usage is
// printed already.
var ErrHelp = errors.New("help requested")

// UsageError marks a wrong command line (exit 2 by convention).
type UsageError struct{ Err error }

func (u UsageError) Error() string { return u.Err.Error() }
func (u UsageError) Unwrap() error { return u.Err }

// Usagef builds a UsageError.
func Usagef(format string, args ...any) error {
	return UsageError{fmt.Errorf(format, args...)}
}

// Parse parses args, flags anywhere among the positional arguments ("--"
// ends the flags), then fills every flag not given from its environment
// variable: the command line wins over the environment, which wins over
// the default. set lists flags already given elsewhere (before the
// command name) that the environment must not override.
func (c *Command) Parse(args []string, helpOut io.Writer, set map[string]bool) error {
	c.Args = nil
	given := map[string]bool{}
	for k, v := range set {
		given[k] = v
	}
	for {
		if err := c.Flags.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.PrintUsage(helpOut)
				return ErrHelp
			}
			return UsageError{fmt.Errorf("%s: %w", c.Name, err)}
		}
		c.Flags.Visit(func(f *flag.Flag) { given[f.Name] = true })
		rest := c.Flags.Args()
		if len(rest) == 0 {
			break
		}
		// flag stops at the first positional argument, or after "--".
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			c.Args = append(c.Args, rest...)
			break
		}
		c.Args = append(c.Args, rest[0])
		args = rest[1:]
	}
	var err error
	c.Flags.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(EnvName(c.Env, f.Name)); ok {
			if e := f.Value.Set(v); e != nil {
				err = UsageError{fmt.Errorf("%s: environment %s: %w", c.Name, EnvName(c.Env, f.Name), e)}
			}
		}
	})
	return err
}

// PrintUsage writes the command's help.
func (c *Command) PrintUsage(w io.Writer) {
	prog := strings.ToLower(strings.TrimSuffix(c.Env, "_"))
	if prog == "blindstore" {
		prog = "blindstored"
	}
	fmt.Fprintf(w, "Usage: %s %s %s\n\n%s\n", prog, c.Name, c.Usage, c.Summary)
	PrintFlags(w, c.Flags, c.Env)
}

// PrintFlags lists a flag set's flags with their environment variables.
func PrintFlags(w io.Writer, fs *flag.FlagSet, env string) {
	has := false
	fs.VisitAll(func(*flag.Flag) { has = true })
	if !has {
		return
	}
	fmt.Fprintf(w, "\nFlags (each falls back to the environment variable shown):\n")
	fs.VisitAll(func(f *flag.Flag) {
		name, help := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if len(f.Name) == 1 {
			line = "  -" + f.Name
		}
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(w, "%s\n      %s", line, help)
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "\n      env %s\n", EnvName(env, f.Name))
	})
}
