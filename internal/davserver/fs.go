package davserver

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/webdav"

	"github.com/blindstore/blindstore/client"
	"github.com/blindstore/blindstore/indexfile"
)

// Account is what the file system needs of an open account
// (*client.Account).
type Account interface {
	Files() []indexfile.File
	Generation() uint64
	Refresh(ctx context.Context) error
	Put(ctx context.Context, r io.Reader, info client.PutInfo, progress client.Progress) (indexfile.File, error)
	PutMany(ctx context.Context, srcs []client.PutSource) ([]indexfile.File, error)
	GetRange(ctx context.Context, name string, offset, length int64, w io.Writer) (indexfile.File, error)
	Reshape(ctx context.Context, r client.Reshape) error
}

// FS is a webdav.FileSystem over an account: folders are name prefixes,
// an empty folder is its marker (client.DirMarker), reads stream the
// blocks of the range asked for, writes stream into a put that commits
// when the file is closed.
type FS struct {
	acc Account

	mu sync.RWMutex // guards t
	t  *tree

	// props holds dead properties (PROPPATCH), in memory only: the index
	// has no place for them, and they are lost when the server stops.
	propsMu sync.Mutex
	props   map[string]map[xml.Name]webdav.Property

	uploads sync.WaitGroup
	open    atomic.Int64 // uploads in progress
	// markers is read-locked for each empty-folder marker Mkdir has not
	// committed yet: a removal or rename write-locks it to wait for them,
	// so that it finds them in the index.
	markers sync.RWMutex

	small *batcher
}

// NewFS returns the file system over acc, as its index is now. With a
// journal (journal.go; nil: none), small files are answered once they
// are in it, and those it holds from an earlier run are committed
// again, all but the ones the index shows already.
func NewFS(acc Account, j *journal, replay []journalEntry) *FS {
	f := &FS{acc: acc, props: map[string]map[xml.Name]webdav.Property{}, small: newBatcher(acc, j)}
	f.small.committed = f.committed
	// The tree first: a replayed file's commit applies to it.
	f.rebuild()
	if len(replay) > 0 {
		have := map[string]indexfile.File{}
		for _, x := range acc.Files() {
			have[x.Name] = x
		}
		live := replay[:0]
		for _, e := range replay {
			// Committed just before a crash, before its done record.
			if x, ok := have[e.name]; ok && x.Size == uint64(len(e.data)) && x.ModTime.Equal(e.mtime) {
				continue
			}
			live = append(live, e)
		}
		f.small.replay(live)
		f.rebuild() // lays them over the index
	}
	return f
}

// journaled reports whether small PUTs are answered from the journal.
func (f *FS) journaled() bool { return f.small.j != nil }

// rebuild reads the whole index again. It holds mu while it reads, so
// that a change the server commits meanwhile lands in the new tree.
// Files in the journal but not yet in the index are laid over it.
func (f *FS) rebuild() {
	f.mu.Lock()
	defer f.mu.Unlock()
	gen := f.acc.Generation()
	f.t = newTree(f.acc.Files(), gen)
	for _, p := range f.small.pendingFiles() {
		f.t.add(p.name, entry{size: int64(len(p.data)), mtime: p.info.ModTime, mode: p.info.Mode})
	}
}

// committed applies a journaled file's commit to the tree: the entry the
// index holds now, unless a later version waits; with no name (another
// device's version kept it) the tree is stale.
func (f *FS) committed(p *pending, file indexfile.File, newest bool) {
	if file.Name == "" {
		f.mu.Lock()
		f.t.gen = 0
		f.mu.Unlock()
		return
	}
	e := entryOf(&file)
	f.changed(func(t *tree) {
		if newest {
			t.add(p.name, e)
		}
	})
}

// Refresh picks up changes made by other devices.
func (f *FS) Refresh(ctx context.Context) error {
	if err := f.acc.Refresh(ctx); err != nil {
		return err
	}
	f.mu.RLock()
	stale := f.t.gen != f.acc.Generation()
	f.mu.RUnlock()
	if stale {
		f.rebuild()
	}
	return nil
}

// changed applies a change the server committed to the tree. When the
// index moved on by more than that one update (another device's change
// merged in, or another of this server's updates), the tree is marked
// stale for the next Refresh.
func (f *FS) changed(apply func(t *tree)) {
	gen := f.acc.Generation()
	f.mu.Lock()
	defer f.mu.Unlock()
	apply(f.t)
	switch gen {
	case f.t.gen + 1:
		f.t.gen = gen
	case f.t.gen: // an update already applied: one batch of several files
	default:
		f.t.gen = 0
	}
}

