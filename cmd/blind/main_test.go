package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/blindstore/blindstore/client"
	"github.com/blindstore/blindstore/internal/proc"
	"github.com/blindstore/blindstore/internal/seeded"
	"github.com/blindstore/blindstore/internal/tamperproxy"
	"github.com/blindstore/blindstore/wire"
)

// The tests run the real binaries: blindstored as a server process, and
// blind as the user would, with its environment, files and exit codes.

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func binaries(t testing.TB) (blind, server string) {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "blind-test-")
		if buildErr != nil {
			return
		}
		// Without -race: these tests are about the processes, and the
		// 100 MiB round trip and memory figures must be the real ones.
		// The client package's tests run under the race detector.
		for _, b := range []struct{ out, pkg string }{{"blind", "."}, {"blindstored", "../blindstored"}} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, b.out), b.pkg).CombinedOutput()
			if err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "blind"), filepath.Join(binDir, "blindstored")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var idRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}`)

// server is a running blindstored process: serve or issuer.
type server struct {
	url  string
	p    *proc.Process
	logs *proc.Buffer
}

// startServer starts blindstored on a fresh data directory.
func startServer(t testing.TB, args ...string) *server {
	t.Helper()
	return startBlindstored(t, 30*time.Second, append([]string{"serve", "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--probe-burst", "10000", "--probe-rate", "1000"}, args...)...)
}

// startBlindstored runs a blindstored command that serves and waits up to
// timeout until it logs its URL; the process is killed when the test
// ends.
func startBlindstored(t testing.TB, timeout time.Duration, args ...string) *server {
	t.Helper()
	_, bin := binaries(t)
	logs := &proc.Buffer{}
	p, err := proc.Start(t.Context(), exec.Command(bin, args...), logs, timeout)
	if err != nil {
		t.Fatalf("%v\n%s", err, logs)
	}
	t.Cleanup(func() { p.Kill() })
	return &server{url: p.URL, p: p, logs: logs}
}

// user is one device: its own configuration directory (session).
type user struct {
	t      testing.TB
	name   string
	pass   string
	server string
	cfg    string
}

func newUser(t testing.TB, srv string, name string) *user {
	return &user{t: t, name: name, pass: "correct horse " + name, server: srv, cfg: t.TempDir()}
}

// twoDevices is one account on two devices: a signs up, b logs in.
func twoDevices(t testing.TB, srv string, name string) (a, b *user) {
	t.Helper()
	a = newUser(t, srv, name)
	a.signup()
	b = newUser(t, srv, name)
	b.must("login", "--user", name)
	return a, b
}

// result is one run of blind.
type result struct {
	code   int
	stdout string
	stderr string
	maxRSS int64 // bytes
	took   time.Duration
}

func (u *user) run(env []string, args ...string) result {
	u.t.Helper()
	return u.runIn("", env, nil, args...)
}

func (u *user) runIn(dir string, env []string, stdout io.Writer, args ...string) result {
	u.t.Helper()
	bin, _ := binaries(u.t)
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BLIND_SERVER="+u.server, "BLIND_CONFIG_DIR="+u.cfg, "BLIND_PASSWORD="+u.pass)
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdout != nil {
		cmd.Stdout = stdout
	}
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String(), took: time.Since(start)}
	if cmd.ProcessState != nil {
		r.code = cmd.ProcessState.ExitCode()
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.maxRSS = ru.Maxrss * 1024 // KiB on Linux
		}
	} else if err != nil {
		u.t.Fatalf("blind %v: %v", args, err)
	}
	return r
}

// must runs blind and fails the test unless it exits 0.
func (u *user) must(args ...string) result {
	u.t.Helper()
	r := u.run(nil, args...)
	if r.code != 0 {
		u.t.Fatalf("blind %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// expect runs blind and checks its exit code and that it said one line
// on stderr.
func (u *user) expect(code int, env []string, args ...string) result {
	u.t.Helper()
	r := u.run(env, args...)
	if r.code != code {
		u.t.Fatalf("blind %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	if lines := strings.Count(strings.TrimSpace(r.stderr), "\n"); code != 0 && (lines != 0 || r.stderr == "") {
		u.t.Fatalf("blind %s: want one line on stderr, got %q", strings.Join(args, " "), r.stderr)
	}
	if idRE.MatchString(r.stderr) {
		u.t.Fatalf("blind %s: an error names a block id: %q", strings.Join(args, " "), r.stderr)
	}
	return r
}

func (u *user) signup() {
	u.t.Helper()
	u.must("signup", "--user", u.name)
}

// writeRandom writes n pseudo-random bytes to a new file.
func writeRandom(t testing.TB, path string, n int64, seed uint64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.CopyN(f, seeded.Stream(seed), n); err != nil {
		t.Fatal(err)
	}
}

func fileHash(t testing.TB, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

const capacity = 65536 - 44 // client.PayloadCapacity(65536)

// Files of 0 bytes, 1 byte, exactly one block's capacity, one byte more,
// and 100 MiB come back byte for byte, through the real processes.
func TestRoundTrip(t *testing.T) {
	srv := startServer(t)
	u := newUser(t, srv.url, "alice")
	u.signup()
	dir := t.TempDir()
	sizes := []int64{0, 1, capacity, capacity + 1, 100 << 20}
	for i, n := range sizes {
		src := filepath.Join(dir, fmt.Sprintf("in-%d", n))
		writeRandom(t, src, n, uint64(i))
		put := u.must("put", src)
		if n == 100<<20 {
			t.Logf("put 100 MiB: %v (%.0f MiB/s), max RSS %d MiB", put.took, 100/put.took.Seconds(), put.maxRSS>>20)
			if put.maxRSS > 100<<20 {
				t.Errorf("put of 100 MiB used %d MiB of resident memory", put.maxRSS>>20)
			}
		}
	}
	ls := u.must("--json", "ls")
	var files []struct {
		Name   string `json:"name"`
		Size   int64  `json:"size"`
		Blocks int    `json:"blocks"`
	}
	if err := lsFiles(ls.stdout, &files); err != nil || len(files) != len(sizes) {
		t.Fatalf("ls --json: %v\n%s", err, ls.stdout)
	}
	for _, n := range sizes {
		name := fmt.Sprintf("in-%d", n)
		out := filepath.Join(dir, "out-"+name)
		get := u.must("get", name, "-o", out)
		if n == 100<<20 {
			t.Logf("get 100 MiB: %v (%.0f MiB/s), max RSS %d MiB", get.took, 100/get.took.Seconds(), get.maxRSS>>20)
			if get.maxRSS > 100<<20 {
				t.Errorf("get of 100 MiB used %d MiB of resident memory", get.maxRSS>>20)
			}
		}
		if fileHash(t, out) != fileHash(t, filepath.Join(dir, name)) {
			t.Fatalf("%s came back different", name)
		}
		fi, err := os.Stat(out)
		if err != nil || fi.Size() != n {
			t.Fatalf("%s: %v, size %d", out, err, fi.Size())
		}
	}
	// Small files live inline in the index and take no block; the others
	// are cut into chunks of 3/4 to 1 block's capacity (content-defined).
	for _, f := range files {
		lo, hi := int((f.Size+capacity-1)/capacity), int((4*f.Size+3*capacity-1)/(3*capacity))
		if f.Size <= int64(client.InlineMax(65536)) {
			lo, hi = 0, 0
		}
		if f.Blocks < lo || f.Blocks > hi {
			t.Fatalf("%s (%d bytes): %d blocks, want %d to %d", f.Name, f.Size, f.Blocks, lo, hi)
		}
	}
	// Standard output, and sharing: a capability fetches the file with
	// no account.
	var buf bytes.Buffer
	r := u.runIn("", nil, &buf, "get", "in-1", "-o", "-")
	if r.code != 0 || buf.Len() != 1 {
		t.Fatalf("get -o -: exit %d, %d bytes", r.code, buf.Len())
	}
	cp := strings.TrimSpace(u.must("share", fmt.Sprintf("in-%d", capacity+1)).stdout)
	stranger := newUser(t, srv.url, "nobody")
	out := filepath.Join(dir, "fetched")
	stranger.must("fetch", cp, "-o", out)
	if fileHash(t, out) != fileHash(t, filepath.Join(dir, fmt.Sprintf("in-%d", capacity+1))) {
		t.Fatal("fetched file differs")
	}
}

// Every command answers --help, and the main help documents the exit
// codes.
func TestHelp(t *testing.T) {
	u := newUser(t, "http://127.0.0.1:1", "x")
	main := u.must("--help")
	for _, want := range []string{"Exit codes:", "7  tampering", "BLIND_PASSWORD", "BLIND_CONFIG_DIR"} {
		if !strings.Contains(main.stdout, want) {
			t.Fatalf("blind --help lacks %q", want)
		}
	}
	for name := range commands(&app{}) {
		r := u.must(name, "--help")
		if !strings.Contains(r.stdout, "Usage: blind "+name) || !strings.Contains(r.stdout, "BLIND_SERVER") {
			t.Fatalf("blind %s --help:\n%s", name, r.stdout)
		}
	}
	u.expect(wire.ExitUsage, nil, "frobnicate")
	u.expect(wire.ExitUsage, nil, "put")
	u.expect(wire.ExitUsage, nil, "get", "--bogus", "x")
	if r := u.run(nil); r.code != wire.ExitUsage {
		t.Fatalf("blind with no command: exit %d", r.code)
	}
}

// Bad input gives one clear line and its own exit code, and leaves the
// account's index as it was.
func TestBadInput(t *testing.T) {
	srv := startServer(t)
	u := newUser(t, srv.url, "bob")
	dir := t.TempDir()

	u.expect(wire.ExitAuth, nil, "ls") // not logged in
	u.signup()
	src := filepath.Join(dir, "doc")
	writeRandom(t, src, 3*capacity, 7)
	u.must("put", src)
	status := func() string { return u.must("--json", "status").stdout }
	before := status()

	u.expect(wire.ExitAuth, []string{"BLIND_PASSWORD=wrong"}, "login", "--user", "bob")
	u.expect(wire.ExitAuth, nil, "login", "--user", "nobody-has-this-name")
	u.expect(wire.ExitConflict, nil, "signup", "--user", "bob")
	u.expect(wire.ExitNotFound, nil, "get", "missing")
	u.expect(wire.ExitNotFound, nil, "rm", "missing")
	u.expect(wire.ExitUsage, nil, "put", src, "--as", "../escape")
	u.expect(wire.ExitLocalIO, nil, "put", filepath.Join(dir, "no-such-file"))

	// Output that exists is not overwritten; a full disk leaves nothing.
	u.must("get", "doc", "-o", filepath.Join(dir, "copy"))
	u.expect(wire.ExitConflict, nil, "get", "doc", "-o", filepath.Join(dir, "copy"))
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err == nil {
		r := u.runIn("", nil, full, "get", "doc", "-o", "-")
		full.Close()
		if r.code != wire.ExitLocalIO || !strings.Contains(r.stderr, "disk is full") {
			t.Fatalf("get to a full disk: exit %d, %q", r.code, r.stderr)
		}
	}
	// A file size limit makes writes fail as a full disk does.
	limited := filepath.Join(dir, "limited")
	bin, _ := binaries(t)
	sh := exec.Command("sh", "-c", `ulimit -f 64; exec "$0" get doc -o "$1"`, bin, limited)
	sh.Env = append(os.Environ(), "BLIND_SERVER="+u.server, "BLIND_CONFIG_DIR="+u.cfg)
	outb, _ := sh.CombinedOutput()
	if code := sh.ProcessState.ExitCode(); code != wire.ExitLocalIO {
		t.Fatalf("get beyond the file size limit: exit %d: %s", code, outb)
	}
	if entries, _ := filepath.Glob(filepath.Join(dir, ".limited*")); len(entries) > 0 {
		t.Fatalf("a failed get left %v", entries)
	}
	if _, err := os.Stat(limited); err == nil {
		t.Fatal("a failed get left its output")
	}

	// Capabilities: malformed, and gone.
	u.expect(wire.ExitUsage, nil, "fetch", "blind1:not-a-capability")
	cp := strings.TrimSpace(u.must("share", "doc").stdout)
	u.must("share", "doc", "--revoke")
	u.expect(wire.ExitNotFound, nil, "fetch", cp, "-o", filepath.Join(dir, "gone"))

	// A server that is down, or that is not a blindstore server.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	down := "http://" + ln.Addr().String()
	ln.Close()
	u.expect(wire.ExitNetwork, []string{"BLIND_SERVER=" + down}, "login", "--user", "bob")
	u.expect(wire.ExitNetwork, []string{"BLIND_SERVER=" + down}, "fetch", cp)
	garbage := garbageServer(t)
	u.expect(wire.ExitNetwork, []string{"BLIND_SERVER=" + garbage}, "login", "--user", "bob")

	after := status()
	if !sameStatus(before, after) {
		t.Fatalf("the account changed:\nbefore %s\nafter  %s", before, after)
	}
	// The session is readable only by its owner, and logout wipes it.
	fi, err := os.Stat(filepath.Join(u.cfg, "session.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("session file: %v, mode %v", err, fi.Mode())
	}
	if di, _ := os.Stat(u.cfg); di.Mode().Perm() != 0o700 {
		t.Fatalf("config directory mode %v", di.Mode().Perm())
	}
	u.must("logout")
	if _, err := os.Stat(filepath.Join(u.cfg, "session.json")); err == nil {
		t.Fatal("logout left the session file")
	}
	u.expect(wire.ExitAuth, nil, "ls")
}

// sameStatus compares two status outputs but for the shared count, which
// the test changes on purpose.
func sameStatus(a, b string) bool {
	var x, y map[string]any
	_ = json.Unmarshal([]byte(a), &x)
	_ = json.Unmarshal([]byte(b), &y)
	for _, k := range []string{"files", "bytes"} {
		if fmt.Sprint(x[k]) != fmt.Sprint(y[k]) {
			return false
		}
	}
	return x["files"] != nil
}

func garbageServer(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<html>it works</html>")
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// newTamperProxy stands a lying proxy between blind and a real server.
func newTamperProxy(t testing.TB, upstream string) *tamperproxy.Proxy {
	p, err := tamperproxy.Start(upstream)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// recorder notes the block ids a client reads, in order.
type recorder struct {
	mu  sync.Mutex
	ids []string
}

// A server that returns another block's data, swaps two blocks of a file
// or alters one is caught: exit 7, and no output file.
func TestTamperingProxy(t *testing.T) {
	srv := startServer(t)
	p := newTamperProxy(t, srv.url)
	u := newUser(t, p.URL, "mallory-victim")
	u.signup()
	dir := t.TempDir()
	src := filepath.Join(dir, "f")
	writeRandom(t, src, 5*capacity, 3)
	u.must("put", src)
	other := filepath.Join(dir, "g")
	writeRandom(t, other, capacity, 4)
	u.must("put", other)

	// Learn which blocks a get of f reads, through the proxy's eyes.
	var rec recorder
	p.SetSeen(func(id string) {
		rec.mu.Lock()
		rec.ids = append(rec.ids, id)
		rec.mu.Unlock()
	})
	u.must("get", "g", "-o", filepath.Join(dir, "g.out"))
	rec.mu.Lock()
	gStart := len(rec.ids)
	rec.mu.Unlock()
	u.must("get", "f", "-o", filepath.Join(dir, "f.out"))
	rec.mu.Lock()
	// Each get reads the head (the index tree's dir and leaf come from
	// the block cache, where the puts kept them), then the file's data
	// blocks: g has one, f five or six (content-defined chunks of 3/4 to
	// 1 block's capacity).
	const metaPerGet = 1
	fData := len(rec.ids) - gStart - metaPerGet
	if gStart != metaPerGet+1 || fData < 5 || fData > 7 {
		t.Fatalf("the two gets read %d then %d blocks, want %d then %d+5 to 7 (head, data)",
			gStart, len(rec.ids)-gStart, metaPerGet+1, metaPerGet)
	}
	gBlock := rec.ids[gStart-1]                                       // g's one data block: read last by the first get
	fBlocks := append([]string(nil), rec.ids[len(rec.ids)-fData:]...) // f's data blocks, read last
	rec.mu.Unlock()
	p.SetSeen(nil)

	for _, tc := range []struct {
		name string
		lie  func(id string) tamperproxy.Lie
	}{
		{"another block's data", func(id string) tamperproxy.Lie {
			if id == fBlocks[2] {
				return tamperproxy.Lie{Other: gBlock}
			}
			return tamperproxy.Lie{}
		}},
		{"two blocks swapped", func(id string) tamperproxy.Lie {
			switch id {
			case fBlocks[1]:
				return tamperproxy.Lie{Other: fBlocks[3]}
			case fBlocks[3]:
				return tamperproxy.Lie{Other: fBlocks[1]}
			}
			return tamperproxy.Lie{}
		}},
		{"a flipped bit", func(id string) tamperproxy.Lie { return tamperproxy.Lie{Flip: id == fBlocks[4]} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.SetPolicy(tc.lie)
			out := filepath.Join(dir, "tampered")
			r := u.run(nil, "get", "f", "-o", out)
			if r.code != wire.ExitTampered {
				t.Fatalf("exit %d, want %d: %s", r.code, wire.ExitTampered, r.stderr)
			}
			if _, err := os.Stat(out); err == nil {
				t.Fatal("a tampered file was written out")
			}
			if m, _ := filepath.Glob(filepath.Join(dir, ".tampered*")); len(m) > 0 {
				t.Fatalf("temporary files left: %v", m)
			}
		})
	}
}

// Two devices adding files at once both land.
func TestTwoDevices(t *testing.T) {
	srv := startServer(t)
	a, b := twoDevices(t, srv.url, "dana")
	dir := t.TempDir()
	const each = 4
	var wg sync.WaitGroup
	errs := make(chan string, 2*each)
	for d, dev := range []*user{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				src := filepath.Join(dir, fmt.Sprintf("dev%d-%d", d, i))
				writeRandom(t, src, int64(1000*(i+1)), uint64(10*d+i))
				if r := dev.run(nil, "put", src); r.code != 0 {
					errs <- fmt.Sprintf("device %d: exit %d: %s", d, r.code, r.stderr)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	var files []map[string]any
	if err := lsFiles(a.must("--json", "ls").stdout, &files); err != nil || len(files) != 2*each {
		t.Fatalf("%d files after both devices wrote %d each: %v", len(files), each, err)
	}
	for _, f := range files {
		name := f["name"].(string)
		out := filepath.Join(dir, "out-"+name)
		b.must("get", name, "-o", out)
		if fileHash(t, out) != fileHash(t, filepath.Join(dir, name)) {
			t.Fatalf("%s differs", name)
		}
	}
}

// waitForPeriodStart sleeps until just after the next period boundary.
func waitForPeriodStart(period time.Duration) {
	now := time.Now()
	next := now.Truncate(period).Add(period + 150*time.Millisecond)
	time.Sleep(next.Sub(now))
}

type loginOut struct {
	Renewal struct {
		Period  uint64 `json:"period"`
		Sent    int    `json:"sent"`
		Renewed int    `json:"renewed"`
		Current int    `json:"current"`
		Stale   int    `json:"stale_files"`
	} `json:"renewal"`
	SafeUntil  time.Time `json:"safe_until"`
	ExpiryNear bool      `json:"expiry_near"`
}

func login(t testing.TB, u *user) loginOut {
	t.Helper()
	r := u.must("--json", "login", "--user", u.name)
	var out loginOut
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("login --json: %v\n%s", err, r.stdout)
	}
	return out
}

// After a period boundary, login renews exactly the stale blocks; an
// abandoned account is purged after R periods while an active one keeps
// everything. Periods of 2 s, R = 3, a purge every second.
func TestPeriodsRenewalAndPurge(t *testing.T) {
	const period = 2 * time.Second
	srv := startServer(t, "--period", "2s", "--retention", "3", "--purge-every", "1s", "--purge-max-fraction", "1")
	active := newUser(t, srv.url, "active")
	gone := newUser(t, srv.url, "gone")
	dir := t.TempDir()
	src := filepath.Join(dir, "keep")
	writeRandom(t, src, 2*capacity+5, 1)

	active.signup()
	gone.signup()
	active.must("put", src)
	gone.must("put", src)
	deadline := time.Now().Add(20 * time.Second)

	// Next period: every block is stale (the 3 of the file, the 2 roots,
	// the head, and the index tree's dir and leaf), and login renews them
	// all.
	waitForPeriodStart(period)
	out := login(t, active)
	if r := out.Renewal; r.Stale != 1 || r.Renewed != 3+2+1+2 || r.Sent != 8 {
		t.Fatalf("login after a period boundary renewed %+v, want all 8 blocks of the account, 1 stale file", r)
	}
	want := time.Unix(int64(out.Renewal.Period+3)*2, 0)
	if !out.SafeUntil.Equal(want) {
		t.Fatalf("safe until %v, want %v", out.SafeUntil, want)
	}
	// In the same period nothing is stale: the server writes nothing.
	if again := login(t, active); again.Renewal.Period == out.Renewal.Period && (again.Renewal.Renewed != 0 || again.Renewal.Stale != 0) {
		t.Fatalf("a second login in the same period renewed %+v", again.Renewal)
	}

	// Keep the active account alive across R periods; the other one
	// nobody renews.
	for range 3 {
		waitForPeriodStart(period)
		login(t, active)
	}
	time.Sleep(1500 * time.Millisecond) // a purge runs after the boundary
	if time.Now().After(deadline) {
		t.Fatalf("the test overran its 20 s budget")
	}
	gone.expect(wire.ExitAuth, nil, "login", "--user", gone.name)
	gone.expect(wire.ExitAuth, nil, "ls")
	for _, name := range []string{"keep"} {
		o := filepath.Join(dir, "out-"+name)
		active.must("get", name, "-o", o)
		if fileHash(t, o) != fileHash(t, filepath.Join(dir, name)) {
			t.Fatalf("%s differs", name)
		}
	}
}

// With R = 2 the data is never more than two periods from expiry: every
// login warns.
func TestExpiryWarning(t *testing.T) {
	srv := startServer(t, "--period", "1h", "--retention", "2")
	u := newUser(t, srv.url, "erin")
	u.signup()
	r := u.must("login", "--user", "erin")
	if !strings.Contains(r.stderr, "warning: this account's data will be deleted on") {
		t.Fatalf("no warning on stderr: %q", r.stderr)
	}
	if !strings.Contains(r.stdout, "safe until") {
		t.Fatalf("login does not say until when the data is safe: %q", r.stdout)
	}
	s := u.must("status")
	if !strings.Contains(s.stdout, "safe until") || !strings.Contains(s.stderr, "warning") {
		t.Fatalf("status: %q %q", s.stdout, s.stderr)
	}
}

// passwd, recovery, renewal export and account deletion, end to end.
func TestAccountLifecycle(t *testing.T) {
	srv := startServer(t)
	u := newUser(t, srv.url, "frank")
	r := u.must("--json", "signup", "--user", "frank")
	var su struct {
		Code string `json:"recovery_code"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &su); err != nil || len(su.Code) != 39 {
		t.Fatalf("signup --json: %v %q", err, r.stdout)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "f")
	writeRandom(t, src, 3*capacity, 5)
	u.must("put", src)

	if r := u.run([]string{"BLIND_NEW_PASSWORD=a second and longer passphrase"}, "passwd"); r.code != 0 {
		t.Fatalf("passwd: exit %d: %s", r.code, r.stderr)
	}
	u.expect(wire.ExitAuth, []string{"BLIND_NEW_PASSWORD=third of the passphrases"}, "passwd") // the current password is no longer u.pass
	u.expect(wire.ExitAuth, nil, "login", "--user", "frank")
	u.pass = "a second and longer passphrase"
	u.must("login", "--user", "frank")

	// Renewal export: renews with no session.
	exp := filepath.Join(dir, "renew.json")
	u.must("renew", "--export", exp)
	if fi, err := os.Stat(exp); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("export: %v", err)
	}
	stranger := newUser(t, srv.url, "cron")
	out := stranger.must("--json", "renew", "--from", exp)
	if !strings.Contains(out.stdout, `"missing":0`) {
		t.Fatalf("renew --from: %s", out.stdout)
	}

	// Recovery: a new password, the old one stops working.
	other := newUser(t, srv.url, "frank")
	other.pass = "recovered with the code"
	if r := other.run([]string{"BLIND_RECOVERY_CODE=" + strings.ToLower(su.Code), "BLIND_NEW_PASSWORD=" + other.pass}, "login", "--user", "frank", "--recover"); r.code != 0 {
		t.Fatalf("login --recover: exit %d: %s", r.code, r.stderr)
	}
	u.expect(wire.ExitAuth, nil, "login", "--user", "frank")
	// By the environment alone, as a script does it: BLIND_RECOVERY_CODE
	// is the code, BLIND_RECOVER the yes/no of --recover.
	other.pass = "recovered by the environment alone"
	if r := other.run([]string{"BLIND_RECOVER=yes", "BLIND_RECOVERY_CODE=" + su.Code, "BLIND_NEW_PASSWORD=" + other.pass}, "login", "--user", "frank"); r.code != 0 {
		t.Fatalf("login with BLIND_RECOVER and BLIND_RECOVERY_CODE: exit %d: %s", r.code, r.stderr)
	}
	// The code set but no recovery asked for: an ordinary login.
	if r := other.run([]string{"BLIND_RECOVERY_CODE=" + su.Code}, "login", "--user", "frank"); r.code != 0 {
		t.Fatalf("login with BLIND_RECOVERY_CODE set: exit %d: %s", r.code, r.stderr)
	}
	other.must("get", "f", "-o", filepath.Join(dir, "f.out"))

	other.expect(wire.ExitUsage, nil, "delete-account")
	other.must("delete-account", "--yes")
	other.expect(wire.ExitAuth, nil, "login", "--user", "frank")
	if _, err := os.Stat(filepath.Join(other.cfg, "session.json")); err == nil {
		t.Fatal("delete-account left the session")
	}
}

func TestBig(t *testing.T) {
	if os.Getenv("BLIND_TEST_BIG") == "" {
		t.Skip("set BLIND_TEST_BIG=1 to measure put and get of 1 GiB")
	}
	srv := startServer(t)
	u := newUser(t, srv.url, "big")
	u.signup()
	dir := t.TempDir()
	src := filepath.Join(dir, "big")
	writeRandom(t, src, 1<<30, 9)
	put := u.must("put", src)
	t.Logf("put 1 GiB: %v (%.0f MiB/s), max RSS %d MiB", put.took, 1024/put.took.Seconds(), put.maxRSS>>20)
	get := u.must("get", "big", "-o", filepath.Join(dir, "big.out"))
	t.Logf("get 1 GiB: %v (%.0f MiB/s), max RSS %d MiB", get.took, 1024/get.took.Seconds(), get.maxRSS>>20)
	if fileHash(t, src) != fileHash(t, filepath.Join(dir, "big.out")) {
		t.Fatal("1 GiB came back different")
	}
	if put.maxRSS > 100<<20 || get.maxRSS > 100<<20 {
		t.Fatalf("resident memory: put %d MiB, get %d MiB; want under 100", put.maxRSS>>20, get.maxRSS>>20)
	}
}
