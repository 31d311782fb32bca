package cli

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blindstore/blindstore/internal/testenv"
)

func completionCommands() (*flag.FlagSet, []*Command) {
	global := NewFlagSet("prog")
	global.String("server", "", "server `URL`")
	global.Bool("json", false, "print JSON")
	put := &Command{Name: "put", Usage: "FILE", Summary: "Store a file, with 'quotes' and: colons.\nMore.", Flags: NewFlagSet("put"), Env: "PROG_"}
	put.Flags.String("as", "", "store under this `name`")
	put.Flags.Bool("force", false, "overwrite")
	get := &Command{Name: "get", Usage: "NAME", Summary: "Fetch a file.", Flags: NewFlagSet("get"), Env: "PROG_"}
	get.Flags.String("o", "", "output `path`")
	comp := &Command{Name: "completion", Usage: "SHELL", Summary: "Print a script.", Flags: NewFlagSet("completion"), Env: "PROG_", Complete: Shells}
	return global, []*Command{put, get, comp}
}

func script(t *testing.T, shell string) string {
	t.Helper()
	global, cmds := completionCommands()
	var b bytes.Buffer
	if err := Completion(&b, shell, "prog", global, cmds); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "prog."+shell)
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func needShell(t *testing.T, shell string) string {
	t.Helper()
	p, err := exec.LookPath(shell)
	if err != nil {
		testenv.Unavailable(t, "%s is not installed", shell)
	}
	return p
}

// The bash script parses, and completing with it offers the commands, a
// command's flags, a command's word list, and nothing (so file names)
// after a flag that takes a value.
func TestBashCompletion(t *testing.T) {
	bash := needShell(t, "bash")
	p := script(t, "bash")
	if out, err := exec.Command(bash, "-n", p).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		words string // the command line, the last word being completed
		want  string
	}{
		{"prog ''", "completion get put"},
		{"prog p", "put"},
		{"prog --server http://x g", "get"},
		{"prog --", "--json --server"},
		{"prog put --", "--as --force"},
		{"prog put --a", "--as"},
		{"prog --json get -", "-o"},
		{"prog put --as ''", ""},
		{"prog completion ''", "bash fish zsh"},
		{"prog completion z", "zsh"},
	} {
		t.Run(tc.words, func(t *testing.T) {
			src := `source "$1"; COMP_WORDS=(` + tc.words + `); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _prog; echo "${COMPREPLY[*]}"`
			out, err := exec.Command(bash, "-c", src, "bash", p).CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if got := strings.TrimSpace(string(out)); got != tc.want {
				t.Fatalf("completing %s: %q, want %q", tc.words, got, tc.want)
			}
		})
	}
}

func TestZshCompletion(t *testing.T) {
	zsh := needShell(t, "zsh")
	p := script(t, "zsh")
	if out, err := exec.Command(zsh, "-n", p).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
	// Loaded into a shell with the completion system, it registers itself.
	src := `autoload -Uz compinit && compinit -u -d "$2" && source "$1" && print -r -- ${_comps[prog]}`
	out, err := exec.Command(zsh, "-f", "-c", src, "zsh", p, filepath.Join(t.TempDir(), "zcompdump")).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "_prog" {
		t.Fatalf("zsh: %v: %q", err, out)
	}
}

func TestFishCompletion(t *testing.T) {
	fish := needShell(t, "fish")
	p := script(t, "fish")
	if out, err := exec.Command(fish, "--no-execute", p).CombinedOutput(); err != nil {
		t.Fatalf("fish -n: %v\n%s", err, out)
	}
	for _, tc := range []struct{ line, want string }{
		{"prog p", "put"},
		{"prog put --a", "--as"},
		{"prog completion z", "zsh"},
	} {
		out, err := exec.Command(fish, "--no-config", "-c", `source $argv[1]; complete -C "$argv[2]"`, p, tc.line).CombinedOutput()
		if err != nil {
			t.Fatalf("fish: %v\n%s", err, out)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			got = append(got, strings.SplitN(l, "\t", 2)[0])
		}
		if strings.Join(got, " ") != tc.want {
			t.Fatalf("completing %q: %q, want %q", tc.line, out, tc.want)
		}
	}
}

func TestCompletionUnknownShell(t *testing.T) {
	global, cmds := completionCommands()
	var u UsageError
	if err := Completion(&bytes.Buffer{}, "tcsh", "prog", global, cmds); err == nil || !errors.As(err, &u) {
		t.Fatalf("tcsh: %v", err)
	}
}
