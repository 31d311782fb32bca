package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blindstore/blindstore/internal/wait"

	"github.com/jackc/pgx/v5"
)

// EnvBin names the variable that may hold the directory of PostgreSQL's
// server binaries (initdb, pg_ctl) for StartCluster.
const EnvBin = "BLINDSTORE_TEST_PGBIN"

// Cluster is a private PostgreSQL server for one test, listening on a free
// loopback port, with its data in a temporary directory. Tests use it for
// what they cannot do to the shared server: settings that need a restart,
// and stopping the server under load.
type Cluster struct {
	bin  string // directory of initdb and pg_ctl
	dir  string // owns data/, the socket and the log
	port int
	// runAs is the user the server runs as when the test runs as root,
	// because initdb and postgres refuse to run as root.
	runAs string

	mu      sync.Mutex
	running bool
}

var settingRE = regexp.MustCompile(`^[a-z_.]+ = [A-Za-z0-9_.:/'-]+$`)

// StartCluster creates and starts a private server. Each setting is a
// postgresql.conf line "name = value" (value without spaces), for example
// "track_commit_timestamp = on". The server is stopped and its directory
// removed when t ends.
func StartCluster(t testing.TB, settings ...string) *Cluster {
	t.Helper()
	bin, err := findBin()
	if err != nil {
		unavailable(t, "pgtest: cannot start a private PostgreSQL: %v; install the PostgreSQL server or set %s to the directory holding initdb and pg_ctl", err, EnvBin)
	}
	c := &Cluster{bin: bin}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			unavailable(t, "pgtest: running as root and there is no postgres user to run a private PostgreSQL as (initdb refuses root)")
		}
		if _, err := exec.LookPath("runuser"); err != nil {
			unavailable(t, "pgtest: running as root and runuser is not installed, so a private PostgreSQL cannot run as the postgres user")
		}
		c.runAs = "postgres"
	}
	for _, s := range settings {
		if !settingRE.MatchString(s) {
			t.Fatalf("pgtest: setting %q is not of the form \"name = value\"", s)
		}
	}

	dir, err := os.MkdirTemp("", "blindstore-pgtest-")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	c.dir = dir
	t.Cleanup(func() {
		c.stop(t)
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("pgtest: remove private cluster directory: %v", err)
		}
	})
	if c.runAs != "" {
		if err := chownTo(dir, c.runAs); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}

	// -N: no fsync of the new cluster's files; this cluster lives for one
	// test. The server itself keeps fsync on, so a commit it acknowledges
	// survives an immediate stop as in production.
	if out, err := c.run("initdb", "-D", c.dataDir(), "-U", "postgres", "--auth=trust", "-N", "-E", "UTF8", "--locale=C"); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	c.port = port
	conf := []string{
		"listen_addresses = '127.0.0.1'",
		"port = " + strconv.Itoa(port),
		"unix_socket_directories = '" + dir + "'",
		"max_connections = 40",
		"shared_buffers = 32MB",
	}
	conf = append(conf, settings...)
	f, err := os.OpenFile(filepath.Join(c.dataDir(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	_, err = f.WriteString("\n# pgtest\n" + strings.Join(conf, "\n") + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("pgtest: write postgresql.conf: %v", err)
	}
	c.Start(t)
	return c
}

// URL is the connection URL of the cluster's postgres database.
func (c *Cluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// Start starts the server and waits until it accepts connections.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return
	}
	if out, err := c.run("pg_ctl", "-D", c.dataDir(), "-l", filepath.Join(c.dir, "server.log"), "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
		t.Fatalf("pgtest: pg_ctl start: %v\n%s\nserver log:\n%s", err, out, log)
	}
	c.running = true
	// pg_ctl -w returns once the server accepts connections; check it over
	// TCP, the way the tests connect.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	if wait.Until(ctx, 50*time.Millisecond, func() bool {
		var conn *pgx.Conn
		if conn, err = pgx.Connect(ctx, c.URL()); err == nil {
			conn.Close(ctx)
		}
		return err == nil
	}) != nil {
		t.Fatalf("pgtest: private PostgreSQL started but does not answer on port %d: %v", c.port, err)
	}
}

// Stop stops the server at once, as a crash would: pg_ctl stop -m
// immediate. Clients see their connections drop; committed data survives.
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	if err := c.stop(t); err != nil {
		t.Fatal(err)
	}
}

func (c *Cluster) stop(t testing.TB) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return nil
	}
	if out, err := c.run("pg_ctl", "-D", c.dataDir(), "-m", "immediate", "-w", "-t", "60", "stop"); err != nil {
		return fmt.Errorf("pgtest: pg_ctl stop: %v\n%s", err, out)
	}
	c.running = false
	return nil
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }

// run runs one of the server binaries, as the postgres user when the test
// runs as root.
func (c *Cluster) run(name string, args ...string) ([]byte, error) {
	path := filepath.Join(c.bin, name)
	var cmd *exec.Cmd
	if c.runAs != "" {
		cmd = exec.Command("runuser", append([]string{"-u", c.runAs, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = c.dir
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.Bytes(), err
}

// findBin finds the directory holding initdb and pg_ctl.
func findBin() (string, error) {
	has := func(dir string) bool {
		for _, n := range []string{"initdb", "pg_ctl"} {
			if fi, err := os.Stat(filepath.Join(dir, n)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if d := os.Getenv(EnvBin); d != "" {
		if has(d) {
			return d, nil
		}
		return "", fmt.Errorf("%s=%s holds no initdb and pg_ctl", EnvBin, d)
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && has(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
		if has(filepath.Dir(p)) {
			return filepath.Dir(p), nil
		}
	}
	// Debian and Ubuntu keep server binaries off PATH, one directory per
	// major version: take the newest.
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if has(d) {
			return d, nil
		}
	}
	return "", errors.New("initdb and pg_ctl not found on PATH or under /usr/lib/postgresql/*/bin")
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func chownTo(dir, name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return err
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return err
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return err
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return fmt.Errorf("give the private cluster's directory to %s: %w", name, err)
	}
	return nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	return port, l.Close()
}
