package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/blindstore/blindstore/wire"
)

// A new password too easy to guess is refused, with the reason, at
// signup, passwd and recovery, before anything reaches the server.
func TestWeakPasswordsRefused(t *testing.T) {
	srv := startServer(t)
	u := newUser(t, srv.url, "hank")
	for _, weak := range []string{"a", "password123", "hank1234", "qwertyuiop"} {
		r := u.expect(wire.ExitUsage, []string{"BLIND_PASSWORD=" + weak}, "signup", "--user", u.name)
		if !strings.Contains(r.stderr, "too easy to guess") || !strings.Contains(r.stderr, "offline") {
			t.Fatalf("signup with %q: %q does not say why", weak, r.stderr)
		}
		if strings.Contains(r.stderr, weak) && len(weak) > 1 {
			t.Fatalf("the refusal repeats the password: %q", r.stderr)
		}
	}
	u.expect(wire.ExitAuth, nil, "ls") // nothing was created
	var su struct {
		Code string `json:"recovery_code"`
	}
	if err := json.Unmarshal([]byte(u.must("--json", "signup", "--user", u.name).stdout), &su); err != nil {
		t.Fatal(err)
	}
	u.expect(wire.ExitUsage, []string{"BLIND_NEW_PASSWORD=letmein"}, "passwd")
	u.must("ls") // the password did not change
	u.must("logout")
	u.must("login", "--user", u.name)
	r := u.expect(wire.ExitUsage, []string{"BLIND_RECOVERY_CODE=" + su.Code, "BLIND_NEW_PASSWORD=hank"}, "login", "--user", u.name, "--recover")
	if !strings.Contains(r.stderr, "too easy to guess") {
		t.Fatalf("recovery with a weak password: %q", r.stderr)
	}
	u.must("login", "--user", u.name) // the password did not change
}
