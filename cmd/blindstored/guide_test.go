package main

// The operators' guide (docs/operators.md) is run here, so that it works
// as written and cannot drift from the code or from contrib/systemd.
//
// Every sh block runs in order, in one root shell session (each block's
// exported variables, and its shell variables in lower case, carry over
// to the next, as in an operator's terminal), in a checkout that holds bin/blindstored and contrib/, under
// a temporary root: absolute paths below /etc, /var and /usr/local are
// moved into it, and the ports of the units (7878, 9878, 7879) are
// replaced with free ones. A marker comment on the line before a block
// changes what is done with it:
//
//	<!-- guide-test: skip REASON -->   not run
//	<!-- guide-test: env FILE -->      checked as systemd reads an
//	                                   EnvironmentFile=, then written to FILE
//	<!-- guide-test: env -->           only checked
//	<!-- guide-test: file FILE -->     written to FILE, mode 0755
//	<!-- guide-test: postgres -->      run with BLINDSTORE_STORE set to a
//	                                   fresh PostgreSQL database (and libpq's
//	                                   PGHOST, PGUSER… for its server)
//
// The commands that need the machine itself are stood in for by this
// test binary (guideShim): useradd does nothing (the test makes no
// users), runuser runs its command as the current user, and systemctl
// runs a unit as systemd would in what matters here: the unit's
// Environment= lines, then its EnvironmentFile= parsed as systemd does
// (no inline comments), its LoadCredential= files in a credentials
// directory (%d), its StateDirectory=, and its ExecStart=, with stop by
// SIGTERM. Everything
// else is real: blindstored, curl, sh, cp, tar, pg_dump, pg_restore.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/blindstore/blindstore/internal/pgtest"
	"github.com/blindstore/blindstore/internal/testenv"
	"github.com/blindstore/blindstore/internal/wait"
	"github.com/blindstore/blindstore/wire"
	"github.com/jackc/pgx/v5"
)

const guidePath = "../../docs/operators.md"

// guideBlock is one fenced sh block of the guide.
type guideBlock struct {
	line   int    // of the opening fence
	marker string // "", "skip", "env", "file", "postgres"
	arg    string // the marker's FILE or REASON
	text   string
}

var markerRE = regexp.MustCompile(`^<!-- guide-test: (skip|env|file|postgres)(?: (.*?))? -->$`)

func parseGuide(t *testing.T, md string) []guideBlock {
	t.Helper()
	var blocks []guideBlock
	lines := strings.Split(md, "\n")
	for i := 0; i < len(lines); i++ {
		if strings.HasPrefix(lines[i], "<!-- guide-test:") && !markerRE.MatchString(lines[i]) {
			t.Fatalf("%s:%d: a guide-test marker this test does not know: %s", guidePath, i+1, lines[i])
		}
		if !strings.HasPrefix(lines[i], "```") {
			continue
		}
		lang := strings.TrimPrefix(lines[i], "```")
		start := i
		var body []string
		for i++; i < len(lines) && lines[i] != "```"; i++ {
			body = append(body, lines[i])
		}
		if lang != "sh" {
			continue
		}
		b := guideBlock{line: start + 1, text: strings.Join(body, "\n") + "\n"}
		if start > 0 {
			if m := markerRE.FindStringSubmatch(lines[start-1]); m != nil {
				b.marker, b.arg = m[1], m[2]
			}
		}
		blocks = append(blocks, b)
	}
	return blocks
}

// parseEnvFile reads an environment file as systemd's EnvironmentFile=
// does, and refuses what systemd and a shell would read differently:
// a "#" after a value (systemd keeps it in the value), unquoted spaces or
// shell characters (a shell that sources the file splits or runs them).
func parseEnvFile(text string) (map[string]string, []string) {
	env := map[string]string{}
	var problems []string
	keyRE := regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !ok || !keyRE.MatchString(key) {
			problems = append(problems, fmt.Sprintf("line %d: not VARIABLE=value: %q", n+1, line))
			continue
		}
		value = strings.TrimSpace(value)
		if len(value) > 0 && (value[0] == '"' || value[0] == '\'') {
			q := value[0]
			end := strings.IndexByte(value[1:], q)
			if end < 0 {
				problems = append(problems, fmt.Sprintf("line %d: %s: unterminated quote", n+1, key))
				continue
			}
			if rest := strings.TrimSpace(value[end+2:]); rest != "" {
				problems = append(problems, fmt.Sprintf("line %d: %s: %q after the closing quote (systemd keeps it in the value)", n+1, key, rest))
			}
			env[key] = value[1 : end+1]
			continue
		}
		if i := strings.IndexAny(value, " \t"); i >= 0 {
			if strings.HasPrefix(strings.TrimSpace(value[i:]), "#") {
				problems = append(problems, fmt.Sprintf("line %d: %s: an inline comment, which systemd keeps in the value (%q): put it on a line of its own", n+1, key, value))
			} else {
				problems = append(problems, fmt.Sprintf("line %d: %s: unquoted white space in %q", n+1, key, value))
			}
		}
		if strings.ContainsAny(value, "&;|$`<>()\\\"'") {
			problems = append(problems, fmt.Sprintf("line %d: %s: shell characters in an unquoted value %q: quote it", n+1, key, value))
		}
		env[key] = value
	}
	return env, problems
}

