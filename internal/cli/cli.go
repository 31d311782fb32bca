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
	"strconv"
	"strings"
)

// Command is one subcommand.
type Command struct {
	// Program is the binary's name, for the usage line ("blind"); by
	// default the environment prefix, lower-cased.
	Program string
	Name    string
	Usage   string // argument synopsis after the name
	Summary string // one line, or a paragraph
	Flags   *flag.FlagSet
	// Env is the environment prefix, e.g. "BLIND_".
	Env string
	// Complete lists the words a shell completes for the positional
	// arguments (e.g. shell names); nil completes file names.
	Complete []string
	// Args are the positional arguments after Parse.
	Args []string
	// Given holds, after Parse, the flags that were given on the command
	// line (before or after the command name) or by their environment
	// variable: what the user asked for, as against a default.
	Given map[string]bool
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
	c.Given = nil
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
		env := EnvName(c.Env, f.Name)
		v, ok := os.LookupEnv(env)
		if !ok {
			return
		}
		if isBoolFlag(f) {
			// flag's own parser knows only Go's spellings (true, 1, t…),
			// not the yes/no/on/off that people put in environment files.
			if v == "" {
				return
			}
			b, e := ParseBool(v)
			if e != nil {
				err = UsageError{fmt.Errorf("%s: environment %s: %w", c.Name, env, e)}
				return
			}
			v = strconv.FormatBool(b)
		}
		if e := f.Value.Set(v); e != nil {
			err = UsageError{fmt.Errorf("%s: environment %s: %w", c.Name, env, e)}
			return
		}
		given[f.Name] = true
	})
	c.Given = given
	return err
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// ParseBool reads a yes/no setting in any of its usual spellings, case
// ignored: 1/0, true/false, t/f, yes/no, y/n, on/off.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "t", "yes", "y", "on":
		return true, nil
	case "0", "false", "f", "no", "n", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a yes/no value (use 1 or 0, true or false, yes or no, on or off)", s)
}

// EnvBool reads the boolean environment variable name: false when it is
// unset or empty, an error naming the variable when it is not a yes/no
// value.
func EnvBool(name string) (bool, error) {
	v := os.Getenv(name)
	if v == "" {
		return false, nil
	}
	b, err := ParseBool(v)
	if err != nil {
		return false, UsageError{fmt.Errorf("environment %s: %w", name, err)}
	}
	return b, nil
}

// PrintUsage writes the command's help.
func (c *Command) PrintUsage(w io.Writer) {
	prog := c.Program
	if prog == "" {
		prog = strings.ToLower(strings.TrimSuffix(c.Env, "_"))
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
