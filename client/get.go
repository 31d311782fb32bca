package client

// Getting a file: the reading side of put.go.
//
// Reading a range (GetRange) fetches only the blocks holding it, each
// verified against its chunk's size and hash in the index.
//
// Memory is bounded whatever the file's size: a get keeps at most
// getWindow blocks (and, into a file, stageBufs staging buffers: see
// directio.go), and never holds a file whole.
//
// A get checks, for every block, that it authenticates under the file
// key with its own ID as associated data, and that the plaintext has the
// chunk's size and hash (a swap of two blocks fails both; an older
// version of a block fails the hash): what a check of the ciphertext's
// ETag would add is nothing (see openChunk), and nor would a second
// pass over the whole file's hash (see fetchChunks). Nothing that fails
// reaches the output, and a file output is written to a temporary file
// renamed into place only once verified.

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/blindstore/blindstore/client/format"
	"github.com/blindstore/blindstore/indexfile"
	"github.com/blindstore/blindstore/wire"
)

// getWindow bounds the blocks a get has fetched or is fetching ahead of
// the one it writes.
const getWindow = 32

// readGroup is how many chunks one POST /v1/read asks for, and
// readWorkers how many such requests a get keeps out: 16 blocks (1 MiB at
// the default size) spread the request's cost thin, and four requests
// keep the server and the client's two cores busy while each waits.
const (
	readGroup   = 16
	readWorkers = 4
)

