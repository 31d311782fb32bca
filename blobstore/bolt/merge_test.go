package bolt

import (
	"path/filepath"
	"testing"

	"github.com/blindstore/blindstore/blobstore/sealtest"
)

// TestMergeAtSmallScale runs sealtest.SmallScale on the bbolt file with
// few and many users per seal window; after the merges the file passes
// bbolt's check.
func TestMergeAtSmallScale(t *testing.T) {
	for _, c := range sealtest.SmallScaleConfigs {
		t.Run("", func(t *testing.T) {
			var s *Store
			sealtest.SmallScale(t, attackConfig(func(t testing.TB) string { return filepath.Join(t.TempDir(), "blocks.db") }, &s), c)
			checkFile(t, s)
		})
	}
}
