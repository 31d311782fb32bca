package postgres

import (
	"context"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/storetest"
	"github.com/blindstore/blindstore/internal/pgtest"
)

// location is the suite's locations: a fresh database each.
func location(t *testing.T) storetest.Opener {
	url := pgtest.URL(t)
	return func(t *testing.T, p blobstore.Params) (blobstore.Store, error) {
		s, err := Open(context.Background(), url, p, Options{Logger: quietLogger()})
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
