package client

// Writing downloads to disk. A get writes its file into a temporary file
// that writeAtomic fsyncs before renaming it into place, so every byte
// must reach the disk before the get is done anyway. Through the page
// cache that costs a copy and the kernel's page handling (on some
// machines most of a get's CPU); with O_DIRECT the disk reads the data
// from our buffer. stagedWriter copies what it is given into a few large
// aligned buffers and a goroutine of its own writes them, so that the
// caller (fetchChunks' ordered loop) goes on decrypting the next chunks
// while the disk writes: the caller waits only when all buffers are
// full.
//
// Small files stay in the page cache: a file that fits in the staging
// buffers (directMin) is written through it at the end, in one or a few
// buffered writes. Such a file is likely read again soon (sync's next
// scan hashes what it wrote) and its fsync is cheap; O_DIRECT would force
// a synchronous device write and a cold cache for nothing. From directMin
// on, the page cache costs about 3 ms of kernel CPU per MiB written and
// synced here (dd, 256 MiB: 0.75 s of system time; with O_DIRECT 0.04 s),
// and a large file would only evict others' pages.
//
// O_DIRECT is only an optimisation: where the kernel refuses it (EINVAL
// from fcntl or from a write, as on file systems without direct I/O, or
// with an alignment the statx report did not give), the writer clears it
// and writes the rest through the page cache, silently; the bytes and
// their order are the same either way.

import (
	"errors"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

const (
	// stageSize is one staging buffer: one write system call. Larger
	// direct writes gain little (dd: 1.6 GB/s at 1 MiB, 1.9 at 4 MiB).
	stageSize = 1 << 20
	// stageBufs bounds the writer's memory: stageBufs × stageSize.
	stageBufs = 4
	// directMin: a file shorter than all the staging buffers together is
	// written buffered; see the file comment.
	directMin = stageBufs * stageSize
	// stageAlign is the memory alignment of staging buffers: a page,
	// what O_DIRECT asks of memory on every common file system. A file
	// whose statx report asks for more is written buffered.
	stageAlign = 4096
)

// stagePool keeps staging buffers between files, so that a sync writing
// many files allocates them once.
var stagePool = sync.Pool{New: func() any { return newStage() }}

// newStage returns a stageSize buffer aligned to stageAlign. The Go heap
// does not move objects, so an aligned slice of a larger one stays
// aligned.
func newStage() *[]byte {
	b := make([]byte, stageSize+stageAlign)
	off := int(-uintptr(unsafe.Pointer(&b[0])) & (stageAlign - 1))
	b = b[off : off+stageSize : off+stageSize]
	return &b
}

// stagedWriter writes to f through staging buffers; see the file
// comment. Close must be called (it flushes and reports the first
// write error), or abort on failure.
type stagedWriter struct {
	f     *os.File
	cur   []byte      // the buffer being filled
	taken int         // buffers taken from stagePool, at most stageBufs
	free  chan []byte // buffers the goroutine has written
	full  chan []byte // buffers to write, in order; a short one is last
	done  chan struct{}
	mu    sync.Mutex
	err   error // the goroutine's first error
	ended bool
	// started: the goroutine runs. It starts with the first full
	// buffer; a file smaller than one is written at Close, in one
	// buffered write, as if there were no goroutine.
	started bool

	// Owned by the goroutine.
	mayDirect   bool // O_DIRECT may be tried
	direct      bool // O_DIRECT is set on f
	align       int  // file offset and length alignment of direct writes
	directBytes int64
}

// newStagedWriter writes to f from its current offset (a new file's is
// zero; at an offset O_DIRECT cannot take, the kernel refuses and the
// writer falls back). Without mayDirect it writes buffered throughout,
// as on other systems: tests use it to exercise that path.
func newStagedWriter(f *os.File, mayDirect bool) *stagedWriter {
	w := &stagedWriter{
		f:         f,
		mayDirect: mayDirect,
		free:      make(chan []byte, stageBufs),
		full:      make(chan []byte, stageBufs),
		done:      make(chan struct{}),
	}
	return w
}

func (w *stagedWriter) failure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Write copies p into the staging buffers, handing each full one to the
// goroutine. It blocks only while every buffer waits to be written.
func (w *stagedWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if w.cur == nil {
			if err := w.failure(); err != nil {
				return n, err
			}
			if w.taken < stageBufs {
				w.cur = (*stagePool.Get().(*[]byte))[:0]
				w.taken++
			} else {
				w.cur = <-w.free
			}
		}
		k := copy(w.cur[len(w.cur):cap(w.cur)], p)
		w.cur = w.cur[:len(w.cur)+k]
		p, n = p[k:], n+k
		if len(w.cur) == cap(w.cur) {
			if !w.started {
				w.started = true
				go w.run()
			}
			w.full <- w.cur
			w.cur = nil
		}
	}
	return n, nil
}

