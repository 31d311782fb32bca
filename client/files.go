package client

// Files, DESIGN.md §7: each file has its own random key; its plaintext is
// cut into chunks at content-defined boundaries (chunker.go), each chunk
// sealed alone into a block under a fresh random ID, with the chunk's
// size, SHA-256 and mark and the block's ETag kept in the index, and the
// whole file's SHA-256 too.
//
// Small files: a file of at most PayloadCapacity/32 bytes (2 KiB with
// 64 KiB blocks) is kept inline in the index, so that it costs a share of
// an index leaf rather than a block of its own. Sharing it still works:
// its manifest holds its content.
//
// Changed files send only what changed: a put over a file of the same
// name keeps the old file's key (unless that key was ever shared: then a
// new key, and every block anew), cuts the new content with the old
// chunks' marks at hand, and reuses the block of every chunk whose size
// and hash are an old chunk's (each old block once: nothing is
// deduplicated within a file either). Only the other chunks are sent; the
// index update then deletes the old blocks nothing refers to any more.
// A failed put deletes only the blocks it wrote.
//
// Reading a range (GetRange) fetches only the blocks holding it, each
// verified against its chunk's size and hash in the index.
//
// Memory is bounded whatever the file's size: a put keeps at most
// (uploaders+1) × write_batch blocks in flight, a get at most
// getWindow blocks (and, into a file, stageBufs staging buffers: see
// directio.go), and neither ever holds a file whole.
//
// A get checks, for every block, that it authenticates under the file
// key with its own ID as associated data, and that the plaintext has the
// chunk's size and hash (a swap of two blocks fails both; an older
// version of a block fails the hash): what a check of the ciphertext's
// ETag would add is nothing (see fetchChunk), and nor would a second
// pass over the whole file's hash (see fetchChunks). Nothing that fails
// reaches the output, and a file output is written to a temporary file
// renamed into place only once verified.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/blindstore/blindstore/indexfile"
	"github.com/blindstore/blindstore/wire"
)

// Transfer shapes.
const (
	// uploaders is the number of batch writes in flight. A server's write
	// pool holds each for its window (250 ms by default) to mix it with
	// others, so throughput grows with this; memory too, by one batch
	// (write_batch blocks: 4 MiB by default) each.
	uploaders = 6
	// getWindow bounds the blocks a get has fetched or is fetching ahead
	// of the one it writes.
	getWindow = 32
)

// InlineMax returns the largest file kept inline in the index, for a
// block size.
func InlineMax(blockSize int) int { return PayloadCapacity(blockSize) / 32 }

// Progress is told the number of plaintext bytes done so far.
type Progress func(done int64)

// PutInfo describes a file to put.
type PutInfo struct {
	Name    string
	Mode    fs.FileMode // permission bits are kept
	ModTime time.Time
	// Changed, if set, is called after the whole stream was read; an
	// error from it (the file changed while it was read) aborts the put.
	Changed func(read int64) error
}

