package bolt

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/sealtest"
	"go.etcd.io/bbolt"
)

var killParams = blobstore.Params{BlockSize: sealtest.KillBlockSize}

// sealChild is the process TestSealSurvivesKill kills: it says "c" after
// each of a seal's commits and "z" as its scrub starts, so that the
// parent can aim a kill at either.
func sealChild(path string) {
	s, err := Open(path, killParams)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	c := sealtest.NewChild()
	testHookSealStep = func(step string) {
		switch step {
		case "scrub":
			c.Say("z")
		case "merge":
			c.Say("k")
		default:
			c.Say("c")
		}
	}
	c.Run(s, 50*time.Millisecond)
}

// TestSealSurvivesKill kills a writing, sealing and merging process
// inside a seal or a period merge, five times over on one file: between
// two of a seal's commits, in its scrub, at a random instant, and twice
// between two of a merge's commits (each leaves a merge that the next
// one resumes). After each kill, and after the next merge and seal, every
// acknowledged block reads back with its ETag and the file passes bbolt's
// consistency check (sealtest.Kill).
func TestSealSurvivesKill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "blocks.db")
	sealtest.Kill(t, sealtest.KillConfig{
		ChildEnv: []string{"BOLT_SEAL_CHILD=" + path},
		Open:     func(t *testing.T) (sealtest.Store, error) { return Open(path, killParams) },
		Check: func(t *testing.T, s sealtest.Store, sealed bool) {
			checkFile(t, s.(*Store))
		},
		Marks: []string{"c", "z", "k"},
		Rounds: []sealtest.KillRound{
			{At: "c", MaxDelay: 2 * time.Millisecond},
			{At: "z", MaxDelay: 2 * time.Millisecond},
			{At: "s", MaxDelay: 20 * time.Millisecond},
			{At: "k", MaxDelay: 2 * time.Millisecond},
			{At: "k", MaxDelay: 2 * time.Millisecond},
		},
		MinSeals:         3,
		MinWrites:        300,
		WantMergeResumed: true,
	})
}

// checkFile runs bbolt's consistency check: every page reachable once,
// free pages not reachable.
func checkFile(t *testing.T, s *Store) {
	t.Helper()
	err := s.db.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the file fails bbolt's check: %v", err)
	}
}