// Get writes the file name to w, verified block by block; see the file
// comment. It returns the file's index entry.
func (a *Account) Get(ctx context.Context, name string, w io.Writer, progress Progress) (indexfile.File, error) {
	a.mu.Lock()
	f, err := a.lookupCtx(ctx, name)
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
	f, err := a.lookupCtx(ctx, name)
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
func downloadRange(ctx context.Context, remote Store, cfg *ServerConfig, f *indexfile.File, offset, length int64, w io.Writer) error {
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
func download(ctx context.Context, remote Store, cfg *ServerConfig, f *indexfile.File, w io.Writer, progress Progress) error {
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
// lists the chunks in order with each one's size and SHA-256; openChunk
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
func fetchChunks(ctx context.Context, remote Store, cfg *ServerConfig, f *indexfile.File, w io.Writer, progress Progress, whole bool) error {
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
	// A server that reads several blocks per request (POST /v1/read) gets
	// groups of readGroup consecutive chunks from fewer workers; the
	// window grows to keep as many groups in flight. Otherwise each
	// worker reads one chunk per request, as GET does.
	mr, batch, cerr := readBatchOf(ctx, remote)
	if cerr != nil {
		return cerr
	}
	group, workers, window := 1, remote.parallelism(), getWindow
	read := getEach(remote)
	if mr != nil {
		read = mr.readMany
		group = min(batch, readGroup)
		workers = min(workers, readWorkers)
		// Beside the groups being read, one more: the groups after the
		// first unfinished one hold at most group*(workers-1) buffers,
		// so its worker always finds one.
		window = max(window, group*(workers+1))
	}
	plainBufs := make(chan []byte, window)
	for range window {
		plainBufs <- make([]byte, 0, bs)
	}
	// pending holds one result channel per chunk, in file order. A
	// group's channels all go in before its job, so that the in-order
	// loop below never waits for a job not yet sent; window-workers
	// leaves room for every worker's group.
	pending := make(chan chan result, max(group, window-workers))
	type job struct {
		lo  int // the group's first chunk
		out []chan result
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cipher := make([]byte, wire.ReadRecordSize(bs)) // a record, or a block and the byte that shows it too long
			key := format.Key(f.Key)
			ids := make([]wire.ID, 0, group)
			for j := range jobs {
				ids = ids[:0]
				for i := range j.out {
					ids = append(ids, f.Chunks[j.lo+i].ID)
				}
				sent := 0
				err := read(ctx, ids, cipher, func(i int, data []byte, err error) error {
					c := &f.Chunks[j.lo+i]
					buf, ok := takeBuf(ctx, plainBufs)
					if !ok {
						return context.Cause(ctx)
					}
					var p []byte
					if err == nil {
						p, err = openChunk(bs, key, c, data, buf)
					} else {
						err = chunkReadError(err)
					}
					if err != nil {
						plainBufs <- buf
						buf = nil
					}
					j.out[i] <- result{plain: p, buf: buf, err: err}
					sent = i + 1
					return err
				})
				if err == nil && sent < len(j.out) {
					err = fmt.Errorf("client: a read answered %d of %d blocks", sent, len(j.out))
				}
				for _, out := range j.out[sent:] {
					out <- result{err: err}
				}
			}
		}()
	}
	go func() {
		defer close(pending)
		defer close(jobs)
		for lo := 0; lo < len(f.Chunks); lo += group {
			outs := make([]chan result, min(group, len(f.Chunks)-lo))
			for i := range outs {
				outs[i] = make(chan result, 1)
				select {
				case pending <- outs[i]:
				case <-ctx.Done():
					// The group's job is never sent: answer what of it
					// is already pending, which the loop below waits for.
					for _, out := range outs[:i] {
						out <- result{err: context.Cause(ctx)}
					}
					return
				}
			}
			select {
			case jobs <- job{lo: lo, out: outs}:
			case <-ctx.Done():
				for _, out := range outs {
					out <- result{err: context.Cause(ctx)}
				}
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

// getEach is readMany's work for a Store that reads one block a request
// (fetchChunks then gives each job one chunk): a missing block is handed
// to fn, any other failure ends the read.
func getEach(remote Store) func(ctx context.Context, ids []wire.ID, buf []byte, fn func(i int, data []byte, err error) error) error {
	return func(ctx context.Context, ids []wire.ID, buf []byte, fn func(i int, data []byte, err error) error) error {
		for i, id := range ids {
			data, err := remote.getUnhashed(ctx, id, buf)
			if err != nil && KindOf(err) != KindNotFound {
				return err
			}
			if err := fn(i, data, err); err != nil {
				return err
			}
		}
		return nil
	}
}

// takeBuf takes a plaintext buffer, or reports false once ctx ends.
func takeBuf(ctx context.Context, bufs chan []byte) ([]byte, bool) {
	select {
	case b := <-bufs:
		return b, true
	case <-ctx.Done():
		return nil, false
	}
}

// chunkReadError says what a missing block means to a get.
func chunkReadError(err error) error {
	if KindOf(err) == KindNotFound {
		return &Error{Kind: KindNotFound, Msg: "a block of the file is gone from the server (expired unrenewed, or deleted)"}
	}
	return err
}

// openChunk opens a chunk's block, read by whatever request, and returns
// its verified plaintext in plain's storage.
//
// It does not hash the ciphertext to compare its ETag with the index's:
// that pass over every byte (a third of a get's CPU with the chunk and
// file hashes) can catch nothing the two checks below do not. The index
// is authenticated, so c.Size and c.Hash are what the writer recorded.
// The AEAD under the file key, with the block's ID as associated data,
// refuses any block encrypted under another key (another file's, another
// account's) or for another ID (a block of this file moved or swapped),
// and any altered or truncated ciphertext. What remains is a block this
// file's key once encrypted for this very ID: an older version of it, say.
// Its plaintext must then still have the chunk's size and SHA-256, so it
// is the recorded chunk, byte for byte, whatever its ciphertext. Which
// chunks make up the file, and in what order, only the authenticated
// index says (see fetchChunks).
func openChunk(bs int, key format.Key, c *indexfile.Chunk, data, plain []byte) ([]byte, error) {
	if len(data) != bs {
		return nil, &Error{Kind: KindTampered, Msg: "the server returned a block of the wrong size"}
	}
	p, err := format.DecryptInto(plain, key, c.ID, data)
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
