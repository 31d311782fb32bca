// Command blindbench measures blindstore against the limits of what it is
// built on, and against restic, in one bounded run: `make bench`.
//
// Every figure that has a baseline is measured side by side with it in
// the same run, in interleaved rounds, because the machine is shared and
// absolute rates drift: the block API through a real blindstored against
// the raw store doing the same work in-process (bbolt, pgx) and against a
// bare loopback HTTP server; blind put/get against restic backup/restore
// to rclone serve restic. It prints a table and writes the same figures as
// JSON and as a PNG chart to the results directory.
//
// It must only ever talk to loopback addresses, bound every loop in count
// and time, drop the PostgreSQL databases it creates, and never print
// block IDs, proofs or ETags (the figures are aggregates).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// defaultPostgres is the local server the development machines and CI run.
const defaultPostgres = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// config is the parsed command line.
type config struct {
	duration   time.Duration // measured time per variant, per level
	rounds     int
	maxTotal   time.Duration
	quick      bool
	out        string
	bin        string
	postgres   string
	levels     []int
	rows       map[string]bool
	inProcess  bool
	serverArgs []string

	renewBlocks    int
	renewBlockSize int
	renewPeriod    time.Duration
	renewSenders   int

	fileSize    int64
	fileRounds  int
	webSize     int64  // bytes of the web row's file
	webDir      string // the TypeScript client's package
	loginFiles  int
	loginBuild  time.Duration
	loginPeriod time.Duration
	scaleFiles  int
	scaleBuild  time.Duration
	syncFiles   int
	// webdavFiles and webdavUploadSize shape the webdav rows.
	webdavFiles      int
	webdavUploadSize int64
	sealRounds       int
	peerBlocks       int

	cpuProfile    string
	memProfile    string
	serverProfile string
	clientProfile string
}

