package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/bolt"
	"github.com/blindstore/blindstore/blobstore/pool"
	"github.com/blindstore/blindstore/blobstore/postgres"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/wire"
)

// blockSize is the block size of the block API and files rows: the
// default deployment's.
const blockSize = wire.DefaultBlockSize

// bench is one run.
type bench struct {
	cfg     *config
	log     io.Writer
	started time.Time
	rep     *Report

	bins       *binaries
	serveFlags map[string]bool // flags blindstored serve accepts
	pg         *pgAdmin
	pgErr      error // why PostgreSQL rows cannot run
	bare       *bareHTTP
	hc         *http.Client
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "[%5.1fs] ", time.Since(b.started).Seconds())
	fmt.Fprintf(b.log, format+"\n", args...)
}

// store names one of the two stores.
type storeKind struct {
	name string // as printed: embedded, postgres
	raw  string // the raw baseline's name
}

var (
	embedded = storeKind{name: "embedded", raw: "raw bbolt"}
	pgStore  = storeKind{name: "postgres", raw: "raw pgx"}
)

// argsWithoutWindow is -server-args with no pool window, when serve has
// that flag: for rows that count what is sent or build an account, which
// a window would only make wait for company.
func (b *bench) argsWithoutWindow() []string {
	extra := append([]string(nil), b.cfg.serverArgs...)
	if b.serveFlags["pool-window"] {
		extra = append(extra, "--pool-window", "0")
	}
	return extra
}

func (b *bench) runAll(ctx context.Context) (*Report, error) {
	c := b.cfg
	b.rep = newReport(c, b.started)
	defer func() { b.rep.Finished = time.Now() }()
	maxLevel := 1
	for _, l := range c.levels {
		maxLevel = max(maxLevel, l)
	}
	b.hc = newHTTPClient(max(maxLevel, c.renewSenders) + 8)
	defer b.hc.CloseIdleConnections()

	bins, err := findBinaries(ctx, c.bin, b.log)
	if err != nil {
		return b.rep, err
	}
	b.bins = bins
	defer bins.cleanup()
	b.serveFlags = serveFlagsOf(ctx, bins)
	if c.serverProfile != "" {
		if b.serveFlags["admin-listen"] {
			b.logf("server profiles go to %s (merge a server's slices with go tool pprof %s/LABEL-cpu-*.pb.gz)", c.serverProfile, c.serverProfile)
		} else {
			b.logf("blindstored has no --admin-listen (no pprof): no server profiles; -inprocess profiles the server in this process instead")
		}
	}

	b.pg, b.pgErr = connectPG(ctx, c.postgres)
	if b.pgErr != nil {
		b.pgErr = fmt.Errorf("%w; set BLINDSTORE_BENCH_POSTGRES or -postgres to a server whose role may CREATE DATABASE", b.pgErr)
		b.logf("PostgreSQL rows will be skipped: %v", b.pgErr)
	} else {
		defer func() {
			if err := b.pg.close(); err != nil {
				b.logf("dropping the bench's databases: %v", err)
			}
		}()
	}
	if b.bare, err = startBareHTTP(blockSize); err != nil {
		return b.rep, err
	}
	defer b.bare.close()

	stores := []storeKind{embedded, pgStore}
	if c.rows["block"] {
		for _, st := range stores {
			b.rep.add(b.blockRows(ctx, st, nil, "", false)...)
		}
		if b.serveFlags["pool-window"] {
			// The shipped window holds every write for company; these
			// rows show what the code costs without that wait.
			for _, st := range stores {
				b.rep.add(b.blockRows(ctx, st, []string{"--pool-window", "0"}, " (pool window 0)", true)...)
			}
		}
	}
	if c.rows["peer"] {
		b.rep.add(b.peerRows(ctx)...)
	}
	for _, st := range stores {
		if c.rows["renew"] || c.rows["purge"] {
			b.rep.add(b.renewRows(ctx, st)...)
		}
	}
	if c.rows["seal"] {
		for _, st := range stores {
			b.rep.add(b.sealRows(ctx, st)...)
		}
	}
	if c.rows["files"] {
		b.rep.add(b.filesRows(ctx)...)
	}
	if c.rows["web"] {
		b.rep.add(b.webRows(ctx)...)
	}
	if c.rows["browser"] {
		b.rep.add(b.browserRows(ctx)...)
	}
	if c.rows["edit"] {
		b.rep.add(b.editRows(ctx)...)
	}
	if c.rows["login"] {
		spec := accountSpec{row: "login", files: c.loginFiles, build: c.loginBuild, loginTarget: 100}
		if c.loginFiles == 10000 {
			spec.blocksTarget = 400 // issue 10's, for exactly this account
		}
		b.rep.add(b.accountRows(ctx, spec)...)
	}
	if c.rows["scale"] {
		b.rep.add(b.accountRows(ctx, accountSpec{row: "scale", files: c.scaleFiles, build: c.scaleBuild, loginTarget: 1000})...)
	}
	if c.rows["sync"] {
		b.rep.add(b.syncRows(ctx)...)
	}
	if c.rows["webdav"] {
		b.rep.add(b.webdavRows(ctx)...)
	}
	// Last: the rows before it were there first, and the time cap skips
	// what comes late.
	if c.rows["merge"] {
		for _, st := range stores {
			b.rep.add(b.mergeRows(ctx, st)...)
		}
	}
	return b.rep, nil
}