// WaitUploads waits until every upload in progress has committed or
// failed.
func (f *FS) WaitUploads() { f.uploads.Wait() }

// OpenUploads is the number of uploads in progress, journaled files not
// yet committed included.
func (f *FS) OpenUploads() int64 { return f.open.Load() + int64(len(f.small.pendingFiles())) }

// Close waits, until ctx is done, for the journaled files to be
// committed, then closes the journal: removed if it holds nothing more,
// kept for the next start otherwise.
func (f *FS) Close(ctx context.Context) error {
	if f.small.j == nil {
		return nil
	}
	empty := f.small.drain(ctx)
	if err := f.small.j.close(empty); err != nil {
		return fmt.Errorf("closing the journal: %w", err)
	}
	if !empty {
		return errors.New("files written are not all committed: the journal keeps them for the next start")
	}
	return nil
}

// clean turns a WebDAV path into an index name ("" is the root).
func clean(name string) string {
	return strings.Trim(path.Clean("/"+name), "/")
}

// Storable reports whether name (an index name) may be written: a valid
// index name that is not an empty-folder marker, as sync decides.
func Storable(name string) error {
	if err := indexfile.ValidName(name); err != nil {
		return err
	}
	if client.Hidden(name) {
		return fmt.Errorf("%s is reserved for empty folders", client.DirMarker)
	}
	return nil
}

func notExist(op, name string) error {
	return &os.PathError{Op: op, Path: "/" + name, Err: os.ErrNotExist}
}

// fsErr maps the client's errors onto the os errors x/net/webdav turns
// into statuses.
func fsErr(op, name string, err error) error {
	switch client.KindOf(err) {
	case client.KindNotFound:
		return &os.PathError{Op: op, Path: "/" + name, Err: os.ErrNotExist}
	case client.KindConflict:
		return &os.PathError{Op: op, Path: "/" + name, Err: fmt.Errorf("%w: %v", os.ErrExist, err)}
	}
	return fmt.Errorf("%s /%s: %w", op, name, err)
}

func (f *FS) stat(name string) (*info, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.t.stat(name)
}

func (f *FS) isDir(name string) bool {
	fi, ok := f.stat(name)
	return ok && fi.dir
}

// Stat implements webdav.FileSystem.
func (f *FS) Stat(ctx context.Context, name string) (os.FileInfo, error) {
	n := clean(name)
	fi, ok := f.stat(n)
	if !ok {
		return nil, notExist("stat", n)
	}
	return fi, nil
}

// Mkdir implements webdav.FileSystem: the folder's marker.
func (f *FS) Mkdir(ctx context.Context, name string, perm os.FileMode) error {
	n := clean(name)
	if n == "" {
		return &os.PathError{Op: "mkdir", Path: "/", Err: os.ErrExist}
	}
	if err := Storable(path.Join(n, "x")); err != nil {
		return &os.PathError{Op: "mkdir", Path: "/" + n, Err: err}
	}
	if _, ok := f.stat(n); ok {
		return &os.PathError{Op: "mkdir", Path: "/" + n, Err: os.ErrExist}
	}
	if !f.isDir(parent(n)) {
		return notExist("mkdir", parent(n))
	}
	// The folder exists at once; its marker, an empty file, goes in the
	// next batch of small files, and MKCOL does not wait for its commit:
	// clients make folders one at a time (rclone before each PUT), and
	// an index update apiece would set their pace. With a journal, MKCOL
	// waits for the marker to be in it, as a small PUT does; without, a
	// stop waits for it and a crash before it loses only this empty
	// folder.
	marker := path.Join(n, client.DirMarker)
	now := time.Now()
	f.mu.Lock()
	f.t.add(marker, entry{mtime: now, mode: 0o644})
	f.mu.Unlock()
	if f.journaled() {
		if err := f.small.journal(client.PutInfo{Name: marker, Mode: 0o644, ModTime: now}, nil, func() {}); err != nil {
			f.mu.Lock()
			f.t.remove(marker)
			f.mu.Unlock()
			return &os.PathError{Op: "mkdir", Path: "/" + n, Err: err}
		}
		return nil
	}
	f.uploads.Add(1)
	f.markers.RLock()
	go func() {
		defer f.uploads.Done()
		defer f.markers.RUnlock()
		if _, err := f.small.put(client.PutInfo{Name: marker, Mode: 0o644, ModTime: now}, nil); err != nil {
			slog.Warn("webdav: keeping an empty folder", "err", err)
			f.mu.Lock()
			f.t.remove(marker)
			f.mu.Unlock()
		}
	}()
	return nil
}

