package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/internal/proc"
	"github.com/blindstore/blindstore/wire"
)

// binaries finds or builds the programs the bench runs as children.
type binaries struct {
	dir string
	tmp bool
}

// findBinaries uses dir when given, else builds blindstored (and blind,
// once its package exists) from this module into a temporary directory.
// Building needs the go tool and the module's source, which `make bench`
// and the test have.
func findBinaries(ctx context.Context, dir string, logw io.Writer) (*binaries, error) {
	if dir != "" {
		// Absolute, because children run in their own directories.
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, err
		}
		dir = abs
		if _, err := os.Stat(filepath.Join(dir, "blindstored")); err != nil {
			return nil, fmt.Errorf("-bin %s: no blindstored there (run make build): %w", dir, err)
		}
		return &binaries{dir: dir}, nil
	}
	tmp, err := os.MkdirTemp("", "blindbench-bin-")
	if err != nil {
		return nil, err
	}
	b := &binaries{dir: tmp, tmp: true}
	fmt.Fprintf(logw, "building blindstored into %s\n", tmp)
	if err := goBuild(ctx, tmp, "blindstored"); err != nil {
		b.cleanup()
		return nil, err
	}
	// blind is built by the client's engineers in parallel: when its
	// package does not build (yet), the files and login rows say so.
	if err := goBuild(ctx, tmp, "blind"); err != nil {
		fmt.Fprintf(logw, "blind does not build here, its rows will be skipped: %v\n", firstLine(err.Error()))
	}
	return b, nil
}

func goBuild(ctx context.Context, dir, name string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, name), "github.com/blindstore/blindstore/cmd/"+name)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (b *binaries) path(name string) string { return filepath.Join(b.dir, name) }

// has reports whether the named program is there.
func (b *binaries) has(name string) bool {
	fi, err := os.Stat(b.path(name))
	return err == nil && fi.Mode().IsRegular()
}

func (b *binaries) cleanup() {
	if b.tmp {
		os.RemoveAll(b.dir)
	}
}

// serverSpec is one blindstored serve to start.
type serverSpec struct {
	store     string // "" for the embedded store, else a postgres:// URL
	blockSize int
	period    time.Duration // 0: the server's default
	extra     []string
	// data, keyFile and key, when set, restart a server on the store a
	// stopped one left behind.
	data    string
	keyFile string
	key     []byte
}

// child is a running blindstored serve.
type child struct {
	p       *proc.Process
	url     string
	data    string // data directory (embedded store and bucket key)
	keyFile string
	key     []byte
	spec    serverSpec
	logs    *tailBuffer
	prof    *serverProfiler // with -server-profile
}

// startServer starts blindstored serve on a free loopback port with a
// fresh data directory and bucket key, and waits until it says where it
// listens.
func startServer(ctx context.Context, bins *binaries, spec serverSpec) (*child, error) {
	data, keyFile, key := spec.data, spec.keyFile, spec.key
	if data == "" {
		var err error
		if data, err = os.MkdirTemp("", "blindbench-data-"); err != nil {
			return nil, err
		}
		if key, err = bucketer.NewKey(); err != nil {
			os.RemoveAll(data)
			return nil, err
		}
		keyFile = filepath.Join(data, "bucket.key")
		if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
			os.RemoveAll(data)
			return nil, err
		}
	}
	args := []string{"serve", "--listen", "127.0.0.1:0", "--data", data, "--bucket-key-file", keyFile,
		"--block-size", strconv.Itoa(spec.blockSize), "--log-level", "info"}
	if spec.store != "" {
		args = append(args, "--store", spec.store)
	}
	if spec.period > 0 {
		args = append(args, "--period", spec.period.String())
	}
	args = append(args, spec.extra...)
	// Not CommandContext: the server is stopped by SIGTERM in stop, so it
	// can close its store; the context only bounds the wait below.
	cmd := exec.Command(bins.path("blindstored"), args...)
	// The child must not pick up an operator's settings from the
	// environment: every BLINDSTORE_ variable would override a default.
	cmd.Env = childEnv("BLINDSTORE_")
	logs := &tailBuffer{max: 64 << 10}
	p, err := proc.Start(ctx, cmd, logs, 30*time.Second)
	if err != nil {
		if spec.data == "" {
			os.RemoveAll(data)
		}
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s", err, logs.String())
	}
	return &child{p: p, url: p.URL, data: data, keyFile: keyFile, key: key, spec: spec, logs: logs}, nil
}

