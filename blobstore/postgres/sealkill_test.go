package postgres

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/sealtest"
	"github.com/blindstore/blindstore/internal/pgtest"
)

// TestMain runs the test binary as the writing and sealing process that
// TestSealSurvivesKill kills, when asked to.
func TestMain(m *testing.M) {
	if url := os.Getenv("PG_SEAL_CHILD"); url != "" {
		sealChild(url, os.Getenv("PG_SEAL_CHILD_FP"))
	}
	os.Exit(m.Run())
}

// sealChild is the process TestSealSurvivesKill kills: it says "m" as a
// seal has switched sides and begins its merge, so that the parent can
// aim a kill into the merge.
func sealChild(url, fp string) {
	var p blobstore.Params
	p.BlockSize = sealtest.KillBlockSize
	if b, err := hex.DecodeString(fp); err != nil || copy(p.Fingerprint[:], b) != len(p.Fingerprint) {
		fmt.Println("bad fingerprint")
		os.Exit(2)
	}
	s, err := Open(context.Background(), url, p, Options{Logger: quietLogger(), MaxConns: 12})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	c := sealtest.NewChild()
	testHookSwitched = func() { c.Say("m") }
	testHookMerging = func() { c.Say("k") }
	c.Run(s, 100*time.Millisecond)
}

// TestSealSurvivesKill kills a writing, sealing and merging process at a
// random instant inside a seal or a period merge, four times over on one
// database: twice in the seal's merge, after the switch, once anywhere,
// and once in a period merge, after its first chunk of block rows (it is
// one transaction, so the kill rolls it back whole and the next merge
// does it all). At least one kill must leave a seal that the next one
// resumes; after each next merge and seal both hot sides are empty, and
// every acknowledged block reads back with its ETag (sealtest.Kill).
func TestSealSurvivesKill(t *testing.T) {
	url := pgtest.URL(t)
	p := testParams()
	p.BlockSize = sealtest.KillBlockSize
	openTest(t, url, p).Close() // migrate and record the params
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
			{At: "m", MaxDelay: 10 * time.Millisecond},
			{At: "m", MaxDelay: 10 * time.Millisecond},
			{At: "s", MaxDelay: 40 * time.Millisecond},
			{At: "k", MaxDelay: 5 * time.Millisecond},
		},
		MinSeals:    3,
		MinWrites:   200,
		WantResumed: true,
	})
}
