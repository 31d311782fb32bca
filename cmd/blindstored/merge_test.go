package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/bolt"
	"github.com/blindstore/blindstore/wire"
)

var mergeLine = regexp.MustCompile(`^merged (\d+) blocks and (\d+) leases, (\d+) bytes rewritten \((\d+\.\d+) per byte stored\) in \S+$`)

// A store whose last closed period holds sealed blocks that no merge
// rewrote fails the audit, which names the period by its age;
// `blindstored merge` merges it in one line's report, and the audit then
// reports the period merged and finds nothing.
func TestMergeCommandAndAudit(t *testing.T) {
	p := newPurgeStore(t, 0, 0, 0)
	st, err := bolt.Open(filepath.Join(p.dir, "blocks.db"), p.params())
	if err != nil {
		t.Fatal(err)
	}
	var ops []blobstore.Op
	for range 4 {
		var w wire.WriteProof
		rand.Read(w[:])
		data := make([]byte, purgeBlockSize)
		rand.Read(data)
		ops = append(ops, blobstore.Op{Kind: blobstore.OpPut, ID: wire.NewID(), ProofHash: w.Hash(),
			Data: data, ETag: wire.ETagOf(data), Bucket: p.bk.Bucket(p.bk.Current() - 1)})
	}
	if _, err := st.Apply(context.Background(), ops); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Seal(context.Background()); err != nil {
		t.Fatal(err)
	}
	st.Close()
	args := []string{"--data", p.dir, "--block-size", fmt.Sprint(purgeBlockSize), "--period", purgePeriod.String(), "--retention", fmt.Sprint(purgeRetention)}

	rep, out, code := auditJSON(t, args...)
	if code != exitError || !hasFinding(rep, "closed periods 1 (periods ago) hold blocks and were not merged") ||
		len(rep.ClosedPeriods) != purgeRetention-1 || rep.ClosedPeriods[0].Merged || rep.ClosedPeriods[0].Blocks != 4 || rep.AwaitingMerge != 4 {
		t.Fatalf("audit before the merge: exit %d\n%s", code, out)
	}

	out, code = runCLI(t, nil, append([]string{"merge"}, args...)...)
	m := mergeLine.FindStringSubmatch(oneLine(t, out))
	if code != exitOK || m == nil || m[1] != "4" || m[2] != "4" || m[4] != "1.016" {
		t.Fatalf("merge: exit %d, %q", code, out)
	}

	rep, out, code = auditJSON(t, args...)
	if code != exitOK || len(rep.Findings) != 0 || !rep.ClosedPeriods[0].Merged || rep.AwaitingMerge != 0 {
		t.Fatalf("audit after the merge: exit %d\n%s", code, out)
	}
}
