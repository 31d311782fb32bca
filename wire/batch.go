package wire

// The framing of a batch write (POST /v1/blocks, Content-Type
// application/vnd.blindstore.batch): a 4-byte big-endian length L, L
// bytes of JSON manifest (BatchManifest), then exactly n×block_size bytes
// of data for the n entries that are writes (not deletions or checks), in
// manifest order. Clients encode it with BatchBody; the server decodes it
// with BatchDecoder as the body arrives, so that it holds no more than a
// block at a time beyond the manifest.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
)

// batchPrefix is the size of the manifest's length.
const batchPrefix = 4

// BatchBody is an encoded batch write: its framing and the blocks it
// refers to, which it does not copy.
type BatchBody struct {
	head   []byte // the length prefix and the manifest
	blocks [][]byte
	size   int64
}

// NewBatchBody frames m and the data of its writes, one block per entry
// that HasData, in order, all of one size.
func NewBatchBody(m *BatchManifest, blocks [][]byte) (*BatchBody, error) {
	writes := 0
	for _, e := range m.Blocks {
		if e.HasData() {
			writes++
		}
	}
	if writes != len(blocks) {
		return nil, fmt.Errorf("wire: a batch manifest of %d writes with %d blocks of data", writes, len(blocks))
	}
	for _, b := range blocks {
		if len(b) != len(blocks[0]) {
			return nil, fmt.Errorf("wire: a batch's blocks differ in size (%d and %d bytes)", len(blocks[0]), len(b))
		}
	}
	manifest, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("wire: encoding a batch manifest: %w", err)
	}
	if len(manifest) > math.MaxUint32 {
		return nil, fmt.Errorf("wire: a batch manifest of %d bytes", len(manifest))
	}
	head := make([]byte, batchPrefix, batchPrefix+len(manifest))
	binary.BigEndian.PutUint32(head, uint32(len(manifest)))
	head = append(head, manifest...)
	size := int64(len(head))
	for _, b := range blocks {
		size += int64(len(b))
	}
	return &BatchBody{head: head, blocks: blocks, size: size}, nil
}

// Len is the body's length in bytes: its Content-Length.
func (b *BatchBody) Len() int64 { return b.size }

// ManifestLen is the length of the JSON manifest.
func (b *BatchBody) ManifestLen() int { return len(b.head) - batchPrefix }

// Reader returns a new reader of the whole body; each call starts afresh,
// so that a retry sends it again.
func (b *BatchBody) Reader() io.Reader {
	parts := make([]io.Reader, 0, 1+len(b.blocks))
	parts = append(parts, bytes.NewReader(b.head))
	for _, d := range b.blocks {
		parts = append(parts, bytes.NewReader(d))
	}
	return io.MultiReader(parts...)
}

// NewRequest returns the POST /v1/blocks request of the server at baseURL
// (without /v1) that carries the body.
func (b *BatchBody) NewRequest(ctx context.Context, baseURL string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+PathBlocks, b.Reader())
	if err != nil {
		return nil, err
	}
	req.ContentLength = b.size
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(b.Reader()), nil }
	req.Header.Set("Content-Type", MediaBatch)
	return req, nil
}

// BatchDecoder reads a batch body: NewBatchDecoder reads the manifest,
// ReadBlock each write's data in turn, and End checks that nothing follows.
// Every error is an *Error of KindInvalid, KindTooLarge or KindTimeout,
// whose message never repeats what the body held.
type BatchDecoder struct {
	r io.Reader
	// declared is the body's Content-Length, -1 when unknown (chunked).
	declared int64
	// Manifest is the body's manifest, decoded strictly: no unknown
	// fields, nothing after it. Its entries are not validated.
	Manifest    BatchManifest
	manifestLen int
	writes      int
	read        int
	blockSize   int
}

