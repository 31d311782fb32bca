package client

// Writing downloads to disk. A get writes its file into a temporary file
// that writeAtomic fsyncs before renaming it into place, so every byte
// must reach the disk before the get is done anyway. Through the page
// cache that costs a copy and the kernel's page handling (on some
// machines most of a get's CPU); with O_DIRECT the disk reads the data
// from our buffer. stagedWriter copies what it is given into a few large
// aligned buffers and goroutines of its own write them, so that the
// caller (fetchChunks' ordered loop) goes on decrypting the next chunks
// while the disk writes: the caller waits only when all buffers are
// full. Direct writes go directWriters at a time, each at its own file
// offset: a direct write returns only once the device has the data, and
// one at a time leaves the device idle between them (dd on this machine,
// 256 MiB in 1 MiB direct writes: 1.05 s from one writer, 0.74 s from
// two, 0.55 s from four).
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
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

const (
	// stageSize is one staging buffer: one write system call. Larger
	// direct writes gain little (dd: 1.6 GB/s at 1 MiB, 1.9 at 4 MiB).
	stageSize = 1 << 20
	// stageBufs bounds the writer's memory: stageBufs × stageSize. It
	// leaves buffers to fill while directWriters are written.
	stageBufs = 8
	// directWriters is the number of direct writes in flight.
	directWriters = 4
	// directHeld is the number of full buffers the writer holds before it
	// decides: a file shorter than directMin is written buffered; see
	// the file comment.
	directHeld = 4
	directMin  = directHeld * stageSize
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

	mayDirect bool // O_DIRECT may be tried

	// Owned by the goroutine, and shared with its direct writers while
	// they run.
	positional  bool         // buffers are written at their offsets (WriteAt), from where f was; else in order at f's offset
	off         int64        // the file offset of the next buffer handed out
	direct      atomic.Bool  // O_DIRECT is set on f
	dmu         sync.RWMutex // held to clear O_DIRECT; read-held by each direct write
	align       int          // file offset and length alignment of direct writes
	directBytes atomic.Int64
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

// run writes the buffers handed to it, each at its place in the file.
// It holds the first directHeld buffers until it knows whether the file
// reaches directMin; direct, it hands full buffers to directWriters
// goroutines. After a failure it only hands buffers back, so Write never
// blocks for good.
func (w *stagedWriter) run() {
	defer close(w.done)
	if off, err := w.f.Seek(0, io.SeekCurrent); err == nil {
		w.positional, w.off = true, off
	}
	var held [][]byte
	decided := false
	var jobs chan stagedJob
	var writers sync.WaitGroup
	// drain waits for the direct writes in flight: before a short (last)
	// buffer, whose unaligned tail clears O_DIRECT, and at the end.
	drain := func() {
		if jobs != nil {
			close(jobs)
			writers.Wait()
			jobs = nil
		}
	}
	put := func(b []byte) {
		j := stagedJob{b: b, off: w.off}
		w.off += int64(len(b))
		if jobs != nil && len(b) == stageSize && w.failure() == nil {
			jobs <- j
			return
		}
		drain()
		w.writeOne(j)
	}
	for b := range w.full {
		if w.failure() != nil {
			w.free <- b[:0]
			continue
		}
		if decided {
			put(b)
			continue
		}
		held = append(held, b)
		if len(b) == stageSize && len(held) < directHeld {
			continue
		}
		// A short buffer is the last one: the file is smaller than
		// directMin, unless the held buffers fill it exactly.
		decided = true
		if len(held) == directHeld && len(b) == stageSize {
			w.startDirect()
		}
		if w.direct.Load() {
			jobs = make(chan stagedJob)
			for range directWriters {
				writers.Go(func() {
					for j := range jobs {
						w.writeOne(j)
					}
				})
			}
		}
		for _, h := range held {
			put(h)
		}
		held = nil
	}
	drain()
	// The file ended before filling the held buffers (or before any).
	for _, h := range held {
		put(h)
	}
	if w.failure() != nil {
		return
	}
	if w.direct.Load() {
		// Leave f as it was opened: the caller may write or fsync it.
		if err := w.clearDirect(); err != nil {
			w.fail(err)
			return
		}
	}
	if w.positional {
		// WriteAt left f's offset where it was: move it past what was
		// written, as sequential writes would have.
		if _, err := w.f.Seek(w.off, io.SeekStart); err != nil {
			w.fail(err)
		}
	}
}

// stagedJob is a buffer to write at a file offset.
type stagedJob struct {
	b   []byte
	off int64
}

// writeOne writes j unless a write failed already, and hands its buffer
// back.
func (w *stagedWriter) writeOne(j stagedJob) {
	if w.failure() == nil {
		if err := w.write(j.b, j.off); err != nil {
			w.fail(err)
		}
	}
	w.free <- j.b[:0]
}

// startDirect sets O_DIRECT on f if its file system takes it.
func (w *stagedWriter) startDirect() {
	if !w.mayDirect || !w.positional {
		return
	}
	align, ok := directAlign(w.f)
	if !ok || align > stageSize || align&(align-1) != 0 {
		return
	}
	if setDirect(w.f, true) != nil {
		return // refused: buffered writes, as without O_DIRECT
	}
	w.align = align
	w.direct.Store(true)
}

// write writes b at offset off (at f's offset unless positional): its
// aligned part directly when O_DIRECT is on, the rest (only a file's
// last buffer has any, or a buffer the kernel refused direct) after
// clearing it.
func (w *stagedWriter) write(b []byte, off int64) error {
	if w.direct.Load() {
		n := len(b) &^ (w.align - 1)
		if n > 0 {
			k, went, err := w.writeDirect(b[:n], off)
			if went {
				w.directBytes.Add(int64(k))
			}
			b, off = b[k:], off+int64(k)
			if err != nil && !errors.Is(err, syscall.EINVAL) {
				return err
			}
			// EINVAL: the kernel refused this write direct; it wrote
			// nothing of what is left, which goes buffered below.
		}
		if len(b) > 0 {
			if err := w.clearDirect(); err != nil {
				return err
			}
		}
	}
	if len(b) == 0 {
		return nil
	}
	if !w.positional {
		_, err := w.f.Write(b)
		return err
	}
	_, err := w.f.WriteAt(b, off)
	return err
}

// writeDirect writes b at off while O_DIRECT cannot be cleared (clearDirect
// waits for it), and reports whether the write went direct: another
// writer may have cleared O_DIRECT since the caller looked, and then this
// write went through the page cache.
func (w *stagedWriter) writeDirect(b []byte, off int64) (k int, went bool, err error) {
	w.dmu.RLock()
	defer w.dmu.RUnlock()
	k, err = w.f.WriteAt(b, off)
	return k, w.direct.Load(), err
}

// clearDirect clears O_DIRECT on f, once, whichever writer asks first.
func (w *stagedWriter) clearDirect() error {
	w.dmu.Lock()
	defer w.dmu.Unlock()
	if !w.direct.Load() {
		return nil
	}
	if err := setDirect(w.f, false); err != nil {
		return err
	}
	w.direct.Store(false)
	return nil
}
