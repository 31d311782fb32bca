package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/blindstore/blindstore/client"
	"github.com/blindstore/blindstore/indexfile"
	"github.com/blindstore/blindstore/internal/countproxy"
)

// Issue 10's bounds on what an edit re-sends, and on what content-defined
// chunking costs against packing the same bytes into whole blocks.
const (
	maxInsertBlocks    = 4
	maxOverwriteBlocks = 2
	maxChunkOverhead   = 1.15
)

// editRows puts a random file of -file-size bytes through the client,
// then the same file with 100 bytes inserted in the middle, then that
// with one byte overwritten, each over the last, through a proxy that
// counts the blocks the server is sent. The server sees only blocks: the
// index blocks each put wrote (the account's index before and after) are
// taken from the count to give the data blocks, which must agree with the
// chunks the index says are new. The first put gives the chunking row:
// the blocks of the file against the blocks fixed-size packing needs.
//
// The server has no pool window (when it has that flag): the counts do
// not depend on it, and the puts do not wait for company.
func (b *bench) editRows(ctx context.Context) []Row {
	c := b.cfg
	size := fmtBytes(c.fileSize)
	names := []string{
		"edit: 100-byte insertion in the middle of " + size,
		"edit: one-byte overwrite in " + size,
		"chunking: blocks of a random " + size + " file",
	}
	all := func(f func(name string) Row) []Row {
		rows := make([]Row, len(names))
		for i, n := range names {
			rows[i] = f(n)
		}
		return rows
	}
	fail := func(err error) []Row { return all(func(n string) Row { return failRow("edit", n, err) }) }
	// Three puts at a pessimistic 20 MiB/s.
	if why, ok := b.budget(ctx, time.Duration(3*c.fileSize/(20<<20))*time.Second+15*time.Second); !ok {
		return all(func(n string) Row { return skipRow("edit", n, why) })
	}
	extra := b.argsWithoutWindow()
	b.logf("edit: a random %s file, then an insertion and an overwrite in it", size)
	srv, err := b.startChild(ctx, serverSpec{blockSize: blockSize, extra: extra}, "edit")
	if err != nil {
		return fail(err)
	}
	defer srv.cleanup()
	p, err := countproxy.Start(srv.url)
	if err != nil {
		return fail(err)
	}
	defer p.Close()
	remote, err := client.NewRemote(p.URL, b.hc)
	if err != nil {
		return fail(err)
	}
	acc, _, err := client.Signup(ctx, remote, "bench", benchPassword(), nil)
	if err != nil {
		return fail(fmt.Errorf("signup: %w", err))
	}

	var seed [32]byte
	fillRandom(seed[:])
	data := make([]byte, c.fileSize)
	_, _ = rand.NewChaCha8(seed).Read(data)
	mid := len(data) / 2
	ins := make([]byte, 100)
	fillRandom(ins)
	at := len(data) * 2 / 5 // before the insertion, so both edits stand
	flipped := []byte{data[at] ^ 1}
	versions := []struct {
		what  string
		parts [][]byte
	}{
		{"the file", [][]byte{data}},
		{"the insertion", [][]byte{data[:mid], ins, data[mid:]}},
		{"the overwrite", [][]byte{data[:at], flipped, data[at+1 : mid], ins, data[mid:]}},
	}
	type sent struct {
		data, index, batched, puts int
		file                       indexfile.File
	}
	var results []sent
	var prev indexfile.File
	for _, v := range versions {
		readers := make([]io.Reader, len(v.parts))
		for j, part := range v.parts {
			readers[j] = bytes.NewReader(part)
		}
		before := refSet(acc.IndexBlocks())
		p.Take()
		f, err := acc.Put(ctx, io.MultiReader(readers...), client.PutInfo{Name: "big.bin", Mode: 0o644, ModTime: time.Now()}, nil)
		if err != nil {
			return fail(fmt.Errorf("put %s: %w", v.what, err))
		}
		got := p.Take()
		index := 0
		for _, r := range acc.IndexBlocks() {
			if !before[r.ID] {
				index++
			}
		}
		s := sent{data: got.Batched - index, index: index, batched: got.Batched, puts: got.Puts, file: f}
		// What the server saw must be what the index says is new.
		if want := countproxy.NewChunks(prev, f); s.data != want {
			return fail(fmt.Errorf("put %s: the server received %d blocks, %d of them index blocks, but the index has %d new chunks", v.what, got.Batched, index, want))
		}
		results = append(results, s)
		prev = f
	}

	payload := client.PayloadCapacity(blockSize)
	fixed := (len(data) + payload - 1) / payload
	note := func(s sent) string {
		return fmt.Sprintf("counted by a proxy in front of the server: %d blocks in batch writes, of which %d index blocks (the account's index before and after), and %d overwrites of the head (in the atomic batch that commits the index); the file's chunks new in the index agree",
			s.batched, s.index, s.puts)
	}
	return []Row{
		{
			Group: "edit", Name: names[0], Figure: float64(results[1].data), Unit: "data blocks sent",
			Target: &Target{On: "figure", Op: "<=", Value: maxInsertBlocks},
			Note:   "blind put of the file with 100 random bytes inserted at its middle, over the file; " + note(results[1]),
		},
		{
			Group: "edit", Name: names[1], Figure: float64(results[2].data), Unit: "data blocks sent",
			Target: &Target{On: "figure", Op: "<=", Value: maxOverwriteBlocks},
			Note:   "blind put of that file with one byte flipped at two fifths of it, over it; " + note(results[2]),
		},
		{
			Group: "edit", Name: names[2], Figure: float64(len(results[0].file.Chunks)), Unit: "blocks",
			Baseline: float64(fixed), BaselineName: "fixed-size",
			Target: &Target{On: "ratio", Op: "<=", Value: maxChunkOverhead},
			Extra:  map[string]float64{"chunks": float64(len(results[0].file.Chunks)), "fixed_blocks": float64(fixed), "payload_bytes": float64(payload)},
			Note: fmt.Sprintf("content-defined chunks of a random file, one block each, against ⌈size / %d payload bytes⌉ blocks of fixed-size packing; the first put: ",
				payload) + note(results[0]),
		},
	}
}

func refSet(refs []indexfile.Ref) map[[16]byte]bool {
	m := make(map[[16]byte]bool, len(refs))
	for _, r := range refs {
		m[r.ID] = true
	}
	return m
}
