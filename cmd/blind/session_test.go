package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blindstore/blindstore/internal/tlstest"
	"github.com/blindstore/blindstore/wire"
)

// runBare runs blind with no BLIND_ variable but the configuration
// directory, as a service (contrib/systemd) or a new shell runs it.
func (u *user) runBare(args ...string) result {
	u.t.Helper()
	bin, _ := binaries(u.t)
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BLIND_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "BLIND_CONFIG_DIR="+u.cfg)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	_ = cmd.Run()
	return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String()}
}

// A session set up with --ca-file keeps working without it (the CA is
// remembered, even once the file is gone), and a --server or BLIND_SERVER
// naming another server is an error that says what to do, never ignored.
func TestSessionKeepsServerAndCA(t *testing.T) {
	ca := tlstest.NewCA(t, "blindstore test CA")
	pair := ca.Issue(t, tlstest.Options{})
	srv := startServer(t, "--tls-cert", pair.CertFile, "--tls-key", pair.KeyFile)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pem, err := os.ReadFile(ca.File)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caFile, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	u := newUser(t, srv.url, "carol")
	u.must("--ca-file", caFile, "signup", "--user", u.name)
	if err := os.Remove(caFile); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeRandom(t, filepath.Join(dir, "a.txt"), 1000, 1)
	if r := u.runBare("status"); r.code != 0 || !strings.Contains(r.stdout, srv.url) {
		t.Fatalf("status with neither the server nor the CA given: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// contrib/systemd/blind-sync.service runs just this.
	if r := u.runBare("sync", dir); r.code != 0 {
		t.Fatalf("sync as the systemd unit runs it: exit %d: %s", r.code, r.stderr)
	}
	u.must("--server", srv.url+"/", "ls") // the same server, spelled otherwise

	other := startServer(t)
	for _, tc := range []struct {
		env  []string
		args []string
	}{
		{nil, []string{"--server", other.url, "status"}},
		{nil, []string{"status", "--server", other.url}},
		{[]string{"BLIND_SERVER=" + other.url}, []string{"ls"}},
	} {
		r := u.expect(wire.ExitUsage, tc.env, tc.args...)
		if !strings.Contains(r.stderr, srv.url) || !strings.Contains(r.stderr, "blind logout") {
			t.Fatalf("blind %v: %q does not say what to do", tc.args, r.stderr)
		}
	}
	// Logging in elsewhere replaces the session, as the message says.
	u.must("logout")
	u.server = other.url
	u.signup()
	if r := u.runBare("status"); r.code != 0 || !strings.Contains(r.stdout, other.url) {
		t.Fatalf("status after logging in elsewhere: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// lsFiles decodes the files of 'blind --json ls' into files.
func lsFiles(out string, files any) error {
	return json.Unmarshal([]byte(out), &struct {
		Files any `json:"files"`
	}{files})
}
