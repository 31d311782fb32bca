package cli

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

func newTestCommand() (*Command, *string, *bool) {
	c := &Command{Name: "put", Usage: "FILE", Summary: "Store a file.", Flags: NewFlagSet("put"), Env: "CLITEST_"}
	as := c.Flags.String("as", "", "store under this `name`")
	force := c.Flags.Bool("force", false, "overwrite")
	return c, as, force
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		env   map[string]string
		set   map[string]bool
		as    string
		force bool
		pos   []string
	}{
		{name: "flags after arguments", args: []string{"a.txt", "--as", "b", "c"}, as: "b", pos: []string{"a.txt", "c"}},
		{name: "flags before arguments", args: []string{"--force", "x"}, force: true, pos: []string{"x"}},
		{name: "double dash ends flags", args: []string{"--", "--as", "x"}, pos: []string{"--as", "x"}},
		{name: "environment fills what is not given", args: []string{"x"}, env: map[string]string{"CLITEST_AS": "env", "CLITEST_FORCE": "true"}, as: "env", force: true, pos: []string{"x"}},
		{name: "the command line wins", args: []string{"--as", "flag"}, env: map[string]string{"CLITEST_AS": "env"}, as: "flag"},
		{name: "flags given before the command win too", env: map[string]string{"CLITEST_AS": "env"}, set: map[string]bool{"as": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c, as, force := newTestCommand()
			if err := c.Parse(tc.args, &bytes.Buffer{}, tc.set); err != nil {
				t.Fatal(err)
			}
			if *as != tc.as || *force != tc.force || !slices.Equal(c.Args, tc.pos) {
				t.Fatalf("as=%q force=%v args=%q", *as, *force, c.Args)
			}
		})
	}
}

func TestParseErrorsAndHelp(t *testing.T) {
	c, _, _ := newTestCommand()
	var u UsageError
	if err := c.Parse([]string{"--nope"}, &bytes.Buffer{}, nil); !errors.As(err, &u) {
		t.Fatalf("unknown flag: %v", err)
	}
	t.Setenv("CLITEST_FORCE", "maybe")
	c, _, _ = newTestCommand()
	if err := c.Parse(nil, &bytes.Buffer{}, nil); !errors.As(err, &u) || !strings.Contains(err.Error(), "CLITEST_FORCE") {
		t.Fatalf("bad environment value: %v", err)
	}
	var out bytes.Buffer
	c, _, _ = newTestCommand()
	if err := c.Parse([]string{"--help"}, &out, nil); !errors.Is(err, ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"Usage: clitest put FILE", "--as name", "env CLITEST_AS", "env CLITEST_FORCE"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("help lacks %q:\n%s", want, out.String())
		}
	}
}
