package postgres

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/storetest"
	"github.com/blindstore/blindstore/internal/pgtest"
)

// TestConformance runs the shared Store suite, each subtest on a fresh
// database of its own.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		url := pgtest.URL(t)
		return func(t *testing.T, p blobstore.Params) (blobstore.Store, error) {
			s, err := Open(context.Background(), url, p, Options{Logger: quietLogger()})
			if err != nil {
				return nil, err
			}
			return s, nil
		}
	})
}

// sealing seals after every other Apply, so that the suite meets blocks
// in every layer: written since the last seal, sealed, and sealed then
// overwritten, renewed or deleted on a hot side.
type sealing struct {
	*Store
	n atomic.Int64
}

func (s *sealing) Apply(ctx context.Context, ops []blobstore.Op) ([]blobstore.Result, error) {
	rs, err := s.Store.Apply(ctx, ops)
	if err == nil && s.n.Add(1)%2 == 0 {
		if _, err := s.Store.Seal(ctx); err != nil {
			return nil, err
		}
	}
	return rs, err
}

// TestConformanceSealing runs the suite with seals between Applies.
func TestConformanceSealing(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		url := pgtest.URL(t)
		return func(t *testing.T, p blobstore.Params) (blobstore.Store, error) {
			s, err := Open(context.Background(), url, p, Options{Logger: quietLogger()})
			if err != nil {
				return nil, err
			}
			return &sealing{Store: s}, nil
		}
	})
}