// Put stores the stream r as the file info.Name, replacing a file of that
// name (sending only the chunks that changed), and returns the index
// entry.
func (a *Account) Put(ctx context.Context, r io.Reader, info PutInfo, progress Progress) (indexfile.File, error) {
	if err := indexfile.ValidName(info.Name); err != nil {
		return indexfile.File{}, wrap(KindInvalid, "put", err)
	}
	cur, err := a.remote.CurrentPeriod(ctx)
	if err != nil {
		return indexfile.File{}, err
	}
	a.mu.Lock()
	prev, _ := a.lookup(info.Name)
	a.mu.Unlock()
	f, written, tail, err := a.upload(ctx, r, &prev, progress)
	if err != nil {
		return indexfile.File{}, err
	}
	f.Name, f.Mode, f.ModTime, f.Renewed = info.Name, info.Mode&fs.ModePerm, info.ModTime, putRenewed(&f, &prev, written, cur)
	if info.Changed != nil {
		if err := info.Changed(int64(f.Size)); err != nil {
			tail.Wait()
			a.deleteRefs(ctx, written)
			return indexfile.File{}, err
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	// The index is committed while the last data batches still wait in
	// the server's write pool, checking that they are there once the
	// commit applies: both usually land in the same window, not one
	// window after the other. If they are not there yet, the commit
	// applied nothing, and goes again once they are answered.
	//
	// Where the server cannot check, or should not (commitsBeside), the
	// data is waited for first.
	change := func(x *indexfile.Index) error { return putReusing(x, f, written) }
	var unacked []indexfile.Ref
	if cfg, cerr := a.remote.Config(ctx); cerr == nil && cfg.commitsBeside() {
		unacked = tail.Unacked()
	} else if err := tail.Wait(); err != nil {
		a.deleteRefs(ctx, written)
		return indexfile.File{}, err
	}
	_, err = a.updateChecked(ctx, change, unacked)
	werr := tail.Wait() // done already, unless the commit went beside
	if errors.Is(err, errUnacked) {
		if werr != nil {
			a.deleteRefs(ctx, written)
			return indexfile.File{}, werr
		}
		_, err = a.update(ctx, change)
	}
	// A commit that checked the blocks found every one in place, even
	// those whose write answered an error (an unknown outcome that had
	// landed): werr no longer matters then.
	if err != nil {
		// Unless the update may have landed (a network failure after
		// the head was sent), nothing refers to the blocks written.
		if KindOf(err) != KindNetwork {
			a.deleteRefs(ctx, written)
		}
		return indexfile.File{}, err
	}
	return f, nil
}

// putRenewed is the Renewed of f, put in period cur: cur, unless f keeps
// blocks of prev (the version it replaces), which are only as fresh as
// prev's last renewal. Claiming cur for them would let logins skip them
// until they expired.
func putRenewed(f, prev *indexfile.File, written []indexfile.Ref, cur uint64) uint64 {
	// upload writes one block for every chunk it does not keep of prev:
	// fewer blocks written than chunks means some are prev's.
	if len(written) < len(f.Chunks) {
		return min(cur, prev.Renewed)
	}
	return cur
}

// putReusing puts f in x, after checking that the blocks of f it did not
// write itself are still the file's in x: another put or removal on this
// account may have replaced them meanwhile.
func putReusing(x *indexfile.Index, f indexfile.File, written []indexfile.Ref) error {
	mine := make(map[wire.ID]struct{}, len(written))
	for _, r := range written {
		mine[r.ID] = struct{}{}
	}
	var have map[wire.ID]struct{}
	for _, c := range f.Chunks {
		if _, ok := mine[c.ID]; ok {
			continue
		}
		if have == nil {
			have = map[wire.ID]struct{}{}
			if old := x.Lookup(f.Name); old != nil {
				for _, r := range old.Refs() {
					have[r.ID] = struct{}{}
				}
			}
		}
		if _, ok := have[c.ID]; !ok {
			return &Error{Kind: KindConflict, Msg: fmt.Sprintf("%q changed meanwhile: put it again", f.Name)}
		}
	}
	if err := x.Put(f); err != nil {
		return wrap(KindConflict, "put", err)
	}
	return nil
}

// PutFile puts the local file at path as name, and refuses it if it
// changed while it was read.
func (a *Account) PutFile(ctx context.Context, path, name string, progress Progress) (indexfile.File, error) {
	src, err := os.Open(path)
	if err != nil {
		return indexfile.File{}, wrap(KindLocalIO, "put", err)
	}
	defer src.Close()
	before, err := src.Stat()
	if err != nil {
		return indexfile.File{}, wrap(KindLocalIO, "put", err)
	}
	if !before.Mode().IsRegular() {
		return indexfile.File{}, &Error{Kind: KindInvalid, Msg: fmt.Sprintf("%s is not a regular file", path)}
	}
	f, err := a.Put(ctx, src, a.putInfo(src, name, before), progress)
	var ce *Error
	if errors.As(err, &ce) && ce.Kind == KindConflict && strings.Contains(ce.Msg, "meanwhile") {
		// Another device replaced the file while it was put: once more,
		// against what it wrote.
		if _, serr := src.Seek(0, io.SeekStart); serr == nil {
			return a.Put(ctx, src, a.putInfo(src, name, before), progress)
		}
	}
	return f, err
}

func (a *Account) putInfo(src *os.File, name string, before fs.FileInfo) PutInfo {
	path := src.Name()
	return PutInfo{
		Name: name, Mode: before.Mode(), ModTime: before.ModTime(),
		Changed: func(read int64) error {
			after, err := src.Stat()
			if err != nil {
				return wrap(KindLocalIO, "put", err)
			}
			if read != before.Size() || after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
				return &Error{Kind: KindConflict, Msg: fmt.Sprintf("%s changed while it was read; nothing was stored: put it again once it is complete", path)}
			}
			return nil
		},
	}
}

// upload seals and writes the stream's chunks and returns the file's
// entry without name, mode, time and renewal, and the blocks it wrote.
// prev, if it has a key (a file of that name exists), is the version it
// replaces: see the file comment.
func (a *Account) upload(ctx context.Context, r io.Reader, prev *indexfile.File, progress Progress) (f indexfile.File, written []indexfile.Ref, tail *uploadTail, err error) {
	reuse := map[chunkID][]indexfile.Chunk{}
	var marks map[uint64]struct{}
	if prev != nil && prev.Key != ([KeySize]byte{}) && !prev.KeyShared {
		f.Key = prev.Key
		marks = make(map[uint64]struct{}, len(prev.Chunks))
		for _, c := range prev.Chunks {
			id := chunkID{c.Size, c.Hash}
			reuse[id] = append(reuse[id], c)
			marks[c.Mark] = struct{}{}
		}
	} else {
		key, err := NewKey()
		if err != nil {
			return f, nil, nil, err
		}
		f.Key = key
	}
	// A small file goes inline.
	head := make([]byte, InlineMax(a.cfg.BlockSize)+1)
	n, rerr := io.ReadFull(r, head)
	switch {
	case errors.Is(rerr, io.ErrUnexpectedEOF) || errors.Is(rerr, io.EOF):
		f.Size, f.Hash = uint64(n), sha256.Sum256(head[:n])
		if n > 0 {
			f.Inline = head[:n:n]
		}
		if progress != nil {
			progress(int64(n))
		}
		return f, nil, nil, nil
	case rerr != nil:
		return f, nil, nil, wrap(KindLocalIO, "reading the file", rerr)
	}
	r = io.MultiReader(bytes.NewReader(head), r)
	key := f.Key
	bs, batch := a.cfg.BlockSize, a.cfg.Limits.WriteBatch
	ctx, cancel := context.WithCancelCause(ctx)
	defer func() {
		if tail == nil { // else the tail's wait ends the uploads
			cancel(nil)
		}
	}()

	// A fixed set of block buffers circulates from the chunker (here)
	// through the sealers and the collector to the uploaders: memory is
	// bounded by their number. The chunker takes them in file order, so
	// that the chunk the collector waits for always has one.
	free := make(chan []byte, (uploaders+1)*batch)
	for range cap(free) {
		free <- make([]byte, bs)
	}
	type job struct {
		items []BatchItem
		bytes int64
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var done, reused int64
	var upErr error
	acked := map[wire.ID]struct{}{}
	for range uploaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if err := a.remote.PutBatch(ctx, j.items); err != nil {
					mu.Lock()
					if upErr == nil {
						upErr = err
						cancel(err)
					}
					mu.Unlock()
				} else {
					mu.Lock()
					for _, it := range j.items {
						acked[it.ID] = struct{}{}
					}
					if progress != nil {
						done += j.bytes
						progress(done + reused)
					}
					mu.Unlock()
				}
				for _, it := range j.items {
					free <- it.Data
				}
			}
		}()
	}
	defer func() {
		if err != nil {
			a.deleteRefs(ctx, written)
			written = nil
		}
	}()

	// Sealers (sealpipe.go) take every chunk to seal; the collector takes
	// every chunk in file order, waits for its seal, and builds f.Chunks,
	// written and the batches. A few frame buffers carry chunks from the
	// chunker to the sealers (each task not reused holds one: tasks never
	// blocks); order may block, which only slows the chunker.
	nsealers := runtime.GOMAXPROCS(0)
	frames := make(chan []byte, 2*nsealers+2)
	for range cap(frames) {
		frames <- make([]byte, frameSize(bs))
	}
	tasks := make(chan *sealTask, cap(frames))
	order := make(chan *sealTask, cap(free))
	var sealers sync.WaitGroup
	for range nsealers {
		sealers.Go(func() { runSealer(tasks, frames, Key(key), a.root.OwnerSecret) })
	}
	var readErr, sealErr error
	var chunks []indexfile.Chunk
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		var cur job
		send := func() bool {
			if len(cur.items) == 0 {
				return true
			}
			select {
			case jobs <- cur:
				cur = job{}
				return true
			case <-ctx.Done():
				return false
			}
		}
		stopped := false
		for t := range order {
			<-t.done
			if stopped {
				continue
			}
			if t.err != nil {
				sealErr = t.err
				cancel(t.err)
				stopped = true
				continue
			}
			chunks = append(chunks, t.chunk)
			if t.reused {
				if progress != nil {
					mu.Lock()
					reused += int64(t.chunk.Size)
					progress(done + reused)
					mu.Unlock()
				}
				continue
			}
			written = append(written, t.chunk.Ref)
			cur.items = append(cur.items, t.item)
			cur.bytes += int64(t.chunk.Size)
			if len(cur.items) == batch && !send() {
				stopped = true
			}
		}
		// order is closed after readErr is set: reading it here is safe.
		if !stopped && readErr == nil {
			send()
		}
	}()

	// Only a chunk of an old chunk's size may be reused: only such a
	// chunk needs its hash here, in order, before the next cut (which
	// depends on ch.matched); the sealers hash the others.
	sizes := make(map[uint32]struct{}, len(reuse))
	for id := range reuse {
		sizes[id.size] = struct{}{}
	}
	sum := sha256.New()
	ch := newCDCChunker(r, a.table, PayloadCapacity(bs))
	ch.marks = marks
	var spare []byte // a frame taken for a chunk that was reused
	for {
		frame := spare
		spare = nil
		if frame == nil {
			select {
			case frame = <-frames:
			case <-ctx.Done():
			}
			if frame == nil {
				break
			}
		}
		chunk, mark, err := ch.next(frame[lengthSize:])
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			readErr = wrap(KindLocalIO, "reading the file", err)
			break
		}
		// The file's hash is taken here, in order, while the chunk just
		// copied is in cache.
		sum.Write(chunk)
		f.Size += uint64(len(chunk))
		t := &sealTask{chunk: indexfile.Chunk{Size: uint32(len(chunk)), Mark: mark}, done: make(chan struct{})}
		matched := false
		if _, ok := sizes[t.chunk.Size]; ok {
			t.chunk.Hash, t.hashed = sha256.Sum256(chunk), true
			cid := chunkID{t.chunk.Size, t.chunk.Hash}
			if old := reuse[cid]; len(old) > 0 {
				// Unchanged: keep its block.
				reuse[cid] = old[1:]
				t.chunk.Ref, t.reused, matched = old[0].Ref, true, true
			}
		}
		ch.matched(matched)
		if matched {
			close(t.done)
			spare = frame
		} else {
			select {
			case t.block = <-free:
			case <-ctx.Done():
			}
			if t.block == nil {
				break
			}
			t.frame = frame
			tasks <- t
		}
		select {
		case order <- t:
			continue
		case <-ctx.Done():
		}
		break
	}
	close(tasks)
	close(order)
	<-collected
	sealers.Wait()
	// Every block is sealed and on its way. The uploads' end is the
	// tail's: the caller may commit the index meanwhile (Put).
	finish := func() error {
		close(jobs)
		wg.Wait()
		defer cancel(nil)
		switch {
		case upErr != nil:
			return wrap(KindNetwork, "uploading", upErr)
		case ctx.Err() != nil:
			return wrap(KindNetwork, "uploading", context.Cause(ctx))
		}
		return nil
	}
	mu.Lock()
	failed := upErr != nil
	mu.Unlock()
	switch {
	case readErr != nil:
		finish()
		return f, written, nil, readErr
	case sealErr != nil:
		finish()
		return f, written, nil, sealErr
	case failed || ctx.Err() != nil:
		return f, written, nil, finish()
	}
	f.Chunks = chunks
	copy(f.Hash[:], sum.Sum(nil))
	tail = &uploadTail{wait: finish}
	mu.Lock()
	for _, r := range written {
		if _, ok := acked[r.ID]; !ok {
			tail.unacked = append(tail.unacked, r)
		}
	}
	mu.Unlock()
	return f, written, tail, nil
}

