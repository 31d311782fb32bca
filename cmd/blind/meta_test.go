package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blindstore/blindstore/internal/cli"
	"github.com/blindstore/blindstore/internal/testenv"
	"github.com/blindstore/blindstore/wire"
)

// runHere runs the command line in this process, as main does.
func runHere(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Setenv("BLIND_CONFIG_DIR", t.TempDir())
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestVersion(t *testing.T) {
	old := version
	version = "v1.2.3-test"
	t.Cleanup(func() { version = old })
	for _, args := range [][]string{{"--version"}, {"version"}} {
		if code, out, _ := runHere(t, args...); code != wire.ExitOK || out != "blind v1.2.3-test\n" {
			t.Fatalf("blind %v: exit %d, %q", args, code, out)
		}
	}
	code, out, _ := runHere(t, "--json", "version")
	var v struct{ Version string }
	if err := json.Unmarshal([]byte(out), &v); code != wire.ExitOK || err != nil || v.Version != "v1.2.3-test" {
		t.Fatalf("blind --json version: exit %d, %q", code, out)
	}
	if code, _, errOut := runHere(t, "version", "extra"); code != wire.ExitUsage || errOut == "" {
		t.Fatalf("blind version extra: exit %d", code)
	}
}

// Every yes/no variable takes the usual spellings; anything else is a
// usage error that names the variable.
func TestBooleanVariables(t *testing.T) {
	for _, v := range []string{"yes", "YES", "on", "1", "true", "y"} {
		t.Setenv("BLIND_JSON", v)
		if code, out, _ := runHere(t, "version"); code != wire.ExitOK || !strings.HasPrefix(out, "{") {
			t.Fatalf("BLIND_JSON=%s: exit %d, %q", v, code, out)
		}
	}
	for _, v := range []string{"no", "Off", "0", "false", "n", ""} {
		t.Setenv("BLIND_JSON", v)
		if code, out, _ := runHere(t, "version"); code != wire.ExitOK || strings.HasPrefix(out, "{") {
			t.Fatalf("BLIND_JSON=%q: exit %d, %q", v, code, out)
		}
	}
	t.Setenv("BLIND_JSON", "maybe")
	code, _, errOut := runHere(t, "version")
	if code != wire.ExitUsage || !strings.Contains(errOut, "BLIND_JSON") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("BLIND_JSON=maybe: exit %d, %q", code, errOut)
	}
}

// The command list shows each summary's whole first sentence, however
// the summary is wrapped.
func TestHelpSummariesWhole(t *testing.T) {
	code, out, _ := runHere(t, "--help")
	if code != wire.ExitOK {
		t.Fatalf("exit %d", code)
	}
	flat := strings.Join(strings.Fields(out), " ")
	for name, c := range commands(&app{}) {
		want := strings.Join(strings.Fields(cli.Short(c.Summary)), " ")
		if !strings.HasSuffix(want, ".") {
			t.Errorf("%s: the first sentence of its summary, %q, has no end", name, want)
		}
		if !strings.Contains(flat, want) {
			t.Errorf("blind --help does not show %s's %q", name, want)
		}
	}
	for _, want := range []string{"(an edit sends only the changed chunks).", "without an account.", "blind --version"} {
		if !strings.Contains(flat, want) {
			t.Errorf("blind --help lacks %q", want)
		}
	}
}

func completionScript(t *testing.T, shell string) string {
	t.Helper()
	code, out, errOut := runHere(t, "completion", shell)
	if code != wire.ExitOK {
		t.Fatalf("blind completion %s: exit %d: %s", shell, code, errOut)
	}
	p := filepath.Join(t.TempDir(), "blind."+shell)
	if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// blind completion bash prints a script that parses and completes
// command names, flags and the shells of completion itself.
func TestCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		testenv.Unavailable(t, "bash is not installed")
	}
	p := completionScript(t, "bash")
	if out, err := exec.Command(bash, "-n", p).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
	for words, want := range map[string]string{
		"blind pu":                     "put",
		"blind s":                      "serve share signup status sync",
		"blind serve ''":               "webdav",
		"blind --json get --f":         "--force",
		"blind sync --w":               "--watch",
		"blind login --rec":            "--recover",
		"blind completion ''":          "bash fish zsh",
		"blind --server http://x:1 ve": "version",
		"blind help sy":                "sync",
	} {
		src := `source "$1"; COMP_WORDS=(` + words + `); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _blind; echo "${COMPREPLY[*]}"`
		out, err := exec.Command(bash, "-c", src, "bash", p).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != want {
			t.Errorf("completing %s: %q (%v), want %q", words, out, err, want)
		}
	}
	if code, _, errOut := runHere(t, "completion", "tcsh"); code != wire.ExitUsage || !strings.Contains(errOut, "bash") {
		t.Fatalf("blind completion tcsh: exit %d, %q", code, errOut)
	}
}

func TestCompletionZshAndFish(t *testing.T) {
	t.Run("zsh", func(t *testing.T) {
		zsh, err := exec.LookPath("zsh")
		if err != nil {
			testenv.Unavailable(t, "zsh is not installed")
		}
		p := completionScript(t, "zsh")
		if out, err := exec.Command(zsh, "-n", p).CombinedOutput(); err != nil {
			t.Fatalf("zsh -n: %v\n%s", err, out)
		}
	})
	t.Run("fish", func(t *testing.T) {
		fish, err := exec.LookPath("fish")
		if err != nil {
			testenv.Unavailable(t, "fish is not installed")
		}
		p := completionScript(t, "fish")
		if out, err := exec.Command(fish, "--no-execute", p).CombinedOutput(); err != nil {
			t.Fatalf("fish --no-execute: %v\n%s", err, out)
		}
		out, err := exec.Command(fish, "--no-config", "-c", `source $argv[1]; complete -C "blind get --fo"`, p).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "--force") {
			t.Fatalf("fish completing blind get --fo: %q %v", out, err)
		}
	})
}
