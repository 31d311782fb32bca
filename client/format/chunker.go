package format

// Content-defined chunking, docs/spec.md "Changed files send only what
// changed". A file is cut at boundaries that depend on its content, so
// that an insertion or a deletion moves only the boundaries next to it and
// every other chunk, unchanged, keeps its block on the next put.
//
// The cut rule ("the strongest landmark in a window"):
//
//	C    = PayloadCapacity(block_size)          a chunk fills at most one block
//	min  = C − ⌊C/4⌋                            no cut before min bytes
//	h(p) = gear hash of the 64 bytes before position p, under a per-account table
//	cut  = the position p in [start+min, start+C] with the largest h(p),
//	       the last one on a tie; the rest of the stream if at most C bytes remain
//
//	gear(h, b) = (h << 1) + table[b]     table: 256 uint64 from ChaCha8(seed)
//	seed       = HKDF-SHA256(ikm = account_key, salt = "", info = "blindstore/v1/chunker", 32 bytes)
//
// Why not the rule of FastCDC and Rabin chunkers (the first position past
// min whose hash matches a mask, or a forced cut at max): a chunk must fit
// one block's payload, and blocks cost the same however full, so chunks
// must be long and their lengths tightly spread — which with a mask rule
// means a minimum close to the maximum, and then an edit that moves one
// cut moves the next ones too (each later cut is found again only with
// probability ½). Taking the strongest landmark in the window instead,
// two chains of cuts that start a few bytes apart see almost the same
// window and pick the same landmark. Measured on random data (chunker_test.go,
// BenchmarkChunkers, and the report): chunks fill 7/8 of a block on average
// (uniform in [min, C]), 14.3% more blocks than packing blocks full, and a
// 100-byte insertion or a one-byte overwrite changes one chunk in about 98%
// of cases, two in nearly all the rest.
//
// Resynchronising after an edit. A put over an existing file knows the
// old chunks and, for each, its mark: the gear hash of its last 64 bytes
// (kept in the index). After a chunk that is not one of the old ones, the
// next cut is the last position in [start+64, start+C] whose hash is an
// old mark, if there is one: an old boundary, so the chunk after it is an
// old chunk again. Without this, a cut that moved (≈1% of insertions)
// moved the next ones with it for a few chunks; with it, an edit that
// ends before an old boundary costs at most the chunk it falls in and one
// more. Up to maxDrift chunks in a row are searched so (a long insertion
// has no old marks to find); the search costs a map lookup per byte.
//
// The table is keyed per account so that chunk boundaries, and so the
// number of blocks a file takes, do not fingerprint the same content
// across accounts. Nothing is deduplicated, across files or within one.

import (
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
)

// GearTable is a chunker's per-account hash table.
type GearTable [256]uint64

// chunkerTable derives the account's table from its account key.
func ChunkerTable(accountKey Key) *GearTable {
	r := rand.NewChaCha8(ChunkerSeed(accountKey))
	var t GearTable
	var b [8]byte
	for i := range t {
		_, _ = r.Read(b[:])
		t[i] = binary.LittleEndian.Uint64(b[:])
	}
	return &t
}

// chunkMin returns the shortest chunk cut before the end of a stream,
// for chunks of at most capacity bytes.
func ChunkMin(capacity int) int { return capacity - capacity/4 }

// gearWindow is how many bytes before a position its gear hash depends on.
const gearWindow = 64

// maxDrift bounds how many unmatched chunks in a row look for old marks.
const maxDrift = 8

// Chunker cuts a stream by the rule in the file comment.
type Chunker struct {
	r        io.Reader
	table    *GearTable
	min, max int
	buf      []byte // buf[off:end] is read and not yet returned
	off, end int
	eof      bool
	// marks are the old version's chunk marks; drift counts the chunks
	// in a row that were not old ones (see matched).
	marks    map[uint64]struct{}
	markBits *[1 << 10]uint64 // built from marks on first use
	drift    int
}

