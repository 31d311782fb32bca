package wait

import (
	"context"
	"time"
)

// Sleep waits d, or until ctx ends and returns ctx's error: the pause
// of a retry or a paced loop, which must not outlive a cancelled caller.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
