package main

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/blindstore/blindstore/internal/proc"
	"github.com/blindstore/blindstore/internal/seeded"
	"github.com/blindstore/blindstore/internal/testenv"
	"github.com/blindstore/blindstore/internal/tlstest"
)

// The WebDAV tests run `blind serve webdav` as a process over a real
// blindstored, and drive it with the real clients: litmus, rclone,
// restic, and a davfs2 mount.

// dav is a running `blind serve webdav`.
type dav struct {
	url  string // without the trailing slash
	pass string
	p    *proc.Process
	logs *proc.Buffer
}

const davPass = "webdav test password"

// startDAV serves u's account over WebDAV on a free loopback port, with
// each request logged (the tests count them).
func startDAV(t testing.TB, u *user, args ...string) *dav {
	t.Helper()
	bin, _ := binaries(t)
	cmd := exec.Command(bin, append([]string{"serve", "webdav", "--listen", "127.0.0.1:0", "--log-requests"}, args...)...)
	cmd.Env = append(os.Environ(), "BLIND_SERVER="+u.server, "BLIND_CONFIG_DIR="+u.cfg, "BLIND_PASSWORD="+u.pass, "BLIND_WEBDAV_PASSWORD="+davPass)
	logs := &proc.Buffer{}
	p, err := proc.Start(t.Context(), cmd, logs, 30*time.Second)
	if err != nil {
		t.Fatalf("%v\n%s", err, logs)
	}
	t.Cleanup(func() { p.Kill() })
	return &dav{url: p.URL, pass: davPass, p: p, logs: logs}
}

// count is the number of requests of method logged so far.
func (d *dav) count(method string) int {
	return strings.Count(d.logs.String(), "method="+method+" ")
}

// tool returns the path of an external program the test drives, or
// skips (fails under CI) without it.
func tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		testenv.Unavailable(t, "%s is not installed (Debian package %s)", name, name)
	}
	return p
}

// davUser is a fresh account on a fresh server, served over WebDAV.
func davUser(t testing.TB, name string, args ...string) (*user, *dav) {
	srv := startServer(t)
	u := newUser(t, srv.url, name)
	u.signup()
	return u, startDAV(t, u, args...)
}

var litmusSummary = regexp.MustCompile("<- summary for `(\\w+)': of (\\d+) tests run: (\\d+) passed, (\\d+) failed")
var litmusFail = regexp.MustCompile(`(?m)^\s*\d+\. (\w+)\.*\s+FAIL`)

// litmus's basic, copymove, props and locks groups pass, but for the one
// test of shared locks, which x/net/webdav's lock system does not
// implement (it answers 501; exclusive locks work).
func TestWebDAVLitmus(t *testing.T) {
	litmus := tool(t, "litmus")
	_, d := davUser(t, "litmus")
	cmd := exec.Command(litmus, d.url+"/", webdavUser, d.pass)
	cmd.Dir = t.TempDir() // its debug.log
	cmd.Env = append(os.Environ(), "TESTS=basic copymove props locks")
	out, _ := cmd.CombinedOutput() // non-zero on any failure: judged below
	groups := map[string]bool{}
	for _, m := range litmusSummary.FindAllStringSubmatch(string(out), -1) {
		groups[m[1]] = true
		if m[2] == "0" {
			t.Errorf("litmus %s ran no test", m[1])
		}
	}
	for _, g := range []string{"basic", "copymove", "props", "locks"} {
		if !groups[g] {
			t.Errorf("litmus did not finish the %s group", g)
		}
	}
	for _, m := range litmusFail.FindAllStringSubmatch(string(out), -1) {
		if m[1] != "lock_shared" {
			t.Errorf("litmus test %s failed", m[1])
		}
	}
	if t.Failed() {
		t.Logf("litmus:\n%s\nserver:\n%s", out, d.logs)
	}
}

// rclone runs rclone with a webdav remote "bs" for d; it returns the
// combined output and fails the test on a non-zero exit.
func rclone(t testing.TB, d *dav, args ...string) string {
	t.Helper()
	conf := rcloneConfig(t, d)
	cmd := exec.Command(tool(t, "rclone"), args...)
	cmd.Env = append(os.Environ(), "RCLONE_CONFIG="+conf)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("rclone %s: %v\n%s\nserver:\n%s", strings.Join(args, " "), err, out, d.logs)
	}
	return string(out)
}

