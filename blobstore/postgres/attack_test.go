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
	sealtest.Attack(t, sealtest.AttackConfig{
		Name: "PostgreSQL",
		Open: func(t testing.TB, p blobstore.Params) sealtest.Store { return openTest(t, url, p) },
		Copy: func(ctx context.Context, _ map[wire.ID]attack.Owner) (attack.Features, error) {
			return attack.PostgresCopy(ctx, url)
		},
		LinkedAfterRenewals: true,
	})
	checkSealed(t, connect(t, url))
}
