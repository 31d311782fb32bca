package bolt

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/sealtest"
	"github.com/blindstore/blindstore/internal/attack"
	"github.com/blindstore/blindstore/wire"
)

// TestMergeAtSmallScale runs sealtest.SmallScale on the bbolt file with
// few and many users per seal window; after the merges the file passes
// bbolt's check and no free page holds old bytes.
func TestMergeAtSmallScale(t *testing.T) {
	for _, c := range []sealtest.SmallScaleConfig{
		{Users: 5, PerWindow: 1, Seed: 1},
		{Users: 10, PerWindow: 2, Seed: 2},
		{Users: 50, PerWindow: 5, Seed: 3},
	} {
		t.Run("", func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "blocks.db")
			var s *Store
			sealtest.SmallScale(t, sealtest.AttackConfig{
				Name: "bbolt",
				Open: func(t testing.TB, p blobstore.Params) sealtest.Store {
					var err error
					if s, err = Open(path, p); err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { _ = s.Close() })
					return s
				},
				Copy: func(_ context.Context, owners map[wire.ID]attack.Owner) (attack.Features, error) {
					return attack.BoltCopy(path, sealtest.AttackBlockSize, owners)
				},
				VerifyAfterSeal: true,
			}, c)
			checkFile(t, s)
		})
	}
}

// TestMergeSurvivesKill kills a writing, sealing and merging process
// between two of a merge's commits, and as a merge begins. Each kill
// between commits leaves a merge that the next one resumes; every
// acknowledged block reads back with its ETag, and the file passes
// bbolt's check (sealtest.Kill).
func TestMergeSurvivesKill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "blocks.db")
	sealtest.Kill(t, sealtest.KillConfig{
		ChildEnv: []string{"BOLT_SEAL_CHILD=" + path},
		Open:     func(t *testing.T) (sealtest.Store, error) { return Open(path, killParams) },
		Check: func(t *testing.T, s sealtest.Store, sealed bool) {
			checkFile(t, s.(*Store))
		},
		Marks: []string{"c", "z", "k"},
		Rounds: []sealtest.KillRound{
			{At: "k", MaxDelay: 2 * time.Millisecond},
			{At: "k", MaxDelay: 2 * time.Millisecond},
			{At: "g", MaxDelay: 10 * time.Millisecond},
		},
		MinSeals:         3,
		MinWrites:        300,
		WantMergeResumed: true,
	})
}
