package wait

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestUntilReturnsWhenDone(t *testing.T) {
	var n atomic.Int32
	err := For(5*time.Second, time.Millisecond, func() bool { return n.Add(1) == 3 })
	if err != nil || n.Load() != 3 {
		t.Fatalf("err %v after %d calls; want nil after 3", err, n.Load())
	}
}

func TestUntilChecksBeforeSleeping(t *testing.T) {
	start := time.Now()
	if err := For(time.Second, time.Hour, func() bool { return true }); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 500*time.Millisecond {
		t.Fatal("a condition already true waited for the interval")
	}
}

func TestUntilTimesOut(t *testing.T) {
	err := For(30*time.Millisecond, 5*time.Millisecond, func() bool { return false })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the deadline", err)
	}
}
