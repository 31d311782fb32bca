package bolt

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/sealtest"
	"github.com/blindstore/blindstore/internal/attack"
	"github.com/blindstore/blindstore/wire"
)

// TestSealingErasesWriteOrder runs sealtest.Attack with a copy holder
// that reads the bbolt file: every page, freed ones included, in bbolt's
// own format. Before a seal the copy links a user's blocks by where their
// pages lie (one commit's pages are allocated together). Reads go through
// the memory map and write nothing, so every measurement reads all
// blocks back first.
func TestSealingErasesWriteOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "blocks.db")
	sealtest.Attack(t, sealtest.AttackConfig{
		Name: "bbolt",
		Open: func(t testing.TB, p blobstore.Params) sealtest.Store {
			s, err := Open(path, p)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		},
		Copy: func(_ context.Context, owners map[wire.ID]attack.Owner) (attack.Features, error) {
			return attack.BoltCopy(path, sealtest.AttackBlockSize, owners)
		},
		VerifyAfterSeal: true,
	})
}