// waitMarkers returns once the markers Mkdir started are committed.
func (f *FS) waitMarkers() {
	f.markers.Lock()
	defer f.markers.Unlock()
}

// keep adds dir's marker to t where nothing else holds the folder, as
// Reshape's Keep does in the index.
func keep(t *tree, dir string) {
	if dir == "" {
		return
	}
	if _, ok := t.dirs[dir]; !ok {
		t.add(path.Join(dir, client.DirMarker), entry{mtime: time.Now(), mode: 0o644})
	}
}

// RemoveAll implements webdav.FileSystem: a file, or a folder with
// everything under it, in one index update. The folder holding it stays.
func (f *FS) RemoveAll(ctx context.Context, name string) error {
	n := clean(name)
	if n == "" {
		return &os.PathError{Op: "remove", Path: "/", Err: os.ErrPermission}
	}
	f.mu.RLock()
	names := f.t.named(n)
	f.mu.RUnlock()
	if len(names) == 0 {
		return notExist("remove", n)
	}
	err := f.reshape(ctx, n, client.Reshape{Remove: names}, func(t *tree) {
		for _, x := range names {
			t.remove(x)
		}
	})
	if err != nil {
		return fsErr("remove", n, err)
	}
	f.propsMu.Lock()
	for k := range f.props {
		if client.Under(k, n) {
			delete(f.props, k)
		}
	}
	f.propsMu.Unlock()
	return nil
}

// reshape commits r, which takes name (a file or folder) away from its
// folder, keeping that folder, and applies the same to the tree.
func (f *FS) reshape(ctx context.Context, name string, r client.Reshape, apply func(t *tree)) error {
	f.waitMarkers()
	f.small.flush("") // what it changes must be in the index

	up := parent(name)
	if up != "" {
		r.Keep = []string{up}
	}
	if err := f.acc.Reshape(ctx, r); err != nil {
		return err
	}
	f.changed(func(t *tree) {
		apply(t)
		keep(t, up)
	})
	return nil
}

// Rename implements webdav.FileSystem: an index rename of the file, or
// of every file under the folder, in one update; no data moves.
func (f *FS) Rename(ctx context.Context, oldName, newName string) error {
	from, to := clean(oldName), clean(newName)
	if from == "" || to == "" || client.Under(to, from) {
		return &os.PathError{Op: "rename", Path: "/" + from, Err: os.ErrInvalid}
	}
	if err := Storable(to); err != nil {
		return &os.PathError{Op: "rename", Path: "/" + to, Err: err}
	}
	f.mu.RLock()
	_, exists := f.t.stat(to)
	dirOK := parent(to) == "" || f.t.dirs[parent(to)] != nil
	names := f.t.named(from)
	f.mu.RUnlock()
	switch {
	case len(names) == 0:
		return notExist("rename", from)
	case exists:
		return &os.PathError{Op: "rename", Path: "/" + to, Err: os.ErrExist}
	case !dirOK:
		return notExist("rename", parent(to))
	}
	moves := make([][2]string, len(names))
	for i, x := range names {
		moves[i] = [2]string{x, to + strings.TrimPrefix(x, from)}
	}
	err := f.reshape(ctx, from, client.Reshape{Rename: moves}, func(t *tree) {
		for _, mv := range moves {
			e := t.files[mv[0]]
			t.remove(mv[0])
			t.add(mv[1], e)
		}
	})
	if err != nil {
		return fsErr("rename", from, err)
	}
	f.propsMu.Lock()
	for k, v := range f.props {
		if client.Under(k, from) {
			delete(f.props, k)
			f.props[to+strings.TrimPrefix(k, from)] = v
		}
	}
	f.propsMu.Unlock()
	return nil
}

