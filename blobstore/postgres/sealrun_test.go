package postgres

import (
	"context"
	"testing"

	"github.com/blindstore/blindstore/blobstore/sealtest"
	"github.com/blindstore/blindstore/internal/pgtest"
)

// TestWorkGoesOnDuringSeal runs sealtest.WorkDuringSeal on a hot side of
// 12 MB: the seal holds writers back only for its switch and its
// TRUNCATE. Every check is read-your-writes on blocks that may lie on
// either hot side or in the sealed part, or be on their way between
// them. Both hot sides are empty after.
func TestWorkGoesOnDuringSeal(t *testing.T) {
	url := pgtest.URL(t)
	p := testParams()
	p.BlockSize = sealtest.WorkBlockSize
	s, err := Open(context.Background(), url, p, Options{Logger: quietLogger(), MaxConns: 12})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sealtest.WorkDuringSeal(t, s)
	checkSealed(t, connect(t, url))
}