// uploadTail is what an upload leaves on its way when it returns: the
// blocks whose batch writes are not answered yet, and the wait for them.
// A nil tail has nothing on its way.
type uploadTail struct {
	unacked []indexfile.Ref
	wait    func() error
	once    sync.Once
	err     error
}

// Unacked returns the blocks written whose writes were not answered
// when the upload returned.
func (t *uploadTail) Unacked() []indexfile.Ref {
	if t == nil {
		return nil
	}
	return t.unacked
}

// Wait waits for the upload's last writes and returns the first error
// of any; it may be called more than once.
func (t *uploadTail) Wait() error {
	if t == nil {
		return nil
	}
	t.once.Do(func() { t.err = t.wait() })
	return t.err
}

// chunkID is what tells an unchanged chunk: its size and hash.
type chunkID struct {
	size uint32
	hash [32]byte
}

// Get writes the file name to w, verified block by block; see the file
// comment. It returns the file's index entry.
func (a *Account) Get(ctx context.Context, name string, w io.Writer, progress Progress) (indexfile.File, error) {
	a.mu.Lock()
	f, err := a.lookup(name)
	a.mu.Unlock()
	if err != nil {
		return f, err
	}
	return f, download(ctx, a.remote, a.cfg, &f, w, progress)
}

// GetRange writes length bytes of the file name from offset on to w
// (fewer if the file ends first), reading only the blocks that hold them,
// each verified against its chunk in the index.
func (a *Account) GetRange(ctx context.Context, name string, offset, length int64, w io.Writer) (indexfile.File, error) {
	a.mu.Lock()
	f, err := a.lookup(name)
	a.mu.Unlock()
	if err != nil {
		return f, err
	}
	if offset < 0 || length < 0 {
		return f, &Error{Kind: KindInvalid, Msg: "a range starts and runs at or past zero"}
	}
	return f, downloadRange(ctx, a.remote, a.cfg, &f, offset, length, w)
}

