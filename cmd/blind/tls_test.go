package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/blindstore/blindstore/internal/tlstest"
	"github.com/blindstore/blindstore/wire"
)

// blind against a server with a certificate from the deployment's own CA:
// it works with the CA pinned (--ca-file or BLIND_CA_FILE), and without it
// fails as a network error that says what to do.
func TestCAFile(t *testing.T) {
	ca := tlstest.NewCA(t, "blindstore test CA")
	pair := ca.Issue(t, tlstest.Options{})
	srv := startServer(t, "--tls-cert", pair.CertFile, "--tls-key", pair.KeyFile)
	if !strings.HasPrefix(srv.url, "https://") {
		t.Fatalf("server at %s", srv.url)
	}
	u := newUser(t, srv.url, "alice")
	r := u.expect(wire.ExitNetwork, nil, "signup", "--user", u.name)
	if !strings.Contains(r.stderr, "--ca-file") {
		t.Fatalf("an untrusted certificate: %q does not say what to do", r.stderr)
	}
	u.must("--ca-file", ca.File, "signup", "--user", u.name)
	file := filepath.Join(t.TempDir(), "notes.txt")
	writeRandom(t, file, 1000, 1)
	if r := u.run([]string{"BLIND_CA_FILE=" + ca.File}, "put", file); r.code != 0 {
		t.Fatalf("put with BLIND_CA_FILE: exit %d: %s", r.code, r.stderr)
	}
	other := tlstest.NewCA(t, "another CA")
	u.expect(wire.ExitNetwork, []string{"BLIND_CA_FILE=" + other.File}, "ls")
	u.expect(wire.ExitLocalIO, nil, "--ca-file", filepath.Join(t.TempDir(), "missing.pem"), "ls")
}
