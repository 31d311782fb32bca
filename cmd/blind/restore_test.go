package main

import (
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blindstore/blindstore/wire"
)

// After the server is restored from a backup older than what the session
// saw, blind refuses the older account (exit 7) and says what to do; the
// way it gives (log out, log in) accepts the restored version.
func TestRestoredServerSaysWhatToDo(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	data := t.TempDir()
	args := []string{"--listen", addr, "--data", data}
	srv := startServer(t, args...)
	u := newUser(t, srv.url, "judy")
	u.signup()
	dir := t.TempDir()
	writeFile(t, dir, "before.txt", "before the backup")
	u.must("put", filepath.Join(dir, "before.txt"))
	stopServer(srv)
	backup := filepath.Join(t.TempDir(), "backup")
	if out, err := exec.Command("cp", "-a", data, backup).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	srv = startServer(t, args...)
	writeFile(t, dir, "after.txt", "after the backup")
	u.must("put", filepath.Join(dir, "after.txt"))
	stopServer(srv)

	srv = startServer(t, "--listen", addr, "--data", backup)
	r := u.expect(wire.ExitTampered, nil, "ls")
	for _, want := range []string{"older version", "backup", "blind logout", "blind login", "tell the operator"} {
		if !strings.Contains(r.stderr, want) {
			t.Fatalf("the rollback error %q lacks %q", r.stderr, want)
		}
	}
	u.must("logout")
	u.must("login", "--user", u.name)
	if out := u.must("ls").stdout; !strings.Contains(out, "before.txt") || strings.Contains(out, "after.txt") {
		t.Fatalf("after accepting the restored version, ls says:\n%s", out)
	}
}