// downloadRange writes f's bytes [offset, offset+length) to w.
func downloadRange(ctx context.Context, remote *Remote, cfg *ServerConfig, f *indexfile.File, offset, length int64, w io.Writer) error {
	end := min(uint64(offset)+uint64(length), f.Size)
	if uint64(offset) >= end {
		return nil
	}
	if len(f.Inline) > 0 {
		if sha256.Sum256(f.Inline) != f.Hash {
			return &Error{Kind: KindTampered, Msg: "the file's content does not match its recorded hash"}
		}
		_, err := w.Write(f.Inline[offset:end])
		return localErr(err)
	}
	var pos uint64
	first, last := -1, -1
	var skip uint64
	for i, c := range f.Chunks {
		if pos+uint64(c.Size) > uint64(offset) && pos < end {
			if first < 0 {
				first, skip = i, uint64(offset)-pos
			}
			last = i
		}
		pos += uint64(c.Size)
	}
	g := *f
	g.Chunks = f.Chunks[first : last+1]
	cw := &cutWriter{w: w, skip: skip, left: end - uint64(offset)}
	return fetchChunks(ctx, remote, cfg, &g, cw, nil, false)
}

// cutWriter drops skip bytes, then passes on left bytes.
type cutWriter struct {
	w          io.Writer
	skip, left uint64
}

