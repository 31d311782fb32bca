package postgres

import (
	"context"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/internal/pgtest"
)

// Params reads back what the database was created with, also from a
// second store opened on the same database.
func TestParamsReadsWhatTheStoreWasCreatedWith(t *testing.T) {
	url := pgtest.URL(t)
	ctx := context.Background()
	want := blobstore.Params{BlockSize: 8192}
	for i := range want.Fingerprint {
		want.Fingerprint[i] = byte(255 - i)
	}
	for round := 0; round < 2; round++ {
		s, err := Open(ctx, url, want, Options{Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Params(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("round %d: Params = %+v, want %+v", round, got, want)
		}
		s.Close()
	}
}
