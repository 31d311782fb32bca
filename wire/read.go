package wire

// The answer of POST /v1/read (Content-Type application/vnd.blindstore.blocks):
// one record per requested id, in request order, each of ReadRecordSize
// bytes: a status byte (ReadFound or ReadMissing), the block's 16-byte
// ETag, then block_size bytes of data. A missing block's ETag and data
// are zero. Records of one size put every record at a known offset and
// give the answer a Content-Length before any block is read; a missing
// block costs its size in zeros, which only a client that asks for
// blocks it does not have pays.

import (
	"fmt"
	"io"
)

// Status bytes of a read record.
const (
	ReadFound   byte = 0
	ReadMissing byte = 1
)

// readBatchBytes is about what one POST /v1/read answers: 64 blocks of
// the default size. Larger answers gain nothing measurable (the request's
// own cost is already small against 4 MiB) and hold a connection longer.
const readBatchBytes = 4 << 20

// ReadBatchFor is the read_batch a server of this block size publishes:
// about 4 MiB of blocks, between 1 and 256 of them.
func ReadBatchFor(blockSize int) int {
	return min(256, max(1, readBatchBytes/blockSize))
}

// ReadRecordSize is the size of one record of a read answer.
func ReadRecordSize(blockSize int) int { return 1 + ETagSize + blockSize }

// ReadRecordHeader encodes a record's status and ETag into dst, which has
// room for 1+ETagSize bytes.
func ReadRecordHeader(dst []byte, found bool, etag ETag) []byte {
	dst = dst[:1+ETagSize]
	dst[0] = ReadMissing
	if found {
		dst[0] = ReadFound
	}
	copy(dst[1:], etag[:])
	return dst
}

// ReadRecord reads the next record of a read answer from r into buf,
// which must hold ReadRecordSize(blockSize) bytes, and returns the block's
// ETag and data (a slice of buf). A missing block returns an error of
// KindNotFound; an answer that ends early or holds a status byte other
// than the two is an error of KindNetwork (the server is not speaking the API), never data.
func ReadRecord(r io.Reader, buf []byte, blockSize int) ([]byte, ETag, error) {
	n := ReadRecordSize(blockSize)
	if len(buf) < n {
		return nil, ETag{}, fmt.Errorf("wire: a read record buffer of %d bytes, want %d", len(buf), n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, ETag{}, Wrap(KindNetwork, "", "the server's answer to a read ended early", err)
		}
		return nil, ETag{}, err
	}
	var etag ETag
	copy(etag[:], buf[1:1+ETagSize])
	switch buf[0] {
	case ReadFound:
		return buf[1+ETagSize:], etag, nil
	case ReadMissing:
		return nil, ETag{}, E(KindNotFound, CodeNotFound, "no such block")
	default:
		return nil, ETag{}, E(KindNetwork, "", fmt.Sprintf("a read record of status %d", buf[0]))
	}
}
