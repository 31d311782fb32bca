package postgres

import (
	"testing"

	"github.com/blindstore/blindstore/blobstore/sealtest"
	"github.com/blindstore/blindstore/internal/pgtest"
)

// TestMergeAtSmallScale runs sealtest.SmallScale with few and many users
// per seal window. After each period's merge, every row the period's
// seals placed carries the merge's transaction id: the block rows of one
// period share one xmin, and so do the rows of each lease partition.
func TestMergeAtSmallScale(t *testing.T) {
	for _, c := range sealtest.SmallScaleConfigs {
		t.Run("", func(t *testing.T) {
			url := pgtest.URL(t)
			sealtest.SmallScale(t, attackConfig(func(testing.TB) string { return url }), c)
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
