package client

// What a put costs in write tokens, known before anything is sent: a
// server that charges takes one token per request that may create blocks
// (a POST /v1/blocks of up to write_batch blocks, a create-only PUT) and
// per renewal request, so that a put which ran out of tokens at its
// commit would have spent its last tokens on data it then had to delete.

import (
	"context"
	"fmt"
	"time"
)

// PutCost is the most a put of some files can cost.
type PutCost struct {
	// DataBlocks is the most data blocks the files take, and
	// DataRequests the most batch writes that carry them (each file's
	// blocks go in requests of its own).
	DataBlocks   int
	DataRequests int
	// IndexRequests is what the index updates take: one request each
	// unless its new index blocks need more than one batch.
	IndexRequests int
}

// Tokens is the most write tokens the put costs.
func (c PutCost) Tokens() int { return c.DataRequests + c.IndexRequests }

// Index entry sizes (indexfile's leaf encoding), rounded up: a file's
// fixed fields (counts, size, mode, time, renewal, flags, hash, key) and
// one chunk (a ref, its size, hash and mark).
const (
	indexFileBytes  = 96
	indexChunkBytes = 80
)

// EstimatePutCost returns the most that storing files of these sizes
// costs, in updates index updates (one for Put and PutMany). A size
// below zero is unknown (a stream): it counts as inline, so the cost is
// a floor then, and the put may still run out on the way.
//
// The data bound takes every chunk as short as the chunker may cut it
// (chunker.go: no cut before C − ⌊C/4⌋ bytes) and none reused, as for a
// new file: an edit of an existing file reuses most chunks and costs
// less. Inline files take no data block.
func EstimatePutCost(cfg *ServerConfig, sizes []int64, names []string, updates int) PutCost {
	var c PutCost
	payload := PayloadCapacity(cfg.BlockSize)
	minChunk := int64(payload - payload/4)
	batch := max(cfg.Limits.WriteBatch, 1)
	inline := int64(InlineMax(cfg.BlockSize))
	indexBytes := 0
	for i, size := range sizes {
		entry := indexFileBytes
		if i < len(names) {
			entry += len(names[i])
		}
		switch {
		case size < 0:
		case size <= inline:
			entry += int(size)
		default:
			blocks := int((size-1)/minChunk) + 1
			c.DataBlocks += blocks
			c.DataRequests += (blocks + batch - 1) / batch
			entry += blocks * indexChunkBytes
		}
		indexBytes += entry
	}
	// Each update rewrites at least the leaf and the dir it touches; new
	// entries add leaf blocks, and padding (Padmé, at most an eighth
	// more) may add some.
	blocks := 2*updates + (indexBytes+payload-1)/payload
	blocks += (blocks + 7) / 8
	c.IndexRequests = max(updates, (blocks+batch-1)/batch)
	return c
}

// tokenCounter is a TokenSource that can say how many tokens it holds
// (*Wallet).
type tokenCounter interface {
	Status(ctx context.Context, cfg *ServerConfig) (TokenStatus, error)
}

// checkPutCost refuses, before anything is sent, a put that may cost
// more tokens than the account's token source holds. A server that does
// not charge, or a source that cannot count, is not checked.
func (a *Account) checkPutCost(ctx context.Context, p putPlan) error {
	cfg, err := a.remote.Config(ctx)
	if err != nil || cfg.Tokens == nil {
		return err
	}
	// A store that pays for writes says what it can still pay (*Remote
	// does); one that cannot pay would fail the put's first write.
	payer, ok := a.remote.(interface {
		tokensLeft(context.Context, *ServerConfig) (TokenStatus, bool, error)
	})
	if !ok {
		return errNoTokens
	}
	st, counted, err := payer.tokensLeft(ctx, cfg)
	if !counted {
		return err
	}
	c := EstimatePutCost(cfg, p.sizes, p.names, p.updates)
	if st.Left >= c.Tokens() {
		return nil
	}
	msg := fmt.Sprintf("this put may need up to %d write tokens (%d for its data, %d for the index update) and %d are left; nothing was sent",
		c.Tokens(), c.DataRequests, c.IndexRequests, st.Left)
	if !st.NextAt.IsZero() {
		msg += fmt.Sprintf(" (the next allotment comes %s)", st.NextAt.Local().Format(time.RFC1123))
	}
	return &Error{Kind: KindQuota, Msg: msg}
}

// putPlan is what prices a put: its files' sizes and names, and how
// many index updates commit them.
type putPlan struct {
	sizes   []int64
	names   []string
	updates int
}

// putSourcesPlan prices a PutMany: one index update.
func putSourcesPlan(srcs []PutSource) putPlan {
	p := putPlan{updates: 1}
	for _, s := range srcs {
		p.sizes, p.names = append(p.sizes, s.Size), append(p.names, s.Name)
	}
	return p
}

// localSourcesPlan prices a PutLocal: one index update per batch of
// putLocal.
func localSourcesPlan(srcs []LocalSource) putPlan {
	var p putPlan
	n, size := 0, int64(0)
	for _, s := range srcs {
		p.sizes, p.names = append(p.sizes, s.Size), append(p.names, s.Name)
		if n == putBatchFiles || (n > 0 && size+s.Size > putBatchBytes) {
			p.updates++
			n, size = 0, 0
		}
		n++
		size += s.Size
	}
	if n > 0 {
		p.updates++
	}
	return p
}
