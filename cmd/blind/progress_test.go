package main

import (
	"bytes"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var rateRE = regexp.MustCompile(`([0-9.]+) ([kMGTP]?B)/s`)

// rates returns every transfer rate the bar drew, in bytes per second.
func rates(t *testing.T, out string) []float64 {
	t.Helper()
	unit := map[string]float64{"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "PB": 1e15}
	var r []float64
	for _, m := range rateRE.FindAllStringSubmatch(out, -1) {
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatal(err)
		}
		r = append(r, v*unit[m[2]])
	}
	return r
}

// lastFrame returns what the terminal shows at the end: the text after
// the last carriage return of the last non-empty line.
func lastFrame(out string) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	l := lines[len(lines)-1]
	if i := strings.LastIndex(l, "\r"); i >= 0 {
		l = l[i+1:]
	}
	return strings.TrimSpace(l)
}

// The bar never shows a rate faster than the work went (its clock starts
// with the work, not at the first sample, which comes only after the
// first blocks went out), and a finished transfer ends drawn at 100 %,
// with the whole run's rate, on its own line.
func TestProgressBarRendering(t *testing.T) {
	const total = 8 << 20
	var out bytes.Buffer
	start := time.Now()
	b := newBar(&out, "put big", total)
	time.Sleep(300 * time.Millisecond) // the first blocks take time to go out
	b.set(total / 2)
	time.Sleep(300 * time.Millisecond)
	b.set(total*3/4 + 12345) // the last sample is short of the total
	b.end(nil)
	took := time.Since(start)

	text := out.String()
	rs := rates(t, text)
	if len(rs) == 0 {
		t.Fatalf("no rate drawn:\n%q", text)
	}
	// The fastest the work went at any point: half the bytes in the
	// first 300 ms. Allow for rounding in the display.
	ceiling := float64(total/2) / 0.3 * 1.1
	for _, r := range rs {
		if r > ceiling {
			t.Fatalf("the bar drew %.0f B/s; the work never went faster than %.0f B/s:\n%q", r, ceiling, text)
		}
	}
	final := lastFrame(text)
	if !strings.Contains(final, "100%") {
		t.Fatalf("the finished bar shows %q, want 100%%:\n%q", final, text)
	}
	if got := rates(t, final); len(got) != 1 || got[0] > float64(total)/took.Seconds()*1.1 {
		t.Fatalf("the finished bar's rate %v is not the whole run's (%.0f B/s)", got, float64(total)/took.Seconds())
	}
	if !strings.HasSuffix(text, "\n") {
		t.Fatalf("the finished bar is not on a line of its own: %q", text)
	}
}

// A failed transfer leaves the bar where the work stopped.
func TestProgressBarFailure(t *testing.T) {
	var out bytes.Buffer
	b := newBar(&out, "get x", 1000)
	time.Sleep(150 * time.Millisecond) // past the redraw throttle
	b.set(400)
	b.end(errors.New("network"))
	if final := lastFrame(out.String()); strings.Contains(final, "100%") || !strings.Contains(final, "40%") {
		t.Fatalf("a failed transfer shows %q", final)
	}
}
