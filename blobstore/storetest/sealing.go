package storetest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
)

// sealStore is a store that seals, as blobstore/bolt and
// blobstore/postgres do.
type sealStore interface {
	blobstore.Store
	paramsReader
	Seal(ctx context.Context) (blobstore.SealReport, error)
}

// sealing seals after every other Apply, so that the suite meets blocks
// in every state a seal leaves: written since the last seal, sealed, and
// sealed then overwritten, renewed or deleted.
type sealing struct {
	sealStore
	n atomic.Int64
}

func (s *sealing) Apply(ctx context.Context, ops []blobstore.Op) ([]blobstore.Result, error) {
	rs, err := s.sealStore.Apply(ctx, ops)
	if err == nil && s.n.Add(1)%2 == 0 {
		if _, err := s.Seal(ctx); err != nil {
			return nil, fmt.Errorf("seal after an Apply: %w", err)
		}
	}
	return rs, err
}

// RunSealing runs the whole suite as Run does, over stores that seal
// after every other Apply. The stores newLocation opens must seal.
func RunSealing(t *testing.T, newLocation func(t *testing.T) Opener) {
	Run(t, func(t *testing.T) Opener {
		open := newLocation(t)
		return func(t *testing.T, p blobstore.Params) (blobstore.Store, error) {
			s, err := open(t, p)
			if err != nil {
				return nil, err
			}
			ss, ok := s.(sealStore)
			if !ok {
				_ = s.Close()
				return nil, fmt.Errorf("storetest: RunSealing needs a store that seals, and %T does not", s)
			}
			return &sealing{sealStore: ss}, nil
		}
	})
}
