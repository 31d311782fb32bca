package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/blindstore/blindstore/internal/wait"
)

// Server profiles (-server-profile DIR): every blindstored the bench
// starts gets an admin listener on a loopback port, and a serverProfiler
// takes CPU profiles from its /debug/pprof/profile in back-to-back slices
// of profileSlice while it runs, and a heap profile before it stops. The
// slices of one server merge with `go tool pprof DIR/LABEL-cpu-*.pb.gz`.

const profileSlice = 2 * time.Second

var adminRE = regexp.MustCompile(`admin=(http://127\.0\.0\.1:\d+)`)

type serverProfiler struct {
	base, dir, label string
	hc               *http.Client
	logw             io.Writer
	stopc            chan struct{}
	done             chan struct{}
	mu               sync.Mutex
}

func startServerProfiler(admin, dir, label string, logw io.Writer) (*serverProfiler, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	p := &serverProfiler{base: admin, dir: dir, label: label, hc: newHTTPClient(2), logw: logw,
		stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for i := 0; ; i++ {
			select {
			case <-p.stopc:
				return
			default:
			}
			// A slice is never cut short, so what it saw is kept; stop
			// waits for the one under way.
			p.fetch(fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(profileSlice/time.Second)), fmt.Sprintf("%s-cpu-%03d.pb.gz", label, i))
		}
	}()
	return p, nil
}

func (p *serverProfiler) fetch(path, file string) {
	ctx, cancel := context.WithTimeout(context.Background(), profileSlice+30*time.Second)
	defer cancel()
	err := func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+path, nil)
		if err != nil {
			return err
		}
		resp, err := p.hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s answered %s", path, resp.Status)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(p.dir, file), b, 0o644)
	}()
	if err != nil {
		// A missing profile costs the row nothing; say so and go on.
		p.mu.Lock()
		fmt.Fprintf(p.logw, "server profile %s: %v\n", file, err)
		p.mu.Unlock()
	}
}

// stop ends the CPU slices (waiting for the one under way) and takes a
// heap profile; call it while the server still runs.
func (p *serverProfiler) stop() {
	select {
	case <-p.stopc:
	default:
		close(p.stopc)
	}
	<-p.done
	p.fetch("/debug/pprof/heap", p.label+"-heap.pb.gz")
	p.hc.CloseIdleConnections()
}

// startChild starts a blindstored for a row, with a profiler on it when
// -server-profile asks for one and the server can serve profiles.
func (b *bench) startChild(ctx context.Context, spec serverSpec, label string) (*child, error) {
	// The bench is one loopback address standing for many clients: the
	// per-address write limit that protects a public server would
	// measure itself, so it is off (-server-args can set it again).
	if b.serveFlags["write-rate"] {
		spec.extra = append([]string{"--write-rate", "0"}, spec.extra...)
	}
	profile := b.cfg.serverProfile != "" && b.serveFlags["admin-listen"]
	if profile {
		spec.extra = append(append([]string(nil), spec.extra...), "--admin-listen", "127.0.0.1:0")
	}
	c, err := startServer(ctx, b.bins, spec)
	if err != nil || !profile {
		return c, err
	}
	// The admin listener says where it is in its own log line.
	var m []string
	if wait.For(10*time.Second, 20*time.Millisecond, func() bool {
		m = adminRE.FindStringSubmatch(c.logs.String())
		return m != nil
	}) != nil {
		c.cleanup()
		return nil, fmt.Errorf("blindstored did not say where its admin listener is: %s", c.logs.String())
	}
	c.prof, err = startServerProfiler(m[1], b.cfg.serverProfile, label, b.log)
	if err != nil {
		c.cleanup()
		return nil, err
	}
	return c, nil
}
