package bolt

import (
	"os"
	"sync"
	"time"
)

// writeback starts the disk's writes of a commit while bbolt still
// writes its pages. bbolt writes a commit's pages, then waits in
// fdatasync for the disk to take them all, then writes and syncs its meta
// page; the file's lock is held throughout, so no commit is prepared
// meanwhile. The kernel would start writing those pages back only at
// that fdatasync. A commit in progress asks the kernel every kickEvery to
// start writing back what is dirty in the file (sync_file_range's
// SYNC_FILE_RANGE_WRITE, which waits for nothing), so that the disk works
// while bbolt copies the rest of its pages, and the fdatasync waits only
// for the tail. It changes nothing in what is durable when: the kernel
// may write any dirty page back at any time, and bbolt's fdatasyncs still
// order the pages before the meta page and the meta page before Apply
// returns.
type writeback struct {
	f *os.File // nil: not supported here, or the file could not be opened
}

// kick is startWriteback, but in tests.
var kick = startWriteback

// kickEvery is how often a commit in progress starts the writeback of
// its pages: a few 64 KiB blocks' worth of copying.
const kickEvery = 2 * time.Millisecond

func openWriteback(path string) *writeback {
	if !writebackSupported {
		return &writeback{}
	}
	f, err := os.Open(path)
	if err != nil {
		return &writeback{} // only speed is lost
	}
	return &writeback{f: f}
}

// during runs fn while kicking the writeback of the file's dirty pages.
func (w *writeback) during(fn func()) {
	if w == nil || w.f == nil {
		fn()
		return
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(kickEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				_ = kick(w.f) // an error only loses speed
			}
		}
	})
	defer func() {
		close(stop)
		wg.Wait()
	}()
	fn()
}

func (w *writeback) close() {
	if w != nil && w.f != nil {
		w.f.Close()
	}
}
