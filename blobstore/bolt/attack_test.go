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
	sealtest.Attack(t, attackConfig(func(t testing.TB) string { return filepath.Join(t.TempDir(), "blocks.db") }, nil))
}

// attackConfig is the attack of sealtest on a bbolt file, at the path
// file gives when the store is opened (and kept in *opened, when not
// nil): a copy holder reads every page, freed ones included. Reads go
// through the memory map and write nothing, so every measurement reads
// all blocks back first.
func attackConfig(file func(t testing.TB) string, opened **Store) sealtest.AttackConfig {
	var path string
	return sealtest.AttackConfig{
		Name: "bbolt",
		Open: func(t testing.TB, p blobstore.Params) sealtest.Store {
			path = file(t)
			s, err := Open(path, p)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			if opened != nil {
				*opened = s
			}
			return s
		},
		Copy: func(_ context.Context, owners map[wire.ID]attack.Owner) (attack.Features, error) {
			return attack.BoltCopy(path, sealtest.AttackBlockSize, owners)
		},
		VerifyAfterSeal: true,
	}
}