// checkEnvValues checks that every BLINDSTORE_ variable is one a command
// of blindstored reads, and that its value parses as that flag's.
func checkEnvValues(env map[string]string) []string {
	var problems []string
	for k, v := range env {
		if !strings.HasPrefix(k, envPrefix) {
			continue
		}
		known := false
		for _, c := range allCommands() {
			c.flags.VisitAll(func(f *flag.Flag) {
				if c.envName(f.Name) != k {
					return
				}
				known = true
				if err := f.Value.Set(v); err != nil {
					problems = append(problems, fmt.Sprintf("%s=%q: %v", k, v, err))
				}
			})
		}
		if !known {
			problems = append(problems, fmt.Sprintf("%s: no command of blindstored reads it", k))
		}
	}
	return problems
}

// allCommands are the commands with their subcommands, with fresh flags.
func allCommands() []*command {
	var all []*command
	for _, c := range commands(io.Discard, io.Discard) {
		all = append(all, c)
		for _, sc := range c.subs {
			all = append(all, sc)
		}
	}
	return all
}

// guideRewriter moves the guide's absolute paths under root, its ports to
// free ones, and the name of the restored database to a unique one.
type guideRewriter struct {
	root   string
	ports  map[string]string
	dbName string
}

var absPathRE = regexp.MustCompile(`(^|[\s"'=:(])/(etc|var|usr/local)/`)

func (g guideRewriter) rewrite(s string) string {
	s = absPathRE.ReplaceAllString(s, "${1}"+g.root+"/${2}/")
	for from, to := range g.ports {
		s = regexp.MustCompile(`:`+from+`\b`).ReplaceAllString(s, ":"+to)
	}
	if g.dbName != "" {
		s = strings.ReplaceAll(s, "blindstore_restored", g.dbName)
	}
	return s
}

func (g guideRewriter) encode() string {
	var b strings.Builder
	fmt.Fprintf(&b, "root=%s;db=%s", g.root, g.dbName)
	for k, v := range g.ports {
		fmt.Fprintf(&b, ";%s=%s", k, v)
	}
	return b.String()
}

func decodeRewriter(s string) guideRewriter {
	g := guideRewriter{ports: map[string]string{}}
	for _, kv := range strings.Split(s, ";") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "root":
			g.root = v
		case "db":
			g.dbName = v
		default:
			g.ports[k] = v
		}
	}
	return g
}

// guideShimEnv, when set, makes this test binary one of the stand-ins
// for the machine's own commands (useradd, runuser, systemctl).
const guideShimEnv = "BLINDSTORE_GUIDE_SHIM"

func init() {
	if v := os.Getenv(guideShimEnv); v != "" {
		os.Exit(guideShim(decodeRewriter(v), filepath.Base(os.Args[0]), os.Args[1:]))
	}
}

func guideShim(g guideRewriter, name string, args []string) int {
	switch name {
	case "useradd":
		return 0
	case "runuser":
		for i, a := range args {
			if a == "--" && i+1 < len(args) {
				cmd := exec.Command(args[i+1], args[i+2:]...)
				cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
				if err := cmd.Run(); err != nil {
					var ee *exec.ExitError
					if errors.As(err, &ee) {
						return ee.ExitCode()
					}
					fmt.Fprintln(os.Stderr, "runuser:", err)
					return 1
				}
				return 0
			}
		}
		fmt.Fprintln(os.Stderr, "runuser: want -u USER -- COMMAND")
		return 1
	case "systemctl":
		return systemctlShim(g, args)
	}
	fmt.Fprintf(os.Stderr, "guide shim: no stand-in for %s\n", name)
	return 1
}

