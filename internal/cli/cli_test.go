package cli

import (
	"bytes"
	"errors"
	"os"
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

// Every usual spelling of a yes/no value works for a boolean flag's
// environment variable; anything else is an error that names the variable.
func TestParseEnvBool(t *testing.T) {
	for v, want := range map[string]bool{
		"1": true, "0": false, "true": true, "FALSE": false, "Yes": true, "no": false,
		"on": true, "OFF": false, "y": true, "N": false, " yes ": true, "t": true, "f": false,
	} {
		t.Run(v, func(t *testing.T) {
			t.Setenv("CLITEST_FORCE", v)
			c, _, force := newTestCommand()
			if err := c.Parse(nil, &bytes.Buffer{}, nil); err != nil {
				t.Fatal(err)
			}
			if *force != want || !c.Given["force"] {
				t.Fatalf("CLITEST_FORCE=%q: force=%v given=%v, want %v", v, *force, c.Given["force"], want)
			}
			if got, err := EnvBool("CLITEST_FORCE"); err != nil || got != want {
				t.Fatalf("EnvBool(%q) = %v, %v", v, got, err)
			}
		})
	}
	t.Setenv("CLITEST_FORCE", "")
	c, _, force := newTestCommand()
	if err := c.Parse(nil, &bytes.Buffer{}, nil); err != nil || *force || c.Given["force"] {
		t.Fatalf("empty variable: force=%v given=%v err=%v", *force, c.Given["force"], err)
	}
	for _, bad := range []string{"maybe", "2", "yess"} {
		t.Setenv("CLITEST_FORCE", bad)
		c, _, _ := newTestCommand()
		var u UsageError
		err := c.Parse(nil, &bytes.Buffer{}, nil)
		if !errors.As(err, &u) || !strings.Contains(err.Error(), "CLITEST_FORCE") || !strings.Contains(err.Error(), bad) {
			t.Fatalf("CLITEST_FORCE=%q: %v", bad, err)
		}
		if _, err := EnvBool("CLITEST_FORCE"); !errors.As(err, &u) || !strings.Contains(err.Error(), "CLITEST_FORCE") {
			t.Fatalf("EnvBool(%q): %v", bad, err)
		}
	}
}

func TestGiven(t *testing.T) {
	t.Setenv("CLITEST_AS", "env")
	c, _, _ := newTestCommand()
	if err := c.Parse([]string{"--force"}, &bytes.Buffer{}, nil); err != nil {
		t.Fatal(err)
	}
	if !c.Given["force"] || !c.Given["as"] {
		t.Fatalf("given: %v", c.Given)
	}
	c, _, _ = newTestCommand()
	t.Setenv("CLITEST_AS", "")
	os.Unsetenv("CLITEST_AS")
	if err := c.Parse(nil, &bytes.Buffer{}, map[string]bool{"force": true}); err != nil {
		t.Fatal(err)
	}
	if !c.Given["force"] || c.Given["as"] {
		t.Fatalf("given: %v", c.Given)
	}
}

// A summary wrapped by hand is listed by its whole first sentence,
// whatever its line breaks.
func TestShortAndPrintCommands(t *testing.T) {
	for in, want := range map[string]string{
		"Encrypt and store files, replacing files of the same names (an edit sends only\nthe changed chunks). A folder is stored": "Encrypt and store files, replacing files of the same names (an edit sends only the changed chunks).",
		"Print a capability that lets anyone fetch it,\nwithout an account. Sharing again":                                        "Print a capability that lets anyone fetch it, without an account.",
		"List the account's files.":   "List the account's files.",
		"No full stop at the end":     "No full stop at the end",
		"Log in.\nPassword: a prompt": "Log in.",
	} {
		if got := Short(in); got != want {
			t.Errorf("Short(%q) = %q, want %q", in, got, want)
		}
	}
	long := "Make a folder and the account agree, both ways: additions, edits (sent as deltas),\nrenames and deletions on either side are carried to the other; a file changed on\nboth sides keeps both. More."
	var out bytes.Buffer
	PrintCommands(&out, []*Command{
		{Name: "sync", Usage: "DIR [--watch]", Summary: long},
		{Name: "ls", Summary: "List the files."},
		{Name: "get", Usage: "NAME [-o PATH] [--offset N --length N] [--more]", Summary: "Fetch a file."},
	})
	text := out.String()
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if len(l) > 80 {
			t.Errorf("line longer than 80 columns: %q", l)
		}
	}
	if got := strings.Join(strings.Fields(text), " "); !strings.Contains(got, strings.Join(strings.Fields(Short(long)), " ")) {
		t.Errorf("the first sentence is not listed whole:\n%s", text)
	}
	if strings.Contains(text, "More.") {
		t.Errorf("more than the first sentence:\n%s", text)
	}
}

func TestVersion(t *testing.T) {
	if v := Version("v1.2.3"); v != "v1.2.3" {
		t.Fatalf("Version(linked) = %q", v)
	}
	// A test binary is built in its module's tree: no module version.
	if v := Version(""); v != "dev" {
		t.Fatalf("Version(\"\") = %q", v)
	}
}
