package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/blindstore/blindstore/internal/countproxy"
)

// cachedRounds is how many measured rounds each cached-command row
// takes (the median is the figure); 3 with -quick.
const cachedRounds = 7

// Targets of the cached-command rows, for the account of the scale row:
// block reads of a one-file put, and milliseconds beyond process start.
const (
	cachedPutReads = 6
	cachedPutMs    = 200
	cachedLsMs     = 500
)

// cachedNames are the rows cachedRows returns, in order.
func cachedNames(files int) []string {
	return []string{
		fmt.Sprintf("blind put of one 1 KiB file into %d files, warm cache: block reads", files),
		fmt.Sprintf("blind put of one 1 KiB file into %d files, warm cache", files),
		fmt.Sprintf("blind ls of %d files, warm cache", files),
	}
}

// cachedRows runs the blind CLI, as a user would, against the account
// the login or scale row built (on srv, which it stops), through a
// counting proxy, with the block cache in its configuration directory
// warmed by blind login: a put replacing one 1 KiB file (the block reads
// it makes, and its time) and an ls. Times are beyond process start:
// the median of blind --version, run the same way, is subtracted.
//
// The rows' server runs on the same store without the write pool's
// window: the figures are the client's work and the server's, not the
// window's wait, which a default server adds to every write (once per
// put here); the puts are also timed on srv, with the default window,
// for the Extra figures. A round in which the server's period changed
// is left out (its command renews the whole account, which the login
// rows measure) and run again.
func (b *bench) cachedRows(ctx context.Context, srv *child, user, pw string, files int, judged bool) ([]Row, error) {
	names := cachedNames(files)
	if !b.bins.has("blind") {
		rows := make([]Row, len(names))
		for i, n := range names {
			rows[i] = skipRow("cache", n, "blind CLI not built yet (cmd/blind does not build here)")
		}
		return rows, nil
	}
	work, err := tempDir("cached")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	put := func(r int) ([]string, error) {
		in := filepath.Join(work, fmt.Sprintf("put-%d.txt", r))
		if err := os.WriteFile(in, randomKiB(), 0o600); err != nil {
			return nil, err
		}
		return []string{"put", in, "--as", benchFileName((r*7919 + 1) % files)}, nil
	}

	rounds := cachedRounds
	if b.cfg.quick {
		rounds = 3
	}
	withWindow, err := b.cliSession(ctx, srv.url, work, user, pw)
	if err != nil {
		return nil, err
	}
	defer withWindow.close()
	windowPuts, _, err := withWindow.measure(3, put)
	if err != nil {
		return nil, fmt.Errorf("put with the pool's window: %w", err)
	}
	withWindow.close()
	if err := srv.stop(); err != nil {
		return nil, err
	}
	spec := srv.spec
	spec.extra, spec.data, spec.keyFile, spec.key = b.argsWithoutWindow(), srv.data, srv.keyFile, srv.key
	bare, err := b.startChild(ctx, spec, "cached")
	if err != nil {
		return nil, err
	}
	defer bare.cleanup()
	s, err := b.cliSession(ctx, bare.url, work, user, pw)
	if err != nil {
		return nil, err
	}
	defer s.close()
	start, _, err := s.measure(rounds, func(int) ([]string, error) { return []string{"--version"}, nil })
	if err != nil {
		return nil, err
	}
	puts, putReads, err := s.measure(rounds, func(r int) ([]string, error) { return put(r + 3) })
	if err != nil {
		return nil, fmt.Errorf("put: %w", err)
	}
	lss, _, err := s.measure(rounds, func(int) ([]string, error) { return []string{"ls"}, nil })
	if err != nil {
		return nil, fmt.Errorf("ls: %w", err)
	}
	wall := func(sts []cmdStat) time.Duration {
		ds := make([]time.Duration, len(sts))
		for i, st := range sts {
			ds[i] = st.took
		}
		return median(ds)
	}
	cpu := func(sts []cmdStat) float64 {
		ds := make([]time.Duration, len(sts))
		for i, st := range sts {
			ds[i] = st.cpu
		}
		return ms(median(ds))
	}
	base := wall(start)
	beyond := func(sts []cmdStat) float64 { return ms(max(0, wall(sts)-base)) }
	target := func(op string, v float64) *Target {
		if !judged {
			return nil
		}
		return &Target{On: "figure", Op: op, Value: v}
	}
	slices.Sort(putReads)
	how := fmt.Sprintf("the blind CLI through a counting proxy, its block cache warmed by blind login, the server on the same store with --pool-window 0; medians of %d rounds, process start (blind --version, %.1f ms) subtracted; the command's CPU time (user and system, steadier than wall time on a shared machine) is in cpu_ms", rounds, ms(base))
	return []Row{
		{
			Group: "cache", Name: names[0], Figure: float64(putReads[len(putReads)-1]), Unit: "blocks read",
			Target: target("<=", cachedPutReads),
			Extra:  map[string]float64{"median_reads": float64(putReads[len(putReads)/2])},
			Note:   fmt.Sprintf("the most single-block reads (GET) of one blind put replacing a 1 KiB file, over %d puts spread over the account: the head, and the index blocks another device changed (none here); %s", rounds, how),
		},
		{
			Group: "cache", Name: names[1], Figure: beyond(puts), Unit: "ms beyond process start",
			Target: target("<=", cachedPutMs),
			Extra:  map[string]float64{"wall_ms": ms(wall(puts)), "cpu_ms": cpu(puts), "process_start_ms": ms(base), "beyond_start_with_default_window_ms": beyond(windowPuts)},
			Note: fmt.Sprintf("blind put of a new 1 KiB file replacing one of the account's (CPU %.0f ms): the head read, the dirs and the leaves the file's name falls in (found by their first names) read from the cache, a leaf and a dir rewritten, the head swapped, the listing's entries of the leaves written appended, sealed, to its log; %s. With the server's default pool window the same put takes %.0f ms beyond process start (median of %d): the window's wait, the mixing that hides whose writes these are, comes on top",
				cpu(puts), how, beyond(windowPuts), len(windowPuts)),
		},
		{
			Group: "cache", Name: names[2], Figure: beyond(lss), Unit: "ms beyond process start",
			Target: target("<=", cachedLsMs),
			Extra:  map[string]float64{"wall_ms": ms(wall(lss)), "cpu_ms": cpu(lss), "process_start_ms": ms(base)},
			Note:   fmt.Sprintf("blind ls of the whole account, printed to a pipe (CPU %.0f ms): the head and the dirs read, then the sealed listing, by leaf (the first ls after the puts folds in the leaves they logged), not the index; %s", cpu(lss), how),
		},
	}, nil
}

