package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/blindstore/blindstore/client"
	"github.com/blindstore/blindstore/internal/proc"
	"github.com/blindstore/blindstore/internal/wait"
	"github.com/blindstore/blindstore/wire"
)

// folderState lists a folder as name → content (and "dir/" for an empty
// folder), leaving out nothing: a stray temporary file is a difference.
func folderState(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel := filepath.ToSlash(p[len(dir)+1:])
		if d.IsDir() {
			if ents, _ := os.ReadDir(p); len(ents) == 0 {
				out[rel+"/"] = ""
			}
			return nil
		}
		b, err := os.ReadFile(p)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffStates(a, b map[string]string) string {
	var d []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			d = append(d, "only in the first: "+k)
		} else if w != v {
			d = append(d, "differs: "+k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, "only in the second: "+k)
		}
	}
	sort.Strings(d)
	return strings.Join(d, "\n")
}

func writeFile(t testing.TB, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func syncJSON(t testing.TB, u *user, dir string) client.SyncReport {
	t.Helper()
	r := u.must("--json", "sync", dir)
	var out client.SyncReport
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("sync --json: %v\n%s", err, r.stdout)
	}
	return out
}

// Two devices sync folders through real processes: first sync, edits and
// deletions on each side, a rename, an empty folder, a concurrent edit
// (both versions kept), the dry run, and the summary line.
func TestSyncCLI(t *testing.T) {
	srv := startServer(t)
	a, b := twoDevices(t, srv.url, "sam")
	da, db := t.TempDir(), t.TempDir()

	writeFile(t, da, "docs/plan.txt", "step one\n")
	writeRandom(t, filepath.Join(da, "photo.raw"), 3*capacity+17, 7)
	writeFile(t, da, "notes.md", "# notes\n")
	if err := os.MkdirAll(filepath.Join(da, "inbox"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(da, "link")); err != nil {
		t.Fatal(err)
	}
	r := a.must("sync", da)
	if !strings.Contains(r.stdout, "synced: 4 up") || !strings.Contains(r.stdout, "1 skipped") || !strings.Contains(r.stdout, "skip     link: a symbolic link") {
		t.Fatalf("first sync said:\n%s", r.stdout)
	}
	dry := b.must("sync", "--dry-run", db)
	if !strings.Contains(dry.stdout, "would sync: 0 up (0 B), 4 down") || len(folderState(t, db)) != 0 {
		t.Fatalf("dry run: %s / %v", dry.stdout, folderState(t, db))
	}
	if out := syncJSON(t, b, db); out.Downloaded != 4 {
		t.Fatalf("second device: %+v", out)
	}
	sa := folderState(t, da)
	delete(sa, "link")
	if d := diffStates(sa, folderState(t, db)); d != "" {
		t.Fatalf("after the first syncs:\n%s", d)
	}

	// Edits and deletions on each side, and a rename.
	writeFile(t, db, "docs/plan.txt", "step one\nstep two\n")
	if err := os.Remove(filepath.Join(db, "notes.md")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(da, "photo.raw"), filepath.Join(da, "inbox", "photo.raw")); err != nil {
		t.Fatal(err)
	}
	if out := syncJSON(t, a, da); out.RenamedRemote != 1 || out.BytesUp != 0 {
		t.Fatalf("rename: %+v", out)
	}
	if out := syncJSON(t, b, db); out.Uploaded != 1 || out.DeletedRemote != 1 || out.RenamedLocal != 1 {
		t.Fatalf("device b: %+v", out)
	}
	if out := syncJSON(t, a, da); out.Downloaded != 1 || out.DeletedLocal != 1 {
		t.Fatalf("device a: %+v", out)
	}
	sa = folderState(t, da)
	delete(sa, "link")
	if d := diffStates(sa, folderState(t, db)); d != "" {
		t.Fatalf("after edits:\n%s", d)
	}

	// A concurrent edit keeps both versions.
	writeFile(t, da, "docs/plan.txt", "a's version\n")
	writeFile(t, db, "docs/plan.txt", "b's version\n")
	syncJSON(t, a, da)
	if out := syncJSON(t, b, db); out.Conflicts != 1 {
		t.Fatalf("concurrent edit: %+v", out)
	}
	syncJSON(t, a, da)
	sa = folderState(t, da)
	delete(sa, "link")
	sb := folderState(t, db)
	if d := diffStates(sa, sb); d != "" {
		t.Fatalf("after the conflict:\n%s", d)
	}
	var versions []string
	for name, content := range sb {
		if strings.HasPrefix(name, "docs/plan") {
			versions = append(versions, content)
		}
	}
	sort.Strings(versions)
	if strings.Join(versions, "|") != "a's version\n|b's version\n" {
		t.Fatalf("versions kept: %q", versions)
	}
	if out := syncJSON(t, a, da); out.Uploaded+out.Downloaded+out.Conflicts+out.DeletedLocal+out.DeletedRemote != 0 {
		t.Fatalf("converged devices still sync: %+v", out)
	}

	// Bad input: one line, non-zero exit, nothing changed.
	a.expect(wire.ExitUsage, nil, "sync")
	a.expect(wire.ExitUsage, nil, "sync", filepath.Join(da, "notes.md"+"x"), "--watch", "--dry-run")
	a.expect(wire.ExitLocalIO, nil, "sync", filepath.Join(da, "missing"))
	writeFile(t, da, ".blindignore", "[bad\n")
	a.expect(wire.ExitUsage, nil, "sync", da)
}

// blind sync killed with SIGKILL at random moments, again and again,
// while both devices change files: every run leaves the folder and the
// account valid, and once runs finish, both folders hold every change,
// nothing lost.
func TestSyncKilledConverges(t *testing.T) {
	srv := startServer(t, "--pool-window", "20ms")
	a, b := twoDevices(t, srv.url, "kim")
	da, db := t.TempDir(), t.TempDir()
	want := map[string]string{}
	rng := rand.New(rand.NewPCG(1, 2))
	bin, _ := binaries(t)
	killed := 0
	// history is what each run said, one line per action, for the
	// message of a failure: which run did what to the file.
	var history []string
	said := func(run, stdout string) {
		for line := range strings.Lines(stdout) {
			history = append(history, run+": "+strings.TrimSpace(line))
		}
	}
	for round := range 10 {
		// Each device changes its own names, so that no change is a
		// conflict and the end state is known exactly.
		for _, dev := range []struct {
			dir, prefix string
		}{{da, "a"}, {db, "b"}} {
			for i := range 6 {
				name := fmt.Sprintf("%s/%d/f%d", dev.prefix, i%3, rng.IntN(8))
				switch rng.IntN(4) {
				case 0:
					if _, ok := want[name]; ok {
						_ = os.Remove(filepath.Join(dev.dir, filepath.FromSlash(name)))
						delete(want, name)
					}
				default:
					content := fmt.Sprintf("round %d %s %s", round, name, strings.Repeat("x", rng.IntN(3*capacity)))
					writeFile(t, dev.dir, name, content)
					history = append(history, fmt.Sprintf("round %d: %s wrote %s (%d bytes)", round, dev.prefix, name, len(content)))
					want[name] = content
				}
			}
		}
		// One sync of a killed at a random moment; b syncs in full.
		cmd := exec.Command(bin, "sync", da)
		cmd.Env = append(os.Environ(), "BLIND_SERVER="+a.server, "BLIND_CONFIG_DIR="+a.cfg)
		var aout bytes.Buffer
		cmd.Stdout = &aout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		if cmd.Process.Signal(syscall.SIGKILL) == nil {
			killed++
		}
		_ = cmd.Wait()
		said(fmt.Sprintf("round %d: a (killed)", round), aout.String())
		// The account stays valid after every kill.
		b.must("ls")
		said(fmt.Sprintf("round %d: b", round), b.must("sync", db).stdout)
	}
	// Runs that finish converge.
	for i := range 2 {
		said(fmt.Sprintf("final %d: a", i), a.must("sync", da).stdout)
		said(fmt.Sprintf("final %d: b", i), b.must("sync", db).stdout)
	}
	sa, sb := folderState(t, da), folderState(t, db)
	if d := diffStates(sa, sb); d != "" {
		t.Fatalf("the folders differ after %d kills:\n%s", killed, d)
	}
	for name, content := range want {
		if sa[name] != content {
			var about []string
			for _, h := range history {
				if strings.Contains(h, " "+name) {
					about = append(about, h)
				}
			}
			t.Fatalf("%s lost or wrong after %d kills: have %.40q (%d bytes), want %.40q (%d bytes); b has %.40q (%d bytes)\nwhat the runs did to it:\n%s",
				name, killed, sa[name], len(sa[name]), content, len(content), sb[name], len(sb[name]), strings.Join(about, "\n"))
		}
	}
	// No name is changed on both devices, and every kill window is
	// journalled (client/syncstate.go), so no conflict copy is expected
	// (none in 40 runs under load). One is still allowed, since nothing
	// is lost: a kill that tears a journal line loses that record, and a
	// file settled by it and edited before the next sync would be kept
	// twice. Nothing else is allowed.
	for name := range sa {
		if _, ok := want[name]; !ok && !strings.HasSuffix(name, "/") {
			if strings.Contains(name, " (conflict ") {
				t.Logf("kept as a conflict copy: %s", name)
				continue
			}
			t.Fatalf("%s should not be there", name)
		}
	}
	t.Logf("%d syncs killed; %d files converged", killed, len(want))
}

// exportCovers exports u's renew proofs to path and checks that status
// finds every block of the account in the export. Every command renews
// an account that a new period made stale, and a renewal rewrites an
// index block, so with 2 s periods a period may close between the export
// and the status and make the export miss that one block. A try that no
// boundary interrupts passes; an export that really misses a block fails
// every try.
func exportCovers(t *testing.T, u *user, path, what string) {
	t.Helper()
	var st result
	for range 3 {
		u.must("renew", "--export", path)
		if st = u.must("status"); strings.Contains(st.stdout, "covers every block") {
			return
		}
	}
	t.Fatalf("%s: %s", what, st.stdout)
}

// blind sync --watch sends a saved file up by itself, and keeps the
// account alive across more than R periods with no login; a renewal
// export does the same for an account whose owner is away. Periods of
// 2 s, R = 3.
func TestWatchAndExportKeepDataAlive(t *testing.T) {
	const period = 2 * time.Second
	srv := startServer(t, "--period", "2s", "--retention", "3", "--purge-every", "1s", "--purge-max-fraction", "1", "--pool-window", "50ms")
	watcher := newUser(t, srv.url, "wes")
	away := newUser(t, srv.url, "ava")
	gone := newUser(t, srv.url, "gil")
	for _, u := range []*user{watcher, away, gone} {
		u.signup()
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "kept")
	writeRandom(t, src, capacity+3, 3)
	away.must("put", src)
	gone.must("put", src)
	export := filepath.Join(t.TempDir(), "renew.json")
	exportCovers(t, away, export, "status after export")
	// A file added after the export is not in it: status says so.
	away.must("put", src, "--as", "later")
	if st := away.must("status"); !regexp.MustCompile(`misses [1-9][0-9]* blocks written since: export again`).MatchString(st.stdout) {
		t.Fatalf("status after a put: %s", st.stdout)
	}
	away.must("rm", "later")
	exportCovers(t, away, export, "status after exporting again")
	away.must("logout")

	folder := t.TempDir()
	bin, _ := binaries(t)
	cmd := exec.Command(bin, "sync", "--watch", "--interval", "1s", folder)
	cmd.Env = append(os.Environ(), "BLIND_SERVER="+watcher.server, "BLIND_CONFIG_DIR="+watcher.cfg)
	var out proc.Buffer
	watch, err := proc.StartLine(t.Context(), cmd, &out, 20*time.Second, "watching ")
	if err != nil {
		t.Fatalf("sync --watch did not start: %v\n%s", err, out.String())
	}
	t.Cleanup(func() { _ = watch.Kill() })
	writeFile(t, folder, "saved.txt", "saved while watching")
	saved := time.Now()
	other := newUser(t, srv.url, "wes")
	other.cfg = watcher.cfg // the same session, read only by ls
	if wait.For(15*time.Second, 50*time.Millisecond, func() bool {
		var files []map[string]any
		return lsFiles(other.must("--json", "ls").stdout, &files) == nil && len(files) == 1
	}) != nil {
		t.Fatalf("the saved file never reached the server; watch said:\n%s", out.String())
	}
	t.Logf("a saved file was on the server %v after the save", time.Since(saved).Round(time.Millisecond))

	// More than R periods pass. Nobody logs in; the watch runs, and a
	// cron job renews from the export with no session and no password.
	cron := newUser(t, srv.url, "cron")
	cron.pass = ""
	for range 4 {
		waitForPeriodStart(period)
		cron.must("renew", "--from", export)
	}
	time.Sleep(1500 * time.Millisecond) // a purge runs after the boundary
	_ = watch.Signal(syscall.SIGTERM)
	_ = watch.Wait()

	// The account nobody renewed is gone; the other two are whole.
	gone.expect(wire.ExitAuth, nil, "login", "--user", gone.name)
	away.must("login", "--user", away.name)
	got := filepath.Join(dir, "got")
	away.must("get", "kept", "-o", got)
	if fileHash(t, got) != fileHash(t, src) {
		t.Fatal("the exported account's file changed")
	}
	watcher.must("login", "--user", watcher.name)
	got2 := filepath.Join(dir, "got2")
	watcher.must("get", "saved.txt", "-o", got2)
	if b, _ := os.ReadFile(got2); string(b) != "saved while watching" {
		t.Fatalf("the watched file came back as %q", b)
	}
}
