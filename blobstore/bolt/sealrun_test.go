package bolt

import (
	"testing"

	"github.com/blindstore/blindstore/blobstore/sealtest"
	"github.com/blindstore/blindstore/wire"
)

// TestWorkGoesOnDuringSeal runs sealtest.WorkDuringSeal: the seal commits
// in small steps, and writers' commits come between them. The file then
// passes bbolt's consistency check.
func TestWorkGoesOnDuringSeal(t *testing.T) {
	f := newFixture(t, sealtest.WorkBlockSize)
	sealtest.WorkDuringSeal(t, f.s)
	checkFile(t, f.s)
}

// TestOpsOnOneBlockDuringSeals runs sealtest.OpsOnOneBlockDuringSeals:
// renewals move the block's data subtree between time buckets and seals
// rewrite its pages under the writers. The file then passes bbolt's
// consistency check.
func TestOpsOnOneBlockDuringSeals(t *testing.T) {
	f := newFixture(t, wire.MinBlockSize)
	sealtest.OpsOnOneBlockDuringSeals(t, f.s)
	checkFile(t, f.s)
}