// cliSession is the blind CLI logged in to a server through a counting
// proxy, with its configuration directory (and block cache) in work.
type cliSession struct {
	b     *bench
	ctx   context.Context
	url   string
	proxy *countproxy.Proxy
	env   []string
	dir   string
}

// cliSession logs blind in through a new proxy to url, then runs one
// unmeasured ls: the cache's files into the page cache, and a renewal
// if this period needs one.
func (b *bench) cliSession(ctx context.Context, url, work, user, pw string) (*cliSession, error) {
	p, err := countproxy.Start(url)
	if err != nil {
		return nil, err
	}
	s := &cliSession{b: b, ctx: ctx, url: url, proxy: p, dir: work, env: append(childEnv("BLIND_"),
		"BLIND_SERVER="+p.URL, "BLIND_CONFIG_DIR="+filepath.Join(work, "blind-config"),
		"BLIND_PASSWORD="+pw, "BLIND_NO_PROGRESS=1")}
	for _, args := range [][]string{{"login", "--user", user}, {"ls"}} {
		if _, err := s.run(args...); err != nil {
			s.close()
			return nil, err
		}
	}
	return s, nil
}

func (s *cliSession) run(args ...string) (cmdStat, error) {
	return runTimed(s.ctx, s.env, s.dir, s.b.bins.path("blind"), args...)
}

func (s *cliSession) close() { _ = s.proxy.Close() }

// measure runs one command per round until rounds rounds ran within a
// server period each, and returns their times and block reads.
func (s *cliSession) measure(rounds int, args func(round int) ([]string, error)) (took []cmdStat, reads []int, err error) {
	period := func() (uint64, error) {
		cfg, err := getConfig(s.ctx, s.b.hc, s.url)
		if err != nil {
			return 0, err
		}
		return cfg.CurrentPeriod, nil
	}
	for r := 0; len(took) < rounds && r < 3*rounds; r++ {
		a, err := args(r)
		if err != nil {
			return nil, nil, err
		}
		p0, err := period()
		if err != nil {
			return nil, nil, err
		}
		s.proxy.Take()
		st, err := s.run(a...)
		if err != nil {
			return nil, nil, err
		}
		n := s.proxy.Take().Reads
		p1, err := period()
		if err != nil {
			return nil, nil, err
		}
		if p0 != p1 {
			continue
		}
		took, reads = append(took, st), append(reads, n)
	}
	if len(took) < rounds {
		return nil, nil, fmt.Errorf("only %d of %d rounds ran within a server period", len(took), rounds)
	}
	return took, reads, nil
}
