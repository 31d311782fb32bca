// Package wait polls a condition until it holds or time runs out: the
// one loop that servers starting, queues draining and tests waiting for
// a state share, so that each bounds its wait the same way.
package wait

import (
	"context"
	"time"
)

// Until calls done every interval until it reports true, and returns nil
// then; or until ctx ends, and returns ctx's error. done is called once
// at once, before any sleep.
func Until(ctx context.Context, every time.Duration, done func() bool) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if done() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// For is Until with a time limit instead of a context.
func For(limit, every time.Duration, done func() bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	return Until(ctx, every, done)
}
