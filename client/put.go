package client

// Putting a file, docs/spec.md "Files": each file has its own random key;
// its plaintext is cut into chunks at content-defined boundaries
// (chunker.go), each chunk encrypted alone into a block under a fresh
// random ID (encpipe.go), with the chunk's size, SHA-256 and mark and the
// block's ETag kept in the index, and the whole file's SHA-256 too. The
// index then changes by the transaction of indextx.go.
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
// Memory is bounded whatever the file's size: a put keeps at most
// (uploaders+1) × write_batch blocks in flight and never holds a file
// whole, and the puts of one account at once share a budget of
// budgetBatches × write_batch blocks (blockbudget.go; get.go bounds a
// get).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blindstore/blindstore/wire"

	"github.com/blindstore/blindstore/client/format"
	"github.com/blindstore/blindstore/indexfile"
)

// Transfer shapes.
const (
	// uploaders is the number of batch writes in flight. A server's write
	// pool holds each for its window (250 ms by default) to mix it with
	// others, or until 16 MiB wait (four batches of 4 MiB), and answers
	// them only once their commit is durable, so throughput grows with
	// this; memory too, by one batch (write_batch blocks: 4 MiB by
	// default) each. With six, four were in the commit and two waited:
	// the server then idled while the next 16 MiB came in, and this
	// process idled through each commit, and a put took their sum. Ten
	// keep the next commit's batches arriving while one commits.
	uploaders = 10
)

// InlineMax is format.InlineMax.
func InlineMax(blockSize int) int { return format.InlineMax(blockSize) }

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
	// Size, if positive, is the expected length, which prices the put
	// (putcost.go); zero or less is unknown.
	Size int64
}