// OpenFile implements webdav.FileSystem. Opening for writing with
// O_CREATE or O_TRUNC starts a put of the whole file, committed on
// Close; anything else opens for reading (PROPPATCH opens read-write
// to change properties only).
func (f *FS) OpenFile(ctx context.Context, name string, flag int, perm os.FileMode) (webdav.File, error) {
	n := clean(name)
	fi, exists := f.stat(n)
	write := flag&(os.O_WRONLY|os.O_RDWR) != 0 && (flag&os.O_TRUNC != 0 || (flag&os.O_CREATE != 0 && !exists))
	if !write {
		if !exists {
			return nil, notExist("open", n)
		}
		h := handle{fs: f, name: n}
		if fi.dir {
			return &dirFile{handle: h, fi: fi}, nil
		}
		if data, ok := f.small.lookup(n); ok {
			// Answered, not yet in the index: read your writes.
			return &memFile{handle: h, fi: fi, Reader: bytes.NewReader(data)}, nil
		}
		return &readFile{handle: h, ctx: ctx, fi: fi, hint: rangeHint(ctx)}, nil
	}
	switch {
	case exists && flag&os.O_EXCL != 0:
		return nil, &os.PathError{Op: "open", Path: "/" + n, Err: os.ErrExist}
	case exists && fi.dir:
		return nil, &os.PathError{Op: "open", Path: "/" + n, Err: errors.New("is a folder")}
	case !f.isDir(parent(n)):
		return nil, notExist("open", parent(n))
	}
	if err := Storable(n); err != nil {
		return nil, &os.PathError{Op: "open", Path: "/" + n, Err: err}
	}
	return f.create(ctx, n, perm), nil
}

// create starts the put of name; writeFile.Close commits it. A small
// file of a PUT is held in memory and committed with the others that
// close meanwhile (batcher): one index update each would cost a write
// window of the server each, the most of a small file's time.
func (f *FS) create(ctx context.Context, name string, perm os.FileMode) *writeFile {
	w := &writeFile{handle: handle{fs: f, name: name}, done: make(chan struct{}), body: bodyOf(ctx),
		mtime: time.Now(), mode: perm & 0o755 &^ 0o022}
	if w.mode == 0 {
		w.mode = 0o644
	}
	f.uploads.Add(1)
	f.open.Add(1)
	if w.body != nil && w.body.want >= 0 && w.body.want <= smallPut {
		w.buf = make([]byte, 0, w.body.want)
		return w
	}
	pr, pw := io.Pipe()
	w.pw = pw
	var size int64 // unknown, unless the request says: it prices the put
	if w.body != nil {
		size = w.body.want
	}
	go func() {
		defer f.uploads.Done()
		defer f.open.Add(-1)
		defer close(w.done)
		w.file, w.err = f.acc.Put(ctx, pr, client.PutInfo{Name: name, Mode: w.mode, ModTime: w.mtime, Size: size}, nil)
		// A put that failed before it read everything leaves the writer
		// blocked: its next Write fails instead.
		pr.CloseWithError(errOr(w.err, io.ErrClosedPipe))
	}()
	return w
}

func errOr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// handle is what every open file shares: its name, and the dead
// properties kept for it.
type handle struct {
	fs   *FS
	name string
}

// DeadProps implements webdav.DeadPropsHolder.
func (h handle) DeadProps() (map[xml.Name]webdav.Property, error) {
	h.fs.propsMu.Lock()
	defer h.fs.propsMu.Unlock()
	out := make(map[xml.Name]webdav.Property, len(h.fs.props[h.name]))
	for k, v := range h.fs.props[h.name] {
		out[k] = v
	}
	return out, nil
}

// Patch implements webdav.DeadPropsHolder; all patches apply, or none
// (none can fail here).
func (h handle) Patch(patches []webdav.Proppatch) ([]webdav.Propstat, error) {
	h.fs.propsMu.Lock()
	defer h.fs.propsMu.Unlock()
	m := h.fs.props[h.name]
	if m == nil {
		m = map[xml.Name]webdav.Property{}
		h.fs.props[h.name] = m
	}
	ok := webdav.Propstat{Status: 200}
	for _, p := range patches {
		for _, prop := range p.Props {
			ok.Props = append(ok.Props, webdav.Property{XMLName: prop.XMLName})
			if p.Remove {
				delete(m, prop.XMLName)
			} else {
				m[prop.XMLName] = prop
			}
		}
	}
	return []webdav.Propstat{ok}, nil
}

// info is the os.FileInfo of a file or folder.
type info struct {
	name string
	e    entry
	dir  bool
}

