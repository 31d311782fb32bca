package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blindstore/blindstore/internal/pgtest"
	"github.com/blindstore/blindstore/internal/testenv"
)

// TestQuickBench runs the whole bench in -quick mode against real
// blindstored and blind processes, real stores and, where installed,
// restic: every row must either measure something or say why it could
// not, and the JSON, the PNG and the table must agree.
func TestQuickBench(t *testing.T) {
	bin := t.TempDir()
	// Without -race: the children are what is measured.
	for _, name := range []string{"blindstored", "blind"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(bin, name), "github.com/blindstore/blindstore/cmd/"+name).CombinedOutput()
		if err != nil {
			if name == "blind" {
				t.Logf("blind does not build; its rows must say so: %s", firstLine(string(out)))
				continue
			}
			t.Fatalf("go build %s: %v\n%s", name, err, out)
		}
	}
	pg := os.Getenv("BLINDSTORE_BENCH_POSTGRES")
	if pg == "" {
		pg = pgtest.ServerURL()
	}
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"-quick", "-bin", bin, "-out", out, "-postgres", pg}, &stdout, &stderr)
	t.Logf("table:\n%s", stdout.String())
	if code != 0 {
		t.Fatalf("blindbench -quick exited %d:\n%s", code, stderr.String())
	}

	raw, err := os.ReadFile(filepath.Join(out, "latest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("latest.json: %v", err)
	}
	if !rep.Finished.After(rep.Started) {
		t.Errorf("finished %v is not after started %v", rep.Finished, rep.Started)
	}
	groups := map[string]int{}
	for _, r := range rep.Rows {
		groups[r.Group]++
		if !strings.Contains(stdout.String(), r.Name) {
			t.Errorf("row %q is in the JSON but not in the table", r.Name)
		}
		switch r.Verdict {
		case verdictSkip:
			if r.Note == "" {
				t.Errorf("row %q is skipped without a reason", r.Name)
			}
			if strings.Contains(r.Note, "PostgreSQL") && strings.Contains(r.Note, "not reachable") && testenv.Required() {
				t.Errorf("row %q skipped, but services are required here: %s", r.Name, r.Note)
			}
		case verdictPass, verdictMiss, verdictInfo:
			// A time beyond a baseline (process start, Argon2id) is a
			// difference clamped at zero: a command as quick as the
			// baseline, as an ls of 50 files on a quiet machine is,
			// measures 0, which is a figure and not a row that measured
			// nothing.
			difference := strings.Contains(r.Unit, " beyond ")
			if !(r.Figure > 0 || difference && r.Figure == 0) || math.IsInf(r.Figure, 0) || r.Unit == "" {
				t.Errorf("row %q measured %v %q", r.Name, r.Figure, r.Unit)
			}
			if r.Baseline > 0 && math.Abs(r.Ratio-r.Figure/r.Baseline) > 1e-9*r.Ratio {
				t.Errorf("row %q: ratio %v is not figure/baseline %v/%v", r.Name, r.Ratio, r.Figure, r.Baseline)
			}
			if r.Verdict != verdictInfo && (r.Target == nil || r.Target.met(&r) != (r.Verdict == verdictPass)) {
				t.Errorf("row %q: verdict %s does not follow its target %v", r.Name, r.Verdict, r.Target)
			}
		default:
			t.Errorf("row %q: verdict %s: %s", r.Name, r.Verdict, r.Note)
		}
	}
	levels := 2 // -quick runs 1 and 4 clients
	if got, want := groups["block"], 2*(2*levels)+2*levels; got != want {
		t.Errorf("%d block rows, want %d (PUT and GET per level and store, and PUT without the pool window)", got, want)
	}
	for _, g := range []string{"memory", "peer", "renew", "purge", "files", "login", "edit", "index", "cache"} {
		if groups[g] == 0 {
			t.Errorf("no %s row", g)
		}
	}

	stamp := rep.Started.UTC().Format("20060102T150405Z")
	f, err := os.Open(filepath.Join(out, "bench-"+stamp+".png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("chart: %v", err)
	}
	if b := img.Bounds(); b.Dx() != chartWidth || b.Dy() < scoreExtraH+scoreRowH+peerH {
		t.Errorf("chart is %v", b)
	}
	same, err := os.ReadFile(filepath.Join(out, "bench-"+stamp+".json"))
	if err != nil || !bytes.Equal(same, raw) {
		t.Errorf("bench-%s.json differs from latest.json (%v)", stamp, err)
	}
}

func TestTargets(t *testing.T) {
	cases := []struct {
		row   Row
		want  string
		score float64
	}{
		{Row{Figure: 90, Baseline: 100, Target: &Target{On: "ratio", Op: ">=", Value: 0.85}}, verdictPass, 0.9 / 0.85},
		{Row{Figure: 80, Baseline: 100, Target: &Target{On: "ratio", Op: ">=", Value: 0.85}}, verdictMiss, 0.8 / 0.85},
		{Row{Figure: 80, Target: &Target{On: "ratio", Op: ">=", Value: 0.85}}, verdictInfo, 0},
		{Row{Figure: 60000, Target: &Target{On: "figure", Op: ">=", Value: 50000}}, verdictPass, 1.2},
		{Row{Figure: 50, Target: &Target{On: "figure", Op: "<=", Value: 100}}, verdictPass, 2},
		{Row{Figure: 200, Target: &Target{On: "figure", Op: "<=", Value: 100}}, verdictMiss, 0.5},
		{Row{Figure: 3, Baseline: 2, Target: &Target{On: "ratio", Op: "<=", Value: 1.5}}, verdictPass, 1},
		{Row{Figure: 7}, verdictInfo, 0},
		{skipRow("g", "n", "why"), verdictSkip, 0},
	}
	for i, c := range cases {
		r := c.row
		r.judge()
		if r.Verdict != c.want {
			t.Errorf("case %d: verdict %s, want %s", i, r.Verdict, c.want)
		}
		if c.score != 0 {
			if s := r.Target.score(&r); math.Abs(s-c.score) > 1e-9 {
				t.Errorf("case %d: score %v, want %v", i, s, c.score)
			}
		}
	}
}

func TestQuickFlags(t *testing.T) {
	c, err := parseFlags([]string{"-quick", "-duration", "1s"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.duration != time.Second {
		t.Errorf("-quick overrode an explicit -duration: %v", c.duration)
	}
	if c.renewBlocks >= 100000 || c.fileSize >= 256<<20 || len(c.levels) != 2 {
		t.Errorf("-quick left full sizes: %d blocks, %d bytes, levels %v", c.renewBlocks, c.fileSize, c.levels)
	}
	if c.scaleFiles >= 100000 || c.loginPeriod >= 20*time.Second {
		t.Errorf("-quick left full sizes: %d scale files, login period %v", c.scaleFiles, c.loginPeriod)
	}
	for _, bad := range [][]string{{"-levels", "0"}, {"-rows", "nope"}, {"-renew-period", "1500ms"}, {"-login-period", "1500ms"}, {"-scale-files", "0"}, {"extra"}} {
		if _, err := parseFlags(bad, &bytes.Buffer{}); err == nil {
			t.Errorf("%v: accepted", bad)
		}
	}
}

func TestConnectPGRefusesRemoteHosts(t *testing.T) {
	_, err := connectPG(context.Background(), "postgres://u:secret@192.0.2.1:5432/db")
	if err == nil || !strings.Contains(err.Error(), "loopback") || strings.Contains(err.Error(), "secret") {
		t.Errorf("connectPG to a remote host: %v", err)
	}
}

func TestMemStatusOfSelf(t *testing.T) {
	m, err := readMemStatus(os.Getpid())
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	if m.rss <= 0 || m.hwm < m.rss || m.anon <= 0 || m.anon > m.rss {
		t.Errorf("implausible memory of this process: %+v", m)
	}
}

func TestParseWrk(t *testing.T) {
	out := "Running 1s test @ http://127.0.0.1:1\n  2 threads and 4 connections\nBLINDBENCH 1200 1000000 78643200 2500 0\nRequests/sec:   1200.00\n"
	r, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.reqPerSec() != 1200 || r.mibPerSec() != 75 || r.p99 != 2500*time.Microsecond {
		t.Errorf("parsed %+v: %v req/s, %v MiB/s", r, r.reqPerSec(), r.mibPerSec())
	}
	for _, bad := range []string{"no figures here", "BLINDBENCH 10 1000000 655360 10 3", "BLINDBENCH 0 1000000 0 0 0", "BLINDBENCH x 1 1 1 1"} {
		if _, err := parseWrk(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}