// NewBatchDecoder reads the length prefix and the manifest of a batch body
// of declared bytes (-1: unknown).
func NewBatchDecoder(r io.Reader, declared int64) (*BatchDecoder, error) {
	d := &BatchDecoder{r: r, declared: declared}
	var prefix [batchPrefix]byte
	if _, err := io.ReadFull(r, prefix[:]); err != nil {
		return nil, d.framingError(err, "the body must start with the manifest's 4-byte length")
	}
	l := binary.BigEndian.Uint32(prefix[:])
	switch {
	case l == 0:
		return nil, E(KindInvalid, CodeBadRequest, "the manifest is empty")
	case l > MaxManifestBytes:
		return nil, E(KindTooLarge, CodeBodyTooLarge, "the manifest exceeds "+strconv.Itoa(MaxManifestBytes)+" bytes")
	}
	raw := make([]byte, l)
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, d.framingError(err, "the body ended inside the manifest")
	}
	if err := DecodeStrict(raw, &d.Manifest); err != nil {
		return nil, err
	}
	d.manifestLen = int(l)
	for _, e := range d.Manifest.Blocks {
		if e.HasData() {
			d.writes++
		}
	}
	return d, nil
}

// Writes is the number of entries whose data the body carries.
func (d *BatchDecoder) Writes() int { return d.writes }

// CheckSize checks a declared length against what the manifest says the
// body holds with blocks of blockSize bytes, before any block is read,
// and sets the size ReadBlock reads.
func (d *BatchDecoder) CheckSize(blockSize int) error {
	d.blockSize = blockSize
	want := batchPrefix + int64(d.manifestLen) + int64(d.writes)*int64(blockSize)
	if d.declared >= 0 && d.declared != want {
		return E(KindInvalid, CodeBadSize, fmt.Sprintf("a batch of %d blocks with this manifest must be %d bytes, not %d", d.writes, want, d.declared))
	}
	return nil
}

// ReadBlock reads the data of the next write into buf, which must be the
// block size CheckSize was given.
func (d *BatchDecoder) ReadBlock(buf []byte) error {
	if d.read >= d.writes {
		return E(KindInvalid, CodeBadSize, fmt.Sprintf("the body holds more than %d blocks of %d bytes", d.writes, len(buf)))
	}
	if _, err := io.ReadFull(d.r, buf); err != nil {
		return d.framingError(err, fmt.Sprintf("the body holds less than %d blocks of %d bytes", d.writes, len(buf)))
	}
	d.read++
	return nil
}

// End checks that the body ends after the last block.
func (d *BatchDecoder) End() error {
	var one [1]byte
	switch k, err := io.ReadFull(d.r, one[:]); {
	case k > 0:
		return E(KindInvalid, CodeBadSize, fmt.Sprintf("the body holds more than %d blocks of %d bytes", d.writes, d.blockSize))
	case !errors.Is(err, io.EOF):
		return BodyError(err)
	}
	return nil
}

// DecodeBatch decodes a whole batch body of blocks of blockSize bytes:
// its manifest and the data of its writes, in order.
func DecodeBatch(r io.Reader, declared int64, blockSize int) (*BatchManifest, [][]byte, error) {
	d, err := NewBatchDecoder(r, declared)
	if err != nil {
		return nil, nil, err
	}
	if err := d.CheckSize(blockSize); err != nil {
		return nil, nil, err
	}
	blocks := make([][]byte, d.Writes())
	for i := range blocks {
		blocks[i] = make([]byte, blockSize)
		if err := d.ReadBlock(blocks[i]); err != nil {
			return nil, nil, err
		}
	}
	if err := d.End(); err != nil {
		return nil, nil, err
	}
	return &d.Manifest, blocks, nil
}

// framingError reports a body that ended where its framing says it must
// go on: with no declared length the client sent too little (400
// bad_size); with one, the body was cut off in transit.
func (d *BatchDecoder) framingError(err error, what string) error {
	if d.declared < 0 && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
		return E(KindInvalid, CodeBadSize, what)
	}
	return BodyError(err)
}

// BodyError turns a failure to read a request body into the error the
// client is answered with: a body over its cap, one that came too
// slowly, or one cut short.
func BodyError(err error) error {
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		return E(KindTooLarge, CodeBodyTooLarge, "request body exceeds "+strconv.FormatInt(mbe.Limit, 10)+" bytes")
	case errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return E(KindTimeout, CodeTimeout, "request body was not received in time")
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return E(KindInvalid, CodeBadRequest, "request body ended before its declared length")
	}
	return E(KindInvalid, CodeBadRequest, "request body could not be read")
}

// DecodeStrict parses one JSON value with no unknown fields and nothing
// after it: a misspelt field must not silently become a default.
func DecodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return E(KindInvalid, CodeBadRequest, "body is not the expected JSON: "+err.Error())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return E(KindInvalid, CodeBadRequest, "body has data after its JSON value")
	}
	return nil
}
