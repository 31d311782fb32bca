package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/bolt"
	"github.com/blindstore/blindstore/blobstore/postgres"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/internal/pgtest"
	"github.com/blindstore/blindstore/internal/wait"
	"github.com/blindstore/blindstore/wire"
)

func (p *purgeStore) sealArgs(extra ...string) []string {
	return append([]string{"seal", "--data", p.dir, "--block-size", fmt.Sprint(purgeBlockSize),
		"--period", purgePeriod.String(), "--retention", fmt.Sprint(purgeRetention)}, extra...)
}

func (p *purgeStore) unsealed(t *testing.T) int64 {
	t.Helper()
	st, err := bolt.Open(filepath.Join(p.dir, "blocks.db"), p.params())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := st.SealStats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s.Blocks
}

var sealLine = regexp.MustCompile(`^sealed (\d+) blocks and (\d+) leases, removed (\d+) deleted blocks, (\d+) bytes rewritten in \S+$`)

// `blindstored seal` seals what awaits a seal and says what it did, in
// one line; a second run finds nothing to do.
func TestSealCommand(t *testing.T) {
	p := newPurgeStore(t, 5, 0, 0)
	if n := p.unsealed(t); n != 5 {
		t.Fatalf("%d blocks await a seal before it, want 5", n)
	}
	out, code := runCLI(t, nil, p.sealArgs()...)
	m := sealLine.FindStringSubmatch(oneLine(t, out))
	if code != exitOK || m == nil || m[1] != "5" || m[2] != "5" || m[3] != "0" || m[4] != fmt.Sprint(5*purgeBlockSize) {
		t.Fatalf("seal: exit %d, %q", code, out)
	}
	if n := p.unsealed(t); n != 0 {
		t.Fatalf("%d blocks await a seal after it", n)
	}
	if n, _ := p.state(t); n != 5 {
		t.Fatalf("the store holds %d blocks after the seal, want 5", n)
	}
	out, code = runCLI(t, nil, p.sealArgs()...)
	if m := sealLine.FindStringSubmatch(oneLine(t, out)); code != exitOK || m == nil || m[1] != "0" {
		t.Fatalf("second seal: exit %d, %q", code, out)
	}

	// A mistyped --data is an error, not a seal of nothing.
	out, code = runCLI(t, nil, "seal", "--data", filepath.Join(p.dir, "nothing"))
	if code != exitError || !strings.Contains(out, "no embedded store") {
		t.Fatalf("seal of a missing store: exit %d, %q", code, out)
	}
}

// serve seals every --seal-every (here from its environment variable):
// blocks written through the API are sealed while it runs, and all of
// them are there afterwards.
func TestServeSeals(t *testing.T) {
	data := t.TempDir()
	const blockSize = 4096
	s := startServer(t, []string{"BLINDSTORE_SEAL_EVERY=1s"}, "--data", data, "--block-size", fmt.Sprint(blockSize))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var ids []wire.ID
	for i := 0; i < 20; i++ {
		var w wire.WriteProof
		rand.Read(w[:])
		d := make([]byte, blockSize)
		rand.Read(d)
		id := wire.NewID()
		if _, err := putBlock(ctx, s.url, id, w, d); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	// Two seals after the last write: the second one certainly began
	// after it.
	sealsBefore := strings.Count(s.logs.String(), "seal done")
	if wait.For(20*time.Second, 50*time.Millisecond, func() bool {
		return strings.Count(s.logs.String(), "seal done") >= sealsBefore+2
	}) != nil {
		t.Fatalf("no seal logged in 20 s with BLINDSTORE_SEAL_EVERY=1s\n%s", s.logs)
	}
	s.stop(t, syscall.SIGTERM)
	if !regexp.MustCompile(`seal done.*blocks=[1-9]`).MatchString(s.logs.String()) {
		t.Errorf("no seal logged that sealed any block:\n%s", s.logs)
	}

	key, _, err := loadKey("", filepath.Join(data, "bucket.key"), false)
	if err != nil {
		t.Fatal(err)
	}
	bk, err := bucketer.New(bucketer.Config{Key: key, Period: bucketer.DefaultPeriod, Retention: bucketer.DefaultRetention})
	if err != nil {
		t.Fatal(err)
	}
	st, err := bolt.Open(filepath.Join(data, "blocks.db"), blobstore.Params{BlockSize: blockSize, Fingerprint: bk.Fingerprint()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if ss, err := st.SealStats(ctx); err != nil || ss.Blocks != 0 {
		t.Errorf("after serve sealed: %+v, %v; want nothing awaiting a seal", ss, err)
	}
	for i, id := range ids {
		if _, _, err := st.Read(ctx, id, nil); err != nil {
			t.Fatalf("block %d after the seals: %v", i, err)
		}
	}
}

// `blindstored seal --store URL` seals a PostgreSQL store from outside
// while nothing else runs.
func TestSealCommandOnPostgres(t *testing.T) {
	url := pgtest.URL(t)
	keyHex, key, err := newKeyHex()
	if err != nil {
		t.Fatal(err)
	}
	bk, err := bucketer.New(bucketer.Config{Key: key, Period: bucketer.DefaultPeriod, Retention: bucketer.DefaultRetention})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := postgres.Open(ctx, url, blobstore.Params{BlockSize: 4096, Fingerprint: bk.Fingerprint()}, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ops []blobstore.Op
	for i := 0; i < 7; i++ {
		var w wire.WriteProof
		rand.Read(w[:])
		d := make([]byte, 4096)
		rand.Read(d)
		ops = append(ops, blobstore.Op{Kind: blobstore.OpPut, ID: wire.NewID(), ProofHash: w.Hash(), Data: d, ETag: wire.ETagOf(d), Bucket: bk.CurrentBucket()})
	}
	if _, err := st.Apply(ctx, ops); err != nil {
		t.Fatal(err)
	}
	st.Close()

	out, code := runCLI(t, []string{"BLINDSTORE_BUCKET_KEY=" + keyHex}, "seal", "--store", url, "--block-size", "4096")
	m := sealLine.FindStringSubmatch(oneLine(t, out))
	if code != exitOK || m == nil || m[1] != "7" || m[2] != "7" {
		t.Fatalf("seal --store: exit %d, %q", code, out)
	}
	st, err = postgres.Open(ctx, url, blobstore.Params{BlockSize: 4096, Fingerprint: bk.Fingerprint()}, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if ss, err := st.SealStats(ctx); err != nil || ss.Rows != 0 {
		t.Fatalf("after seal --store: %+v, %v; want nothing awaiting a seal", ss, err)
	}
	for _, op := range ops {
		if _, err := st.Stat(ctx, op.ID); err != nil {
			t.Fatalf("a block after seal --store: %v", err)
		}
	}
}
