package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// webRows puts and gets one random file with the TypeScript client in
// Node (web/bench/putget.mjs over the built package) and with blind, in
// interleaved rounds on one server, each side with its own saved session
// (so neither pays a login per command). The figures are the wall times of
// the commands, process start included on both sides.
func (b *bench) webRows(ctx context.Context) []Row {
	c := b.cfg
	size := fmtBytes(c.webSize)
	putName, getName := "web TypeScript put "+size, "web TypeScript get "+size
	both := func(f func(name string) Row) []Row { return []Row{f(putName), f(getName)} }
	skip := func(why string) []Row { return both(func(n string) Row { return skipRow("web", n, why) }) }
	fail := func(err error) []Row { return both(func(n string) Row { return failRow("web", n, err) }) }

	if !b.bins.has("blind") {
		return skip("blind CLI not built yet (cmd/blind does not build here)")
	}
	node := lookPath("node")
	npm := lookPath("npm")
	if node == "" || npm == "" {
		return skip("node and npm are not installed: apt-get install nodejs npm (Node.js 20 or later)")
	}
	webDir, err := filepath.Abs(c.webDir)
	if err != nil {
		return fail(err)
	}
	if _, err := os.Stat(filepath.Join(webDir, "node_modules", ".package-lock.json")); err != nil {
		return skip("the TypeScript client's dependencies are not installed: run make web-test (or cd " + c.webDir + " && npm ci)")
	}
	// A pessimistic 5 MiB/s for each of the four passes, per round, and the build.
	need := time.Duration(c.fileRounds)*time.Duration(4*c.webSize/(5<<20))*time.Second + 30*time.Second
	if why, ok := b.budget(ctx, need); !ok {
		return skip(why)
	}
	build := exec.CommandContext(ctx, npm, "run", "--silent", "build")
	build.Dir = webDir
	if out, err := build.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("building the TypeScript client: %v: %s", err, oneLine(string(out))))
	}
	b.logf("web: %s through the TypeScript client in Node and blind, %d rounds", size, c.fileRounds)
	acc, err := b.newAccount(ctx, "web", "webbench")
	if err != nil {
		return fail(err)
	}
	defer acc.close()
	work, env, blind := acc.work, acc.env, acc.blind
	srv := acc.srv
	script := filepath.Join(webDir, "bench", "putget.mjs")
	session := filepath.Join(work, "ts-session.json")
	ts := func(args ...string) (cmdStat, error) {
		return runTimed(ctx, env, work, node, append([]string{script}, args...)...)
	}
	if _, err := ts("login", srv.url, "webbench", session); err != nil {
		return fail(fmt.Errorf("TypeScript login: %w", err))
	}

	var tsPut, tsGet, blindPut, blindGet timedSide
	for round := 0; round < c.fileRounds; round++ {
		in := filepath.Join(work, fmt.Sprintf("in-%d.bin", round))
		sum, err := writeRandomFile(in, c.webSize)
		if err != nil {
			return fail(err)
		}
		tsName, blindName := fmt.Sprintf("ts-%d", round), fmt.Sprintf("blind-%d", round)
		tsOut, blindOut := filepath.Join(work, fmt.Sprintf("ts-%d.out", round)), filepath.Join(work, fmt.Sprintf("blind-%d.out", round))
		steps := []timedStep{
			{&tsPut, func() (cmdStat, error) { return ts("put", session, tsName, in) }},
			{&blindPut, func() (cmdStat, error) { return blind("put", in, "--as", blindName) }},
			{&tsGet, func() (cmdStat, error) {
				st, err := ts("get", session, tsName, tsOut)
				if err == nil {
					err = checkFile(tsOut, c.webSize, sum)
				}
				return st, err
			}},
			{&blindGet, func() (cmdStat, error) {
				st, err := blind("get", blindName, "-o", blindOut)
				if err == nil {
					err = checkFile(blindOut, c.webSize, sum)
				}
				return st, err
			}},
		}
		if err := runRound(round, steps, false); err != nil {
			return fail(err)
		}
		os.Remove(in)
		os.Remove(tsOut)
		os.Remove(blindOut)
	}
	total := float64(c.webSize) * float64(c.fileRounds) / mib
	mk := func(name string, ours, base timedSide, baseName string) Row {
		return Row{
			Group: "web", Name: name, Figure: ours.rate(total), Unit: "MiB/s",
			Baseline: base.rate(total), BaselineName: baseName,
			Target: &Target{On: "ratio", Op: ">=", Value: 0.5},
			Extra:  map[string]float64{"client_peak_rss_mib": float64(ours.rss) / mib, "baseline_peak_rss_mib": float64(base.rss) / mib},
			Note: fmt.Sprintf("wall time of the command, process start included (node %s: %s, peak RSS %.0f MiB; %s: %s, peak RSS %.0f MiB); in Node the TypeScript client seals and opens blocks with node:crypto's ChaCha20-Poly1305 (OpenSSL) and sends its requests over plain sockets (its own HTTP/1.1 client, web/src/nodehttp.ts), reading blocks several a request where the server offers POST /v1/read, in one JavaScript thread",
				nodeVersion(node), strings.Join(ours.times, ", "), float64(ours.rss)/mib, baseName, strings.Join(base.times, ", "), float64(base.rss)/mib),
		}
	}
	return []Row{
		mk(putName, tsPut, blindPut, "blind put"),
		mk(getName, tsGet, blindGet, "blind get"),
	}
}

func nodeVersion(node string) string {
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}
