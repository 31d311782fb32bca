package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blindstore/blindstore/internal/proc"
	"github.com/blindstore/blindstore/wire"
)

// build is one build of blindstored, made once per test run, so the
// tests exercise the real process: flags, environment, signals and exit
// codes.
type build struct {
	once sync.Once
	path string
	err  error
}

var raceBuild, plainBuild build

func (b *build) binary(t *testing.T, flags ...string) string {
	t.Helper()
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "blindstored-test-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "blindstored")
		args := append(append([]string{"build"}, flags...), "-o", b.path, ".")
		if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// binary is blindstored built with the race detector.
func binary(t *testing.T) string {
	t.Helper()
	return raceBuild.binary(t, "-race")
}

// plainBinary is blindstored built without the race detector, for tests
// that measure the process's memory or load it: the race detector
// multiplies both.
func plainBinary(t *testing.T) string {
	t.Helper()
	return plainBuild.binary(t)
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, b := range []*build{&raceBuild, &plainBuild} {
		if b.path != "" {
			os.RemoveAll(filepath.Dir(b.path))
		}
	}
	os.Exit(code)
}

// server is a running blindstored process.
type server struct {
	p    *proc.Process
	url  string
	logs *proc.Buffer
}

func startServer(t *testing.T, env []string, args ...string) *server {
	t.Helper()
	return startServerBinary(t, binary(t), env, args...)
}

// startServerBinary is startServer with another build of blindstored.
func startServerBinary(t *testing.T, bin string, env []string, args ...string) *server {
	t.Helper()
	return startProcess(t, bin, env, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
}

// startProcess runs a blindstored command that serves (serve, issuer) and
// waits until it logs the URL it listens on; the process is killed when
// the test ends.
func startProcess(t *testing.T, bin string, env []string, args ...string) *server {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	logs := &proc.Buffer{}
	p, err := proc.Start(t.Context(), cmd, logs, 60*time.Second)
	if err != nil {
		t.Fatalf("%v\n%s", err, logs)
	}
	t.Cleanup(func() { p.Kill() })
	return &server{p: p, url: p.URL, logs: logs}
}

// stop sends sig (SIGINT, SIGTERM) and fails unless the process exits
// with status 0 within 30 s.
func (s *server) stop(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := s.p.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.p.Done():
		if err := s.p.Wait(); err != nil {
			t.Fatalf("%v: exit %v\n%s", sig, err, s.logs)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no graceful stop on %v\n%s", sig, s.logs)
	}
}

func (s *server) kill(t *testing.T) {
	t.Helper()
	if err := s.p.Kill(); err != nil {
		t.Fatal(err)
	}
}

func putBlock(ctx context.Context, url string, id wire.ID, w wire.WriteProof, data []byte) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url+"/v1/blocks/"+id.String(), bytes.NewReader(data))
	if err != nil {
		return "", err
	}
	req.Header.Set("Blind-Proof", wire.EncodeProof(w))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("PUT: %s", resp.Status)
	}
	return resp.Header.Get("ETag"), nil
}