var flagRE = regexp.MustCompile(`(?m)^\s+--([a-z0-9-]+)`)

// serveFlagsOf lists the flags of blindstored serve, so that rows can use
// a flag only where the server has it (others build it in parallel).
func serveFlagsOf(ctx context.Context, bins *binaries) map[string]bool {
	out, _ := exec.CommandContext(ctx, bins.path("blindstored"), "serve", "--help").CombinedOutput()
	m := map[string]bool{}
	for _, f := range flagRE.FindAllStringSubmatch(string(out), -1) {
		m[f[1]] = true
	}
	return m
}

// budget reports whether a row estimated to take need can still start;
// when not, it returns the reason for skipping it.
func (b *bench) budget(ctx context.Context, need time.Duration) (string, bool) {
	dl, ok := ctx.Deadline()
	if ctx.Err() != nil || (ok && time.Until(dl) < need) {
		return fmt.Sprintf("the run's time cap (-max-total %v) leaves too little time for this row (about %v): raise -max-total or run it alone with -rows", b.cfg.maxTotal, need.Round(time.Second)), false
	}
	return "", true
}

// startBlockServer starts the server of a block API row.
func (b *bench) startBlockServer(ctx context.Context, spec serverSpec, label string) (blockServer, error) {
	if b.cfg.inProcess {
		// --pool-window as serve takes it: its default unless given.
		window := pool.DefaultWindow
		for i, a := range spec.extra {
			if a == "--pool-window" && i+1 < len(spec.extra) {
				d, err := time.ParseDuration(spec.extra[i+1])
				if err != nil {
					return nil, fmt.Errorf("--pool-window %q: %w", spec.extra[i+1], err)
				}
				window = d
			}
		}
		s, err := startInProcess(ctx, spec, window)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	s, err := b.startChild(ctx, spec, label)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// storeURL makes a fresh database for a PostgreSQL row, or says why the
// row cannot run.
func (b *bench) storeURL(ctx context.Context, st storeKind, purpose string) (string, error) {
	if st != pgStore {
		return "", nil
	}
	if b.pg == nil {
		return "", b.pgErr
	}
	return b.pg.create(ctx, purpose)
}

const mib = 1 << 20

// blockRows measures PUT then GET of 64 KiB blocks at each concurrency
// level through a real server on st, the raw store and the bare HTTP
// server side by side, and the server's memory at each level. With
// putOnly, only the writes.
func (b *bench) blockRows(ctx context.Context, st storeKind, extra []string, label string, putOnly bool) []Row {
	c := b.cfg
	var names []string
	for _, l := range c.levels {
		names = append(names, fmt.Sprintf("block PUT %s c=%d%s", st.name, l, label))
		if !putOnly {
			names = append(names, fmt.Sprintf("block GET %s c=%d%s", st.name, l, label))
		}
	}
	memName := fmt.Sprintf("server memory %s c=%d→%d%s", st.name, c.levels[0], c.levels[len(c.levels)-1], label)
	if !putOnly {
		names = append(names, memName)
	}
	skipAll := func(why string) []Row {
		rows := make([]Row, len(names))
		for i, n := range names {
			rows[i] = skipRow("block", n, why)
		}
		return rows
	}
	failAll := func(err error) []Row {
		rows := make([]Row, len(names))
		for i, n := range names {
			rows[i] = failRow("block", n, err)
		}
		return rows
	}
	ops := 2
	if putOnly {
		ops = 1
	}
	need := time.Duration(len(c.levels)*ops) * (4*c.duration + time.Second)
	if why, ok := b.budget(ctx, need); !ok {
		return skipAll(why)
	}
	dbURL, err := b.storeURL(ctx, st, "block")
	if err != nil {
		return skipAll(err.Error())
	}
	b.logf("block API on the %s store%s: levels %v", st.name, label, c.levels)
	srv, err := b.startBlockServer(ctx, serverSpec{store: dbURL, blockSize: blockSize, extra: append(append([]string(nil), c.serverArgs...), extra...)},
		"block-"+st.name+strings.NewReplacer(" ", "-", "(", "", ")", "").Replace(label))
	if err != nil {
		return failAll(err)
	}
	defer srv.cleanup()

	maxLevel := c.levels[len(c.levels)-1]
	for _, l := range c.levels {
		maxLevel = max(maxLevel, l)
	}
	pl := newPayloads(16, blockSize)
	var raw blockStore
	var setWorkers func(int)
	switch st {
	case embedded:
		dir, err := tempDir("rawbolt")
		if err != nil {
			return failAll(err)
		}
		defer os.RemoveAll(dir)
		rb, err := openRawBolt(dir, pl, 1)
		if err != nil {
			return failAll(err)
		}
		defer rb.close()
		raw, setWorkers = rb, rb.setWorkers
	case pgStore:
		// The raw table lives in a database of its own, so that the
		// server's tables and the raw one do not share a vacuum.
		rawURL, err := b.storeURL(ctx, st, "raw")
		if err != nil {
			return failAll(err)
		}
		rp, err := openRawPG(ctx, rawURL, pl)
		if err != nil {
			return failAll(err)
		}
		defer rp.close()
		raw, setWorkers = rp, func(int) {}
	}
	// The store alone, on data of its own.
	var direct *directStore
	{
		var fp bucketer.Fingerprint
		fillRandom(fp[:])
		params := blobstore.Params{BlockSize: blockSize, Fingerprint: fp}
		var s blobstore.Store
		switch st {
		case embedded:
			dir, err := tempDir("direct")
			if err != nil {
				return failAll(err)
			}
			defer os.RemoveAll(dir)
			s, err = bolt.Open(filepath.Join(dir, "blocks.db"), params)
			if err != nil {
				return failAll(fmt.Errorf("open the store alone: %w", err))
			}
		case pgStore:
			directURL, err := b.storeURL(ctx, st, "direct")
			if err != nil {
				return failAll(err)
			}
			if s, err = postgres.Open(ctx, directURL, params, postgres.Options{Logger: quietLogger()}); err != nil {
				return failAll(fmt.Errorf("open the store alone: %w", err))
			}
		}
		defer s.Close()
		direct = newDirectStore(s, pl, maxLevel)
	}
	ours := newHTTPBlocks(srv.baseURL(), b.hc, pl, maxLevel)
	bare := newHTTPBlocks(b.bare.url, b.hc, pl, maxLevel)
	fixed := wire.NewID()
	bare.fixedID = &fixed

	var rows []Row
	type memLevel struct {
		level     int
		rss, anon int64
	}
	var mems []memLevel
	for _, level := range c.levels {
		setWorkers(level)
		var sampler *memSampler
		if pid := srv.memPID(); pid != 0 {
			sampler = startMemSampler(pid)
		}
		opsList := []string{"PUT"}
		if !putOnly {
			opsList = append(opsList, "GET")
		}
		var levelRows []Row
		for _, op := range opsList {
			name := fmt.Sprintf("block %s %s c=%d%s", op, st.name, level, label)
			b.logf("  %s", name)
			vs := []variant{{"ours", ours.put}, {st.raw, raw.put}, {"bare HTTP", bare.put}, {"store alone", direct.put}}
			if op == "GET" {
				vs = []variant{{"ours", ours.get}, {st.raw, raw.get}, {"bare HTTP", bare.get}, {"store alone", direct.get}}
			}
			t, err := interleave(ctx, level, c.duration, c.rounds, vs)
			if err != nil {
				if sampler != nil {
					sampler.stop()
				}
				return append(rows, failAll(fmt.Errorf("%s: %w", name, err))[len(rows):]...)
			}
			levelRows = append(levelRows, blockRow(name, st, t))
		}
		if sampler != nil {
			rss, anon := sampler.stop()
			mems = append(mems, memLevel{level, rss, anon})
			for i := range levelRows {
				levelRows[i].Extra["server_peak_rss_mib"] = float64(rss) / mib
				levelRows[i].Extra["server_peak_anon_mib"] = float64(anon) / mib
				levelRows[i].Note += fmt.Sprintf("; server peak RSS %.0f MiB (anon %.0f MiB) over this level", float64(rss)/mib, float64(anon)/mib)
			}
		}
		rows = append(rows, levelRows...)
	}
	if err := srv.stop(); err != nil {
		rows = append(rows, failRow("block", "stop server "+st.name+label, err))
	}
	if putOnly {
		return rows
	}
	switch {
	case len(mems) >= 2:
		first, last := mems[0], mems[len(mems)-1]
		var per []string
		for _, m := range mems {
			per = append(per, fmt.Sprintf("c=%d: %.0f MiB (anon %.0f)", m.level, float64(m.rss)/mib, float64(m.anon)/mib))
		}
		rows = append(rows, Row{
			Group: "memory", Name: memName,
			Figure: float64(last.anon) / mib, Unit: "MiB anon",
			Baseline: float64(first.anon) / mib, BaselineName: fmt.Sprintf("at c=%d", first.level),
			Target: &Target{On: "ratio", Op: "<=", Value: 1.5},
			Note:   "peak anonymous RSS of the server (the mapped store file is left out: its pages count as they are read, whatever the load); peak RSS (VmHWM) per level: " + strings.Join(per, ", "),
		})
	case srv.memPID() == 0:
		rows = append(rows, skipRow("memory", memName, "-inprocess: the server shares this process, so its memory cannot be told apart"))
	default:
		rows = append(rows, skipRow("memory", memName, "needs at least two -levels"))
	}
	return rows
}

// blockRow turns the tallies of ours, the raw store, the bare server and
// the store alone into a row.
func blockRow(name string, st storeKind, t []tally) Row {
	mbps := func(x tally) float64 { return x.rate() * blockSize / mib }
	ours, raw, bare, alone := mbps(t[0]), mbps(t[1]), mbps(t[2]), mbps(t[3])
	ceiling := min(raw, bare)
	r := Row{
		Group: "block", Name: name, Figure: ours, Unit: "MiB/s",
		Baseline: raw, BaselineName: st.raw,
		Target: &Target{On: "ratio", Op: ">=", Value: 0.85},
		Extra: map[string]float64{
			"ours_ops_per_s": t[0].rate(), "raw_ops_per_s": t[1].rate(), "bare_http_ops_per_s": t[2].rate(), "store_alone_ops_per_s": t[3].rate(),
			"bare_http_mib_per_s": bare, "store_alone_mib_per_s": alone,
			"ours_over_bare_http": ours / bare, "ours_over_ceiling": ours / ceiling,
			"store_alone_over_raw": alone / raw, "ours_over_store_alone": ours / alone,
		},
		Note: fmt.Sprintf("bare HTTP %.0f MiB/s, store alone (in-process, no HTTP, no pool) %.0f MiB/s = %.2f× raw; ours/min(raw, bare HTTP) %.2f; rounds ours %s, raw %s",
			bare, alone, alone/raw, ours/ceiling, fmtRounds(t[0].rounds, blockSize), fmtRounds(t[1].rounds, blockSize)),
	}
	return r
}

func fmtRounds(rates []float64, size int) string {
	parts := make([]string, len(rates))
	for i, v := range rates {
		parts[i] = fmt.Sprintf("%.0f", v*float64(size)/mib)
	}
	return strings.Join(parts, "/")
}
