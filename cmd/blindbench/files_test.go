package main

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFilesServerArgs checks the files row's server flags: the server
// as it ships unless -server-args sets a window, and a note that says
// which.
func TestFilesServerArgs(t *testing.T) {
	withWindow := map[string]bool{"pool-window": true}
	for _, tc := range []struct {
		name       string
		serveFlags map[string]bool
		args       []string
		want       []string
		note       string
	}{
		{"default", withWindow, nil, nil, "its default write pool"},
		{"other flags kept", withWindow, []string{"--max-blocks", "9"}, []string{"--max-blocks", "9"}, "its default write pool"},
		{"no window", withWindow, []string{"--pool-window", "0"}, []string{"--pool-window", "0"}, "--pool-window 0 from -server-args"},
		{"window given", withWindow, []string{"--pool-window", "250ms"}, []string{"--pool-window", "250ms"}, "--pool-window 250ms from -server-args"},
		{"window given with =", withWindow, []string{"-pool-window=1s"}, []string{"-pool-window=1s"}, "--pool-window 1s from -server-args"},
		{"a value is not a flag", withWindow, []string{"--data", "pool-window"}, []string{"--data", "pool-window"}, "its default write pool"},
		{"serve without the flag", map[string]bool{}, []string{"--max-blocks", "9"}, []string{"--max-blocks", "9"}, "its default write pool"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &bench{cfg: &config{serverArgs: tc.args}, serveFlags: tc.serveFlags}
			got, note := b.filesServerArgs()
			if !slices.Equal(got, tc.want) {
				t.Errorf("args %q, want %q", got, tc.want)
			}
			if !strings.HasPrefix(note, tc.note) {
				t.Errorf("note %q, want it to start with %q", note, tc.note)
			}
			if len(tc.args) > 0 && &got[len(got)-1] == &tc.args[len(tc.args)-1] {
				t.Error("the result shares -server-args' storage")
			}
		})
	}
}

// TestProcCPU reads this process's CPU time before and after burning
// some, and refuses a pid that cannot be a process.
func TestProcCPU(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skipf("no /proc here (%v): procCPU works on Linux only", err)
	}
	before, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// 50 ms of CPU at least, at 10 ms per tick.
	x := uint64(1)
	for start := time.Now(); time.Since(start) < 150*time.Millisecond; {
		for range 1000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	after, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if d := after - before; d < 50*time.Millisecond || d > time.Minute {
		t.Errorf("burning 150 ms of wall time counted %v of CPU (x=%d)", d, x)
	}
	if _, err := procCPU(0); err == nil {
		t.Error("pid 0 read as a process")
	}
}

// TestTimedSideCPU checks the per-round CPU figures of a side, with
// and without its server's.
func TestTimedSideCPU(t *testing.T) {
	var s timedSide
	s.record(cmdStat{took: time.Second, cpu: 800 * time.Millisecond}, 600*time.Millisecond, true)
	s.record(cmdStat{took: time.Second, cpu: 1200 * time.Millisecond}, 400*time.Millisecond, true)
	if got, want := s.cpuText("blindstored"), "CPU 1.00s + blindstored 0.50s per round"; got != want {
		t.Errorf("cpuText %q, want %q", got, want)
	}
	extra := map[string]float64{}
	s.addCPU(extra, "c", "s")
	if extra["c"] != 1 || extra["s"] != 0.5 {
		t.Errorf("extra %v, want c 1 and s 0.5", extra)
	}
	// One round without the server's figure drops it for the side.
	s.record(cmdStat{took: time.Second, cpu: time.Second}, 0, false)
	if got, want := s.cpuText("rclone"), "CPU 1.00s per round"; got != want {
		t.Errorf("cpuText %q, want %q", got, want)
	}
	extra = map[string]float64{}
	s.addCPU(extra, "c", "s")
	if _, ok := extra["s"]; ok || extra["c"] != 1 {
		t.Errorf("extra %v, want c 1 and no s", extra)
	}
}