func systemctlShim(g guideRewriter, args []string) int {
	var verb string
	var units []string
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, "-"):
		case verb == "":
			verb = a
		default:
			if !strings.Contains(a, ".") {
				a += ".service"
			}
			units = append(units, a)
		}
	}
	for _, u := range units {
		var err error
		switch verb {
		case "enable", "start":
			err = unitStart(g, u)
		case "stop":
			err = unitStop(g, u)
		case "restart":
			if err = unitStop(g, u); err == nil {
				err = unitStart(g, u)
			}
		default:
			err = fmt.Errorf("the guide test does not stand in for systemctl %s", verb)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "systemctl %s %s: %v\n", verb, u, err)
			return 1
		}
	}
	return 0
}

func pidFile(g guideRewriter, unit string) string { return filepath.Join(g.root, "run", unit+".pid") }

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

func unitStop(g guideRewriter, unit string) error {
	b, err := os.ReadFile(pidFile(g, unit))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid > 0 && alive(pid) {
		syscall.Kill(pid, syscall.SIGTERM)
		// 45 s: the units' TimeoutStopSec; what is still alive then is killed.
		_ = wait.For(45*time.Second, 50*time.Millisecond, func() bool { return !alive(pid) })
		if alive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
			return fmt.Errorf("did not stop within 45 s of SIGTERM")
		}
	}
	return os.Remove(pidFile(g, unit))
}

