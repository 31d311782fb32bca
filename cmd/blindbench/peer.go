package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/blindstore/blindstore/wire"
)

// The peer row: blindstored serving block reads against nginx serving the
// same blocks as plain files (sendfile, keep-alive), both loaded by wrk.
// nginx is what a file server that knows nothing of proofs or buckets
// reaches on this machine, so the ratio says what blindstored's work
// costs on the read path.

// peerTargets are the least blindstored/nginx request-rate ratios, per
// store: the embedded store reads from a mapped file as nginx does, and
// PostgreSQL adds a round trip to another process.
var peerTargets = map[string]float64{embedded.name: 0.8, pgStore.name: 0.5}

// peerTarget is one server loaded by wrk.
type peerTarget struct {
	name string // nginx, embedded, postgres
	url  string
	pid  int // the process whose memory is sampled, 0 for none
}

// wrkResult is what one wrk run measured.
type wrkResult struct {
	requests int64
	duration time.Duration
	bytes    int64
	p99      time.Duration
	errors   int64 // connect, read, write, timeout and non-2xx answers
}

func (r wrkResult) reqPerSec() float64 { return float64(r.requests) / r.duration.Seconds() }
func (r wrkResult) mibPerSec() float64 { return float64(r.bytes) / mib / r.duration.Seconds() }

