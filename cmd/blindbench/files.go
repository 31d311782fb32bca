package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// installHint is how to get the baseline of the files row.
const installHint = "apt-get install restic rclone (Debian packages)"

// filesRows puts and gets one random file with the blind CLI, and backs
// the same file up and restores it with restic to rclone serve restic,
// in interleaved rounds with a fresh file each (restic would deduplicate
// a second backup of the same file, and blind put would send only the
// changed blocks of a known one).
func (b *bench) filesRows(ctx context.Context) []Row {
	c := b.cfg
	size := fmtBytes(c.fileSize)
	putName, getName := "files blind put "+size, "files blind get "+size
	both := func(f func(name string) Row) []Row { return []Row{f(putName), f(getName)} }
	skip := func(why string) []Row { return both(func(n string) Row { return skipRow("files", n, why) }) }
	fail := func(err error) []Row { return both(func(n string) Row { return failRow("files", n, err) }) }

	if !b.bins.has("blind") {
		return skip("blind CLI not built yet (cmd/blind does not build here)")
	}
	// A pessimistic 20 MiB/s for each of four passes, per round.
	need := time.Duration(c.fileRounds)*time.Duration(4*c.fileSize/(20<<20))*time.Second + 10*time.Second
	if why, ok := b.budget(ctx, need); !ok {
		return skip(why)
	}
	b.logf("files: %s through blind and restic, %d rounds", size, c.fileRounds)
	extra, window := b.filesServerArgs()
	acc, err := b.newAccountArgs(ctx, "files", "bench", extra)
	if err != nil {
		return fail(err)
	}
	defer acc.close()
	work, env, blind := acc.work, acc.env, acc.blind
	// profiled runs blind like blind does, with a CPU profile of the
	// command when -client-profile asks for one.
	profiled := func(label string, args ...string) (cmdStat, error) {
		if c.clientProfile == "" {
			return blind(args...)
		}
		if err := os.MkdirAll(c.clientProfile, 0o755); err != nil {
			return cmdStat{}, err
		}
		penv := append(slices.Clip(env), "BLIND_CPUPROFILE="+filepath.Join(c.clientProfile, label+".pb.gz"))
		return runTimed(ctx, penv, work, b.bins.path("blind"), args...)
	}

	var rs *resticSide
	restic, rclone := lookPath("restic"), lookPath("rclone")
	noBaseline := ""
	switch {
	case restic == "" || rclone == "":
		var missing []string
		if restic == "" {
			missing = append(missing, "restic")
		}
		if rclone == "" {
			missing = append(missing, "rclone")
		}
		noBaseline = fmt.Sprintf("%s not installed, so no baseline: %s", strings.Join(missing, " and "), installHint)
		b.logf("  %s", noBaseline)
	default:
		rs, err = startRestic(ctx, restic, rclone, work)
		if err != nil {
			return fail(err)
		}
		defer rs.stop()
	}

	var oursPut, oursGet, resticBackup, resticRestore timedSide
	oursPut.srv, oursGet.srv = acc.srv.pid(), acc.srv.pid()
	resticBackup.srv, resticRestore.srv = rs.pid(), rs.pid()
	for round := 0; round < c.fileRounds; round++ {
		in := filepath.Join(work, fmt.Sprintf("in-%d.bin", round))
		sum, err := writeRandomFile(in, c.fileSize)
		if err != nil {
			return fail(err)
		}
		name := fmt.Sprintf("file-%d", round)
		out := filepath.Join(work, fmt.Sprintf("out-%d.bin", round))
		restoreDir := filepath.Join(work, fmt.Sprintf("restore-%d", round))
		steps := []timedStep{
			{&oursPut, func() (cmdStat, error) { return profiled(fmt.Sprintf("files-put-%d", round), "put", in, "--as", name) }},
			{&resticBackup, func() (cmdStat, error) { return rs.run(ctx, work, "backup", "--host", "blindbench", in) }},
			{&oursGet, func() (cmdStat, error) {
				st, err := profiled(fmt.Sprintf("files-get-%d", round), "get", name, "-o", out)
				if err == nil {
					err = checkFile(out, c.fileSize, sum)
				}
				return st, err
			}},
			{&resticRestore, func() (cmdStat, error) {
				st, err := rs.run(ctx, work, "restore", "latest", "--host", "blindbench", "--target", restoreDir)
				if err == nil {
					err = checkFile(filepath.Join(restoreDir, in), c.fileSize, sum)
				}
				return st, err
			}},
		}
		if err := runRound(round, steps, rs == nil); err != nil {
			return fail(err)
		}
		os.Remove(in)
		os.Remove(out)
		os.RemoveAll(restoreDir)
	}
	total := float64(c.fileSize) * float64(c.fileRounds) / mib
	rate := func(s timedSide) float64 { return s.rate(total) }
	mk := func(name string, ours, base timedSide, baseName string, target float64) Row {
		r := Row{
			Group: "files", Name: name, Figure: rate(ours), Unit: "MiB/s",
			Target: &Target{On: "ratio", Op: ">=", Value: target},
			Extra:  map[string]float64{"client_peak_rss_mib": float64(ours.rss) / mib},
		}
		r.Note = fmt.Sprintf("wall time of the command, process start included (blind: %s, peak RSS %.0f MiB, %s; server: %s)", strings.Join(ours.times, ", "), float64(ours.rss)/mib, ours.cpuText("blindstored"), window)
		ours.addCPU(r.Extra, "client_cpu_s", "server_cpu_s")
		if rs == nil {
			r.Note += "; " + noBaseline
			return r
		}
		r.Baseline, r.BaselineName = rate(base), baseName
		r.Extra["baseline_peak_rss_mib"] = float64(base.rss) / mib
		base.addCPU(r.Extra, "baseline_client_cpu_s", "baseline_server_cpu_s")
		r.Note += fmt.Sprintf("; %s: %s, peak RSS %.0f MiB, %s, its key derivation and repository open included; %s", baseName, strings.Join(base.times, ", "), float64(base.rss)/mib, base.cpuText("rclone"), rs.version)
		return r
	}
	return []Row{
		mk(putName, oursPut, resticBackup, "restic backup", 1.5),
		mk(getName, oursGet, resticRestore, "restic restore", 3.0),
	}
}

