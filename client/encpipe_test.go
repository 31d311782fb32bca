package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/blindstore/blindstore/wire"

	"github.com/blindstore/blindstore/client/format"
	"github.com/blindstore/blindstore/indexfile"
	"github.com/blindstore/blindstore/internal/countproxy"
	"github.com/blindstore/blindstore/internal/seeded"
)

// moreEncryptors runs a test with more encryptors than this machine's cores,
// so that encryptions finish out of order.
func moreEncryptors(t *testing.T) {
	old := runtime.GOMAXPROCS(8)
	t.Cleanup(func() { runtime.GOMAXPROCS(old) })
}

// putTracked puts data as name and checks that progress only grew and
// ended at the file's size.
func putTracked(t *testing.T, a *Account, name string, data []byte) indexfile.File {
	t.Helper()
	var mu sync.Mutex
	var last int64
	grew := true
	f, err := a.Put(context.Background(), bytes.NewReader(data), PutInfo{Name: name, Mode: 0o600, ModTime: time.Unix(1_700_000_000, 0)}, func(done int64) {
		mu.Lock()
		defer mu.Unlock()
		grew = grew && done >= last
		last = done
	})
	if err != nil {
		t.Fatal(err)
	}
	if mu.Lock(); !grew || last != int64(len(data)) {
		t.Fatalf("progress went back or ended at %d of %d", last, len(data))
	}
	mu.Unlock()
	return f
}