// rcloneConfig writes an rclone configuration with the remote "bs".
func rcloneConfig(t testing.TB, d *dav) string {
	t.Helper()
	out, err := exec.Command(tool(t, "rclone"), "obscure", d.pass).Output()
	if err != nil {
		t.Fatalf("rclone obscure: %v", err)
	}
	conf := filepath.Join(t.TempDir(), "rclone.conf")
	text := fmt.Sprintf("[bs]\ntype = webdav\nurl = %s/\nvendor = other\nuser = %s\npass = %s\n", d.url, webdavUser, strings.TrimSpace(string(out)))
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return conf
}

// makeTree writes a folder tree: sizes across the inline limit and the
// block size, nested folders, and an empty one.
func makeTree(t testing.TB, dir string) {
	t.Helper()
	files := map[string]int64{
		"empty.txt":             0,
		"one":                   1,
		"small.txt":             1500,
		"docs/b.bin":            capacity + 1,
		"docs/deep/er/c.bin":    300_000,
		"media/big.bin":         6 << 20,
		"media/naïve name.txt":  42,
		"media/with space/x.md": 9000,
	}
	seed := uint64(1)
	for name, n := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		writeRandom(t, p, n, seed)
		seed++
	}
	if err := os.MkdirAll(filepath.Join(dir, "empty folder"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// sameTree fails unless a and b hold the same folders and the same files
// byte for byte.
func sameTree(t testing.TB, a, b string) {
	t.Helper()
	list := func(root string) map[string]string {
		out := map[string]string{}
		err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err != nil || p == root {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			if e.IsDir() {
				out[rel] = "dir"
			} else {
				out[rel] = fmt.Sprintf("%x", fileHash(t, p))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	la, lb := list(a), list(b)
	for k, v := range la {
		if lb[k] != v {
			t.Errorf("%s: %q in %s, %q in %s", k, v, a, lb[k], b)
		}
	}
	for k := range lb {
		if _, ok := la[k]; !ok {
			t.Errorf("%s: only in %s", k, b)
		}
	}
}

// rclone copies a folder tree in and out byte for byte, `rclone check`
// finds no difference, and `rclone sync` sends only what changed.
func TestWebDAVRclone(t *testing.T) {
	u, d := davUser(t, "rclone")
	src, back := t.TempDir(), t.TempDir()
	makeTree(t, src)
	rclone(t, d, "copy", "--create-empty-src-dirs", src, "bs:tree")
	out := rclone(t, d, "check", src, "bs:tree")
	if !strings.Contains(out, "0 differences found") {
		t.Errorf("rclone check:\n%s", out)
	}
	rclone(t, d, "copy", "--create-empty-src-dirs", "bs:tree", back)
	sameTree(t, src, back)
	// The account holds the same, as the blind client sees it.
	got := filepath.Join(t.TempDir(), "c.bin")
	u.must("get", "tree/docs/deep/er/c.bin", "-o", got)
	if fileHash(t, got) != fileHash(t, filepath.Join(src, "docs/deep/er/c.bin")) {
		t.Error("blind get of a file rclone put differs")
	}

	// One file edited (a new size: rclone compares sizes over plain
	// WebDAV), one added, one deleted: two PUTs and one DELETE.
	writeRandom(t, filepath.Join(src, "media/big.bin"), 6<<20+100, 99)
	writeRandom(t, filepath.Join(src, "docs/new.bin"), 5000, 98)
	if err := os.Remove(filepath.Join(src, "small.txt")); err != nil {
		t.Fatal(err)
	}
	puts, dels := d.count("PUT"), d.count("DELETE")
	rclone(t, d, "sync", src, "bs:tree")
	if n := d.count("PUT") - puts; n != 2 {
		t.Errorf("rclone sync sent %d PUTs, want 2", n)
	}
	if n := d.count("DELETE") - dels; n != 1 {
		t.Errorf("rclone sync sent %d DELETEs, want 1", n)
	}
	if out := rclone(t, d, "check", src, "bs:tree"); !strings.Contains(out, "0 differences found") {
		t.Errorf("rclone check after sync:\n%s", out)
	}
	puts = d.count("PUT")
	rclone(t, d, "sync", src, "bs:tree")
	if n := d.count("PUT") - puts; n != 0 {
		t.Errorf("a second rclone sync sent %d PUTs, want none", n)
	}
	back2 := t.TempDir()
	rclone(t, d, "copy", "--create-empty-src-dirs", "bs:tree", back2)
	sameTree(t, src, back2)

	// A move of a folder is one MOVE, and a range read returns the bytes.
	rclone(t, d, "moveto", "bs:tree/docs", "bs:tree/moved")
	u.must("get", "tree/moved/deep/er/c.bin", "-o", filepath.Join(t.TempDir(), "c.bin"))
	req, _ := http.NewRequest(http.MethodGet, d.url+"/tree/moved/deep/er/c.bin", nil)
	req.SetBasicAuth(webdavUser, d.pass)
	req.Header.Set("Range", "bytes=70000-70099")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want, _ := os.ReadFile(filepath.Join(src, "docs/deep/er/c.bin"))
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, want[70000:70100]) {
		t.Errorf("range GET: %s, %d bytes, want 206 with bytes 70000-70099", resp.Status, len(body))
	}
}

// restic backs up into the account through rclone's webdav remote, and
// restores from it byte for byte.
func TestWebDAVRestic(t *testing.T) {
	restic := tool(t, "restic")
	tool(t, "rclone")
	_, d := davUser(t, "restic")
	conf := rcloneConfig(t, d)
	src, dst := t.TempDir(), t.TempDir()
	makeTree(t, src)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(restic, append([]string{"--repo", "rclone:bs:backups", "--no-cache"}, args...)...)
		cmd.Env = append(os.Environ(), "RCLONE_CONFIG="+conf, "RESTIC_PASSWORD=restic test password")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("restic %s: %v\n%s\nserver:\n%s", strings.Join(args, " "), err, out, d.logs)
		}
		return string(out)
	}
	run("init")
	run("backup", src)
	run("restore", "latest", "--target", dst)
	sameTree(t, src, filepath.Join(dst, src))
	if out := run("check", "--read-data"); !strings.Contains(out, "no errors were found") {
		t.Errorf("restic check:\n%s", out)
	}
}

// A davfs2 mount writes, reads, renames and removes files in the account.
// Listing a mounted folder is not checked: on this machine's kernel,
// davfs2's readdir fails (EINVAL) against any server, rclone's own too.
func TestWebDAVDavfs2Mount(t *testing.T) {
	mount := tool(t, "mount.davfs")
	if _, err := os.Stat("/dev/fuse"); err != nil {
		testenv.Unavailable(t, "no /dev/fuse: davfs2 cannot mount here")
	}
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "mounting davfs2 needs root here")
	}
	u, d := davUser(t, "davfs")
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	secrets := filepath.Join(dir, "secrets")
	conf := filepath.Join(dir, "davfs2.conf")
	if err := os.WriteFile(secrets, fmt.Appendf(nil, "%s/ %s %q\n", d.url, webdavUser, d.pass), 0o600); err != nil {
		t.Fatal(err)
	}
	// Uploads at close, not after a delay: the test reads the account.
	text := fmt.Sprintf("secrets %s\nuse_locks 1\ndelay_upload 0\n", secrets)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mount, "-o", "conf="+conf, d.url+"/", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount.davfs: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount: %v\n%s", err, out)
		}
	})
	content := bytes.Repeat([]byte("mounted and edited\n"), 20000)
	if err := os.Mkdir(filepath.Join(mnt, "notes"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(mnt, "notes", "a.txt")
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("read back through the mount: %v, %d bytes", err, len(got))
	}
	if err := os.Rename(p, filepath.Join(mnt, "notes", "b.txt")); err != nil {
		t.Fatal(err)
	}
	// Unmounting flushes what davfs2 still holds; the account then has
	// the file as written.
	if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v\n%s", err, out)
	}
	if out, err := exec.Command(mount, "-o", "conf="+conf, d.url+"/", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount.davfs again: %v\n%s", err, out)
	}
	got := filepath.Join(t.TempDir(), "b.txt")
	u.must("get", "notes/b.txt", "-o", got)
	if b, _ := os.ReadFile(got); !bytes.Equal(b, content) {
		t.Errorf("blind get of the file written through the mount: %d bytes, want %d", len(b), len(content))
	}
	if _, err := os.Stat(filepath.Join(mnt, "notes", "a.txt")); !os.IsNotExist(err) {
		t.Errorf("the old name after the rename: %v", err)
	}
	if err := os.Remove(filepath.Join(mnt, "notes", "b.txt")); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(mnt, "notes")); err != nil || !st.IsDir() {
		t.Errorf("the folder emptied by a removal: %v", err)
	}
}

