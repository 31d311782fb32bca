package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// browserFigures is what web/app/bench/measure.ts --json prints: seconds
// per round of each side, the heaps' peaks during the large upload, and
// the app's gzipped size.
type browserFigures struct {
	Rounds        int       `json:"rounds"`
	Size          int64     `json:"size"`
	HeapSize      int64     `json:"heap_size"`
	BlindLogin    []float64 `json:"blind_login_s"`
	AppLogin      []float64 `json:"app_login_s"`
	BlindPut      []float64 `json:"blind_put_s"`
	AppPut        []float64 `json:"app_put_s"`
	BlindGet      []float64 `json:"blind_get_s"`
	AppGet        []float64 `json:"app_get_s"`
	PageHeapMax   float64   `json:"page_heap_max_bytes"`
	WorkerHeapMax float64   `json:"worker_heap_max_bytes"`
	HeapUpload    float64   `json:"heap_upload_s"`
	BundleGzip    float64   `json:"bundle_gzip_bytes"`
}

// browserRows run the browser app in Debian's headless Chromium against
// blind on one blindstored serve --web (web/app/bench/measure.ts): login,
// upload and download of a random file, the page's JS heap during a
// larger upload, and the bundle's size.
func (b *bench) browserRows(ctx context.Context) []Row {
	c := b.cfg
	names := []string{"app login (Argon2id in WebAssembly)", "app upload " + fmtBytes(c.webSize), "app download " + fmtBytes(c.webSize),
		"app page JS heap, " + fmtBytes(4*c.webSize) + " upload", "app bundle, gzip"}
	all := func(f func(name string) Row) []Row {
		rows := make([]Row, len(names))
		for i, n := range names {
			rows[i] = f(n)
		}
		return rows
	}
	skip := func(why string) []Row { return all(func(n string) Row { return skipRow("browser", n, why) }) }
	fail := func(err error) []Row { return all(func(n string) Row { return failRow("browser", n, err) }) }

	if !b.bins.has("blind") {
		return skip("blind CLI not built yet")
	}
	node := lookPath("node")
	if node == "" {
		return skip("node is not installed: apt-get install nodejs npm (Node.js 20 or later)")
	}
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		return skip("Chromium is not installed: apt-get install chromium")
	}
	appDir, err := filepath.Abs(filepath.Join(c.webDir, "app"))
	if err != nil {
		return fail(err)
	}
	for _, d := range []string{filepath.Join(appDir, ".."), appDir} {
		if _, err := os.Stat(filepath.Join(d, "node_modules", ".package-lock.json")); err != nil {
			return skip("the app's npm dependencies are not installed: run make app-test (or npm ci in web and web/app)")
		}
	}
	// 16 MiB/s for the three rounds of four passes and the large upload
	// (the app's slowest pass does about 20 on a two-core machine: the
	// whole row took 35 s at the default size), and a minute for logins
	// and start. At 2 MiB/s the estimate exceeded make bench's whole time
	// cap, and the row never ran by default.
	need := time.Duration((12*c.webSize+4*c.webSize)/(16<<20))*time.Second + time.Minute
	if why, ok := b.budget(ctx, need); !ok {
		return skip(why)
	}
	b.logf("browser: the app in Chromium against blind, %s, %d rounds", fmtBytes(c.webSize), 3)
	rctx, cancel := context.WithTimeout(ctx, need+5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(rctx, node, "--import", "tsx", "bench/measure.ts",
		fmt.Sprint(c.webSize>>20), fmt.Sprint(4*c.webSize>>20), "--json")
	cmd.Dir = appDir
	cmd.Env = append(os.Environ(), "BLINDSTORE_BIN="+b.bins.dir)
	out, err := cmd.Output()
	if err != nil {
		msg := err.Error()
		if ee, ok := err.(*exec.ExitError); ok {
			msg += ": " + oneLine(string(ee.Stderr))
		}
		return fail(fmt.Errorf("web/app/bench/measure.ts: %s", msg))
	}
	var f browserFigures
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &f); err != nil {
		return fail(fmt.Errorf("web/app/bench/measure.ts printed no figures: %v", err))
	}
	size := float64(f.Size) / mib
	rate := func(secs []float64) float64 { return size / medianSeconds(secs) }
	secs := func(xs []float64) string {
		p := make([]string, len(xs))
		for i, x := range xs {
			p[i] = fmt.Sprintf("%.2fs", x)
		}
		return strings.Join(p, ", ")
	}
	note := func(app, blind []float64) string {
		return fmt.Sprintf("medians of %d rounds: the app in headless Chromium %s; blind %s", f.Rounds, secs(app), secs(blind))
	}
	return []Row{
		{Group: "browser", Name: names[0], Figure: medianSeconds(f.AppLogin), Unit: "s", Baseline: medianSeconds(f.BlindLogin), BaselineName: "blind login",
			Target: &Target{On: "ratio", Op: "<=", Value: 3}, Note: note(f.AppLogin, f.BlindLogin) + "; the app timed in the page from the login form's submit to the file list shown (Argon2id in WebAssembly in the client's worker, the head and index read, the list drawn), blind from process start to exit"},
		{Group: "browser", Name: names[1], Figure: rate(f.AppPut), Unit: "MiB/s", Baseline: rate(f.BlindPut), BaselineName: "blind put",
			Target: &Target{On: "ratio", Op: ">=", Value: 0.3}, Note: note(f.AppPut, f.BlindPut)},
		{Group: "browser", Name: names[2], Figure: rate(f.AppGet), Unit: "MiB/s", Baseline: rate(f.BlindGet), BaselineName: "blind get",
			Target: &Target{On: "ratio", Op: ">=", Value: 0.3}, Note: note(f.AppGet, f.BlindGet) + "; saved to disk through the Service Worker"},
		{Group: "browser", Name: names[3], Figure: f.PageHeapMax / mib, Unit: "MiB",
			Target: &Target{On: "figure", Op: "<=", Value: 64},
			Extra:  map[string]float64{"worker_heap_max_mib": f.WorkerHeapMax / mib, "upload_s": f.HeapUpload},
			Note:   fmt.Sprintf("peak JSHeapUsedSize (DevTools Performance.getMetrics, every 100 ms) of the page; the client's worker peaked at %.1f MiB", f.WorkerHeapMax/mib)},
		{Group: "browser", Name: names[4], Figure: f.BundleGzip / 1024, Unit: "KiB",
			Target: &Target{On: "figure", Op: "<=", Value: 300}, Note: "internal/webapp/dist, each file gzipped at level 9, Argon2's WebAssembly included"},
	}
}

// medianSeconds is login.go's median over seconds as the script prints them.
func medianSeconds(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	ds := make([]time.Duration, len(xs))
	for i, x := range xs {
		ds[i] = time.Duration(x * float64(time.Second))
	}
	return median(ds).Seconds()
}
