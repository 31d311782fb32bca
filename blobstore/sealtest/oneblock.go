package sealtest

import (
	"context"
	"testing"

	"github.com/blindstore/blindstore/blobstore/storetest"
)

// OpsOnOneBlockDuringSeals runs storetest.ConcurrentOpsOnOneBlock with
// seals running throughout, so that the block's rows or pages keep
// moving under its writers. s must take blocks of
// wire.MinBlockSize. The store's own test checks its state after.
func OpsOnOneBlockDuringSeals(t *testing.T, s Store) {
	storetest.ConcurrentOpsOnOneBlock(t, s, func(ctx context.Context) error {
		// Each seal runs whole, so that none is left half done when the
		// writers finish.
		for ctx.Err() == nil {
			if _, err := s.Seal(context.Background()); err != nil {
				return err
			}
		}
		return nil
	})
}
