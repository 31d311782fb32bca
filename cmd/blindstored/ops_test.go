package main

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/blindstore/blindstore/internal/pgtest"
)

// --version and the version command print the version main.version was
// set to at build time (the Makefile's ldflags).
func TestVersionFlagAndCommand(t *testing.T) {
	defer func(v string) { version = v }(version)
	version = "9.8.7-test"
	for _, args := range [][]string{{"--version"}, {"-version"}, {"version"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != exitOK || out.String() != "blindstored 9.8.7-test\n" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out.String(), errb.String())
		}
	}
	var out bytes.Buffer
	run([]string{"--help"}, &out, &bytes.Buffer{})
	if !strings.Contains(out.String(), "blindstored 9.8.7-test") || !strings.Contains(out.String(), "--version") {
		t.Errorf("--help does not show the version or --version:\n%s", out.String())
	}
}

// Flags go before or after the positional arguments, "--" ends them, and
// the issuer's invite subcommand takes its flags anywhere, from the
// environment, or (--data) before its name.
func TestFlagsAnywhereAndSubcommands(t *testing.T) {
	c := keygenCommand(&bytes.Buffer{})
	if err := c.parse([]string{"extra", "--out", "k", "more"}, &bytes.Buffer{}, nil); err != nil {
		t.Fatal(err)
	}
	if got := c.flags.Lookup("out").Value.String(); got != "k" || !slices.Equal(c.args, []string{"extra", "more"}) {
		t.Fatalf("flags after arguments: --out %q, args %q", got, c.args)
	}
	c = keygenCommand(&bytes.Buffer{})
	if err := c.parse([]string{"--", "--out", "k"}, &bytes.Buffer{}, nil); err != nil {
		t.Fatal(err)
	}
	if got := c.flags.Lookup("out").Value.String(); got != "" || !slices.Equal(c.args, []string{"--out", "k"}) {
		t.Fatalf("after --: --out %q, args %q", got, c.args)
	}

	invites := func(dir string) int {
		es, _ := os.ReadDir(filepath.Join(dir, "invites"))
		return len(es)
	}
	code := regexp.MustCompile(`^[a-z2-7]{4}(-[a-z2-7]{4})+\n$`)
	for i, tc := range []struct {
		args []string
		env  bool
	}{
		{args: []string{"issuer", "invite", "--data", "DIR", "--tokens", "2"}},
		{args: []string{"issuer", "invite", "--tokens", "2", "--data", "DIR"}},
		{args: []string{"issuer", "--data", "DIR", "invite", "--tokens", "2"}},
		{args: []string{"issuer", "invite", "--tokens", "2"}, env: true},
	} {
		dir := t.TempDir()
		args := slices.Clone(tc.args)
		for j := range args {
			if args[j] == "DIR" {
				args[j] = dir
			}
		}
		if tc.env {
			t.Setenv("BLINDSTORE_ISSUER_DATA", dir)
		}
		var out, errb bytes.Buffer
		if rc := run(args, &out, &errb); rc != exitOK || !code.MatchString(out.String()) || invites(dir) != 1 {
			t.Errorf("case %d %q: exit %d, stdout %q, stderr %q, %d invites", i, tc.args, rc, out.String(), errb.String(), invites(dir))
		}
	}
	var errb bytes.Buffer
	if rc := run([]string{"issuer", "--listen", "127.0.0.1:0", "invite", "--tokens", "1"}, &bytes.Buffer{}, &errb); rc != exitUsage ||
		!strings.Contains(errb.String(), "--listen goes with 'issuer'") {
		t.Errorf("an issuer flag before invite: exit %d, %q", rc, errb.String())
	}
	var out bytes.Buffer
	if rc := run([]string{"issuer", "invite", "--help"}, &out, &bytes.Buffer{}); rc != exitOK ||
		!strings.Contains(out.String(), "BLINDSTORE_ISSUER_TOKENS") || !strings.Contains(out.String(), "Usage: blindstored issuer invite") {
		t.Errorf("issuer invite --help: exit %d\n%s", rc, out.String())
	}
}

// A serve whose address is taken fails before it creates anything: no
// bucket key, no store, no data directory.
func TestServeWithAddressTakenCreatesNothing(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, args := range [][]string{
		{"--listen", taken.Addr().String()},
		{"--listen", "127.0.0.1:0", "--admin-listen", taken.Addr().String()},
	} {
		data := filepath.Join(t.TempDir(), "data")
		out, code := runCLI(t, nil, append([]string{"serve", "--data", data}, args...)...)
		if code != exitError || !strings.Contains(out, "address already in use") {
			t.Errorf("%q: exit %d\n%s", args, code, out)
		}
		if _, err := os.Stat(data); !os.IsNotExist(err) {
			entries, _ := os.ReadDir(data)
			t.Errorf("%q: the failed start left %s behind (%d entries)", args, data, len(entries))
		}
	}
}

// migrate names the migrations it applied, and says so when there was
// nothing to apply.
func TestMigrateSaysWhatItApplied(t *testing.T) {
	url := pgtest.URL(t)
	out, code := runCLI(t, nil, "migrate", "--store", url)
	if code != 0 || !strings.Contains(out, "applied 001_") || !strings.Contains(out, "applied 002_") || !strings.Contains(out, "up to date (version 2) after 2 migrations") {
		t.Fatalf("first migrate: exit %d\n%s", code, out)
	}
	out, code = runCLI(t, nil, "migrate", "--store", url)
	if code != 0 || strings.Contains(out, "applied 0") || !strings.Contains(out, "nothing to apply") {
		t.Fatalf("second migrate: exit %d\n%s", code, out)
	}
}

// The admin listener answers /healthz, for a monitor that only reaches
// the admin address; --help says so, and says what Redis carries.
func TestAdminHealthzAndHelp(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir(), "--block-size", "4096", "--purge-every", "0", "--admin-listen", "127.0.0.1:0")
	if code, body := httpGet(t, adminURL(t, s)+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("admin /healthz: %d %q", code, body)
	}
	var out bytes.Buffer
	run([]string{"serve", "--help"}, &out, &bytes.Buffer{})
	help := strings.Join(strings.Fields(out.String()), " ")
	for _, want := range []string{"/healthz", "the write pool", "failed-probe limits", "purge and seal run on one instance"} {
		if !strings.Contains(help, want) {
			t.Errorf("serve --help lacks %q", want)
		}
	}
}
