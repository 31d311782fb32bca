package postgres

import (
	"context"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/storetest"
	"github.com/blindstore/blindstore/internal/pgtest"
	"github.com/blindstore/blindstore/wire"
)

// location is the suite's locations: a fresh database each.
func location(t *testing.T) storetest.Opener { return locationWith(t, Options{}) }

// locationWith is location with opt (its Logger set here).
func locationWith(t *testing.T, opt Options) storetest.Opener {
	url := pgtest.URL(t)
	opt.Logger = quietLogger()
	return func(t *testing.T, p blobstore.Params) (blobstore.Store, error) {
		s, err := Open(context.Background(), url, p, opt)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}

// TestConformance runs the shared Store suite.
func TestConformance(t *testing.T) { storetest.Run(t, location) }

// TestConformanceSealing runs the suite with seals between Applies, so
// that it meets blocks in every layer: written since the last seal,
// sealed, and sealed then overwritten, renewed or deleted on a hot side.
func TestConformanceSealing(t *testing.T) { storetest.RunSealing(t, location) }

// TestConformanceReadCache runs both with a read cache, small enough
// that the suite's reads also evict.
func TestConformanceReadCache(t *testing.T) {
	cached := func(t *testing.T) storetest.Opener { return locationWith(t, Options{ReadCache: 8 * wire.MinBlockSize}) }
	t.Run("plain", func(t *testing.T) { storetest.Run(t, cached) })
	t.Run("sealing", func(t *testing.T) { storetest.RunSealing(t, cached) })
}