// wantChunks checks that f's chunks are data's, in order: the chunker's
// cuts of it (marks as prev leaves them) with their sizes, hashes and
// marks, and that every block opens to its chunk.
func wantChunks(t *testing.T, s *testServer, a *Account, f indexfile.File, prev *indexfile.File, data []byte) {
	t.Helper()
	ch := format.NewChunker(bytes.NewReader(data), a.table, format.PayloadCapacity(s.bs))
	reuse := map[chunkID]int{}
	if prev != nil {
		marks := map[uint64]struct{}{}
		for _, c := range prev.Chunks {
			marks[c.Mark] = struct{}{}
			reuse[chunkID{c.Size, c.Hash}]++
		}
		ch.SetOldMarks(marks)
	}
	if f.Size != uint64(len(data)) || f.Hash != sha256.Sum256(data) {
		t.Fatal("the file's size or hash is not its content's")
	}
	buf := make([]byte, format.PayloadCapacity(s.bs))
	r := s.remote(t)
	for i := 0; ; i++ {
		chunk, mark, err := ch.Next(buf)
		if err == io.EOF {
			if i != len(f.Chunks) {
				t.Fatalf("%d chunks, the content has %d", len(f.Chunks), i)
			}
			return
		}
		if i >= len(f.Chunks) {
			t.Fatalf("%d chunks, the content has more", len(f.Chunks))
		}
		c := f.Chunks[i]
		if c.Size != uint32(len(chunk)) || c.Hash != sha256.Sum256(chunk) || c.Mark != mark {
			t.Fatalf("chunk %d is not the content's chunk %d", i, i)
		}
		id := chunkID{c.Size, c.Hash}
		ch.Matched(reuse[id] > 0)
		if reuse[id] > 0 {
			reuse[id]--
		}
		block, etag, err := r.Get(context.Background(), c.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		if etag != c.ETag || wire.ETagOf(block) != c.ETag {
			t.Fatalf("chunk %d: the ETag in the index is not its block's", i)
		}
		if p, err := format.Decrypt(f.Key, c.ID, block, s.bs); err != nil || !bytes.Equal(p, chunk) {
			t.Fatalf("chunk %d: its block does not open to it: %v", i, err)
		}
	}
}

// A file of hundreds of chunks, encrypted by more encryptors than cores, keeps
// its chunks in file order and reads back byte for byte; a delta put of
// it reuses the unchanged chunks' blocks, in order, and sends the rest.
func TestPutPipelineKeepsOrder(t *testing.T) {
	moreEncryptors(t)
	s := newTestServer(t)
	a, p, _ := countedSignup(t, s, "order")
	c := format.PayloadCapacity(testBlockSize)
	data := seeded.Bytes(7, 300*c+123)
	first := putTracked(t, a, "f", data)
	if len(first.Chunks) < 300 {
		t.Fatalf("%d chunks", len(first.Chunks))
	}
	wantChunks(t, s, a, first, nil, data)
	if got, err := getBytes(t, a, "f"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the file does not read back: %v", err)
	}

	// Edits spread over the file: most chunks are kept, and the chunks
	// that follow a new one are reused in their places.
	next := bytes.Clone(data)
	for _, at := range []int{10 * c, 100*c + 17, 250 * c} {
		next[at] ^= 0xff
	}
	next = append(append(bytes.Clone(next[:150*c]), seeded.Bytes(8, 500)...), next[150*c:]...)
	p.counts()
	second := putTracked(t, a, "f", next)
	wantChunks(t, s, a, second, &first, next)
	if got, err := getBytes(t, a, "f"); err != nil || !bytes.Equal(got, next) {
		t.Fatalf("the edited file does not read back: %v", err)
	}
	sent := newDataBlocks(first, second)
	if sent == 0 || sent > 12 {
		t.Fatalf("the delta put sent %d of %d chunks", sent, len(second.Chunks))
	}
	if written, _ := p.counts(); written < sent || written > sent+8 {
		t.Fatalf("the delta put wrote %d blocks for %d new chunks", written, sent)
	}
	checkNoLeak(t, s, a)
}

// A server lost part way through a put, with batches landed and others
// in flight, leaves no block of the put behind and the index unchanged.
func TestPutFailingMidwayLeavesNoBlock(t *testing.T) {
	moreEncryptors(t)
	s := newTestServer(t)
	a, p, _ := countedSignup(t, s, "midway")
	ctx := context.Background()
	c := format.PayloadCapacity(testBlockSize)
	old := seeded.Bytes(9, 40*c)
	putBytes(t, a, "f", old)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"new file", seeded.Bytes(10, 200*c)},
		{"delta over f", append(bytes.Clone(old), seeded.Bytes(11, 200*c)...)},
	} {
		before := s.blocks(t)
		landed := 0
		// Batch writes are refused (retries too) once three have landed;
		// batches of deletions only (the cleanup) pass.
		p.Refuse(func(r *http.Request, m *countproxy.Manifest) bool {
			if r.Method != http.MethodPost || r.URL.Path != "/v1/blocks" || m == nil || len(m.Writes) == 0 {
				return false
			}
			landed++
			return landed > 3
		})
		name := "f"
		if tc.name == "new file" {
			name = "g"
		}
		_, err := a.Put(ctx, bytes.NewReader(tc.data), PutInfo{Name: name, Mode: 0o600}, nil)
		p.Refuse(nil)
		if KindOf(err) != KindNetwork {
			t.Fatalf("%s: put with the server failing: %v, want KindNetwork", tc.name, err)
		}
		if landed < 4 {
			t.Fatalf("%s: only %d batch writes were tried", tc.name, landed)
		}
		if after := s.blocks(t); after != before {
			t.Fatalf("%s: the store holds %d blocks, held %d before the failed put", tc.name, after, before)
		}
		if got, err := getBytes(t, a, "f"); err != nil || !bytes.Equal(got, old) {
			t.Fatalf("%s: f after the failed put: %v", tc.name, err)
		}
		if _, err := a.Lookup("g"); KindOf(err) != KindNotFound {
			t.Fatalf("%s: the failed file is in the index", tc.name)
		}
		checkNoLeak(t, s, a)
	}
}

// A read error part way through leaves no block of the put behind.
func TestPutReadErrorLeavesNoBlock(t *testing.T) {
	moreEncryptors(t)
	s := newTestServer(t)
	a, _ := newTestAccount(t, s)
	before := s.blocks(t)
	c := format.PayloadCapacity(testBlockSize)
	r := io.MultiReader(bytes.NewReader(seeded.Bytes(12, 100*c)), iotest.ErrReader(io.ErrClosedPipe))
	_, err := a.Put(context.Background(), r, PutInfo{Name: "f", Mode: 0o600}, nil)
	if KindOf(err) != KindLocalIO {
		t.Fatalf("put of a failing reader: %v, want KindLocalIO", err)
	}
	if after := s.blocks(t); after != before {
		t.Fatalf("the store holds %d blocks, held %d before the failed put", after, before)
	}
}