func (i *info) Name() string {
	if i.name == "" {
		return "/"
	}
	return path.Base(i.name)
}
func (i *info) Size() int64 { return i.e.size }
func (i *info) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o755
	}
	return i.e.mode
}
func (i *info) ModTime() time.Time { return i.e.mtime }
func (i *info) IsDir() bool        { return i.dir }
func (i *info) Sys() any           { return nil }

// ContentType implements webdav.ContentTyper, from the name alone: the
// default would open the file and fetch its first block.
func (i *info) ContentType(ctx context.Context) (string, error) { return contentType(i.name), nil }

func contentType(name string) string {
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// dirFile is an open folder.
type dirFile struct {
	handle
	fi   *info
	list []fs.FileInfo
	read bool
}

func (d *dirFile) Close() error { return nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &os.PathError{Op: "read", Path: "/" + d.name, Err: errors.New("is a folder")}
}
func (d *dirFile) Write([]byte) (int, error) {
	return 0, &os.PathError{Op: "write", Path: "/" + d.name, Err: errors.New("is a folder")}
}
func (d *dirFile) Seek(int64, int) (int64, error) { return 0, nil }
func (d *dirFile) Stat() (fs.FileInfo, error)     { return d.fi, nil }
func (d *dirFile) Readdir(count int) ([]fs.FileInfo, error) {
	if !d.read {
		d.fs.mu.RLock()
		d.list = d.fs.t.list(d.name)
		d.fs.mu.RUnlock()
		d.read = true
	}
	if count <= 0 {
		out := d.list
		d.list = nil
		return out, nil
	}
	if len(d.list) == 0 {
		return nil, io.EOF
	}
	k := min(count, len(d.list))
	out := d.list[:k]
	d.list = d.list[k:]
	return out, nil
}

// readFile is a file open for reading. Its reads stream from the
// account: a read at a new position starts a range get from there (to
// the end of the range the request asked for, if known: rangeHint), so
// that only the blocks holding what is read are fetched.
type readFile struct {
	handle
	ctx  context.Context
	fi   *info
	hint *byteRange
	pos  int64

	pr     *io.PipeReader
	at     int64 // position of the stream's next byte
	stop   context.CancelFunc
	closed chan struct{}
}

func (r *readFile) Stat() (fs.FileInfo, error) { return r.fi, nil }
func (r *readFile) Readdir(int) ([]fs.FileInfo, error) {
	return nil, &os.PathError{Op: "readdir", Path: "/" + r.name, Err: errors.New("not a folder")}
}
func (r *readFile) Write([]byte) (int, error) {
	return 0, &os.PathError{Op: "write", Path: "/" + r.name, Err: os.ErrPermission}
}

func (r *readFile) Seek(offset int64, whence int) (int64, error) {
	var pos int64
	switch whence {
	case io.SeekStart:
		pos = offset
	case io.SeekCurrent:
		pos = r.pos + offset
	case io.SeekEnd:
		pos = r.fi.e.size + offset
	default:
		return 0, os.ErrInvalid
	}
	if pos < 0 {
		return 0, os.ErrInvalid
	}
	r.pos = pos
	return pos, nil
}

func (r *readFile) Read(p []byte) (int, error) {
	if r.pos >= r.fi.e.size {
		return 0, io.EOF
	}
	if r.pr == nil || r.at != r.pos {
		r.start()
	}
	n, err := r.pr.Read(p)
	r.at += int64(n)
	r.pos += int64(n)
	if errors.Is(err, io.EOF) {
		// The range asked for is done; a read past it starts another.
		r.halt()
		if r.at < r.fi.e.size && r.hint == nil {
			return n, io.ErrUnexpectedEOF // the file got shorter meanwhile
		}
		err = nil
	}
	if err != nil {
		return n, fmt.Errorf("reading /%s: %w", r.name, err)
	}
	return n, nil
}

// start begins a range get at pos.
func (r *readFile) start() {
	r.halt()
	length := r.fi.e.size - r.pos
	if r.hint != nil && r.hint.off == r.pos && r.hint.n < length {
		length = r.hint.n
	}
	ctx, cancel := context.WithCancel(r.ctx)
	pr, pw := io.Pipe()
	done := make(chan struct{})
	acc, name, off := r.fs.acc, r.name, r.pos
	go func() {
		defer close(done)
		_, err := acc.GetRange(ctx, name, off, length, pw)
		pw.CloseWithError(err)
	}()
	r.pr, r.at, r.stop, r.closed = pr, r.pos, cancel, done
}

// halt ends the stream in progress, if any, and waits for its get.
func (r *readFile) halt() {
	if r.pr == nil {
		return
	}
	r.stop()
	r.pr.CloseWithError(io.ErrClosedPipe)
	<-r.closed
	r.pr = nil
}

func (r *readFile) Close() error {
	r.halt()
	return nil
}

// writeFile is a file being put: its writes go through a pipe into the
// account's streaming put, which holds a bounded number of blocks;
// Close commits it as one index update.
type writeFile struct {
	handle
	pw    *io.PipeWriter // nil for a small file: buf holds it
	buf   []byte
	body  *bodyState
	mtime time.Time
	mode  fs.FileMode
	n     int64

	done chan struct{}
	file indexfile.File
	err  error
	shut bool
}

func (w *writeFile) Read([]byte) (int, error) {
	return 0, &os.PathError{Op: "read", Path: "/" + w.name, Err: os.ErrPermission}
}
func (w *writeFile) Seek(offset int64, whence int) (int64, error) {
	if (whence == io.SeekCurrent && offset == 0) || (whence == io.SeekEnd && offset == 0) {
		return w.n, nil
	}
	return 0, &os.PathError{Op: "seek", Path: "/" + w.name, Err: errors.New("a file is written from start to end")}
}
func (w *writeFile) Readdir(int) ([]fs.FileInfo, error) {
	return nil, &os.PathError{Op: "readdir", Path: "/" + w.name, Err: errors.New("not a folder")}
}

// Stat is the file as written so far: x/net/webdav makes the PUT's ETag
// from it (modification time and size), which is the committed file's.
func (w *writeFile) Stat() (fs.FileInfo, error) {
	return &info{name: w.name, e: entry{size: w.n, mtime: w.mtime, mode: w.mode}}, nil
}

func (w *writeFile) Write(p []byte) (int, error) {
	if w.pw == nil {
		if len(w.buf)+len(p) > smallPut {
			return 0, fmt.Errorf("storing /%s: more than the %d bytes the request announced", w.name, w.body.want)
		}
		w.buf = append(w.buf, p...)
		w.n += int64(len(p))
		return len(p), nil
	}
	n, err := w.pw.Write(p)
	w.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("storing /%s: %w", w.name, err)
	}
	return n, nil
}

