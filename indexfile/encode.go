package indexfile

// The encoding, version 1. All integers are big-endian and fixed-width;
// the body is compressed with raw DEFLATE (RFC 1951), which absorbs the
// zero bytes of fixed-width fields.
//
//	encoded = uint8 version (= 1) ‖ DEFLATE(body)
//	body    = uint64 generation ‖ uint32 file_count ‖ file × file_count
//	file    = uint16 name_len ‖ name
//	        ‖ uint64 size ‖ uint32 mode ‖ int64 mtime_sec ‖ uint32 mtime_nsec
//	        ‖ uint64 renewed_period
//	        ‖ hash[32] ‖ key[32]
//	        ‖ uint32 chunk_count ‖ chunk × chunk_count
//	        ‖ uint32 manifest_count ‖ ref × manifest_count
//	chunk   = id[16] ‖ etag[16] ‖ uint32 size ‖ hash[32]
//	ref     = id[16] ‖ etag[16]
//
// Files appear sorted by name, so an index has exactly one body. Decode
// refuses: another version; a truncated body or DEFLATE stream; bytes
// after either; a body that inflates beyond MaxDecodedSize; any count
// larger than the bytes left could hold (so no allocation exceeds what
// the input pays for); and whatever Validate refuses (bad, unsorted or
// duplicate names, a file that is also a directory, a mode with more than
// permission bits, chunk sizes not adding up to the file size, a zero file
// key, a block ID that is not a v4 UUID).
//
// The DEFLATE stream Encode writes may differ between Go releases; the
// body may not, and the golden test pins it.
//
// Format 1 is the one-blob index of the first clients. It is kept so that
// their accounts can be read and upgraded (format 2, tree.go), and for the
// share manifests they wrote. Encode refuses inline files, which format 1
// cannot hold, and drops chunk marks and KeyShared, which it has no room for.

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"math"
	"time"
)

// Sizes of the fixed-width records.
const (
	chunkLen   = 16 + 16 + 4 + HashSize
	refLen     = 16 + 16
	minFileLen = 2 + 1 + 8 + 4 + 8 + 4 + 8 + HashSize + HashSize + 4 + 4
	headerLen  = 8 + 4
)

// Encode returns the encoding of x. The files need not be sorted; they
// must pass Validate once sorted.
func Encode(x *Index) ([]byte, error) {
	y := &Index{Generation: x.Generation, Files: sortedCopy(x.Files)}
	if err := y.Validate(); err != nil {
		return nil, err
	}
	for i := range y.Files {
		if len(y.Files[i].Inline) > 0 {
			return nil, fmt.Errorf("indexfile: format 1 cannot hold the inline file %q", y.Files[i].Name)
		}
	}
	body := encodeBody(y)
	if len(body) > MaxDecodedSize {
		return nil, fmt.Errorf("indexfile: index of %d bytes exceeds the format's %d", len(body), MaxDecodedSize)
	}
	var buf bytes.Buffer
	buf.WriteByte(Version)
	w, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		return nil, fmt.Errorf("indexfile: %w", err)
	}
	if _, err := w.Write(body); err != nil {
		return nil, fmt.Errorf("indexfile: compressing: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("indexfile: compressing: %w", err)
	}
	return buf.Bytes(), nil
}

// encodeBody writes the uncompressed body of a validated, sorted index.
func encodeBody(x *Index) []byte {
	size := headerLen
	for i := range x.Files {
		f := &x.Files[i]
		size += minFileLen - 1 + len(f.Name) + chunkLen*len(f.Chunks) + refLen*len(f.Manifest)
	}
	b := make([]byte, 0, size)
	b = binary.BigEndian.AppendUint64(b, x.Generation)
	b = binary.BigEndian.AppendUint32(b, uint32(len(x.Files)))
	for i := range x.Files {
		f := &x.Files[i]
		b = binary.BigEndian.AppendUint16(b, uint16(len(f.Name)))
		b = append(b, f.Name...)
		b = binary.BigEndian.AppendUint64(b, f.Size)
		b = binary.BigEndian.AppendUint32(b, uint32(f.Mode))
		b = binary.BigEndian.AppendUint64(b, uint64(f.ModTime.Unix()))
		b = binary.BigEndian.AppendUint32(b, uint32(f.ModTime.Nanosecond()))
		b = binary.BigEndian.AppendUint64(b, f.Renewed)
		b = append(b, f.Hash[:]...)
		b = append(b, f.Key[:]...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(f.Chunks)))
		for _, c := range f.Chunks {
			b = append(b, c.ID[:]...)
			b = append(b, c.ETag[:]...)
			b = binary.BigEndian.AppendUint32(b, c.Size)
			b = append(b, c.Hash[:]...)
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(f.Manifest)))
		for _, r := range f.Manifest {
			b = append(b, r.ID[:]...)
			b = append(b, r.ETag[:]...)
		}
	}
	return b
}

