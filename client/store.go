package client

import (
	"context"

	"github.com/blindstore/blindstore/wire"
)

// Store is what the client needs of a blindstore server: the operations
// an Account, a get, a fetch by capability and a renewal call. *Remote
// speaks them over HTTP; MemoryRemote keeps the blocks in memory, so that
// the account's logic is tested without a server. The unexported methods
// keep implementations inside this package, where their errors are made
// to carry the same Kinds.
type Store interface {
	// URL names the server, as a session's State records it.
	URL() string
	// Config returns the server's configuration (cached by *Remote).
	Config(ctx context.Context) (*ServerConfig, error)
	// CurrentPeriod asks for the current period now.
	CurrentPeriod(ctx context.Context) (uint64, error)
	// Get reads a block and returns it with its ETag.
	Get(ctx context.Context, id wire.ID, dst []byte) ([]byte, wire.ETag, error)
	// Put writes one block under a precondition and returns its ETag.
	Put(ctx context.Context, id wire.ID, w wire.WriteProof, data []byte, c Cond) (wire.ETag, error)
	// Delete removes a block; one already gone is not an error.
	Delete(ctx context.Context, id wire.ID, w wire.WriteProof, ifMatch *wire.ETag) error
	// DeleteMany removes blocks (items without Data, IfMatch their only
	// condition) in as few requests as the server takes; like Delete,
	// one already gone is not an error.
	DeleteMany(ctx context.Context, items []CommitItem) error
	// PutBatch creates new blocks.
	PutBatch(ctx context.Context, items []BatchItem) error
	// Commit applies items as one atomic batch (ServerConfig.CanCommit).
	Commit(ctx context.Context, items []CommitItem) error
	// Renew moves blocks to the current period.
	Renew(ctx context.Context, items []RenewItem) (RenewResult, error)

	// getUnhashed is Get without the ETag, for callers that check the
	// content themselves (openChunk).
	getUnhashed(ctx context.Context, id wire.ID, dst []byte) ([]byte, error)
	// parallelism bounds concurrent reads and deletions.
	parallelism() int
}

var _ Store = (*Remote)(nil)

func (r *Remote) parallelism() int { return r.Parallel }