// unitStart runs a unit's ExecStart= with the environment systemd would
// give it and waits until it says it serves; a unit that exits first
// fails, with its log (systemd would restart it in a loop).
func unitStart(g guideRewriter, unit string) error {
	if b, err := os.ReadFile(pidFile(g, unit)); err == nil {
		if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 && alive(pid) {
			return nil
		}
	}
	f, err := os.Open(filepath.Join(g.root, "etc/systemd/system", unit))
	if err != nil {
		return err
	}
	defer f.Close()
	creds := filepath.Join(g.root, "run/credentials", unit)
	env := []string{"PATH=/usr/bin:/bin", "CREDENTIALS_DIRECTORY=" + creds}
	spec := func(s string) string { return strings.ReplaceAll(s, "%d", creds) }
	var execStart []string
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasPrefix(line, "[") {
			section = line
			continue
		}
		key, value, _ := strings.Cut(line, "=")
		if section != "[Service]" {
			continue
		}
		switch key {
		case "Environment":
			// One assignment per line in these units; systemd would
			// also split several, quoted.
			env = append(env, g.rewrite(spec(value)))
		case "EnvironmentFile":
			optional := strings.HasPrefix(value, "-")
			b, err := os.ReadFile(g.rewrite(strings.TrimPrefix(value, "-")))
			if err != nil {
				if optional && errors.Is(err, os.ErrNotExist) {
					continue
				}
				return err
			}
			vars, _ := parseEnvFile(string(b))
			for k, v := range vars {
				env = append(env, k+"="+v) // as systemd: the value as read
			}
		case "LoadCredential":
			id, src, _ := strings.Cut(value, ":")
			b, err := os.ReadFile(g.rewrite(src))
			if err != nil {
				return fmt.Errorf("LoadCredential: %w", err)
			}
			if err := os.MkdirAll(creds, 0o700); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(creds, id), b, 0o400); err != nil {
				return err
			}
		case "StateDirectory":
			if err := os.MkdirAll(filepath.Join(g.root, "var/lib", value), 0o700); err != nil {
				return err
			}
		case "ExecStart":
			execStart = strings.Fields(g.rewrite(value))
		}
	}
	if len(execStart) == 0 {
		return fmt.Errorf("no ExecStart=")
	}
	if err := os.MkdirAll(filepath.Join(g.root, "log"), 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(g.root, "run"), 0o755); err != nil {
		return err
	}
	logPath := filepath.Join(g.root, "log", unit+".log")
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	offset, _ := logf.Seek(0, io.SeekEnd)
	cmd := exec.Command(execStart[0], execStart[1:]...)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = env, "/", logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	if err := os.WriteFile(pidFile(g, unit), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(60 * time.Second)
	for {
		b, _ := os.ReadFile(logPath)
		if int64(len(b)) > offset && bytes.Contains(b[offset:], []byte(" serving")) {
			return nil
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("exited (%v) before serving (systemd would restart it in a loop):\n%s", err, b[offset:])
		case <-deadline:
			return fmt.Errorf("not serving after 60 s")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func freePortString(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// pgEnv is libpq's environment for the server of a postgres:// URL.
func pgEnv(t *testing.T, raw string) []string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"PGHOST=" + u.Hostname(), "PGPORT=" + u.Port(), "PGUSER=" + u.User.Username(), "PGDATABASE=postgres"}
	if p, ok := u.User.Password(); ok {
		env = append(env, "PGPASSWORD="+p)
	}
	if m := u.Query().Get("sslmode"); m != "" {
		env = append(env, "PGSSLMODE="+m)
	}
	return env
}

// The guide's sh blocks run as written (see the top of this file); the
// test writes blocks through the API between them and reads them back
// after the restore, and asks the issuer about the invite it made.
func TestOperatorsGuide(t *testing.T) {
	md, err := os.ReadFile(guidePath)
	if err != nil {
		t.Fatal(err)
	}
	blocks := parseGuide(t, string(md))
	for _, tool := range []string{"sh", "curl", "tar", "sha256sum", "pg_dump", "pg_restore", "createdb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the guide uses %s, which is not installed", tool)
		}
	}
	pgURL := pgtest.URL(t)
	bin := binary(t)

	root := t.TempDir()
	g := guideRewriter{root: root, ports: map[string]string{}, dbName: "guide_restored_" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	for _, p := range []string{"7878", "9878", "7879"} {
		g.ports[p] = freePortString(t)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), pgURL)
		if err == nil {
			conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+g.dbName)
			conn.Close(context.Background())
		}
	})
	// The root has the directories of a Debian system that the guide
	// writes into.
	work := filepath.Join(root, "checkout")
	shim := filepath.Join(root, "shim")
	for _, d := range []string{filepath.Join(work, "bin"), shim, filepath.Join(root, "etc/systemd/system"), filepath.Join(root, "usr/local/bin"), filepath.Join(root, "usr/local/sbin"), filepath.Join(root, "var/lib"), filepath.Join(root, "var/backups")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(bin, filepath.Join(work, "bin/blindstored")); err != nil {
		t.Fatal(err)
	}
	contrib, _ := filepath.Abs("../../contrib")
	if err := os.Symlink(contrib, filepath.Join(work, "contrib")); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"useradd", "runuser", "systemctl"} {
		if err := os.Symlink(self, filepath.Join(shim, n)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		pids, _ := filepath.Glob(filepath.Join(root, "run", "*.pid"))
		for _, p := range pids {
			b, _ := os.ReadFile(p)
			if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 && alive(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	state := filepath.Join(root, "shell-state")
	baseEnv := []string{
		"PATH=" + strings.Join([]string{filepath.Join(root, "usr/local/sbin"), filepath.Join(root, "usr/local/bin"), shim, os.Getenv("PATH")}, ":"),
		"HOME=" + root, "TMPDIR=" + t.TempDir(), guideShimEnv + "=" + g.encode(),
	}
	apiURL := "http://127.0.0.1:" + g.ports["7878"]
	issuerURL := "http://127.0.0.1:" + g.ports["7879"]

	// What the test checks between blocks, by a line of the block.
	var ids []wire.ID
	var extra wire.ID
	var invite string
	hooks := map[string]func(out string){
		"systemctl daemon-reload && systemctl enable --now blindstored\n": func(string) {
			ids, _ = writeBlocks(t, apiURL, 5, wire.DefaultBlockSize)
		},
		"blindstore-backup /var/backups/blindstore/latest": func(string) {
			if _, err := os.Stat(filepath.Join(root, "var/backups/blindstore/latest/blocks.db")); err != nil {
				t.Fatalf("the backup holds no blocks.db: %v", err)
			}
			// The server runs again; a block written now is not in
			// the backup.
			more, _ := writeBlocks(t, apiURL, 1, wire.DefaultBlockSize)
			extra = more[0]
		},
		"cp --sparse=always /var/backups/blindstore/latest/blocks.db": func(string) {
			for _, id := range ids {
				if resp, body := getBlock(t, apiURL, id); resp.StatusCode != http.StatusOK || len(body) != wire.DefaultBlockSize {
					t.Fatalf("after the restore, a block of the backup reads %s, %d bytes", resp.Status, len(body))
				}
			}
			if resp, _ := getBlock(t, apiURL, extra); resp.StatusCode != http.StatusNotFound {
				t.Fatalf("after the restore, a block written after the backup reads %s, want 404", resp.Status)
			}
		},
		// The guide says to start the instances after migrate: one
		// does, and writes, so that the audit, the seal, the dump and
		// the restore that follow have blocks to carry.
		`blindstored migrate --store "$BLINDSTORE_STORE"`: func(string) {
			s := startServer(t, nil, "--store", pgURL, "--data", t.TempDir(), "--bucket-key-file", filepath.Join(root, "etc/blindstore/bucket.key"))
			writeBlocks(t, s.url, 3, wire.DefaultBlockSize)
			s.stop(t, syscall.SIGTERM)
		},
		"blindstored audit --store postgres:///blindstore_restored": func(out string) {
			if !regexp.MustCompile(`(?m)^\s*blocks\s+3$`).MatchString(out) {
				t.Fatalf("the restored database does not hold the 3 blocks written:\n%s", out)
			}
		},
		`echo "$code"`: func(out string) {
			invite = strings.TrimSpace(out)
			if code := allotment(t, issuerURL, invite); code != http.StatusOK {
				t.Fatalf("the issuer answers %d to the new invite %q", code, invite)
			}
		},
		`rm /var/lib/blindstore-issuer/invites/"$h".json`: func(string) {
			if code := allotment(t, issuerURL, invite); code != http.StatusUnauthorized {
				t.Fatalf("the issuer answers %d to a revoked invite, want 401", code)
			}
		},
	}
	ran := map[string]bool{}

	for _, b := range blocks {
		where := fmt.Sprintf("%s:%d", guidePath, b.line)
		text := g.rewrite(b.text)
		switch b.marker {
		case "skip":
			t.Logf("%s: skipped: %s", where, b.arg)
			continue
		case "env":
			vars, problems := parseEnvFile(b.text)
			problems = append(problems, checkEnvValues(vars)...)
			for _, p := range problems {
				t.Errorf("%s: environment file: %s", where, p)
			}
			if b.arg != "" {
				if err := os.MkdirAll(filepath.Dir(g.rewrite(b.arg)), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(g.rewrite(b.arg), []byte(text), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			continue
		case "file":
			if err := os.WriteFile(g.rewrite(b.arg), []byte(text), 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		env := baseEnv
		script := "set -e\n[ -f " + state + " ] && . " + state + "\ncd " + work + "\n"
		if b.marker == "postgres" {
			env = append(append(env, pgEnv(t, pgURL)...), "GUIDE_PG_STORE="+pgURL)
			script += "export BLINDSTORE_STORE=\"$GUIDE_PG_STORE\"\n"
		}
		script += text
		if b.marker == "postgres" {
			script += "unset BLINDSTORE_STORE\n"
		}
		// The shell's own variables (code=…) carry over as the
		// exported ones do, as in one terminal session.
		script += "{ set | grep -E '^[a-z_][a-z0-9_]*=' || true; export -p | grep -v -e ' PWD=' -e ' OLDPWD=' -e ' SHLVL=' -e ' GUIDE_PG_STORE='; } > " + state + "\n"
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		cmd := exec.CommandContext(ctx, "sh", "-c", script)
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		cancel()
		if err != nil {
			logs, _ := filepath.Glob(filepath.Join(root, "log", "*.log"))
			var sl strings.Builder
			for _, l := range logs {
				c, _ := os.ReadFile(l)
				fmt.Fprintf(&sl, "--- %s\n%s", filepath.Base(l), c)
			}
			t.Fatalf("%s: the block fails (%v):\n%s\nstdout:\n%s\nstderr:\n%s\nservice logs:\n%s", where, err, b.text, stdout.String(), stderr.String(), sl.String())
		}
		for line, hook := range hooks {
			if strings.Contains(b.text, line) {
				ran[line] = true
				hook(stdout.String())
			}
		}
	}
	for line := range hooks {
		if !ran[line] {
			t.Errorf("no block of the guide holds %q any more: update the test with the guide", line)
		}
	}
}

// allotment asks the issuer how many tokens an invite has left: 200, or
// 401 for an invite it does not know.
func allotment(t *testing.T, issuer, invite string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, issuer+"/v1/allotment", nil)
	req.Header.Set("Authorization", "Bearer "+invite)
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// The environment file check catches what made the guide's unit restart
// in a loop: an inline comment, which systemd keeps in the value.
func TestEnvFileCheck(t *testing.T) {
	vars, problems := parseEnvFile("# comment\nBLINDSTORE_MAX_BLOCKS=4194304        # 256 GiB of 64 KiB blocks\n")
	if len(problems) != 1 || !strings.Contains(problems[0], "inline comment") {
		t.Fatalf("inline comment: %q", problems)
	}
	if p := checkEnvValues(vars); len(p) != 1 || !strings.Contains(p[0], "BLINDSTORE_MAX_BLOCKS") {
		t.Fatalf("a value with a comment in it: %q", p)
	}
	vars, problems = parseEnvFile("BLINDSTORE_STORE=\"postgres://u@h/db?a=1&b=2\"\nBLINDSTORE_LISTEN=127.0.0.1:7878\nBLINDSTORE_ISSUER_LISTEN=:7879\n")
	if len(problems) != 0 || vars["BLINDSTORE_STORE"] != "postgres://u@h/db?a=1&b=2" {
		t.Fatalf("quoted value: %q %q", vars, problems)
	}
	if p := checkEnvValues(vars); len(p) != 0 {
		t.Fatalf("good values refused: %q", p)
	}
	for _, bad := range []string{"BLINDSTORE_STORE=postgres://u@h/db?a=1&b=2", "BLINDSTORE_DATA=/a b", "BLINDSTORE_DATA=\"/a\" x", "no equals sign"} {
		if _, p := parseEnvFile(bad); len(p) == 0 {
			t.Errorf("%q passes", bad)
		}
	}
	if p := checkEnvValues(map[string]string{"BLINDSTORE_LISTN": "x"}); len(p) != 1 {
		t.Errorf("a misspelt variable passes: %q", p)
	}
}

// The units in contrib/systemd pass systemd-analyze verify where it is
// installed (with the program of ExecStart= pointed at a real file; the
// client units' blind at /bin/true), and say what the guide says: the
// server's EnvironmentFile= is the one the guide writes, and every
// variable they set is one blindstored reads, with a value it takes.
func TestSystemdUnits(t *testing.T) {
	units, err := filepath.Glob("../../contrib/systemd/*")
	if err != nil || len(units) == 0 {
		t.Fatalf("no units: %v", err)
	}
	md, err := os.ReadFile(guidePath)
	if err != nil {
		t.Fatal(err)
	}
	guide := string(md)
	dir := t.TempDir()
	bin := binary(t)
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		env := map[string]string{}
		for _, line := range strings.Split(text, "\n") {
			key, value, ok := strings.Cut(line, "=")
			switch {
			case !ok || strings.HasPrefix(line, "#"):
			case key == "Environment":
				k, v, _ := strings.Cut(value, "=")
				env[k] = strings.ReplaceAll(v, "%d", "/run/credentials/x")
			case key == "EnvironmentFile":
				if f := strings.TrimPrefix(value, "-"); !strings.Contains(guide, f) {
					t.Errorf("%s: EnvironmentFile=%s is not in the guide", filepath.Base(u), f)
				}
			}
		}
		for _, p := range checkEnvValues(env) {
			t.Errorf("%s: %s", filepath.Base(u), p)
		}
		if strings.HasPrefix(filepath.Base(u), "blindstored") && !strings.Contains(guide, "contrib/systemd/"+filepath.Base(u)) {
			t.Errorf("the guide does not mention %s", filepath.Base(u))
		}
		text = strings.ReplaceAll(text, "/usr/local/bin/blindstored", bin)
		text = strings.ReplaceAll(text, "%h/.local/bin/blind", "/bin/true")
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(u)), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(guide, "<!-- guide-test: env /etc/blindstore/blindstored.env -->") {
		t.Error("the guide no longer writes /etc/blindstore/blindstored.env, which the unit reads")
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if testenv.Required() {
			t.Fatal("systemd-analyze is not installed (Debian package systemd): CI must verify the units with it")
		}
		t.Logf("systemd-analyze is not installed: the units were checked by this test's own reading only")
		return
	}
	copies, _ := filepath.Glob(filepath.Join(dir, "*"))
	out, err := exec.Command(analyze, append([]string{"verify", "--man=no"}, copies...)...).CombinedOutput()
	if err != nil || strings.Contains(string(out), dir) {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
