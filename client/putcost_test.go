package client

import (
	"testing"

	"github.com/blindstore/blindstore/wire"
)

func TestEstimatePutCost(t *testing.T) {
	cfg := &ServerConfig{Config: wire.Config{BlockSize: 65536}}
	cfg.Limits.WriteBatch = 64
	payload := int64(PayloadCapacity(cfg.BlockSize))
	minChunk := payload - payload/4
	for _, tc := range []struct {
		name    string
		sizes   []int64
		updates int
		blocks  int
		tokens  int
	}{
		{"unknown size: the commit only", []int64{-1}, 1, 0, 1},
		{"inline: the commit only", []int64{int64(InlineMax(cfg.BlockSize))}, 1, 0, 1},
		{"one block", []int64{int64(InlineMax(cfg.BlockSize)) + 1}, 1, 1, 2},
		{"3 MiB: one batch of data and the commit", []int64{3 << 20}, 1, 65, 3},
		{"64 shortest chunks: one batch", []int64{64 * minChunk}, 1, 64, 2},
		{"one byte more: two batches", []int64{64*minChunk + 1}, 1, 65, 3},
		{"each file its own batches", []int64{100_000, 100_000, 100_000}, 1, 9, 4},
		{"two updates", []int64{10, 10}, 2, 0, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := EstimatePutCost(cfg, tc.sizes, nil, tc.updates)
			if c.DataBlocks != tc.blocks || c.Tokens() != tc.tokens {
				t.Fatalf("%+v: %d blocks, %d tokens; want %d and %d", c, c.DataBlocks, c.Tokens(), tc.blocks, tc.tokens)
			}
		})
	}
	// An index update whose new entries need more than one batch of
	// index blocks costs a token per batch.
	many := make([]int64, 40_000)
	names := make([]string, len(many))
	for i := range many {
		many[i], names[i] = 1000, "folder/some-file-name-0000.txt"
	}
	if c := EstimatePutCost(cfg, many, names, 1); c.IndexRequests < 2 {
		t.Fatalf("40,000 entries of about 1.1 KiB each: %d index requests", c.IndexRequests)
	}
}

func TestLocalSourcesPlan(t *testing.T) {
	srcs := make([]LocalSource, putBatchFiles+1)
	if p := localSourcesPlan(srcs); p.updates != 2 || len(p.sizes) != len(srcs) {
		t.Fatalf("%d files: %d updates", len(srcs), p.updates)
	}
	big := []LocalSource{{Size: putBatchBytes}, {Size: 1}, {Size: 1}}
	if p := localSourcesPlan(big); p.updates != 2 {
		t.Fatalf("a full batch and two small files: %d updates", p.updates)
	}
	if p := localSourcesPlan(nil); p.updates != 0 {
		t.Fatalf("no files: %d updates", p.updates)
	}
}