var allRows = []string{"block", "peer", "renew", "purge", "seal", "files", "web", "browser", "login", "edit", "scale", "sync", "webdav", "merge"}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("blindbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &config{}
	fs.DurationVar(&c.duration, "duration", 1500*time.Millisecond, "measured time of each variant (ours, raw store, bare HTTP) at each concurrency level, split over -rounds")
	fs.IntVar(&c.rounds, "rounds", 3, "interleaved rounds per comparison")
	fs.DurationVar(&c.maxTotal, "max-total", 8*time.Minute, "cap on the whole run: rows that would start after it are skipped and say so")
	fs.BoolVar(&c.quick, "quick", false, "smoke run of every row in a few seconds (tiny sizes; the figures mean little)")
	fs.StringVar(&c.out, "out", "results", "`directory` for bench-<timestamp>.json, .png and latest.json")
	fs.StringVar(&c.bin, "bin", "", "`directory` holding blindstored (and blind); empty builds them from this module into a temporary directory")
	pg := os.Getenv("BLINDSTORE_BENCH_POSTGRES")
	if pg == "" {
		pg = defaultPostgres
	}
	fs.StringVar(&c.postgres, "postgres", pg, "PostgreSQL `URL` whose role may CREATE DATABASE (env BLINDSTORE_BENCH_POSTGRES); its rows are skipped when it is not reachable")
	levels := fs.String("levels", "1,4,16,64", "concurrent clients of the block API rows")
	rows := fs.String("rows", strings.Join(allRows, ","), "rows to run: "+strings.Join(allRows, ","))
	fs.BoolVar(&c.inProcess, "inprocess", false, "serve the block API rows from this process (as blindstored serve does) instead of a blindstored child, so -cpuprofile covers the server; no server memory figures then")
	serverArgs := fs.String("server-args", "", "extra flags for every blindstored serve, space separated")
	fs.IntVar(&c.renewBlocks, "renew-blocks", 100000, "blocks of the account the renew and purge rows use")
	fs.IntVar(&c.renewBlockSize, "renew-block-size", 4096, "block size of the renew and purge rows (small, to keep filling the account quick)")
	fs.DurationVar(&c.renewPeriod, "renew-period", 5*time.Second, "period of the server of the renew row: short, so that a boundary comes soon, and long enough that the account fills within R-2 periods on a loaded machine")
	fs.IntVar(&c.renewSenders, "renew-senders", 4, "concurrent renew requests")
	fs.Int64Var(&c.fileSize, "file-size", 256<<20, "`bytes` of the random file of the files row")
	fs.IntVar(&c.fileRounds, "file-rounds", 2, "rounds of the files row (a fresh random file each)")
	fs.Int64Var(&c.webSize, "web-size", 64<<20, "`bytes` of the random file of the web row (the TypeScript client in Node against blind)")
	fs.StringVar(&c.webDir, "web", "web", "`directory` of the TypeScript client (its node_modules installed) for the web row; the browser row runs the app in its app/ folder")
	fs.IntVar(&c.loginFiles, "login-files", 10000, "files in the account of the login row")
	fs.DurationVar(&c.loginBuild, "login-build", time.Minute, "most time spent building the account of the login row")
	fs.DurationVar(&c.loginPeriod, "login-period", 20*time.Second, "period of the servers of the login and scale rows: short, so that the first login of a period is measured within the row, and long enough that the account is built within R-2 periods")
	fs.IntVar(&c.scaleFiles, "scale-files", 100000, "files in the account of the scale row (it measures a one-file change and a login in a large account)")
	fs.DurationVar(&c.scaleBuild, "scale-build", 3*time.Minute, "most time spent building the account of the scale row")
	fs.IntVar(&c.syncFiles, "sync-files", 10000, "files in the folder of the sync row (it checks that an unchanged folder syncs within 2 s)")
	fs.IntVar(&c.webdavFiles, "webdav-files", 10000, "small files the webdav row copies in with rclone (and with blind put, its baseline)")
	fs.Int64Var(&c.webdavUploadSize, "webdav-upload-size", 256<<20, "`bytes` of each of the 8 concurrent uploads of the webdav memory row")
	fs.IntVar(&c.peerBlocks, "peer-blocks", 1000, "random blocks that nginx and blindstored serve in the peer row (wrk reads them at random)")
	fs.IntVar(&c.sealRounds, "seal-rounds", 3, "rounds of the seal and merge benchmarks (each seals or merges 128 MiB beside its raw baseline)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of this process to `file`")
	fs.StringVar(&c.memProfile, "memprofile", "", "write a heap profile of this process to `file` at the end")
	fs.StringVar(&c.serverProfile, "server-profile", "", "`directory` for CPU and heap profiles of every blindstored the bench starts (through its --admin-listen pprof on loopback): LABEL-cpu-NNN.pb.gz slices and LABEL-heap.pb.gz")
	fs.StringVar(&c.clientProfile, "client-profile", "", "`directory` for CPU profiles of the blind commands of the files row (through BLIND_CPUPROFILE): files-put-N.pb.gz, files-get-N.pb.gz")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", strings.Join(fs.Args(), " "))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if c.quick {
		// Each default is replaced only when the flag was not given.
		quick := map[string]func(){
			"duration":           func() { c.duration = 100 * time.Millisecond },
			"rounds":             func() { c.rounds = 1 },
			"levels":             func() { *levels = "1,4" },
			"renew-blocks":       func() { c.renewBlocks = 2000 },
			"renew-period":       func() { c.renewPeriod = time.Second },
			"file-size":          func() { c.fileSize = 4 << 20 },
			"file-rounds":        func() { c.fileRounds = 1 },
			"login-files":        func() { c.loginFiles = 50 },
			"login-build":        func() { c.loginBuild = 20 * time.Second },
			"login-period":       func() { c.loginPeriod = 3 * time.Second },
			"scale-files":        func() { c.scaleFiles = 300 },
			"scale-build":        func() { c.scaleBuild = 20 * time.Second },
			"sync-files":         func() { c.syncFiles = 200 },
			"webdav-files":       func() { c.webdavFiles = 200 },
			"webdav-upload-size": func() { c.webdavUploadSize = 16 << 20 },
			"seal-rounds":        func() { c.sealRounds = 1 },
			"peer-blocks":        func() { c.peerBlocks = 64 },
			"max-total":          func() { c.maxTotal = 2 * time.Minute },
		}
		for name, f := range quick {
			if !set[name] {
				f()
			}
		}
	}
	for _, s := range strings.Split(*levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 256 {
			return nil, fmt.Errorf("-levels: %q is not a count of clients between 1 and 256", s)
		}
		c.levels = append(c.levels, n)
	}
	c.rows = map[string]bool{}
	for _, s := range strings.Split(*rows, ",") {
		s = strings.TrimSpace(s)
		ok := false
		for _, r := range allRows {
			ok = ok || r == s
		}
		if !ok {
			return nil, fmt.Errorf("-rows: unknown row %q (want some of %s)", s, strings.Join(allRows, ","))
		}
		c.rows[s] = true
	}
	if *serverArgs != "" {
		c.serverArgs = strings.Fields(*serverArgs)
	}
	switch {
	case c.duration <= 0 || c.duration > 10*time.Minute:
		return nil, errors.New("-duration must be in (0, 10m]")
	case c.rounds < 1 || c.rounds > 20:
		return nil, errors.New("-rounds must be 1 to 20")
	case c.maxTotal <= 0:
		return nil, errors.New("-max-total must be positive")
	case c.renewBlocks < 1 || c.renewBlocks > 10_000_000:
		return nil, errors.New("-renew-blocks must be 1 to 10,000,000")
	case c.renewPeriod < time.Second || c.renewPeriod%time.Second != 0:
		return nil, errors.New("-renew-period must be a whole number of seconds, at least 1s")
	case c.renewSenders < 1 || c.renewSenders > 64:
		return nil, errors.New("-renew-senders must be 1 to 64")
	case c.fileSize < 1 || c.fileSize > 16<<30:
		return nil, errors.New("-file-size must be 1 byte to 16 GiB")
	case c.fileRounds < 1 || c.fileRounds > 10:
		return nil, errors.New("-file-rounds must be 1 to 10")
	case c.loginFiles < 1 || c.loginFiles > 1_000_000:
		return nil, errors.New("-login-files must be 1 to 1,000,000")
	case c.loginBuild <= 0:
		return nil, errors.New("-login-build must be positive")
	case c.loginPeriod < time.Second || c.loginPeriod%time.Second != 0:
		return nil, errors.New("-login-period must be a whole number of seconds, at least 1s")
	case c.scaleFiles < 1 || c.scaleFiles > 1_000_000:
		return nil, errors.New("-scale-files must be 1 to 1,000,000")
	case c.scaleBuild <= 0:
		return nil, errors.New("-scale-build must be positive")
	case c.webdavFiles < 1 || c.webdavFiles > 1_000_000:
		return nil, errors.New("-webdav-files must be 1 to 1,000,000")
	case c.webdavUploadSize < 1 || c.webdavUploadSize > 16<<30:
		return nil, errors.New("-webdav-upload-size must be 1 byte to 16 GiB")
	case c.peerBlocks < 1 || c.peerBlocks > 100_000:
		return nil, errors.New("-peer-blocks must be 1 to 100,000")
	}
	return c, nil
}