func NewChunker(r io.Reader, table *GearTable, capacity int) *Chunker {
	return &Chunker{r: r, table: table, min: ChunkMin(capacity), max: capacity, buf: make([]byte, 2*capacity)}
}

// SetOldMarks gives the chunker the marks of the version the stream
// edits, so that after a changed region it cuts where the old version
// cut again (docs/spec.md §10.3).
func (c *Chunker) SetOldMarks(marks map[uint64]struct{}) { c.marks = marks }

// fill reads until at least max+1 bytes are buffered or the stream ends.
func (c *Chunker) fill() error {
	if c.end-c.off > c.max || c.eof {
		return nil
	}
	if c.off > 0 {
		c.end = copy(c.buf, c.buf[c.off:c.end])
		c.off = 0
	}
	for c.end <= c.max && !c.eof {
		n, err := c.r.Read(c.buf[c.end:])
		c.end += n
		if errors.Is(err, io.EOF) {
			c.eof = true
		} else if err != nil {
			return err
		}
	}
	return nil
}

// next returns the next chunk, copied into buf (len ≥ max), and its mark;
// io.EOF when the stream is done.
func (c *Chunker) Next(buf []byte) ([]byte, uint64, error) {
	if err := c.fill(); err != nil {
		return nil, 0, err
	}
	avail := c.buf[c.off:c.end]
	if len(avail) == 0 {
		return nil, 0, io.EOF
	}
	n := len(avail)
	if n > c.max {
		// With an old version at hand, cut at the first of its chunk ends
		// in reach: from the start of an old chunk that is the chunk's own
		// end, so unchanged content is cut exactly as before, whatever
		// rule cut the old version. The search gives up after maxDrift
		// unmatched chunks in a row (content that is new, not shifted).
		n = 0
		if len(c.marks) > 0 && c.drift <= maxDrift {
			n = c.resync(avail[:c.max])
		}
		if n == 0 {
			n = cut(avail[:c.max], c.min, c.table)
		}
	}
	out := buf[:copy(buf, avail[:n])]
	c.off += n
	return out, markOf(out, c.table), nil
}

// matched tells the chunker whether the chunk it returned last is one of
// the old version's.
func (c *Chunker) Matched(old bool) {
	switch {
	case old:
		c.drift = 0
	case len(c.marks) > 0:
		c.drift++
	}
}

// markOf returns the gear hash of the last 64 bytes of chunk (of all of
// it if shorter).
func markOf(chunk []byte, t *GearTable) uint64 {
	var h uint64
	for _, x := range chunk[max(0, len(chunk)-gearWindow):] {
		h = h<<1 + t[x]
	}
	return h
}

// resync returns the first position in [64, len(b)] whose preceding 64
// bytes hash to an old mark, or 0. A bit set of the marks' low 16 bits
// answers most positions without a map lookup.
func (c *Chunker) resync(b []byte) int {
	if c.markBits == nil {
		c.markBits = new([1 << 10]uint64)
		for m := range c.marks {
			c.markBits[uint16(m)>>6] |= 1 << (m & 63)
		}
	}
	t, bits := c.table, c.markBits
	var h uint64
	for _, x := range b[:gearWindow] {
		h = h<<1 + t[x]
	}
	for i := gearWindow; ; i++ {
		if bits[uint16(h)>>6]&(1<<(h&63)) != 0 {
			if _, ok := c.marks[h]; ok {
				return i
			}
		}
		if i == len(b) {
			return 0
		}
		h = h<<1 + t[b[i]]
	}
}

// cut returns the cut in b (len(b) = max): the position in [min, len(b)]
// whose preceding 64 bytes hash highest, the last one on a tie.
func cut(b []byte, min int, t *GearTable) int {
	var h uint64
	for _, x := range b[min-gearWindow : min] {
		h = h<<1 + t[x]
	}
	best, at := h, min
	for i := min; i < len(b); i++ {
		h = h<<1 + t[b[i]]
		if h >= best {
			best, at = h, i+1
		}
	}
	return at
}
