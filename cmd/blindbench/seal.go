package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// sealRows reports the seal's throughput and write amplification (issue
// 9) from the stores' own Go benchmarks, BenchmarkSeal and
// BenchmarkWritesDuringSeal (written once in blobstore/sealtest), run with
// go test from this module: each times the seal beside its raw baseline
// in the same run, interleaved (PostgreSQL: INSERT … SELECT … ORDER BY
// random() of the same rows; bbolt: one transaction rewriting them).
func (b *bench) sealRows(ctx context.Context, st storeKind) []Row {
	name := func(what string) string { return fmt.Sprintf("seal %s: %s", st.name, what) }
	names := []string{name("throughput"), name("bytes written per data byte"), name("median write latency during a seal")}
	all := func(f func(string) Row) []Row {
		var rows []Row
		for _, n := range names {
			rows = append(rows, f(n))
		}
		return rows
	}
	skip := func(why string) []Row { return all(func(n string) Row { return skipRow("seal", n, why) }) }
	if _, err := os.Stat("go.mod"); err != nil {
		return skip("run from the module's root (make bench): the seal rows run the stores' Go benchmarks")
	}
	if _, err := exec.LookPath("go"); err != nil {
		return skip("no go command: the seal rows run the stores' Go benchmarks")
	}
	pkg, env := "./blobstore/bolt/", os.Environ()
	if st == pgStore {
		if b.pgErr != nil {
			return skip(b.pgErr.Error())
		}
		pkg, env = "./blobstore/postgres/", append(env, "BLINDSTORE_TEST_POSTGRES="+b.cfg.postgres)
	}
	if why, ok := b.budget(ctx, 90*time.Second); !ok {
		return skip(why)
	}
	b.logf("seal on the %s store: go test -bench of %s", st.name, pkg)
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", "^(BenchmarkSeal|BenchmarkWritesDuringSeal)$",
		"-benchtime", strconv.Itoa(b.cfg.sealRounds)+"x", "-count", "1", pkg)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return all(func(n string) Row {
			return failRow("seal", n, fmt.Errorf("go test -bench %s: %v: %s", pkg, err, lastLines(out, 3)))
		})
	}
	m := benchMetrics(out)
	seal, wd := m["BenchmarkSeal"], m["BenchmarkWritesDuringSeal"]
	if seal == nil || wd == nil {
		return all(func(n string) Row {
			return failRow("seal", n, fmt.Errorf("go test -bench %s printed no seal figures: %s", pkg, lastLines(out, 3)))
		})
	}
	rawName, written := "raw rewrite (one bbolt transaction)", "written/byte"
	if st == pgStore {
		rawName, written = "raw INSERT … SELECT … ORDER BY random()", "WAL/byte"
	}
	tput := Row{Group: "seal", Name: names[0], Figure: seal["seal-MB/s"], Unit: "MB/s", Baseline: seal["raw-MB/s"], BaselineName: rawName,
		Ratio: seal["seal/raw"],
		Note:  fmt.Sprintf("%s: %d rounds of the same rows, seal and raw interleaved; median round %.2f×", pkg, b.cfg.sealRounds, seal["seal/raw-median-round"]),
		Extra: map[string]float64{"median_round_ratio": seal["seal/raw-median-round"]}}
	if st == pgStore {
		tput.Target = &Target{On: "ratio", Op: ">=", Value: 0.80}
	}
	amp := Row{Group: "seal", Name: names[1], Figure: seal["seal-"+written], Unit: "bytes/byte", Baseline: seal["raw-"+written], BaselineName: rawName,
		Note: "bytes the engine wrote (bbolt: to its file, zeroing of freed pages included; PostgreSQL: WAL) per byte of block data sealed"}
	lat := Row{Group: "seal", Name: names[2], Figure: wd["ms-median-write-during-seal"], Unit: "ms", Baseline: wd["ms-median-write"], BaselineName: "without a seal",
		Ratio:  wd["during/quiet"],
		Target: &Target{On: "ratio", Op: "<=", Value: 2},
		Note:   fmt.Sprintf("single-block writes through the store while seals run back to back (%.0f writes during seals)", wd["writes-during-seals"])}
	rows := []Row{tput, amp, lat}
	for i := range rows {
		rows[i].judge()
	}
	return rows
}

// benchMetrics parses go test -bench output: benchmark name (without
// the -N suffix) → unit → value.
func benchMetrics(out []byte) map[string]map[string]float64 {
	m := map[string]map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name, _, _ := strings.Cut(f[0], "-")
		vals := map[string]float64{}
		for i := 2; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				vals[f[i+1]] = v
			}
		}
		m[name] = vals
	}
	return m
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}
