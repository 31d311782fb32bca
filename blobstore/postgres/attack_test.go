package postgres

import (
	"context"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/sealtest"
	"github.com/blindstore/blindstore/internal/attack"
	"github.com/blindstore/blindstore/internal/pgtest"
	"github.com/blindstore/blindstore/wire"
)

// TestSealingErasesWriteOrder runs sealtest.Attack with a copy holder
// that reads the database: every heap and TOAST page, dead row versions
// included (its blocks of 4096 bytes are stored in TOAST chunks). Before
// a seal the copy links a user's blocks by their transactions and
// places. Reading every block back sets every hint bit alike; after a
// seal the measurement reads the copy as the seal left it.
func TestSealingErasesWriteOrder(t *testing.T) {
	url := pgtest.URL(t)
	cfg := attackConfig(func(testing.TB) string { return url })
	cfg.LinkedAfterRenewals = true
	sealtest.Attack(t, cfg)
	checkSealed(t, connect(t, url))
}

// attackConfig is the attack of sealtest on the database at the URL db
// gives when the store is opened: a copy holder reads every heap and
// TOAST page, dead row versions included (blocks of 4096 bytes are
// stored in TOAST chunks). A seal's rows carry its transaction id, so
// the copy shows the seal windows until the period merge.
func attackConfig(db func(t testing.TB) string) sealtest.AttackConfig {
	var url string
	return sealtest.AttackConfig{
		Name: "PostgreSQL",
		Open: func(t testing.TB, p blobstore.Params) sealtest.Store {
			url = db(t)
			return openTest(t, url, p)
		},
		Copy: func(ctx context.Context, _ map[wire.ID]attack.Owner) (attack.Features, error) {
			return attack.PostgresCopy(ctx, url)
		},
		WindowsVisible: true,
	}
}
