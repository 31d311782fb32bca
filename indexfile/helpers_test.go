package indexfile

import (
	"crypto/sha256"
	"encoding/binary"
	"io/fs"
	"time"

	"github.com/blindstore/blindstore/internal/seeded"
	"github.com/blindstore/blindstore/wire"
)

func testETag(seed string) wire.ETag { return wire.ETagOf([]byte("etag:" + seed)) }

func testHash(seed string) [HashSize]byte { return sha256.Sum256([]byte("hash:" + seed)) }

// file builds a valid file whose chunks have the given sizes.
func file(name string, mtime time.Time, sizes ...uint32) File {
	f := File{
		Name:    name,
		Mode:    0o644,
		ModTime: mtime,
		Hash:    testHash(name + mtime.String()),
		Key:     testHash("key:" + name),
		Renewed: 670,
	}
	for i, s := range sizes {
		seed := name + mtime.String() + string(binary.BigEndian.AppendUint32(nil, uint32(i)))
		f.Chunks = append(f.Chunks, Chunk{Ref: Ref{ID: seeded.BlockID(seed), ETag: testETag(seed)}, Size: s, Hash: testHash(seed)})
		f.Size += uint64(s)
	}
	return f
}

var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)

// fixture is the index of the golden vectors. Changing it changes the
// golden files; the format must not change for the same fixture.
func fixture() *Index {
	exe := file("bin/tool", time.Unix(-86400*365, 7).UTC(), 3)
	exe.Mode = fs.FileMode(0o755)
	shared := file("docs/report.pdf", t0, 60000, 60000, 1234)
	shared.Manifest = []Ref{{ID: seeded.BlockID("manifest"), ETag: testETag("manifest")}}
	shared.Renewed = 671
	return &Index{
		Generation: 42,
		Files: []File{
			file("a.txt", t0, 11),
			exe,
			file("docs/empty", t0),
			shared,
			file("naïve/日本語 ファイル.txt", t0.Add(time.Hour), 5, 6),
		},
	}
}