// run is the whole program; main only wires it to the process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "blindbench: %v\n", err)
		return 2
	}
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "blindbench: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "blindbench: cpu profile: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	b := &bench{cfg: c, log: stderr, started: time.Now()}
	ctx, cancel := context.WithDeadline(ctx, b.started.Add(c.maxTotal))
	defer cancel()
	rep, err := b.runAll(ctx)
	if c.memProfile != "" {
		runtime.GC()
		if f, ferr := os.Create(c.memProfile); ferr == nil {
			if werr := pprof.WriteHeapProfile(f); werr != nil {
				fmt.Fprintf(stderr, "blindbench: heap profile: %v\n", werr)
			}
			f.Close()
		} else {
			fmt.Fprintf(stderr, "blindbench: %v\n", ferr)
		}
	}
	if rep != nil {
		printTable(stdout, rep)
		paths, werr := rep.write(c.out)
		if werr != nil {
			fmt.Fprintf(stderr, "blindbench: %v\n", werr)
			return 1
		}
		fmt.Fprintf(stdout, "\nwrote %s\n", strings.Join(paths, ", "))
	}
	if err != nil {
		fmt.Fprintf(stderr, "blindbench: %v\n", err)
		return 1
	}
	if n := rep.count(verdictFail); n > 0 {
		fmt.Fprintf(stderr, "blindbench: %d rows failed (see their notes)\n", n)
		return 1
	}
	return 0
}