// Close commits the file, unless the request's body broke off: then the
// put is abandoned, and nothing refers to the blocks it wrote.
func (w *writeFile) Close() error {
	if w.shut {
		return w.err
	}
	w.shut = true
	if w.pw == nil {
		defer w.fs.uploads.Done()
		defer w.fs.open.Add(-1)
		if w.err = w.body.failed(w.n); w.err != nil {
			return w.err
		}
		info := client.PutInfo{Name: w.name, Mode: w.mode, ModTime: w.mtime, Size: w.n}
		if w.fs.journaled() {
			e := entry{size: w.n, mtime: w.mtime, mode: w.mode}
			err := w.fs.small.journal(info, w.buf, func() {
				w.fs.mu.Lock()
				w.fs.t.add(w.name, e)
				w.fs.mu.Unlock()
			})
			if err != nil {
				return fmt.Errorf("put /%s: %w", w.name, err)
			}
			return nil
		}
		w.file, w.err = w.fs.small.put(info, w.buf)
	} else {
		if err := w.body.failed(w.n); err != nil {
			w.pw.CloseWithError(err)
		} else {
			// A smaller version of the name still in the journal is
			// committed first, so that it does not replace this one.
			w.fs.small.flush(w.name)
			w.pw.Close()
		}
		<-w.done
	}
	if w.err != nil {
		return fsErr("put", w.name, w.err)
	}
	e := entryOf(&w.file)
	w.fs.changed(func(t *tree) { t.add(w.name, e) })
	return nil
}

// memFile is a file open for reading whose data is held here: written,
// answered, and not yet in the index.
type memFile struct {
	handle
	*bytes.Reader
	fi *info
}

func (m *memFile) Stat() (fs.FileInfo, error) { return m.fi, nil }
func (m *memFile) Close() error               { return nil }
func (m *memFile) Readdir(int) ([]fs.FileInfo, error) {
	return nil, &os.PathError{Op: "readdir", Path: "/" + m.name, Err: errors.New("not a folder")}
}
func (m *memFile) Write([]byte) (int, error) {
	return 0, &os.PathError{Op: "write", Path: "/" + m.name, Err: os.ErrPermission}
}