// filesServerArgs is the files row's server flags, and what the row's
// note says of its write pool. The row judges the server as it ships:
// a default blindstored holds every write batch up to its pool window
// (250 ms) for other users' writes to mix with, which on one user's put
// of one file is only waiting (the pool commits once 16 MiB wait, and
// the last batches wait the window unless the store is behind), while
// restic's server, rclone serve restic, writes each
// pack as it arrives and syncs none. -server-args "--pool-window 0"
// measures the server without the wait; the note says which ran.
func (b *bench) filesServerArgs() (extra []string, window string) {
	extra = append([]string(nil), b.cfg.serverArgs...)
	for i, a := range extra {
		v, ok := strings.CutPrefix(strings.TrimLeft(a, "-"), "pool-window")
		switch {
		case !ok || !strings.HasPrefix(a, "-"):
		case strings.HasPrefix(v, "="):
			window = v[1:]
		case v == "" && i+1 < len(extra):
			window = extra[i+1]
		}
	}
	if window != "" {
		return extra, "--pool-window " + window + " from -server-args"
	}
	return extra, "its default write pool (a write batch waits up to 250 ms for company; rclone holds none)"
}

// timedSide sums one side of a comparison of two tools over its rounds.
//
// Its CPU time, the command's and its server's while it ran, says what
// the wall time cannot on a shared machine: how much of the two cores
// the side needs, whatever else ran beside it.
type timedSide struct {
	took   time.Duration
	rss    int64
	times  []string
	srv    int // the pid of the side's server, if it has one
	rounds int
	cpu    time.Duration // the command's user and system time
	srvCPU time.Duration // its server's, while the command ran
	srvOK  bool          // srvCPU was read every round
}

func (s *timedSide) record(st cmdStat, srvCPU time.Duration, srvOK bool) {
	s.took += st.took
	s.rss = max(s.rss, st.maxRSS)
	s.times = append(s.times, fmt.Sprintf("%.2fs", st.took.Seconds()))
	s.cpu += st.cpu
	s.srvCPU += srvCPU
	s.srvOK = srvOK && (s.rounds == 0 || s.srvOK)
	s.rounds++
}

// cpuText is the side's CPU time per round, for a row's note.
func (s timedSide) cpuText(server string) string {
	if s.rounds == 0 {
		return "no CPU time"
	}
	n := time.Duration(s.rounds)
	t := fmt.Sprintf("CPU %.2fs", (s.cpu / n).Seconds())
	if s.srvOK {
		t += fmt.Sprintf(" + %s %.2fs", server, (s.srvCPU / n).Seconds())
	}
	return t + " per round"
}

// addCPU puts the side's CPU seconds per round in a row's Extra.
func (s timedSide) addCPU(extra map[string]float64, client, server string) {
	if s.rounds == 0 {
		return
	}
	extra[client] = s.cpu.Seconds() / float64(s.rounds)
	if s.srvOK {
		extra[server] = s.srvCPU.Seconds() / float64(s.rounds)
	}
}

// rate is MiB/s over all rounds, for total MiB moved.
func (s timedSide) rate(total float64) float64 {
	if s.took <= 0 {
		return 0
	}
	return total / s.took.Seconds()
}

