package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/blindstore/blindstore/indexfile"
)

// LocalSource is a local file to put under Name, as it was when it was
// listed: it is stored only if it is still that file and does not change
// while it is read.
type LocalSource struct {
	Name string
	Mode fs.FileMode
	Size int64
	// open opens the file; stat is what it was when listed.
	open func() (*os.File, error)
	stat statKey
	// marker: an empty folder's DirMarker, with no file behind it.
	marker bool
	// pending, if set, is told the file's entry (its hash and size
	// among it) once it has been read whole, found unchanged and
	// uploaded: before the index update that commits it.
	pending func(indexfile.File)
}

// NewLocalSource lists the regular file at path, to be stored as name.
func NewLocalSource(path, name string) (LocalSource, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return LocalSource{}, localError("reading "+path, err)
	}
	if !fi.Mode().IsRegular() {
		return LocalSource{}, &Error{Kind: KindInvalid, Msg: fmt.Sprintf("%s is not a regular file", path)}
	}
	return LocalSource{Name: name, Mode: fi.Mode().Perm(), Size: fi.Size(), stat: statKeyOf(fi),
		open: func() (*os.File, error) { return os.Open(path) }}, nil
}

// Local files go up in batches, each one index update (PutMany): many
// files cost a few index writes, not one each. A batch is bounded so that
// a failure late in it wastes little.
const (
	putBatchFiles = 4096
	putBatchBytes = 256 << 20
)

// PutLocal stores local files in batches. A file that changed since it
// was listed, changes while it is read, or cannot be read is left out
// and passed to skipped; the others are stored and passed to stored.
// It returns an error only for what stops the whole put (the network,
// the server).
func (a *Account) PutLocal(ctx context.Context, srcs []LocalSource, stored func(LocalSource, indexfile.File), skipped func(LocalSource, error)) error {
	if err := a.checkPutCost(ctx, localSourcesPlan(srcs)); err != nil { // putcost.go
		return err
	}
	return a.putLocal(ctx, srcs, stored, skipped)
}

func (a *Account) putLocal(ctx context.Context, srcs []LocalSource, stored func(LocalSource, indexfile.File), skipped func(LocalSource, error)) error {
	for len(srcs) > 0 {
		n, size := 0, int64(0)
		for n < len(srcs) && n < putBatchFiles && (n == 0 || size+srcs[n].Size <= putBatchBytes) {
			size += srcs[n].Size
			n++
		}
		if err := a.putLocalBatch(ctx, srcs[:n], stored, skipped); err != nil {
			return err
		}
		srcs = srcs[n:]
	}
	return nil
}

func (a *Account) putLocalBatch(ctx context.Context, batch []LocalSource, stored func(LocalSource, indexfile.File), skipped func(LocalSource, error)) error {
	batch = append([]LocalSource(nil), batch...)
	for len(batch) > 0 {
		srcs := make([]PutSource, len(batch))
		readers := make([]*scannedReader, len(batch))
		for i, s := range batch {
			readers[i] = &scannedReader{open: s.open, name: s.Name, want: s.stat, marker: s.marker}
			srcs[i] = PutSource{Name: s.Name, R: readers[i], Mode: s.Mode, Size: s.Size}
			if !s.marker {
				srcs[i].ModTime = time.Unix(0, s.stat.MTime)
			}
		}
		files, err := a.putMany(ctx, srcs, func(i int, f indexfile.File) {
			if batch[i].pending != nil {
				batch[i].pending(f)
			}
		})
		for _, rd := range readers {
			rd.close()
		}
		if err == nil {
			syncHook("put-committed", "")
			for i, f := range files {
				// A file that lost a merge to another device's version
				// of its name (PutMany) is not recorded as stored: the
				// next sync finds both sides changed and keeps both.
				if f.Name != "" {
					stored(batch[i], f)
				} else {
					skipped(batch[i], &Error{Kind: KindConflict, Msg: "another device stored this name at the same time: its version keeps the name, this one is stored under a conflict name"})
				}
			}
			return nil
		}
		// A file that changed under the read, or cannot be read, is
		// dropped from the batch; anything else stops the put.
		bad := -1
		for i, rd := range readers {
			if rd.err != nil {
				bad = i
			}
		}
		if bad < 0 {
			if KindOf(err) != KindConflict {
				return err
			}
			if len(batch) == 1 {
				skipped(batch[0], err)
				return nil
			}
			// The index refused the batch (a name that is also a folder
			// of another, or a file changed on another device meanwhile):
			// one update per file, so that one name does not hold back
			// the rest. Rare, so the extra updates do not matter.
			for _, s := range batch {
				if err := a.putLocalBatch(ctx, []LocalSource{s}, stored, skipped); err != nil {
					return err
				}
			}
			return nil
		}
		skipped(batch[bad], readers[bad].err)
		batch = append(batch[:bad], batch[bad+1:]...)
	}
	return nil
}

// scannedReader reads a local file for upload and fails, rather than
// let a torn version be stored, if it is not the file listed or changes
// while it is read. It opens the file on first read, so that a batch
// does not hold every file open.
type scannedReader struct {
	open   func() (*os.File, error)
	name   string
	want   statKey
	marker bool
	fh     *os.File
	err    error
}

func (s *scannedReader) Read(p []byte) (int, error) {
	if s.marker {
		return 0, io.EOF
	}
	if s.err != nil {
		return 0, s.err
	}
	if s.fh == nil {
		fh, err := s.open()
		if err == nil {
			err = s.check(fh)
		}
		if err != nil {
			if fh != nil {
				fh.Close()
			}
			if errors.Is(err, fs.ErrNotExist) {
				err = &Error{Kind: KindConflict, Msg: "it was removed before it was read"}
			}
			return 0, s.fail(err)
		}
		s.fh = fh
	}
	n, err := s.fh.Read(p)
	if err == io.EOF {
		if cerr := s.check(s.fh); cerr != nil {
			return n, s.fail(cerr)
		}
	} else if err != nil {
		return n, s.fail(localError("reading "+s.name, err))
	}
	return n, err
}

func (s *scannedReader) check(fh *os.File) error {
	fi, err := fh.Stat()
	if err != nil {
		return localError("reading "+s.name, err)
	}
	if statKeyOf(fi) != s.want {
		return &Error{Kind: KindConflict, Msg: "it changed while it was read: not stored"}
	}
	return nil
}

func (s *scannedReader) fail(err error) error {
	s.err = err
	return err
}

func (s *scannedReader) close() {
	if s.fh != nil {
		s.fh.Close()
	}
}