// peerRows fills nginx and blindstored (embedded store and PostgreSQL)
// with the same random blocks, then loads each with wrk at every level,
// the servers taking turns within a level.
func (b *bench) peerRows(ctx context.Context) []Row {
	c := b.cfg
	stores := []storeKind{embedded, pgStore}
	var names []string
	for _, l := range c.levels {
		names = append(names, fmt.Sprintf("peer GET nginx c=%d", l))
		for _, st := range stores {
			names = append(names, fmt.Sprintf("peer GET %s c=%d", st.name, l))
		}
	}
	all := func(f func(name string) Row) []Row {
		rows := make([]Row, len(names))
		for i, n := range names {
			rows[i] = f(n)
		}
		return rows
	}
	for _, tool := range []string{"nginx", "wrk"} {
		if _, err := exec.LookPath(tool); err != nil {
			why := tool + " is not installed: the peer row needs nginx and wrk (Debian: apt-get install nginx-light wrk)"
			return all(func(n string) Row { return skipRow("peer", n, why) })
		}
	}
	secs := wrkSeconds(c.duration)
	need := time.Duration(len(c.levels)*(1+len(stores)))*(time.Duration(secs)*time.Second+time.Second) + 20*time.Second
	if why, ok := b.budget(ctx, need); !ok {
		return all(func(n string) Row { return skipRow("peer", n, why) })
	}
	failAll := func(err error) []Row { return all(func(n string) Row { return failRow("peer", n, err) }) }

	dir, err := tempDir("peer")
	if err != nil {
		return failAll(err)
	}
	defer os.RemoveAll(dir)
	b.logf("peer: %d random blocks of %d bytes on nginx and blindstored", c.peerBlocks, blockSize)
	ids := make([]wire.ID, c.peerBlocks)
	data := make([][]byte, c.peerBlocks)
	blocksDir := filepath.Join(dir, "www", strings.Trim(wire.PathBlock, "/"))
	if err := os.MkdirAll(blocksDir, 0o755); err != nil {
		return failAll(err)
	}
	for i := range ids {
		ids[i] = wire.NewID()
		data[i] = make([]byte, blockSize)
		fillRandom(data[i])
		if err := os.WriteFile(filepath.Join(blocksDir, ids[i].String()), data[i], 0o644); err != nil {
			return failAll(fmt.Errorf("write a block file: %w", err))
		}
	}
	script := filepath.Join(dir, "blocks.lua")
	if err := writeWrkScript(script, ids); err != nil {
		return failAll(err)
	}

	ng, err := startNginx(ctx, dir)
	if err != nil {
		return failAll(err)
	}
	defer ng.stop()
	targets := []peerTarget{{name: "nginx", url: ng.url}}
	skipped := map[string]string{}
	for _, st := range stores {
		dbURL, err := b.storeURL(ctx, st, "peer")
		if err != nil {
			skipped[st.name] = err.Error()
			continue
		}
		srv, err := b.startBlockServer(ctx, serverSpec{store: dbURL, blockSize: blockSize, extra: b.argsWithoutWindow()}, "peer-"+st.name)
		if err != nil {
			return failAll(fmt.Errorf("start blindstored on the %s store: %w", st.name, err))
		}
		defer srv.cleanup()
		if err := fillBlocks(ctx, b.hc, srv.baseURL(), ids, data); err != nil {
			return failAll(fmt.Errorf("fill blindstored on the %s store: %w", st.name, err))
		}
		targets = append(targets, peerTarget{name: st.name, url: srv.baseURL(), pid: srv.memPID()})
	}

	var rows []Row
	maxLevel := c.levels[len(c.levels)-1]
	for _, l := range c.levels {
		maxLevel = max(maxLevel, l)
	}
	for li, level := range c.levels {
		res := map[string]wrkResult{}
		anon := map[string]int64{}
		// The servers take turns, starting with a different one at each
		// level, so that a drift of the shared machine does not always
		// fall on the same one.
		for k := range targets {
			t := targets[(k+li)%len(targets)]
			b.logf("  peer GET %s c=%d", t.name, level)
			var sampler *memSampler
			if level == maxLevel && t.pid != 0 {
				sampler = startMemSampler(t.pid)
			}
			r, err := runWrk(ctx, t.url, script, level, secs)
			if sampler != nil {
				_, a := sampler.stop()
				anon[t.name] = a
			}
			if err != nil {
				return append(rows, failAll(fmt.Errorf("peer GET %s c=%d: %w", t.name, level, err))[len(rows):]...)
			}
			res[t.name] = r
		}
		ng := res["nginx"]
		rows = append(rows, Row{
			Group: "peer", Name: fmt.Sprintf("peer GET nginx c=%d", level),
			Figure: ng.reqPerSec(), Unit: "req/s",
			Extra: map[string]float64{"connections": float64(level), "mib_per_s": ng.mibPerSec(), "p99_ms": ms(ng.p99)},
			Note:  fmt.Sprintf("nginx, files, sendfile: %.0f MiB/s, p99 %.2f ms (wrk %ds, %d threads)", ng.mibPerSec(), ms(ng.p99), secs, wrkThreads(level)),
		})
		for _, st := range stores {
			name := fmt.Sprintf("peer GET %s c=%d", st.name, level)
			if why, ok := skipped[st.name]; ok {
				rows = append(rows, skipRow("peer", name, why))
				continue
			}
			r := res[st.name]
			row := Row{
				Group: "peer", Name: name, Figure: r.reqPerSec(), Unit: "req/s",
				Baseline: ng.reqPerSec(), BaselineName: "nginx",
				Target: &Target{On: "ratio", Op: ">=", Value: peerTargets[st.name]},
				Extra: map[string]float64{
					"connections": float64(level), "mib_per_s": r.mibPerSec(), "p99_ms": ms(r.p99),
					"nginx_req_per_s": ng.reqPerSec(), "nginx_mib_per_s": ng.mibPerSec(), "nginx_p99_ms": ms(ng.p99),
				},
				Note: fmt.Sprintf("blindstored on the %s store: %.0f MiB/s, p99 %.2f ms; nginx %.0f MiB/s, p99 %.2f ms",
					st.name, r.mibPerSec(), ms(r.p99), ng.mibPerSec(), ms(ng.p99)),
			}
			if a, ok := anon[st.name]; ok {
				row.Extra["server_peak_anon_mib"] = float64(a) / mib
				row.Note += fmt.Sprintf("; server peak anonymous RSS %.0f MiB", float64(a)/mib)
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// wrkSeconds is -duration as wrk takes it: whole seconds, at least one.
func wrkSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// wrkThreads is wrk's -t: at most 2 on the 2-core machines the bench runs
// on, where a third thread would only take CPU from the server.
func wrkThreads(conns int) int { return min(2, conns) }

// fillBlocks writes the blocks to blindstored in batches, as clients do.
func fillBlocks(ctx context.Context, hc *http.Client, baseURL string, ids []wire.ID, data [][]byte) error {
	cfg, err := getConfig(ctx, hc, baseURL)
	if err != nil {
		return err
	}
	if cfg.BlockSize != blockSize {
		return fmt.Errorf("server has block size %d, want %d", cfg.BlockSize, blockSize)
	}
	return parallelChunks(ctx, len(ids), max(1, min(cfg.Limits.WriteBatch, 64)), 4, func(ctx context.Context, lo, hi int) error {
		items := make([]batchItem, 0, hi-lo)
		for i := lo; i < hi; i++ {
			items = append(items, batchItem{id: ids[i], proof: newProof(), data: data[i]})
		}
		return putBatch(ctx, hc, baseURL, items)
	})
}

// writeWrkScript writes the Lua script that makes wrk read random blocks
// of the list and, at the end, print its figures on one line that
// runWrk parses (wrk's own summary rounds them for people).
func writeWrkScript(path string, ids []wire.ID) error {
	var sb strings.Builder
	sb.WriteString("local paths = {\n")
	for _, id := range ids {
		fmt.Fprintf(&sb, "  %q,\n", wire.PathBlock+id.String())
	}
	sb.WriteString(`}
local n = #paths
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  math.randomseed(os.time() * 1000 + (tid or 0))
end
function request()
  return wrk.format("GET", paths[math.random(n)])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BLINDBENCH %d %d %d %d %d\n", summary.requests, summary.duration, summary.bytes,
    latency:percentile(99), e.connect + e.read + e.write + e.timeout + e.status))
end
`)
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		return fmt.Errorf("write the wrk script: %w", err)
	}
	return nil
}

// runWrk loads url with wrk: conns keep-alive connections for secs
// seconds, each request a random block of the script's list.
func runWrk(ctx context.Context, url, script string, conns, secs int) (wrkResult, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "wrk", "-t", strconv.Itoa(wrkThreads(conns)), "-c", strconv.Itoa(conns),
		"-d", strconv.Itoa(secs)+"s", "--timeout", "10s", "--latency", "-s", script, url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return parseWrk(string(out))
}

// parseWrk reads the line the script's done prints.
func parseWrk(out string) (wrkResult, error) {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 6 || f[0] != "BLINDBENCH" {
			continue
		}
		var v [5]int64
		for i := range v {
			n, err := strconv.ParseInt(f[i+1], 10, 64)
			if err != nil {
				return wrkResult{}, fmt.Errorf("wrk figures %q: %w", sc.Text(), err)
			}
			v[i] = n
		}
		r := wrkResult{requests: v[0], duration: time.Duration(v[1]) * time.Microsecond, bytes: v[2], p99: time.Duration(v[3]) * time.Microsecond, errors: v[4]}
		switch {
		case r.errors > 0:
			return r, fmt.Errorf("wrk saw %d failed requests (errors or non-2xx answers)", r.errors)
		case r.requests == 0 || r.duration <= 0:
			return r, errors.New("wrk completed no request")
		}
		return r, nil
	}
	return wrkResult{}, fmt.Errorf("wrk printed no figures: %s", firstLine(strings.TrimSpace(out)))
}

// nginxServer is an nginx the bench started.
type nginxServer struct {
	cmd  *exec.Cmd
	done chan error
	url  string
	dir  string
}

// startNginx serves dir/www on a free loopback port with a config of its
// own in dir: sendfile, keep-alive, no access log, as the current user,
// in the foreground so that the bench owns the process.
func startNginx(ctx context.Context, dir string) (*nginxServer, error) {
	// Another process could take the port before nginx binds it; nginx
	// then fails to start and the row says so.
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("find a free port: %w", err)
	}
	user := ""
	if os.Geteuid() == 0 {
		// As root, nginx would hand its workers to nobody, who cannot
		// read the bench's private temp dir.
		user = "user root;\n"
	}
	for _, d := range []string{"tmp", "logs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	// tcp_nopush stays off: with it, one connection's reads waited on
	// delayed ACKs (p99 40 ms at c=1), which is no file server's limit.
	conf := fmt.Sprintf(`%sworker_processes auto;
error_log %[2]s/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nodelay on;
  keepalive_timeout 65s;
  keepalive_requests 10000000;
  default_type application/octet-stream;
  client_body_temp_path %[2]s/tmp/body;
  proxy_temp_path %[2]s/tmp/proxy;
  fastcgi_temp_path %[2]s/tmp/fastcgi;
  uwsgi_temp_path %[2]s/tmp/uwsgi;
  scgi_temp_path %[2]s/tmp/scgi;
  server {
    listen 127.0.0.1:%[3]d;
    root %[2]s/www;
  }
}
`, user, dir, port)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("write nginx.conf: %w", err)
	}
	// Not CommandContext: stop sends SIGQUIT, nginx's graceful stop.
	cmd := exec.Command("nginx", "-p", dir, "-e", filepath.Join(dir, "logs", "error.log"), "-c", filepath.Join(dir, "nginx.conf"),
		"-g", "daemon off; pid "+filepath.Join(dir, "nginx.pid")+";")
	logs := &tailBuffer{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start nginx: %w", err)
	}
	n := &nginxServer{cmd: cmd, done: make(chan error, 1), url: fmt.Sprintf("http://127.0.0.1:%d", port), dir: dir}
	go func() { n.done <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-n.done:
			n.done <- err
			log, _ := os.ReadFile(filepath.Join(dir, "logs", "error.log"))
			return nil, fmt.Errorf("nginx exited at start (%v): %s %s", err, logs.String(), strings.TrimSpace(string(log)))
		case <-ctx.Done():
			n.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if conn, err := net.DialTimeout("tcp", strings.TrimPrefix(n.url, "http://"), time.Second); err == nil {
			conn.Close()
			return n, nil
		}
		if time.Now().After(deadline) {
			n.stop()
			return nil, errors.New("nginx did not listen within 10 s")
		}
	}
}

// stop ends nginx gracefully, killing it after 10 s.
func (n *nginxServer) stop() {
	_ = n.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case err := <-n.done:
		n.done <- err
	case <-time.After(10 * time.Second):
		_ = n.cmd.Process.Kill()
		n.done <- <-n.done
	}
}