// timedStep is one command of a round and the side it counts for.
type timedStep struct {
	s   *timedSide
	run func() (cmdStat, error)
}

// runRound runs a round's steps: ours put, baseline put, ours get,
// baseline get. Odd rounds run the baseline first, so that neither side
// always follows the other (page cache, disk write-back); noBaseline
// leaves the baseline's steps out.
func runRound(round int, steps []timedStep, noBaseline bool) error {
	order := []int{0, 1, 2, 3}
	if round%2 == 1 {
		order = []int{1, 0, 3, 2}
	}
	for _, i := range order {
		if noBaseline && (i == 1 || i == 3) {
			continue
		}
		before, berr := procCPU(steps[i].s.srv)
		st, err := steps[i].run()
		if err != nil {
			return fmt.Errorf("round %d: %w", round+1, err)
		}
		after, aerr := procCPU(steps[i].s.srv)
		steps[i].s.record(st, after-before, berr == nil && aerr == nil)
	}
	return nil
}

// resticSide is a restic repository served by rclone serve restic on a
// loopback port.
type resticSide struct {
	restic  string
	env     []string
	rclone  *exec.Cmd
	done    chan struct{}
	logs    *tailBuffer
	version string
}

func startRestic(ctx context.Context, restic, rclone, work string) (*resticSide, error) {
	repo := filepath.Join(work, "restic-repo")
	if err := os.MkdirAll(repo, 0o700); err != nil {
		return nil, err
	}
	conf := filepath.Join(work, "rclone.conf")
	if err := os.WriteFile(conf, nil, 0o600); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	rs := &resticSide{restic: restic, logs: &tailBuffer{max: 16 << 10}, done: make(chan struct{})}
	cmd := exec.Command(rclone, "serve", "restic", "--addr", addr, "--config", conf, repo)
	cmd.Env = childEnv("RCLONE_")
	cmd.Stdout, cmd.Stderr = rs.logs, rs.logs
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start rclone serve restic: %w", err)
	}
	rs.rclone = cmd
	go func() { _ = cmd.Wait(); close(rs.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			break
		}
		select {
		case <-rs.done:
			return nil, fmt.Errorf("rclone serve restic exited: %s", rs.logs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			rs.stop()
			return nil, fmt.Errorf("rclone serve restic did not listen on %s within 20 s: %s", addr, rs.logs.String())
		}
	}
	rs.env = append(childEnv("RESTIC_"),
		"RESTIC_REPOSITORY=rest:http://"+addr+"/", "RESTIC_PASSWORD="+benchPassword(),
		"RESTIC_CACHE_DIR="+filepath.Join(work, "restic-cache"))
	if _, err := rs.run(ctx, work, "init"); err != nil {
		rs.stop()
		return nil, fmt.Errorf("restic init: %w", err)
	}
	if out, err := exec.CommandContext(ctx, restic, "version").Output(); err == nil {
		rs.version = strings.TrimSpace(string(out))
	}
	return rs, nil
}

// pid is rclone's, the restic side's server; 0 without one.
func (rs *resticSide) pid() int {
	if rs == nil {
		return 0
	}
	return rs.rclone.Process.Pid
}

func (rs *resticSide) run(ctx context.Context, dir string, args ...string) (cmdStat, error) {
	return runTimed(ctx, rs.env, dir, rs.restic, append([]string{"--quiet"}, args...)...)
}

func (rs *resticSide) stop() {
	select {
	case <-rs.done:
		return
	default:
	}
	_ = rs.rclone.Process.Signal(syscall.SIGTERM)
	select {
	case <-rs.done:
	case <-time.After(10 * time.Second):
		_ = rs.rclone.Process.Kill()
		<-rs.done
	}
}

// cmdStat is what one command cost.
type cmdStat struct {
	took   time.Duration
	maxRSS int64         // bytes
	cpu    time.Duration // user and system time: on a shared machine, steadier than took
}

// benchAccount is a row's own working folder, blindstored and blind
// account: the files, sync, web and webdav rows start from one.
type benchAccount struct {
	work  string
	srv   *child
	env   []string
	blind func(args ...string) (cmdStat, error)
	close func() // stops the server, then removes the folder
}

// newAccount makes a working folder for row, starts a server on the
// row's flags and signs user up on it with the blind CLI.
func (b *bench) newAccount(ctx context.Context, row, user string) (*benchAccount, error) {
	return b.newAccountArgs(ctx, row, user, b.cfg.serverArgs)
}