func (c *cutWriter) Write(p []byte) (int, error) {
	n := len(p)
	d := min(c.skip, uint64(len(p)))
	p, c.skip = p[d:], c.skip-d
	p = p[:min(uint64(len(p)), c.left)]
	c.left -= uint64(len(p))
	if _, err := c.w.Write(p); err != nil {
		return 0, err
	}
	return n, nil
}

func localErr(err error) error {
	if err != nil {
		return localError("writing the file", err)
	}
	return nil
}

// download writes f's plaintext to w after verifying every block.
func download(ctx context.Context, remote *Remote, cfg *ServerConfig, f *indexfile.File, w io.Writer, progress Progress) error {
	if len(f.Inline) > 0 || f.Size == 0 {
		if len(f.Inline) != int(f.Size) || sha256.Sum256(f.Inline) != f.Hash {
			return &Error{Kind: KindTampered, Msg: "the file's content does not match its recorded hash"}
		}
		if _, err := w.Write(f.Inline); err != nil {
			return localErr(err)
		}
		if progress != nil {
			progress(int64(f.Size))
		}
		return nil
	}
	return fetchChunks(ctx, remote, cfg, f, w, progress, true)
}

// fetchChunks writes the plaintext of f's chunks to w, verifying each
// block, and with whole first that the chunks make up the file's size.
//
// It does not hash the whole output to compare it with f.Hash: that pass
// (a seventh of a get's CPU, on the one goroutine that orders the output)
// can catch nothing the checks of each chunk do not. The entry f is
// authenticated (under the account key, or a share's manifest key), and
// lists the chunks in order with each one's size and SHA-256; fetchChunk
// lets through only a block whose plaintext has exactly these. So the
// output is the recorded chunks in the recorded order, byte for byte:
// what the writer hashed into f.Hash when it cut the file. All that the
// server (or the network) controls, which bytes answer for which block
// ID and whether any answer, is caught chunk by chunk; it cannot add,
// drop or reorder chunks, which the entry lists. f.Hash could disagree
// with its chunks only in an entry its writer made inconsistent, and a
// writer holding the key can record whatever content it likes anyway.
// The one cheap consistency check left is the sizes, before any byte is
// fetched. Ranges (whole false) have always rested on the same argument.
func fetchChunks(ctx context.Context, remote *Remote, cfg *ServerConfig, f *indexfile.File, w io.Writer, progress Progress, whole bool) error {
	if whole {
		var total uint64
		for _, c := range f.Chunks {
			total += uint64(c.Size)
		}
		if total != f.Size {
			return &Error{Kind: KindTampered, Msg: "the file's chunks do not add up to its recorded size"}
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type result struct {
		plain []byte
		// buf is the buffer plain lies in, whole: plain starts past the
		// frame's length and is capped at the chunk, so a buffer put
		// back as plain[:0] would be too small for the next block and
		// reallocated on every chunk.
		buf []byte
		err error
	}
	bs := cfg.BlockSize
	plainBufs := make(chan []byte, getWindow)
	for range getWindow {
		plainBufs <- make([]byte, 0, bs)
	}
	// pending holds one result channel per chunk, in file order; its
	// capacity is the window.
	pending := make(chan chan result, max(1, getWindow-remote.Parallel))
	type job struct {
		i   int
		out chan result
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	for range remote.Parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cipher := make([]byte, bs+1)
			for j := range jobs {
				c := &f.Chunks[j.i]
				var buf []byte
				select {
				case buf = <-plainBufs:
				case <-ctx.Done():
					j.out <- result{err: context.Cause(ctx)}
					continue
				}
				p, err := fetchChunk(ctx, remote, bs, Key(f.Key), c, cipher, buf)
				if err != nil {
					plainBufs <- buf
					buf = nil
				}
				j.out <- result{plain: p, buf: buf, err: err}
			}
		}()
	}
	go func() {
		defer close(pending)
		defer close(jobs)
		for i := range f.Chunks {
			out := make(chan result, 1)
			select {
			case pending <- out:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- job{i: i, out: out}:
			case <-ctx.Done():
				out <- result{err: context.Cause(ctx)}
				return
			}
		}
	}()
	var n int64
	var err error
	for out := range pending {
		r := <-out
		if err != nil {
			if r.buf != nil {
				plainBufs <- r.buf[:0]
			}
			continue
		}
		if r.err != nil {
			err = r.err
			cancel(err)
			continue
		}
		if _, werr := w.Write(r.plain); werr != nil {
			err = localError("writing the file", werr)
			cancel(err)
		}
		n += int64(len(r.plain))
		plainBufs <- r.buf[:0]
		if progress != nil {
			progress(n)
		}
	}
	wg.Wait()
	return err
}

// fetchChunk reads one chunk's block and returns its verified plaintext
// in plain's storage.
//
// It does not hash the ciphertext to compare its ETag with the index's:
// that pass over every byte (a third of a get's CPU with the chunk and
// file hashes) can catch nothing the two checks below do not. The index
// is authenticated, so c.Size and c.Hash are what the writer recorded.
// The AEAD under the file key, with the block's ID as associated data,
// refuses any block sealed under another key (another file's, another
// account's) or for another ID (a block of this file moved or swapped),
// and any altered or truncated ciphertext. What remains is a block this
// file's key once sealed for this very ID: an older version of it, say.
// Its plaintext must then still have the chunk's size and SHA-256, so it
// is the recorded chunk, byte for byte, whatever its ciphertext. Which
// chunks make up the file, and in what order, only the authenticated
// index says (see fetchChunks).
func fetchChunk(ctx context.Context, remote *Remote, bs int, key Key, c *indexfile.Chunk, cipher, plain []byte) ([]byte, error) {
	data, err := remote.getUnhashed(ctx, c.ID, cipher)
	if err != nil {
		if KindOf(err) == KindNotFound {
			return nil, &Error{Kind: KindNotFound, Msg: "a block of the file is gone from the server (expired unrenewed, or deleted)"}
		}
		return nil, err
	}
	if len(data) != bs {
		return nil, &Error{Kind: KindTampered, Msg: "the server returned a block of the wrong size"}
	}
	p, err := openInto(plain, key, c.ID, data)
	if err != nil {
		return nil, wrap(KindTampered, "a block of the file", err)
	}
	if len(p) != int(c.Size) || sha256.Sum256(p) != c.Hash {
		return nil, &Error{Kind: KindTampered, Msg: "a block of the file holds another chunk than the index recorded (blocks swapped?)"}
	}
	return p, nil
}

// WriteFileAtomic writes a file at path through fill, into a temporary
// file in the same directory that is renamed into place only when fill
// succeeds; on failure nothing is left behind. Without overwrite, an
// existing path is an error of KindConflict, checked before and after.
func WriteFileAtomic(path string, overwrite bool, mode fs.FileMode, mtime time.Time, fill func(w io.Writer) error) error {
	exists := &Error{Kind: KindConflict, Msg: fmt.Sprintf("%s exists; not overwriting it (use --force)", path)}
	if !overwrite {
		if _, err := os.Lstat(path); err == nil {
			return exists
		}
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return localError("creating the output file", err)
	}
	defer root.Close()
	return writeAtomic(root, base, partTag, mode, mtime, fill, func(tmp string) error {
		if overwrite {
			return root.Rename(tmp, base)
		}
		// A hard link fails if path appeared meanwhile: no clobbering
		// even in a race.
		if err := root.Link(tmp, base); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return exists
			}
			return err
		}
		return root.Remove(tmp)
	})
}