// Decode parses an encoding made by Encode, refusing anything else.
func Decode(b []byte) (*Index, error) { return decode(b, MaxDecodedSize) }

// decode is Decode with a bound on the inflated body, so tests can reach it.
func decode(b []byte, limit int64) (*Index, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrCorrupt)
	}
	if b[0] != Version {
		return nil, fmt.Errorf("%w: %d (this client reads version %d)", ErrVersion, b[0], Version)
	}
	// A bytes.Reader is an io.ByteReader, so flate reads no further than
	// the end of its stream and what remains is trailing garbage.
	r := bytes.NewReader(b[1:])
	var body bytes.Buffer
	n, err := body.ReadFrom(io.LimitReader(flate.NewReader(r), limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: decompressing: %v", ErrCorrupt, err)
	}
	if n > limit {
		return nil, fmt.Errorf("%w: inflates beyond %d bytes", ErrCorrupt, limit)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the compressed stream", ErrCorrupt, r.Len())
	}
	return decodeBody(body.Bytes())
}

func decodeBody(body []byte) (*Index, error) {
	d := decoder{b: body}
	x := &Index{Generation: d.u64()}
	nfiles := d.count(minFileLen)
	if d.err != nil {
		return nil, d.err
	}
	x.Files = make([]File, nfiles)
	for i := range x.Files {
		f := &x.Files[i]
		nameLen := int(d.u16())
		f.Name = string(d.bytes(nameLen))
		f.Size = d.u64()
		f.Mode = fs.FileMode(d.u32())
		sec, nsec := int64(d.u64()), d.u32()
		if nsec >= 1e9 {
			d.fail("nanoseconds out of range")
		}
		f.ModTime = time.Unix(sec, int64(nsec)).UTC()
		f.Renewed = d.u64()
		copy(f.Hash[:], d.bytes(HashSize))
		copy(f.Key[:], d.bytes(HashSize))
		if n := d.count(chunkLen); n > 0 {
			f.Chunks = make([]Chunk, n)
			for j := range f.Chunks {
				c := &f.Chunks[j]
				copy(c.ID[:], d.bytes(16))
				copy(c.ETag[:], d.bytes(16))
				c.Size = d.u32()
				copy(c.Hash[:], d.bytes(HashSize))
			}
		}
		if n := d.count(refLen); n > 0 {
			f.Manifest = make([]Ref, n)
			for j := range f.Manifest {
				r := &f.Manifest[j]
				copy(r.ID[:], d.bytes(16))
				copy(r.ETag[:], d.bytes(16))
			}
		}
		if d.err != nil {
			return nil, d.err
		}
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last file", ErrCorrupt, len(d.b))
	}
	if err := x.Validate(); err != nil {
		return nil, err
	}
	return x, nil
}

// decoder reads fixed-width fields; after the first error every read
// returns zeros and the error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorrupt, what)
	}
	d.b = nil
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil || n > len(d.b) {
		d.fail("truncated")
		return make([]byte, 0)
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u16() uint16 {
	if b := d.bytes(2); len(b) == 2 {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if b := d.bytes(4); len(b) == 4 {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if b := d.bytes(8); len(b) == 8 {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// count reads a uint32 count of records of at least minLen bytes each and
// refuses one the remaining input could not hold.
func (d *decoder) count(minLen int) int {
	n := d.u32()
	if d.err != nil {
		return 0
	}
	if uint64(n) > uint64(len(d.b))/uint64(minLen) || uint64(n) > math.MaxInt32 {
		d.fail("count exceeds the remaining bytes")
		return 0
	}
	return int(n)
}
