package postgres

import (
	"context"
	"encoding/hex"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/sealtest"
	"github.com/blindstore/blindstore/internal/attack"
	"github.com/blindstore/blindstore/internal/pgtest"
	"github.com/blindstore/blindstore/wire"
)

func attackConfig(url string) sealtest.AttackConfig {
	return sealtest.AttackConfig{
		Name: "PostgreSQL",
		Open: func(t testing.TB, p blobstore.Params) sealtest.Store { return openTest(t, url, p) },
		Copy: func(ctx context.Context, _ map[wire.ID]attack.Owner) (attack.Features, error) {
			return attack.PostgresCopy(ctx, url)
		},
		WindowsVisible: true,
	}
}

// TestMergeAtSmallScale runs sealtest.SmallScale with few and many users
// per seal window. After each period's merge, every row the period's
// seals placed carries the merge's transaction id: the block rows of one
// period share one xmin, and so do the rows of each lease partition.
func TestMergeAtSmallScale(t *testing.T) {
	for _, c := range []sealtest.SmallScaleConfig{
		{Users: 5, PerWindow: 1, Seed: 1},
		{Users: 10, PerWindow: 2, Seed: 2},
		{Users: 50, PerWindow: 5, Seed: 3},
	} {
		t.Run("", func(t *testing.T) {
			url := pgtest.URL(t)
			sealtest.SmallScale(t, attackConfig(url), c)
			conn := connect(t, url)
			checkSealed(t, conn)
			// Two periods merged: their data rows carry two transactions,
			// and each partition one.
			if n := count(t, conn, "SELECT count(DISTINCT xmin::text) FROM blocks"); n != 2 {
				t.Errorf("the block rows carry %d transactions, want the two merges'", n)
			}
			if n := count(t, conn, "SELECT count(*) FROM (SELECT tableoid FROM leases GROUP BY tableoid HAVING count(DISTINCT xmin::text) > 1) x"); n != 0 {
				t.Errorf("%d lease partitions hold rows of several transactions, want one each", n)
			}
		})
	}
}

// TestMergeSurvivesKill kills a writing, sealing and merging process
// inside a merge: after its first chunk of block rows, and as it begins.
// The merge is one transaction, so a kill rolls it back whole; the next
// merge does it all, and every acknowledged block reads back with its
// ETag (sealtest.Kill).
func TestMergeSurvivesKill(t *testing.T) {
	url := pgtest.URL(t)
	p := testParams()
	p.BlockSize = sealtest.KillBlockSize
	openTest(t, url, p).Close()
	sealtest.Kill(t, sealtest.KillConfig{
		ChildEnv: []string{"PG_SEAL_CHILD=" + url, "PG_SEAL_CHILD_FP=" + hex.EncodeToString(p.Fingerprint[:])},
		Open: func(t *testing.T) (sealtest.Store, error) {
			return Open(context.Background(), url, p, Options{Logger: quietLogger()})
		},
		Check: func(t *testing.T, _ sealtest.Store, sealed bool) {
			if sealed {
				checkSealed(t, connect(t, url))
			}
		},
		Marks: []string{"m", "k"},
		Rounds: []sealtest.KillRound{
			{At: "k", MaxDelay: 5 * time.Millisecond},
			{At: "g", MaxDelay: 20 * time.Millisecond},
		},
		MinSeals:  3,
		MinWrites: 200,
	})
}