// Every acknowledged write survives a SIGKILL of the server: the embedded
// store commits (and fsyncs) before the API answers.
func TestKillAndRestartLosesNothing(t *testing.T) {
	data := t.TempDir()
	blockSize := 4096
	n := 2000
	if testing.Short() {
		n = 300
	}
	// BLINDSTORE_TEST_KILL_BLOCKS=10000 runs the full-size check by hand,
	// with the default block size.
	if v := os.Getenv("BLINDSTORE_TEST_KILL_BLOCKS"); v != "" {
		if _, err := fmt.Sscan(v, &n); err != nil || n <= 0 {
			t.Fatalf("BLINDSTORE_TEST_KILL_BLOCKS=%q: want a positive count", v)
		}
		blockSize = wire.DefaultBlockSize
	}
	// No mixing window: what is tested is that an acknowledged write is
	// durable, and 16 writers waiting 250 ms per write would only be slow.
	args := []string{"--data", data, "--block-size", fmt.Sprint(blockSize), "--pool-window", "0"}
	s := startServer(t, nil, args...)
	type rec struct {
		id   wire.ID
		etag string
	}
	recs := make([]rec, n)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	next := make(chan int)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, blockSize)
			for i := range next {
				var proof wire.WriteProof
				rand.Read(proof[:])
				rand.Read(buf)
				id := wire.NewID()
				etag, err := putBlock(ctx, s.url, id, proof, buf)
				if err != nil {
					errs <- err
					return
				}
				recs[i] = rec{id, etag}
			}
		}()
	}
	for i := 0; i < n; i++ {
		select {
		case next <- i:
		case err := <-errs:
			t.Fatal(err)
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	s.kill(t)

	s2 := startServer(t, nil, args...)
	for _, r := range recs {
		checkAcked(t, s2.url, r.id, r.etag, blockSize, "after SIGKILL")
	}
}

// checkAcked fails unless the block a write acknowledged with etag reads
// back whole and unchanged; when says after what.
func checkAcked(t *testing.T, url string, id wire.ID, etag string, blockSize int, when string) {
	t.Helper()
	resp, body := getBlock(t, url, id)
	if resp.StatusCode != http.StatusOK || len(body) != blockSize {
		t.Fatalf("%s: an acknowledged block is gone: GET %s, %d bytes", when, resp.Status, len(body))
	}
	if got := resp.Header.Get("ETag"); got != etag || wire.ETagOf(body).String() != etag {
		t.Fatalf("%s: an acknowledged block changed: ETag %s, acknowledged %s", when, got, etag)
	}
}

func runCLI(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func TestHelpShowsEveryFlagWithItsEnvironmentVariable(t *testing.T) {
	for name, c := range commands(io.Discard, io.Discard) {
		out, code := runCLI(t, nil, name, "--help")
		if code != 0 {
			t.Errorf("%s --help exited %d", name, code)
		}
		c.flags.VisitAll(func(f *flag.Flag) {
			if !strings.Contains(out, "--"+f.Name) || !strings.Contains(out, c.envName(f.Name)) {
				t.Errorf("%s --help does not show --%s with %s", name, f.Name, c.envName(f.Name))
			}
		})
	}
	out, code := runCLI(t, nil, "--help")
	if code != 0 || !strings.Contains(out, "serve") || !strings.Contains(out, "keygen") {
		t.Errorf("--help exited %d:\n%s", code, out)
	}
	if _, code := runCLI(t, nil, "frobnicate"); code != exitUsage {
		t.Errorf("unknown command exited %d, want %d", code, exitUsage)
	}
	if out, code := runCLI(t, nil, "serve", "--block-size", "1000", "--data", t.TempDir()); code != exitUsage || strings.Count(strings.TrimSpace(out), "\n") > 0 {
		t.Errorf("bad block size: exit %d, output %q; want one line and exit %d", code, out, exitUsage)
	}
}

func TestEnvironmentFallbackAndKeyFile(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, []string{"BLINDSTORE_DATA=" + data, "BLINDSTORE_BLOCK_SIZE=2048"})
	resp, err := http.Get(s.url + "/v1/config")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"block_size":2048`) {
		t.Fatalf("BLINDSTORE_BLOCK_SIZE not honoured: %s", body)
	}
	fi, err := os.Stat(filepath.Join(data, "bucket.key"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("bucket key mode %v, want 0600", fi.Mode().Perm())
	}
	s.stop(t, os.Interrupt)

	// A different key on the same store is refused; a flag beats the
	// environment.
	other, _ := runCLI(t, nil, "keygen")
	out, code := runCLI(t, []string{"BLINDSTORE_DATA=" + data, "BLINDSTORE_BLOCK_SIZE=2048"},
		"serve", "--listen", "127.0.0.1:0", "--bucket-key", strings.TrimSpace(other))
	if code != exitError || !strings.Contains(out, "different") {
		t.Fatalf("store opened with another bucket key: exit %d\n%s", code, out)
	}
	out, code = runCLI(t, []string{"BLINDSTORE_DATA=" + data, "BLINDSTORE_BLOCK_SIZE=2048"},
		"serve", "--listen", "127.0.0.1:0", "--block-size", "4096")
	if code != exitError || !strings.Contains(out, "block size") {
		t.Fatalf("store opened with another block size: exit %d\n%s", code, out)
	}
}

func TestKeygen(t *testing.T) {
	out, code := runCLI(t, nil, "keygen")
	if code != 0 || !regexp.MustCompile(`^[0-9a-f]{64}\n$`).MatchString(out) {
		t.Fatalf("keygen: exit %d, %q", code, out)
	}
	path := filepath.Join(t.TempDir(), "k")
	if _, code := runCLI(t, nil, "keygen", "--out", path); code != 0 {
		t.Fatalf("keygen --out exit %d", code)
	}
	before, _ := os.ReadFile(path)
	if _, code := runCLI(t, nil, "keygen", "--out", path); code == 0 {
		t.Fatal("keygen overwrote an existing key file")
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("key file changed")
	}
	if out, code := runCLI(t, nil, "version"); code != 0 || !strings.HasPrefix(out, "blindstored ") {
		t.Fatalf("version: exit %d, %q", code, out)
	}
}