// Close writes what is staged, waits for the goroutine and returns the
// first write error. The file is left open, in its usual (not direct)
// mode.
func (w *stagedWriter) Close() error {
	return w.end(true)
}

// abort stops the goroutine without writing what is staged.
func (w *stagedWriter) abort() {
	w.end(false)
}

func (w *stagedWriter) end(flush bool) error {
	if w.ended {
		return w.failure()
	}
	w.ended = true
	if !w.started {
		var err error
		if w.cur != nil {
			if flush && len(w.cur) > 0 {
				_, err = w.f.Write(w.cur)
			}
			b := w.cur[:0]
			stagePool.Put(&b)
			w.cur, w.taken = nil, 0
		}
		if !flush {
			err = errAborted
		}
		w.fail(err)
		return w.failure()
	}
	if w.cur != nil {
		if flush {
			w.full <- w.cur
		} else {
			w.free <- w.cur
		}
		w.cur = nil
	}
	if !flush {
		w.fail(errAborted)
	}
	close(w.full)
	<-w.done
	for range w.taken {
		b := <-w.free
		stagePool.Put(&b)
	}
	w.taken = 0
	return w.failure()
}

var errAborted = errors.New("write aborted")

func (w *stagedWriter) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

// run writes the buffers handed to it, in order. It holds the first
// stageBufs buffers until it knows whether the file reaches directMin;
// after a failure it only hands buffers back, so Write never blocks for
// good.
func (w *stagedWriter) run() {
	defer close(w.done)
	var held [][]byte
	decided := false
	for b := range w.full {
		if w.failure() != nil {
			w.free <- b[:0]
			continue
		}
		if !decided {
			held = append(held, b)
			if len(b) == stageSize && len(held) < stageBufs {
				continue
			}
			// A short buffer is the last one: the file is smaller than
			// directMin, unless the held buffers fill it exactly.
			decided = true
			if len(held) == stageBufs && len(b) == stageSize {
				w.startDirect()
			}
			w.writeAll(held)
			held = nil
			continue
		}
		w.writeAll([][]byte{b})
	}
	// The file ended before filling the held buffers (or before any).
	w.writeAll(held)
	if w.direct && w.failure() == nil {
		// Leave f as it was opened: the caller may write or fsync it.
		if err := setDirect(w.f, false); err != nil {
			w.fail(err)
		}
		w.direct = false
	}
}

func (w *stagedWriter) writeAll(bs [][]byte) {
	for _, b := range bs {
		if w.failure() == nil {
			if err := w.write(b); err != nil {
				w.fail(err)
			}
		}
		w.free <- b[:0]
	}
}

// startDirect sets O_DIRECT on f if its file system takes it.
func (w *stagedWriter) startDirect() {
	if !w.mayDirect {
		return
	}
	align, ok := directAlign(w.f)
	if !ok || align > stageSize || align&(align-1) != 0 {
		return
	}
	if setDirect(w.f, true) != nil {
		return // refused: buffered writes, as without O_DIRECT
	}
	w.direct, w.align = true, align
}

// write writes b at f's offset: its aligned part directly when O_DIRECT
// is on, the rest (only a file's last buffer has any) after clearing it.
func (w *stagedWriter) write(b []byte) error {
	if w.direct {
		n := len(b) &^ (w.align - 1)
		if n > 0 {
			k, err := w.f.Write(b[:n])
			w.directBytes += int64(k)
			b = b[k:]
			if err != nil && !errors.Is(err, syscall.EINVAL) {
				return err
			}
			// EINVAL: the kernel refused this write direct; it wrote
			// nothing of what is left, which goes buffered below.
		}
		if len(b) > 0 {
			if err := setDirect(w.f, false); err != nil {
				return err
			}
			w.direct = false
		}
	}
	if len(b) == 0 {
		return nil
	}
	_, err := w.f.Write(b)
	return err
}