// partTag marks our temporary files: ".NAME.blind-RANDOM.part".
const partTag = ".blind-"

// writeAtomic writes name in root through fill: into a temporary file
// beside it, named with tag, synced and given mode and mtime (when set),
// then handed to place to move into position. On any failure the
// temporary file is removed. WriteFileAtomic and sync's downloads both
// write this way. fill writes through a stagedWriter (directio.go): its
// writes return before they reach the file, a large file's with
// O_DIRECT, and a write error may show only on a later write or at the
// end, still before anything is renamed.
func writeAtomic(root *os.Root, name, tag string, mode fs.FileMode, mtime time.Time, fill func(io.Writer) error, place func(tmp string) error) (err error) {
	tmp := path.Join(path.Dir(name), "."+path.Base(name)+tag+randomHex(6)+".part")
	fh, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return localError("creating a temporary file for "+name, err)
	}
	sw := newStagedWriter(fh, true)
	defer func() {
		if err != nil {
			sw.abort()
			fh.Close()
			root.Remove(tmp)
		}
	}()
	if err := fill(sw); err != nil {
		return err
	}
	if err := sw.Close(); err != nil {
		return localError("writing "+name, err)
	}
	if err := fh.Sync(); err != nil {
		return localError("writing "+name, err)
	}
	if err := fh.Close(); err != nil {
		return localError("writing "+name, err)
	}
	if mode != 0 {
		if err := root.Chmod(tmp, mode&fs.ModePerm); err != nil {
			return localError("setting the mode of "+name, err)
		}
	}
	if !mtime.IsZero() {
		if err := root.Chtimes(tmp, mtime, mtime); err != nil {
			return localError("setting the time of "+name, err)
		}
	}
	if err := place(tmp); err != nil {
		var ce *Error
		if errors.As(err, &ce) {
			return err
		}
		return localError("moving "+name+" into place", err)
	}
	return nil
}