// davDo sends one request with the given credentials and returns its
// status.
func davDo(t testing.TB, c *http.Client, method, url, user, pass string, body io.Reader, hdr ...string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// Safe by default: credentials required, a non-loopback address refused
// without TLS, --read-only refuses changes, names sync would refuse are
// refused, a broken-off upload leaves nothing, and SIGTERM waits for an
// upload in progress to commit.
func TestWebDAVSafety(t *testing.T) {
	srv := startServer(t)
	u := newUser(t, srv.url, "safe")
	u.signup()
	r := u.expect(2, nil, "serve", "webdav", "--listen", "0.0.0.0:0")
	if !strings.Contains(r.stderr, "--tls-cert") {
		t.Errorf("a non-loopback --listen without TLS: %q", r.stderr)
	}
	d := startDAV(t, u)
	c := http.DefaultClient
	for _, cred := range [][2]string{{"", ""}, {webdavUser, "wrong"}, {"someone", davPass}} {
		if code := davDo(t, c, "PROPFIND", d.url+"/", cred[0], cred[1], nil, "Depth", "1"); code != http.StatusUnauthorized {
			t.Errorf("PROPFIND as %q: %d, want 401", cred[0], code)
		}
	}
	if code := davDo(t, c, "PUT", d.url+"/a/.blindkeep", webdavUser, davPass, strings.NewReader("x")); code != http.StatusForbidden {
		t.Errorf("PUT of an empty-folder marker's name: %d, want 403", code)
	}
	if code := davDo(t, c, "PUT", d.url+"/bad%5Cname", webdavUser, davPass, strings.NewReader("x")); code != http.StatusForbidden {
		t.Errorf("PUT of a name with a backslash: %d, want 403", code)
	}

	// An upload whose client goes away halfway is not committed.
	conn, err := net.Dial("tcp", strings.TrimPrefix(d.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PUT /torn.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Basic %s\r\nContent-Length: %d\r\n\r\n", basicAuth(webdavUser, davPass), 4<<20)
	io.CopyN(conn, seeded.Stream(7), 1<<20)
	conn.Close()

	// SIGTERM during an upload: the server stops once it is committed.
	// The body waits for the server's 100 Continue, which it sends once
	// the handler reads the body: otherwise the first MiB may lie in the
	// sockets' buffers of a connection the busy server has not accepted
	// yet when the signal closes its listener.
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	own := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Minute}}
	defer own.CloseIdleConnections()
	go func() {
		req, _ := http.NewRequest(http.MethodPut, d.url+"/slow.bin", pr)
		req.SetBasicAuth(webdavUser, davPass)
		req.Header.Set("Expect", "100-continue")
		req.ContentLength = 3 << 20
		resp, err := own.Do(req)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	if _, err := io.CopyN(pw, seeded.Stream(8), 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := d.p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the signal is handled before the rest arrives
	if _, err := io.CopyN(pw, seeded.Stream(9), 2<<20); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if code := <-done; code != http.StatusCreated {
		t.Errorf("the upload in progress at SIGTERM: %d, want 201\n%s", code, d.logs)
	}
	select {
	case <-d.p.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("blind serve webdav did not stop after SIGTERM\n%s", d.logs)
	}
	if err := d.p.Wait(); err != nil {
		t.Errorf("blind serve webdav after SIGTERM: %v\n%s", err, d.logs)
	}
	ls := u.must("ls").stdout
	if !strings.Contains(ls, "slow.bin") || strings.Contains(ls, "torn.bin") {
		t.Errorf("after the uploads, ls:\n%s", ls)
	}

	// Read-only, over TLS on loopback.
	ca := tlstest.NewCA(t, "webdav test CA")
	pair := ca.Issue(t, tlstest.Options{})
	ro := startDAV(t, u, "--read-only", "--tls-cert", pair.CertFile, "--tls-key", pair.KeyFile)
	if !strings.HasPrefix(ro.url, "https://") {
		t.Fatalf("with --tls-cert the URL is %s", ro.url)
	}
	tc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	if code := davDo(t, tc, "GET", ro.url+"/slow.bin", webdavUser, davPass, nil); code != http.StatusOK {
		t.Errorf("GET on the read-only server: %d", code)
	}
	for _, m := range []string{"PUT", "DELETE", "MKCOL"} {
		if code := davDo(t, tc, m, ro.url+"/slow2.bin", webdavUser, davPass, nil); code != http.StatusForbidden {
			t.Errorf("%s on the read-only server: %d, want 403", m, code)
		}
	}
	if code := davDo(t, tc, "MOVE", ro.url+"/slow.bin", webdavUser, davPass, nil, "Destination", ro.url+"/other.bin"); code != http.StatusForbidden {
		t.Errorf("MOVE on the read-only server: %d, want 403", code)
	}
}

func basicAuth(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

// A small PUT is answered once it is sealed in the journal: killed
// before the commit (the server's write window is long here), `blind
// serve webdav` leaves the files in its journal, which shows no name and
// no byte of them in clear, and the next start serves them at once and
// commits them.
func TestWebDAVJournalCrash(t *testing.T) {
	srv := startServer(t, "--pool-window", "3s")
	u := newUser(t, srv.url, "crash")
	u.signup()
	d := startDAV(t, u)
	c := http.DefaultClient
	files := map[string][]byte{}
	for i := range 20 {
		files[fmt.Sprintf("docs/note-%02d.txt", i)] = []byte(fmt.Sprintf("note %d: %s", i, strings.Repeat("words to keep ", 20)))
	}
	if code := davDo(t, c, "MKCOL", d.url+"/docs/", webdavUser, d.pass, nil); code != http.StatusCreated {
		t.Fatalf("MKCOL: %d", code)
	}
	for name, data := range files {
		if code := davDo(t, c, "PUT", d.url+"/"+name, webdavUser, d.pass, bytes.NewReader(data)); code != http.StatusCreated {
			t.Fatalf("PUT %s: %d", name, code)
		}
	}
	d.p.Kill() // SIGKILL: no shutdown of any kind

	if out := u.must("ls").stdout; strings.Contains(out, "note-") {
		t.Fatalf("the files were committed before the kill (the test wants them only in the journal):\n%s", out)
	}
	journals, _ := filepath.Glob(filepath.Join(u.cfg, "webdav-journal-*[0-9a-f]"))
	if len(journals) != 1 {
		t.Fatalf("journals in the configuration directory: %q", journals)
	}
	raw, err := os.ReadFile(journals[0])
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if bytes.Contains(raw, []byte(name)) || bytes.Contains(raw, []byte("note-")) || bytes.Contains(raw, data[:16]) {
			t.Fatalf("the journal holds %s in clear", name)
		}
	}

	d2 := startDAV(t, u)
	for name, data := range files {
		if got := davGet(t, d2, name); !bytes.Equal(got, data) {
			t.Errorf("GET %s after the restart: %q, want %q", name, got, data)
		}
	}
	if err := d2.p.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := d2.p.Wait(); err != nil {
		t.Fatalf("blind serve webdav: %v\n%s", err, d2.logs)
	}
	out := u.must("ls").stdout
	for name := range files {
		if !strings.Contains(out, name) {
			t.Errorf("%s is not in the account after the clean stop:\n%s", name, out)
		}
	}
	got := filepath.Join(t.TempDir(), "got")
	u.must("get", "docs/note-07.txt", "-o", got)
	if b, err := os.ReadFile(got); err != nil || !bytes.Equal(b, files["docs/note-07.txt"]) {
		t.Errorf("blind get after the replay: %q, %v", b, err)
	}
	if _, err := os.Stat(journals[0]); !os.IsNotExist(err) {
		t.Errorf("the journal is still there after every file was committed: %v", err)
	}
}

// davGet GETs name from d and returns the body; it fails the test on any
// status but 200.
func davGet(t testing.TB, d *dav, name string) []byte {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, d.url+"/"+name, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(webdavUser, d.pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", name, resp.StatusCode, err)
	}
	return b
}
