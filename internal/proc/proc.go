// Package proc starts a server program (blindstored serve, blindstored
// issuer) as a child process and waits until it logs the URL it listens
// on. The tests and the bench run the real binaries on port 0, so that
// log line is the only way to learn the address.
package proc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// urlRE matches the url= attribute of the line a server logs once it
// listens. Only loopback: the children are started on 127.0.0.1:0.
var urlRE = regexp.MustCompile(`url=(https?://127\.0\.0\.1:\d+)`)

// Process is a child started by Start that has logged its URL.
type Process struct {
	Cmd *exec.Cmd
	URL string

	done chan struct{}
	err  error // cmd.Wait's result; set before done closes
}

// Start starts cmd and waits until a line of its standard error has
// url=http(s)://127.0.0.1:port. Everything the child writes to standard
// output and standard error goes to logs, which must be safe for
// concurrent writes (the two streams are copied by two goroutines) and
// reads (the caller reads it while the child logs). When Start returns,
// logs holds everything the child wrote to standard error up to and
// including the URL line; standard output, copied apart, may lag.
// cmd.Stdout and cmd.Stderr must be nil.
//
// If the child exits first, does not log its URL within timeout, or ctx
// ends, Start kills it, waits for it and returns an error that names the
// program; the caller has the logs to add.
func Start(ctx context.Context, cmd *exec.Cmd, logs io.Writer, timeout time.Duration) (*Process, error) {
	return start(ctx, cmd, logs, timeout, "its URL", func(line []byte) (string, bool) {
		if m := urlRE.FindSubmatch(line); m != nil {
			return string(m[1]), true
		}
		return "", false
	})
}

// StartLine is Start for a program that says it is ready with a line of
// its standard error that begins with prefix (blind sync --watch's
// "watching …"), not with a URL; the Process's URL is empty.
func StartLine(ctx context.Context, cmd *exec.Cmd, logs io.Writer, timeout time.Duration, prefix string) (*Process, error) {
	return start(ctx, cmd, logs, timeout, fmt.Sprintf("a line %q", prefix+"…"), func(line []byte) (string, bool) {
		return "", bytes.HasPrefix(line, []byte(prefix))
	})
}

// start starts cmd and waits for the first line of its standard error
// that match accepts (what names it in errors); the URL is what match
// returns.
func start(ctx context.Context, cmd *exec.Cmd, logs io.Writer, timeout time.Duration, what string, match func([]byte) (string, bool)) (*Process, error) {
	name := programName(cmd)
	if cmd.Stdout != nil || cmd.Stderr != nil {
		return nil, fmt.Errorf("proc: start %s: Stdout and Stderr must be nil", name)
	}
	pr, pw := io.Pipe()
	// logs first: once the scanner sees the line, logs must already
	// hold it and everything before it.
	cmd.Stderr = io.MultiWriter(logs, pw)
	cmd.Stdout = logs
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Cmd: cmd, done: make(chan struct{})}
	found := make(chan string, 1)
	go scanFor(pr, match, found)
	go func() {
		p.err = cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case p.URL = <-found:
		return p, nil
	case <-p.done:
		err := p.err
		if err == nil {
			err = errors.New("exit status 0")
		}
		return nil, fmt.Errorf("%s exited before it logged %s: %w", name, what, err)
	case <-timer.C:
		p.Kill()
		return nil, fmt.Errorf("%s did not log %s within %v", name, what, timeout)
	case <-ctx.Done():
		p.Kill()
		return nil, fmt.Errorf("%s: waiting for %s: %w", name, what, context.Cause(ctx))
	}
}

// scanFor sends what match returns for the first line it accepts, then
// reads r to its end: the child must never block on a full pipe,
// whatever it logs afterwards. A line longer than the buffer is skipped,
// not an end: the lines looked for are short.
func scanFor(r io.Reader, match func([]byte) (string, bool), found chan<- string) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, long, err := br.ReadLine()
		for long && err == nil {
			_, long, err = br.ReadLine()
			line = nil
		}
		if err != nil {
			break
		}
		if v, ok := match(line); ok && line != nil {
			found <- v
			break
		}
	}
	io.Copy(io.Discard, br)
}

// programName is the program's file name and its subcommand, if it has
// one, for error messages: "blindstored issuer".
func programName(cmd *exec.Cmd) string {
	name := filepath.Base(cmd.Path)
	if len(cmd.Args) > 1 && !strings.HasPrefix(cmd.Args[1], "-") {
		name += " " + cmd.Args[1]
	}
	return name
}

// Done is closed once the process has exited and its output is copied.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit and returns its exit error (nil for
// status 0); after Done it returns at once. Any number of callers may
// wait.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.Cmd.Process.Signal(sig) }

// Pid is the process's id.
func (p *Process) Pid() int { return p.Cmd.Process.Pid }

// Kill kills the process, unless it has exited already, and waits for it
// to exit. The error is the kill's, not the exit status (which a kill
// makes "signal: killed").
func (p *Process) Kill() error {
	err := p.Cmd.Process.Kill()
	<-p.done
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

// Buffer is a log buffer that is safe to write from the child's output
// copiers while the caller reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