// Put stores the stream r as the file info.Name, replacing a file of that
// name (sending only the chunks that changed), and returns the index
// entry.
func (a *Account) Put(ctx context.Context, r io.Reader, info PutInfo, progress Progress) (indexfile.File, error) {
	if err := indexfile.ValidName(info.Name); err != nil {
		return indexfile.File{}, wrap(KindInvalid, "put", err)
	}
	if err := a.checkPutCost(ctx, putPlan{sizes: []int64{info.Size}, names: []string{info.Name}, updates: 1}); err != nil { // putcost.go
		return indexfile.File{}, err
	}
	cur, err := a.remote.CurrentPeriod(ctx)
	if err != nil {
		return indexfile.File{}, err
	}
	a.mu.Lock()
	prev, err := a.lookupCtx(ctx, info.Name) // lazyindex.go: its leaf alone
	a.mu.Unlock()
	if err != nil && KindOf(err) != KindNotFound {
		return indexfile.File{}, err
	}
	f, written, tail, err := a.upload(ctx, r, &prev, info.Size, progress)
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
	_, err = a.updateNamed(ctx, info.Name, change, unacked)
	werr := tail.Wait() // done already, unless the commit went beside
	if errors.Is(err, errUnacked) {
		if werr != nil {
			a.deleteRefs(ctx, written)
			return indexfile.File{}, werr
		}
		_, err = a.updateNamed(ctx, info.Name, change, nil)
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
		Name: name, Mode: before.Mode(), ModTime: before.ModTime(), Size: before.Size(),
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

// upload encrypts and writes the stream's chunks and returns the file's
// entry without name, mode, time and renewal, and the blocks it wrote.
// prev, if it has a key (a file of that name exists), is the version it
// replaces: see the file comment.
// size, if positive, is the stream's expected length: it sizes the
// batches of buffers taken near the end (see lendBatch).
func (a *Account) upload(ctx context.Context, r io.Reader, prev *indexfile.File, size int64, progress Progress) (f indexfile.File, written []indexfile.Ref, tail *uploadTail, err error) {
	reuse := map[chunkID][]indexfile.Chunk{}
	var marks map[uint64]struct{}
	if prev != nil && prev.Key != ([format.KeySize]byte{}) && !prev.KeyShared {
		f.Key = prev.Key
		marks = make(map[uint64]struct{}, len(prev.Chunks))
		for _, c := range prev.Chunks {
			id := chunkID{c.Size, c.Hash}
			reuse[id] = append(reuse[id], c)
			marks[c.Mark] = struct{}{}
		}
	} else {
		key, err := format.NewKey()
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

	// Block buffers go from the chunker (here) through the encryptors and
	// the collector to the uploaders, and back to the account's budget
	// (blockbudget.go), which lends them a batch at a time: memory is
	// bounded by the budget, and by uploaders+1 batches per upload
	// (depth). The chunker takes them in file order, so that the chunk
	// the collector waits for always has one, and each batch lent
	// becomes one batch write, so that no write waits for a buffer.
	budget := a.blockBudget()
	depth := make(chan struct{}, uploaders+1)
	var out atomic.Int64 // buffers lent to this upload and not given back
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
				bufs := make([][]byte, len(j.items))
				for i, it := range j.items {
					bufs[i] = it.Data
				}
				budget.give(bufs)
				out.Add(-int64(len(bufs)))
				<-depth
			}
		}()
	}
	defer func() {
		if err != nil {
			a.deleteRefs(ctx, written)
			written = nil
		}
	}()

	// Encryptors (encpipe.go) take every chunk to encrypt; the collector takes
	// every chunk in file order, waits for its encryption, and builds f.Chunks,
	// written and the batches. A few frame buffers carry chunks from the
	// chunker to the encryptors (each task not reused holds one: tasks never
	// blocks); order may block, which only slows the chunker.
	nencryptors := runtime.GOMAXPROCS(0)
	frames := make(chan []byte, 2*nencryptors+2)
	for range cap(frames) {
		frames <- make([]byte, format.FrameSize(bs))
	}
	tasks := make(chan *encTask, cap(frames))
	order := make(chan *encTask, (uploaders+1)*batch)
	var encryptors sync.WaitGroup
	for range nencryptors {
		encryptors.Go(func() { runEncryptor(tasks, frames, format.Key(key), a.root.OwnerSecret) })
	}
	var readErr, encErr error
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
				encErr = t.err
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
			if (len(cur.items) == batch || t.endsBatch) && !send() {
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
	// depends on ch.matched); the encryptors hash the others.
	sizes := make(map[uint32]struct{}, len(reuse))
	for id := range reuse {
		sizes[id.size] = struct{}{}
	}
	// lent is what is left of the batch of buffers lent last; a batch
	// is asked for as the first of its blocks is needed, of fewer
	// buffers than write_batch when the file's size says fewer blocks
	// remain (a chunk holds at least ChunkMin bytes, but the last).
	var lent [][]byte
	lendBatch := func() bool {
		select {
		case depth <- struct{}{}:
		case <-ctx.Done():
			return false
		}
		// f.Size counts the chunk that asks. Past the expected size
		// (a wrong guess) nothing is known: a whole batch.
		n := batch
		if left := size - int64(f.Size); left >= 0 {
			least := int64(format.ChunkMin(format.PayloadCapacity(bs)))
			n = min(n, int((left+least-1)/least)+1)
		}
		bufs, err := budget.take(ctx, n)
		if err != nil {
			return false
		}
		out.Add(int64(len(bufs)))
		lent = bufs
		return true
	}
	sum := sha256.New()
	ch := format.NewChunker(r, a.table, format.PayloadCapacity(bs))
	ch.SetOldMarks(marks)
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
		chunk, mark, err := ch.Next(frame[format.LengthSize:])
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
		t := &encTask{chunk: indexfile.Chunk{Size: uint32(len(chunk)), Mark: mark}, done: make(chan struct{})}
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
		ch.Matched(matched)
		if matched {
			close(t.done)
			spare = frame
		} else {
			if len(lent) == 0 && !lendBatch() {
				break
			}
			t.block, lent = lent[0], lent[1:]
			t.endsBatch = len(lent) == 0
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
	budget.give(lent)
	out.Add(-int64(len(lent)))
	lent = nil
	close(tasks)
	close(order)
	<-collected
	encryptors.Wait()
	// Every block is encrypted and on its way. The uploads' end is the
	// tail's: the caller may commit the index meanwhile (Put).
	finish := func() error {
		close(jobs)
		wg.Wait()
		// Buffers of tasks that never reached a batch write (a failed
		// upload) are back as far as the budget is concerned.
		budget.forget(int(out.Swap(0)))
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
	case encErr != nil:
		finish()
		return f, written, nil, encErr
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
	if err := a.checkPutCost(ctx, putSourcesPlan(srcs)); err != nil { // putcost.go
		return nil, err
	}
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
	a.mu.Lock()
	err = a.needIndex(ctx)
	a.mu.Unlock()
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
	limit := int64(smallPutBlocks * format.PayloadCapacity(a.cfg.BlockSize))
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
		f, w, tail, err := a.upload(ctx, src.R, &prev, src.Size, nil)
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