// newAccountArgs is newAccount with the server's extra flags.
func (b *bench) newAccountArgs(ctx context.Context, row, user string, extra []string) (*benchAccount, error) {
	work, err := tempDir(row)
	if err != nil {
		return nil, err
	}
	srv, err := b.startChild(ctx, serverSpec{blockSize: blockSize, extra: extra}, row)
	if err != nil {
		os.RemoveAll(work)
		return nil, err
	}
	a := &benchAccount{work: work, srv: srv, close: func() { srv.cleanup(); os.RemoveAll(work) }}
	if a.env, a.blind, err = b.blindSignup(ctx, srv.url, work, user); err != nil {
		a.close()
		return nil, err
	}
	return a, nil
}

// blindSignup signs user up, with a random password, on the server at
// url through the blind CLI, its configuration under work. It returns
// the CLI's environment, for commands a row starts itself, and a runner
// that times a command run in work.
func (b *bench) blindSignup(ctx context.Context, url, work, user string) ([]string, func(args ...string) (cmdStat, error), error) {
	env := append(childEnv("BLIND_"),
		"BLIND_SERVER="+url, "BLIND_CONFIG_DIR="+filepath.Join(work, "blind-config"),
		"BLIND_PASSWORD="+benchPassword(), "BLIND_NO_PROGRESS=1")
	blind := func(args ...string) (cmdStat, error) {
		return runTimed(ctx, env, work, b.bins.path("blind"), args...)
	}
	if _, err := blind("signup", "--user", user); err != nil {
		return nil, nil, fmt.Errorf("blind signup: %w", err)
	}
	return env, blind, nil
}

// runTimed runs a command to completion and returns its wall time and
// peak resident memory; its output is kept only to explain a failure.
//
// The peak is the child's VmHWM, polled while it runs: the rusage of a
// child of this process is no good, since Linux carries the parent's
// high-water mark over the fork into the child's ru_maxrss.
func runTimed(ctx context.Context, env []string, dir, path string, args ...string) (cmdStat, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env, cmd.Dir = env, dir
	var out tailBuffer
	out.max = 8 << 10
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return cmdStat{}, fmt.Errorf("%s %s: %w", filepath.Base(path), args[0], err)
	}
	var peak atomic.Int64
	stop := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			if m, err := readMemStatus(cmd.Process.Pid); err == nil && m.hwm > peak.Load() {
				peak.Store(m.hwm)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	err := cmd.Wait()
	st := cmdStat{took: time.Since(t0)}
	if ps := cmd.ProcessState; ps != nil {
		st.cpu = ps.UserTime() + ps.SystemTime()
	}
	close(stop)
	<-polled
	st.maxRSS = peak.Load()
	if err != nil {
		return st, fmt.Errorf("%s %s: %v: %s", filepath.Base(path), args[0], err, oneLine(out.String()))
	}
	return st, nil
}

// procCPU is the user and system time a running process has used so
// far, from /proc/<pid>/stat (Linux; an error elsewhere, or for pid 0).
func procCPU(pid int) (time.Duration, error) {
	if pid <= 0 {
		return 0, errors.New("no process")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: the fields
	// counted are those after its closing parenthesis, utime and stime
	// the 12th and 13th of them (fields 14 and 15 of proc(5)).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	// USER_HZ, the unit of these fields, is 100 on every Linux port Go
	// runs on.
	return time.Duration(ticks) * (time.Second / 100), nil
}

// childEnv is this process's environment without the variables of the
// given prefix (an operator's settings would change what is measured)
// and without proxies (everything is on loopback).
func childEnv(prefix string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, prefix):
		case strings.EqualFold(k, "http_proxy"), strings.EqualFold(k, "https_proxy"), strings.EqualFold(k, "all_proxy"):
		default:
			env = append(env, kv)
		}
	}
	return env
}

func lookPath(name string) string {
	p, err := exec.LookPath(name)
	if err != nil {
		return ""
	}
	return p
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// writeRandomFile writes size random bytes to path and returns their
// SHA-256.
func writeRandomFile(path string, size int64) ([32]byte, error) {
	f, err := os.Create(path)
	if err != nil {
		return [32]byte{}, err
	}
	var seed [32]byte
	fillRandom(seed[:])
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), io.LimitReader(rand.NewChaCha8(seed), size))
	// On the disk before any command is timed: left dirty, its writeback
	// runs under whichever command comes first, and weighs most on one
	// whose server syncs its writes (blindstored does; rclone serve restic
	// does not).
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return [32]byte{}, fmt.Errorf("write %s: %w", path, err)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum, nil
}

// checkFile verifies that what came back is what went in.
func checkFile(path string, size int64, sum [32]byte) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	if n != size || !bytes.Equal(h.Sum(nil), sum[:]) {
		return fmt.Errorf("read back %d bytes that differ from the %d written", n, size)
	}
	return nil
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}
