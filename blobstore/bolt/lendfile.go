package bolt

import (
	"context"
	"fmt"
	"os"
	"unsafe"

	"github.com/blindstore/blindstore/wire"
)

// filesKept bounds the read-only handles of the store's file that
// LendFile keeps between calls; more may be open while more calls run.
const filesKept = 64

// LendFile is Lend that also gives fn a read-only handle of the store's
// file and data's offset in it, so that the kernel can send the
// block from its page cache (sendfile) instead of a copy through this
// process. The handle is fn's alone until fn returns; fn must not close
// it or use it after, and may move its position. The same rule as Lend holds: fn must return
// promptly.
func (s *Store) LendFile(ctx context.Context, id wire.ID, fn func(data []byte, f *os.File, off int64, etag wire.ETag) error) error {
	return s.Lend(ctx, id, func(data []byte, etag wire.ETag) error {
		f, err := s.takeFile()
		if err != nil {
			return err
		}
		// Inside the read transaction the map cannot move (a remap
		// waits for readers), so data's place in it is its offset in
		// the file, which bbolt maps from its start.
		info := s.db.Info()
		off := int64(uintptr(unsafe.Pointer(unsafe.SliceData(data))) - info.Data)
		err = fn(data, f, off, etag)
		s.giveFile(f)
		return err
	})
}

func (s *Store) takeFile() (*os.File, error) {
	select {
	case f := <-s.files:
		return f, nil
	default:
	}
	f, err := os.Open(s.path)
	if err != nil {
		return nil, fmt.Errorf("bolt: open the store file to send a block: %w", err)
	}
	return f, nil
}

func (s *Store) giveFile(f *os.File) {
	select {
	case s.files <- f:
	default:
		_ = f.Close()
	}
}

// closeFiles closes the kept handles; Close calls it after the last
// read.
func (s *Store) closeFiles() {
	for {
		select {
		case f := <-s.files:
			_ = f.Close()
		default:
			return
		}
	}
}