func (c *child) pid() int { return c.p.Pid() }

// stop asks the server to finish (SIGTERM) and waits for it, killing it
// after 20 s. The data directory stays until cleanup.
func (c *child) stop() error {
	select {
	case <-c.p.Done():
		return nil
	default:
	}
	if c.prof != nil {
		c.prof.stop()
		c.prof = nil
	}
	_ = c.p.Signal(syscall.SIGTERM)
	t := time.NewTimer(20 * time.Second)
	defer t.Stop()
	select {
	case <-c.p.Done():
		err := c.p.Wait()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			return err
		}
		if err != nil {
			return fmt.Errorf("blindstored exited with %v: %s", err, c.logs.String())
		}
		return nil
	case <-t.C:
		c.kill()
		return errors.New("blindstored did not stop within 20 s of SIGTERM; killed")
	}
}

func (c *child) kill() { _ = c.p.Kill() }

// cleanup stops the server if it still runs and removes its data.
func (c *child) cleanup() {
	select {
	case <-c.p.Done():
	default:
		if c.prof != nil {
			c.prof.stop()
			c.prof = nil
		}
		c.kill()
	}
	os.RemoveAll(c.data)
}

// config reads the server's /v1/config.
func getConfig(ctx context.Context, hc *http.Client, url string) (*wire.Config, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/config", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET /v1/config: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /v1/config: %s", resp.Status)
	}
	var cfg wire.Config
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&cfg); err != nil {
		return nil, fmt.Errorf("GET /v1/config: %w", err)
	}
	return &cfg, nil
}

// tailBuffer keeps the last max bytes written to it, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.b))
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// memStatus is what /proc/<pid>/status says of a process's memory, in
// bytes.
type memStatus struct {
	rss, hwm, anon, file int64
}

func readMemStatus(pid int) (memStatus, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memStatus{}, err
	}
	var m memStatus
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &m.rss
		case "VmHWM":
			dst = &m.hwm
		case "RssAnon":
			dst = &m.anon
		case "RssFile":
			dst = &m.file
		default:
			continue
		}
		f := strings.Fields(v)
		if len(f) == 2 && f[1] == "kB" {
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err == nil {
				*dst = n << 10
			}
		}
	}
	if m.rss == 0 {
		return m, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
	}
	return m, nil
}

// memSampler follows one process's resident memory during a level: it
// resets the kernel's high-water mark at the start (clear_refs 5), polls
// /proc/<pid>/status every 20 ms, and at the end reports the peak RSS
// (the kernel's VmHWM) and the peak anonymous RSS it saw. Anonymous
// memory is what grows with load: the embedded store's file is mapped,
// and its pages count in RSS as they are read, whatever the concurrency.
type memSampler struct {
	pid      int
	stopc    chan struct{}
	done     chan struct{}
	peakAnon int64
	peakRSS  int64
	resetOK  bool
}

func startMemSampler(pid int) *memSampler {
	s := &memSampler{pid: pid, stopc: make(chan struct{}), done: make(chan struct{})}
	s.resetOK = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
	go func() {
		defer close(s.done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if m, err := readMemStatus(pid); err == nil {
				s.peakAnon = max(s.peakAnon, m.anon)
				s.peakRSS = max(s.peakRSS, m.rss)
			}
			select {
			case <-s.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the peak RSS and peak anonymous RSS
// in bytes.
func (s *memSampler) stop() (peakRSS, peakAnon int64) {
	close(s.stopc)
	<-s.done
	if m, err := readMemStatus(s.pid); err == nil {
		s.peakAnon = max(s.peakAnon, m.anon)
		if s.resetOK && m.hwm > 0 {
			// The kernel's own peak, since the reset: it sees spikes
			// between two polls.
			s.peakRSS = max(s.peakRSS, m.hwm)
		}
	}
	return s.peakRSS, s.peakAnon
}
