package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/blindstore/blindstore/wire"
)

// With one token left, a put whose data and commit need more is refused
// before anything is sent (the token stays), and one that needs only
// the commit (a small file, inline in the index) goes through.
func TestPutRefusedBeforeSpending(t *testing.T) {
	is := startIssuer(t)
	srv := startServer(t, "--data", t.TempDir(), "--token-issuer", is.url, "--pool-window", "0")
	u := newUser(t, srv.url, "ivan")
	u.must("signup", "--user", u.name, "--invite", is.invite(t, 4)) // 1 token
	dir := t.TempDir()
	first := filepath.Join(dir, "first")
	writeRandom(t, first, 3*capacity, 1)
	u.must("put", first) // 2 tokens: the data, the commit
	if left := u.status().Tokens.Left; left != 1 {
		t.Fatalf("%d tokens left, want 1", left)
	}

	big := filepath.Join(dir, "big")
	writeRandom(t, big, 3<<20, 2)
	r := u.expect(wire.ExitQuota, nil, "put", big)
	if !strings.Contains(r.stderr, "nothing was sent") || !strings.Contains(r.stderr, "1 are left") {
		t.Fatalf("put beyond the tokens: %q", r.stderr)
	}
	u.expect(wire.ExitQuota, nil, "put", dir) // a folder, likewise
	if st := u.status(); st.Tokens.Left != 1 || st.Files != 1 {
		t.Fatalf("after the refused puts: %d tokens left, %d files; want 1 and 1", st.Tokens.Left, st.Files)
	}

	small := filepath.Join(dir, "small.txt")
	writeFile(t, dir, "small.txt", "fits in the index")
	u.must("put", small)
	if st := u.status(); st.Tokens.Left != 0 || st.Files != 2 {
		t.Fatalf("after a small put: %d tokens left, %d files; want 0 and 2", st.Tokens.Left, st.Files)
	}
}
