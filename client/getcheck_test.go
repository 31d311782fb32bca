package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/blindstore/blindstore/client/format"
	"github.com/blindstore/blindstore/indexfile"
	"github.com/blindstore/blindstore/internal/seeded"
)

// A get verifies each chunk against the entry and the chunks' sizes
// against the file's, but not the whole file's hash (see fetchChunks):
// that rests on put recording, in one entry, chunks that make up exactly
// the content whose hash it records, fresh or reusing an older
// version's blocks. This pins both sides.
func TestGetRestsOnTheEntry(t *testing.T) {
	s := newTestServer(t)
	a, _ := newTestAccount(t, s)
	ctx := context.Background()
	c := format.PayloadCapacity(testBlockSize)
	data := seeded.Bytes(7, 40*c)
	edited := append(append(append([]byte(nil), data[:len(data)/2]...), seeded.Bytes(8, 100)...), data[len(data)/2:]...)
	var last indexfile.File
	for _, content := range [][]byte{data, edited} {
		f, err := a.Put(ctx, bytes.NewReader(content), PutInfo{Name: "f", Mode: 0o600, ModTime: time.Unix(1_700_000_000, 0)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if f.Hash != sha256.Sum256(content) || f.Size != uint64(len(content)) {
			t.Fatalf("put recorded size %d and another hash for %d bytes", f.Size, len(content))
		}
		var joined uint64
		for _, ch := range f.Chunks {
			joined += uint64(ch.Size)
		}
		if joined != f.Size || len(f.Chunks) < 2 {
			t.Fatalf("put recorded %d chunks of %d bytes in all for a file of %d", len(f.Chunks), joined, f.Size)
		}
		got, err := getBytes(t, a, "f")
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("the file does not read back: %v", err)
		}
		last = f
	}

	for _, tc := range []struct {
		name string
		edit func(f *indexfile.File)
	}{
		{"a size past its chunks", func(f *indexfile.File) { f.Size++ }},
		{"a size short of its chunks", func(f *indexfile.File) { f.Size-- }},
		{"a chunk left out", func(f *indexfile.File) { f.Chunks = f.Chunks[1:] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := last
			f.Chunks = append([]indexfile.Chunk(nil), last.Chunks...)
			tc.edit(&f)
			var out bytes.Buffer
			err := download(ctx, a.remote, a.cfg, &f, &out, nil)
			wantKind(t, err, KindTampered)
			if out.Len() != 0 {
				t.Fatalf("%d bytes written from an entry whose sizes disagree", out.Len())
			}
		})
	}
}
