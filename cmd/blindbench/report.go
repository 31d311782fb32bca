package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/blindstore/blindstore/internal/atomicfile"
)

// Verdicts of a row.
const (
	verdictPass = "PASS" // met its target
	verdictMiss = "MISS" // measured, and short of its target
	verdictInfo = "INFO" // measured, no target
	verdictSkip = "SKIP" // could not run here; Note says why and what to do
	verdictFail = "FAIL" // tried and broke; Note holds the error
)

// Target is what a row must reach. On "ratio" it bounds Row.Ratio, on
// "figure" Row.Figure.
type Target struct {
	On    string  `json:"on"` // "ratio" or "figure"
	Op    string  `json:"op"` // ">=" or "<="
	Value float64 `json:"value"`
}

func (t *Target) met(r *Row) bool {
	v := r.Figure
	if t.On == "ratio" {
		v = r.Ratio
	}
	if t.Op == "<=" {
		return v <= t.Value
	}
	return v >= t.Value
}

// score is how far a row got towards its target, 1 being exactly there
// and more being better, so rows of different units share one chart.
func (t *Target) score(r *Row) float64 {
	v := r.Figure
	if t.On == "ratio" {
		v = r.Ratio
	}
	if t.Op == "<=" {
		if v <= 0 {
			return math.Inf(1)
		}
		return t.Value / v
	}
	return v / t.Value
}

func (t *Target) String() string {
	if t == nil {
		return "—"
	}
	op := "≥"
	if t.Op == "<=" {
		op = "≤"
	}
	if t.On == "ratio" {
		return op + trimFloat(t.Value) + "×"
	}
	return op + trimFloat(t.Value)
}

// Row is one line of the table and of the JSON.
type Row struct {
	Group        string  `json:"group"` // block, memory, renew, purge, files, login
	Name         string  `json:"name"`
	Figure       float64 `json:"figure,omitempty"`
	Unit         string  `json:"unit,omitempty"`
	Baseline     float64 `json:"baseline,omitempty"`
	BaselineName string  `json:"baseline_name,omitempty"`
	Ratio        float64 `json:"ratio,omitempty"` // Figure / Baseline
	Target       *Target `json:"target,omitempty"`
	Verdict      string  `json:"verdict"`
	Note         string  `json:"note,omitempty"`
	// Extra holds the figures behind the row (per round rates, bare HTTP,
	// memory), for whoever digs into the JSON.
	Extra map[string]float64 `json:"extra,omitempty"`
}

// judge sets Ratio from Figure and Baseline and the verdict from Target.
func (r *Row) judge() {
	if r.Verdict == verdictSkip || r.Verdict == verdictFail {
		return
	}
	if r.Baseline > 0 && r.Ratio == 0 {
		r.Ratio = r.Figure / r.Baseline
	}
	switch {
	case r.Target == nil:
		r.Verdict = verdictInfo
	case r.Target.On == "ratio" && r.Baseline <= 0:
		r.Verdict = verdictInfo
	case r.Target.met(r):
		r.Verdict = verdictPass
	default:
		r.Verdict = verdictMiss
	}
}

func skipRow(group, name, why string) Row {
	return Row{Group: group, Name: name, Verdict: verdictSkip, Note: why}
}

func failRow(group, name string, err error) Row {
	return Row{Group: group, Name: name, Verdict: verdictFail, Note: err.Error()}
}

// Report is the whole run, as written to JSON.
type Report struct {
	Started  time.Time      `json:"started"`
	Finished time.Time      `json:"finished"`
	Host     map[string]any `json:"host"`
	Config   map[string]any `json:"config"`
	Rows     []Row          `json:"rows"`
}

func newReport(c *config, started time.Time) *Report {
	host, _ := os.Hostname()
	return &Report{
		Started: started,
		Host: map[string]any{
			"cpus": runtime.NumCPU(), "go": runtime.Version(), "os": runtime.GOOS, "arch": runtime.GOARCH, "hostname": host,
		},
		Config: map[string]any{
			"duration_s": c.duration.Seconds(), "rounds": c.rounds, "quick": c.quick, "levels": c.levels,
			"inprocess": c.inProcess, "server_args": c.serverArgs,
			"renew_blocks": c.renewBlocks, "renew_block_size": c.renewBlockSize, "renew_period_s": c.renewPeriod.Seconds(),
			"renew_senders": c.renewSenders, "file_bytes": c.fileSize, "file_rounds": c.fileRounds, "login_files": c.loginFiles, "login_build_s": c.loginBuild.Seconds(),
			"login_period_s": c.loginPeriod.Seconds(), "scale_files": c.scaleFiles, "scale_build_s": c.scaleBuild.Seconds(),
			"peer_blocks": c.peerBlocks,
		},
	}
}

func (r *Report) add(rows ...Row) {
	for i := range rows {
		rows[i].judge()
	}
	r.Rows = append(r.Rows, rows...)
}

func (r *Report) count(verdict string) int {
	if r == nil {
		return 0
	}
	n := 0
	for _, row := range r.Rows {
		if row.Verdict == verdict {
			n++
		}
	}
	return n
}

// write stores the report as bench-<timestamp>.json and .png in dir, and
// a copy of the JSON as latest.json, and returns the paths written.
func (r *Report) write(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("results directory: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode results: %w", err)
	}
	b = append(b, '\n')
	stamp := r.Started.UTC().Format("20060102T150405Z")
	base := filepath.Join(dir, "bench-"+stamp)
	var paths []string
	for _, f := range []struct {
		path string
		data func() ([]byte, error)
	}{
		{base + ".json", func() ([]byte, error) { return b, nil }},
		{base + ".png", func() ([]byte, error) { return drawChart(r) }},
		{filepath.Join(dir, "latest.json"), func() ([]byte, error) { return b, nil }},
	} {
		data, err := f.data()
		if err != nil {
			return paths, err
		}
		if err := atomicfile.WriteFile(f.path, data, 0o644); err != nil {
			return paths, err
		}
		paths = append(paths, f.path)
	}
	return paths, nil
}

// printTable prints the rows: figure, unit, baseline, ratio, target and
// verdict, with the note that says what the row measured or why it did
// not run.
func printTable(w io.Writer, r *Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "row\tfigure\tunit\tbaseline\tratio\ttarget\tverdict\tnote")
	for _, row := range r.Rows {
		fig, base, ratio := "—", "—", "—"
		if row.Verdict != verdictSkip && row.Verdict != verdictFail {
			fig = formatFigure(row.Figure)
			if row.Baseline > 0 {
				base = formatFigure(row.Baseline) + " " + row.BaselineName
			}
			if row.Ratio > 0 {
				ratio = fmt.Sprintf("%.2f×", row.Ratio)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			row.Name, fig, row.Unit, base, ratio, row.Target.String(), row.Verdict, oneLine(row.Note))
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d PASS, %d MISS, %d INFO, %d SKIP, %d FAIL in %s\n",
		r.count(verdictPass), r.count(verdictMiss), r.count(verdictInfo), r.count(verdictSkip), r.count(verdictFail),
		r.Finished.Sub(r.Started).Round(time.Second))
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

func formatFigure(v float64) string {
	switch a := math.Abs(v); {
	case a >= 10000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}