// localError is a local I/O failure, with a clear word for a full disk.
func localError(what string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EFBIG) {
		return &Error{Kind: KindLocalIO, Msg: what + ": the disk is full", Err: err}
	}
	return &Error{Kind: KindLocalIO, Msg: what, Err: err}
}

// PutSource is one file of PutMany.
type PutSource struct {
	Name    string
	R       io.Reader
	Mode    fs.FileMode
	ModTime time.Time
	// Size, if positive, is the expected length: a file known to be
	// small goes up beside others (see PutMany). Zero means unknown.
	Size int64
}

// smallPut is the largest file PutMany sends beside others: a few
// blocks, so that the files in flight hold little memory.
const (
	smallPutBlocks = 4
	smallPutFiles  = 16
)

// PutMany stores several files with one index update: what a folder of
// small files needs, since each update writes at least a leaf, a dir and
// the head. Each replaces a file of its name as Put does.
//
// A file whose name another device put at the same time, and whose
// version the merge kept under that name (this one going under a
// conflict name), comes back as an entry with no Name.
func (a *Account) PutMany(ctx context.Context, srcs []PutSource) ([]indexfile.File, error) {
	return a.putMany(ctx, srcs, nil)
}

// putMany is PutMany; uploaded, if set, is given each file's entry
// (srcs[i]'s as i) once every file is uploaded, before the index update
// that commits them: sync journals its uploads there.
func (a *Account) putMany(ctx context.Context, srcs []PutSource, uploaded func(i int, f indexfile.File)) ([]indexfile.File, error) {
	cur, err := a.remote.CurrentPeriod(ctx)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex // guards written
	var written []indexfile.Ref
	files := make([]indexfile.File, len(srcs))
	fail := func(err error) ([]indexfile.File, error) {
		a.deleteRefs(ctx, written)
		return nil, err
	}
	seen := make(map[string]bool, len(srcs))
	var small, large []int
	limit := int64(smallPutBlocks * PayloadCapacity(a.cfg.BlockSize))
	for i, src := range srcs {
		if err := indexfile.ValidName(src.Name); err != nil {
			return fail(wrap(KindInvalid, "put", err))
		}
		if seen[src.Name] {
			return fail(&Error{Kind: KindInvalid, Msg: fmt.Sprintf("%q is given twice", src.Name)})
		}
		seen[src.Name] = true
		if src.Size > 0 && src.Size <= limit {
			small = append(small, i)
		} else {
			large = append(large, i)
		}
	}
	one := func(ctx context.Context, i int) error {
		src := srcs[i]
		a.mu.Lock()
		prev, _ := a.lookup(src.Name)
		a.mu.Unlock()
		f, w, tail, err := a.upload(ctx, src.R, &prev, nil)
		if err == nil {
			err = tail.Wait()
		}
		mu.Lock()
		written = append(written, w...)
		mu.Unlock()
		if err != nil {
			return err
		}
		f.Name, f.Mode, f.ModTime, f.Renewed = src.Name, src.Mode&fs.ModePerm, src.ModTime, putRenewed(&f, &prev, w, cur)
		files[i] = f
		return nil
	}
	// Small files go up several at a time: each waits for its batch
	// write's commit (a window of the server's pool), and one at a time
	// a folder of them would take a window each. Large ones already keep
	// several batch writes in flight, one file at a time.
	if err := parallel(ctx, len(small), smallPutFiles, func(ctx context.Context, k int) error { return one(ctx, small[k]) }); err != nil {
		return fail(err)
	}
	for _, i := range large {
		if err := one(ctx, i); err != nil {
			return fail(err)
		}
	}
	if uploaded != nil {
		for i, f := range files {
			uploaded(i, f)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	x, err := a.update(ctx, func(x *indexfile.Index) error {
		for _, f := range files {
			// putReusing's check on a scratch index of the one file.
			one := &indexfile.Index{}
			if old := x.Lookup(f.Name); old != nil {
				one.Files = []indexfile.File{*old}
			}
			if err := putReusing(one, f, written); err != nil {
				return err
			}
		}
		if err := x.PutAll(files); err != nil {
			return wrap(KindConflict, "put", err)
		}
		return nil
	})
	if err != nil {
		if KindOf(err) != KindNetwork {
			a.deleteRefs(ctx, written)
		}
		return nil, err
	}
	// Another device may have put the same name meanwhile, and the merge
	// kept its version under the name (ours under a conflict name):
	// such a file is returned without a name, so that a caller that
	// records what it stored (sync) does not take the name for ours.
	for i := range files {
		if got := x.Lookup(files[i].Name); got == nil || !sameVersion(got, &files[i]) {
			files[i] = indexfile.File{}
		}
	}
	return files, nil
}

// sameVersion reports whether two entries are the same put of a file:
// the same content in the same blocks (block ids are random per put).
func sameVersion(a, b *indexfile.File) bool {
	if a.Hash != b.Hash || a.Size != b.Size || len(a.Chunks) != len(b.Chunks) {
		return false
	}
	for i := range a.Chunks {
		if a.Chunks[i].ID != b.Chunks[i].ID {
			return false
		}
	}
	return true
}
