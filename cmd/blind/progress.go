package main

import (
	"fmt"
	"io"
	"time"

	"github.com/blindstore/blindstore/client"
	"github.com/blindstore/blindstore/internal/cli"
	"github.com/schollz/progressbar/v3"
)

// progress returns a progress callback drawing a bar on stderr when it
// is a terminal (and output is not JSON, and BLIND_NO_PROGRESS is not
// set), and a function to end it with the command's outcome.
func (a *app) progress(what string, total int64) (client.Progress, func(error)) {
	off, err := cli.EnvBool(envPrefix + "NO_PROGRESS")
	if err != nil {
		fmt.Fprintf(a.stderr, "warning: %v (drawing the progress bar)\n", err)
	}
	if a.g.json || !isTerminal(a.stderr) || off {
		return nil, func(error) {}
	}
	b := newBar(a.stderr, what, total)
	return b.set, b.end
}

// bar drives a progressbar.ProgressBar so that what it shows is true:
// its clock starts when the work starts, not at the first sample (which
// comes only after the first blocks went out, so that the first rate
// shown was that many bytes over a few microseconds), and a success ends
// it drawn full, at the average rate of the whole run, rather than at
// the last sample a throttled redraw happened to show, then erased.
type bar struct {
	pb  *progressbar.ProgressBar
	out io.Writer
}

func newBar(w io.Writer, what string, total int64) *bar {
	b := &bar{out: w}
	b.pb = progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetWidth(30),
		// The finished bar stays, on its own line.
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)
	b.pb.StartWithoutRender()
	_ = b.pb.RenderBlank()
	return b
}

func (b *bar) set(done int64) { _ = b.pb.Set64(done) }

// end finishes the bar: drawn full on success; on failure left where the
// work stopped, so that it does not claim what did not happen.
func (b *bar) end(err error) {
	if b.pb.IsFinished() {
		return
	}
	if err != nil {
		_ = b.pb.Exit()
		return
	}
	_ = b.pb.Finish()
}
