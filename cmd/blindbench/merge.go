package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// mergeRows report the period merge from the stores' own Go benchmarks
// (written once in blobstore/sealtest), run with go test from this
// module: BenchmarkMerge times a merge of a period of 128 MiB sealed in
// four windows beside the raw engine rewriting the same rows
// (PostgreSQL: DELETE … RETURNING into INSERT … ORDER BY random() of one
// table, then VACUUM; bbolt: one transaction rewriting them), interleaved;
// BenchmarkWritesDuringMerge times single writes with and without a
// merge running; BenchmarkMergeAttack runs the store-copy attacker on a
// small store (10 users, 2 per seal window, whole-account renewals) and
// reports its advantage after the seals and after the merges.
func (b *bench) mergeRows(ctx context.Context, st storeKind) []Row {
	name := func(what string) string { return fmt.Sprintf("merge %s: %s", st.name, what) }
	names := []string{name("throughput"), name("median write latency during a merge"), name("attacker advantage after the merge"),
		name("attacker advantage after a seal, before the merge")}
	all := func(f func(string) Row) []Row {
		var rows []Row
		for _, n := range names {
			rows = append(rows, f(n))
		}
		return rows
	}
	skip := func(why string) []Row { return all(func(n string) Row { return skipRow("merge", n, why) }) }
	if _, err := os.Stat("go.mod"); err != nil {
		return skip("run from the module's root (make bench): the merge rows run the stores' Go benchmarks")
	}
	if _, err := exec.LookPath("go"); err != nil {
		return skip("no go command: the merge rows run the stores' Go benchmarks")
	}
	pkg, env := "./blobstore/bolt/", os.Environ()
	if st == pgStore {
		if b.pgErr != nil {
			return skip(b.pgErr.Error())
		}
		pkg, env = "./blobstore/postgres/", append(env, "BLINDSTORE_TEST_POSTGRES="+b.cfg.postgres)
	}
	if why, ok := b.budget(ctx, 180*time.Second); !ok {
		return skip(why)
	}
	b.logf("merge on the %s store: go test -bench of %s", st.name, pkg)
	run := func(bench string, rounds int) (map[string]map[string]float64, error) {
		cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", bench,
			"-benchtime", strconv.Itoa(rounds)+"x", "-count", "1", pkg)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("go test -bench %s: %v: %s", pkg, err, lastLines(out, 3))
		}
		return benchMetrics(out), nil
	}
	m, err := run("^(BenchmarkMerge|BenchmarkWritesDuringMerge)$", b.cfg.sealRounds)
	var ma map[string]map[string]float64
	if err == nil {
		ma, err = run("^BenchmarkMergeAttack$", 1)
	}
	if err == nil && (m["BenchmarkMerge"] == nil || m["BenchmarkWritesDuringMerge"] == nil || ma["BenchmarkMergeAttack"] == nil) {
		err = fmt.Errorf("go test -bench %s printed no merge figures", pkg)
	}
	if err != nil {
		return all(func(n string) Row { return failRow("merge", n, err) })
	}
	mg, wd, at := m["BenchmarkMerge"], m["BenchmarkWritesDuringMerge"], ma["BenchmarkMergeAttack"]
	rawName := "raw rewrite (one bbolt transaction)"
	if st == pgStore {
		rawName = "raw DELETE … RETURNING into INSERT … ORDER BY random(), VACUUM"
	}
	tput := Row{Group: "merge", Name: names[0], Figure: mg["merge-MB/s"], Unit: "MB/s", Baseline: mg["raw-MB/s"], BaselineName: rawName,
		Ratio:  mg["merge/raw"],
		Target: &Target{On: "ratio", Op: ">=", Value: 0.80},
		Note: fmt.Sprintf("%s: %d rounds of a period of 128 MiB sealed in four windows, merge and raw interleaved; median round %.2f×; %.3f bytes rewritten per byte stored",
			pkg, b.cfg.sealRounds, mg["merge/raw-median-round"], mg["bytes-per-byte-stored"]),
		Extra: map[string]float64{"median_round_ratio": mg["merge/raw-median-round"], "bytes_per_byte_stored": mg["bytes-per-byte-stored"]}}
	lat := Row{Group: "merge", Name: names[1], Figure: wd["ms-median-write-during-merge"], Unit: "ms", Baseline: wd["ms-median-write"], BaselineName: "without a merge",
		Ratio:  wd["during/quiet"],
		Target: &Target{On: "ratio", Op: "<=", Value: 2},
		Note:   fmt.Sprintf("single-block writes through the store while merges run (%.0f writes during merges)", wd["writes-during-merges"])}
	after := Row{Group: "merge", Name: names[2], Figure: at["advantage-after-merge"], Unit: "advantage", Baseline: at["chance-after-merge"], BaselineName: "chance level (labels shuffled)",
		Target: &Target{On: "figure", Op: "<=", Value: 0.02},
		Note:   fmt.Sprintf("internal/attack on a copy: 10 users, 2 per seal window, whole-account renewals; blocks of one period compared; %.3f bytes rewritten per byte stored", at["merge-bytes-per-byte-stored"])}
	before := Row{Group: "merge", Name: names[3], Figure: at["advantage-after-seal"], Unit: "advantage",
		Note:  fmt.Sprintf("the seal windows a copy shows before the merge (in the period of whole-account renewals: %.3f)", at["advantage-renewals-after-seal"]),
		Extra: map[string]float64{"renewals": at["advantage-renewals-after-seal"]}}
	rows := []Row{tput, lat, after, before}
	for i := range rows {
		rows[i].judge()
	}
	return rows
}
