package client

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blindstore/blindstore/internal/countproxy"
)

// TestRemoveDeletesInBatches removes a file of many blocks from a server
// whose write pool has a window: its blocks go in batches of the server's
// max_batch_refs (one window each, several at once), not one DELETE per
// block, and none is left behind.
func TestRemoveDeletesInBatches(t *testing.T) {
	s := startTestServer(t, testServerOptions{blockSize: testBlockSize, window: 20 * time.Millisecond, renewBatch: 16})
	a, p, _ := countedSignup(t, s, "alice")
	var singles, batches atomic.Int64
	p.Refuse(func(r *http.Request, m *countproxy.Manifest) bool {
		switch {
		case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/v1/blocks/"):
			singles.Add(1)
		case m != nil && !m.Atomic && len(m.Deletes) > 0:
			batches.Add(1)
		}
		return false
	})
	putBytes(t, a, "big", randomBytes(300*testBlockSize))
	before := s.blocks(t)
	f, err := a.Lookup("big")
	if err != nil {
		t.Fatal(err)
	}
	chunks := len(f.Chunks)
	if chunks < 200 {
		t.Fatalf("the file has %d chunks; the test wants many more than a batch", chunks)
	}
	p.Take()
	if err := a.Remove(context.Background(), "big"); err != nil {
		t.Fatal(err)
	}
	c := p.Take()
	if c.Deleted < chunks {
		t.Errorf("the server was asked to delete %d blocks, want the file's %d at least", c.Deleted, chunks)
	}
	if n := singles.Load(); n != 0 {
		t.Errorf("%d single DELETE requests, want none", n)
	}
	// The commit carries up to 16 deletions; the rest go 16 a batch.
	if n, most := batches.Load(), int64((chunks+15)/16); n == 0 || n > most {
		t.Errorf("%d batches of deletions for %d blocks, want 1 to %d", n, chunks, most)
	}
	if after := s.blocks(t); after > before-int64(chunks) {
		t.Errorf("the server holds %d blocks after the remove, %d before: the file's %d are not all gone", after, before, chunks)
	}
	checkNoLeak(t, s, a)
}
