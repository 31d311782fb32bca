package proc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The children are this test binary, run in a mode chosen by
// PROC_TEST_CHILD: real processes with real pipes, as the servers are.
func TestMain(m *testing.M) {
	if mode := os.Getenv("PROC_TEST_CHILD"); mode != "" {
		child(mode)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const childURL = "http://127.0.0.1:4321"

func child(mode string) {
	switch mode {
	case "serve":
		// Many lines before the URL, on both streams: the buffer must
		// hold them all when Start returns.
		for i := range 1000 {
			fmt.Fprintf(os.Stderr, "level=INFO msg=before n=%d\n", i)
		}
		fmt.Fprintln(os.Stdout, "on stdout")
		fmt.Fprintf(os.Stderr, "level=INFO msg=\"blindstored serving\" url=%s store=x\n", childURL)
		// Not select {}: without -race the runtime ends a process
		// whose goroutines all block.
		time.Sleep(time.Hour)
	case "chatty":
		// A line longer than any scanner buffer first, then the URL,
		// then far more than a pipe holds: the child must finish.
		fmt.Fprintln(os.Stderr, strings.Repeat("x", 2<<20))
		fmt.Fprintf(os.Stderr, "url=%s\n", childURL)
		fmt.Fprintln(os.Stderr, strings.Repeat("y", 8<<20))
		os.Exit(0)
	case "chatty-then-url":
		fmt.Fprintf(os.Stderr, "url=%s\n", childURL)
		for range 1 << 16 {
			fmt.Fprintln(os.Stderr, "after the URL")
		}
		os.Exit(3)
	case "fail":
		fmt.Fprintln(os.Stderr, "bad flag")
		os.Exit(2)
	case "silent":
		time.Sleep(time.Hour)
	}
}

func childCmd(mode string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "PROC_TEST_CHILD="+mode)
	return cmd
}

func TestStartLogsBeforeURL(t *testing.T) {
	var logs Buffer
	p, err := Start(t.Context(), childCmd("serve", "serve"), &logs, time.Minute)
	if err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	defer p.Kill()
	if p.URL != childURL {
		t.Errorf("URL %q, want %q", p.URL, childURL)
	}
	got := logs.String()
	for i := range 1000 {
		if !strings.Contains(got, fmt.Sprintf("msg=before n=%d\n", i)) {
			t.Fatalf("line %d logged before the URL is not in the buffer at return", i)
		}
	}
	if !strings.Contains(got, "url="+childURL) {
		t.Error("the URL line is not in the buffer at return")
	}
	select {
	case <-p.Done():
		t.Fatal("Done is closed while the process runs")
	default:
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if p.Wait() == nil {
		t.Error("a killed process has no exit error")
	}
	if err := p.Kill(); err != nil {
		t.Errorf("Kill after exit: %v", err)
	}
	// Standard output is copied by another goroutine than standard
	// error, so it is only certain to be there once the process is gone.
	if !strings.Contains(logs.String(), "on stdout\n") {
		t.Errorf("standard output is not in the logs:\n%.300s", logs.String())
	}
}

func TestStartDrainsOutput(t *testing.T) {
	var logs Buffer
	p, err := Start(t.Context(), childCmd("chatty"), &logs, time.Minute)
	if err != nil {
		t.Fatalf("%v", err)
	}
	// The child ends on its own only if nothing blocks its writes.
	if err := p.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if n := strings.Count(logs.String(), "y"); n != 8<<20 {
		t.Errorf("%d bytes of the output after the URL in the logs, want %d", n, 8<<20)
	}

	p, err = Start(t.Context(), childCmd("chatty-then-url"), &logs, time.Minute)
	if err != nil {
		t.Fatalf("%v", err)
	}
	var ee *exec.ExitError
	if err := p.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("exit %v, want status 3", err)
	}
	if err := p.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("second Wait %v, want status 3", err)
	}
}

func TestStartExits(t *testing.T) {
	var logs Buffer
	p, err := Start(t.Context(), childCmd("fail", "issuer", "--bad"), &logs, time.Minute)
	if err == nil {
		p.Kill()
		t.Fatal("Start succeeded for a process that exits")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Errorf("error %v, want the exit status 2", err)
	}
	if want := "proc.test issuer exited before it logged its URL"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q, want it to say %q", err, want)
	}
	if !strings.Contains(logs.String(), "bad flag") {
		t.Errorf("logs %q lack the child's last words", logs.String())
	}
}

func TestStartTimeout(t *testing.T) {
	var logs Buffer
	cmd := childCmd("silent")
	// The child never logs a URL, so only the timeout ends the wait,
	// however fast the machine.
	_, err := Start(t.Context(), cmd, &logs, 50*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "did not log its URL within 50ms") {
		t.Fatalf("error %v, want the timeout", err)
	}
	if cmd.ProcessState == nil {
		t.Error("Start returned before the process it gave up on had exited")
	}
}

func TestStartContext(t *testing.T) {
	var logs Buffer
	ctx, cancel := context.WithCancelCause(t.Context())
	cause := errors.New("the bench is stopping")
	cancel(cause)
	cmd := childCmd("silent")
	_, err := Start(ctx, cmd, &logs, time.Hour)
	if !errors.Is(err, cause) {
		t.Fatalf("error %v, want %v", err, cause)
	}
	if cmd.ProcessState == nil {
		t.Error("Start returned before the process it gave up on had exited")
	}
}

func TestStartRefusesSetOutput(t *testing.T) {
	cmd := childCmd("serve")
	cmd.Stderr = os.Stderr
	if _, err := Start(t.Context(), cmd, &Buffer{}, time.Minute); err == nil {
		t.Fatal("Start took a command whose Stderr is set")
	}
	if cmd.Process != nil {
		t.Error("Start started a command it refused")
	}
}

// StartLine returns at the first line with the prefix, and the child
// runs on.
func TestStartLine(t *testing.T) {
	var logs Buffer
	p, err := StartLine(t.Context(), childCmd("serve", "serve"), &logs, time.Minute, "level=INFO msg=before n=999")
	if err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	defer p.Kill()
	if p.URL != "" {
		t.Errorf("URL %q from a line that names none", p.URL)
	}
	if !strings.Contains(logs.String(), "msg=before n=999\n") {
		t.Error("the line waited for is not in the buffer at return")
	}
	select {
	case <-p.Done():
		t.Fatal("the child ended")
	default:
	}
	if _, err := StartLine(t.Context(), childCmd("silent"), &logs, 50*time.Millisecond, "watching "); err == nil ||
		!strings.Contains(err.Error(), `did not log a line "watching …" within 50ms`) {
		t.Fatalf("error %v, want the timeout naming the line", err)
	}
}
