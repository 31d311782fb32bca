package bolt

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/wire"
)

// LendFile's offset is where the block lies in the file: the bytes the
// kernel sends from it are the block's, for every block of a store that
// grew (and was remapped) while they were written.
func TestLendFileOffsetIsTheBlock(t *testing.T) {
	f := newFixture(t, wire.DefaultBlockSize)
	blocks := make([]testBlock, 200)
	want := map[wire.ID][]byte{}
	for i := range blocks {
		blocks[i] = newTestBlock()
		op := f.putOp(blocks[i], 1)
		want[blocks[i].id] = op.Data
		f.apply(op)
	}
	for _, b := range blocks {
		err := f.s.LendFile(context.Background(), b.id, func(data []byte, file *os.File, off int64, etag wire.ETag) error {
			if !bytes.Equal(data, want[b.id]) || etag != wire.ETagOf(want[b.id]) {
				t.Fatal("lent data or ETag is not the block's")
			}
			got := make([]byte, len(data))
			if _, err := file.ReadAt(got, off); err != nil {
				return err
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("the file at offset %d does not hold the block", off)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	err := f.s.LendFile(context.Background(), wire.NewID(), func([]byte, *os.File, int64, wire.ETag) error {
		t.Fatal("fn called for a missing block")
		return nil
	})
	if !errors.Is(err, blobstore.ErrNotFound) && wire.KindOf(err) != wire.KindNotFound {
		t.Fatalf("missing block: %v", err)
	}
	if n := len(f.s.files); n == 0 || n > filesKept {
		t.Fatalf("%d file handles kept, want 1 to %d", n, filesKept)
	}
	if err := f.s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(f.s.files); n != 0 {
		t.Fatalf("%d file handles left open after Close", n)
	}
}
