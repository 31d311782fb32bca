package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/bolt"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/internal/redistest"
	"github.com/blindstore/blindstore/internal/wait"
	"github.com/blindstore/blindstore/wire"
)

// The purge tests run the real binary on an embedded store seeded here,
// in the test, with blocks stamped in chosen periods of the real clock's
// hour-long periods. Counts stay the same if an hour starts during the
// test: blocks of the current period stay live (R = 3), old ones stay
// expired, and one period forward is what the clock guard allows.
const (
	purgeBlockSize = 4096
	purgePeriod    = time.Hour
	purgeRetention = 3
)

type purgeStore struct {
	dir string
	key []byte
	bk  *bucketer.Bucketer
}

func (p *purgeStore) args(extra ...string) []string {
	return append([]string{"purge", "--data", p.dir, "--block-size", fmt.Sprint(purgeBlockSize),
		"--period", purgePeriod.String(), "--retention", fmt.Sprint(purgeRetention)}, extra...)
}

func (p *purgeStore) params() blobstore.Params {
	return blobstore.Params{BlockSize: purgeBlockSize, Fingerprint: p.bk.Fingerprint()}
}

// newPurgeStore makes a data directory with a bucket key file and a store
// holding `live` blocks of the current period and `expired` blocks of
// the period R before it, with the highest period recorded as given
// (relative to the current one).
func newPurgeStore(t *testing.T, live, expired int, highestBack uint64) *purgeStore {
	t.Helper()
	p := &purgeStore{dir: t.TempDir()}
	hexKey, key, err := newKeyHex()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.dir, "bucket.key"), []byte(hexKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.key = key
	p.bk, err = bucketer.New(bucketer.Config{Key: key, Period: purgePeriod, Retention: purgeRetention})
	if err != nil {
		t.Fatal(err)
	}
	cur := p.bk.Current()
	st, err := bolt.Open(filepath.Join(p.dir, "blocks.db"), p.params())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var ops []blobstore.Op
	for i := 0; i < live+expired; i++ {
		var w wire.WriteProof
		rand.Read(w[:])
		data := make([]byte, purgeBlockSize)
		rand.Read(data)
		period := cur
		if i >= live {
			period = cur - purgeRetention
		}
		ops = append(ops, blobstore.Op{Kind: blobstore.OpPut, ID: wire.NewID(), ProofHash: w.Hash(),
			Data: data, ETag: wire.ETagOf(data), Bucket: p.bk.Bucket(period)})
	}
	if _, err := st.Apply(context.Background(), ops); err != nil {
		t.Fatal(err)
	}
	if err := st.SetHighestPeriod(context.Background(), cur-highestBack); err != nil {
		t.Fatal(err)
	}
	return p
}

// addExpired adds one block of a period that has left the live set.
func (p *purgeStore) addExpired(t *testing.T) {
	t.Helper()
	st, err := bolt.Open(filepath.Join(p.dir, "blocks.db"), p.params())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var w wire.WriteProof
	rand.Read(w[:])
	data := make([]byte, purgeBlockSize)
	op := blobstore.Op{Kind: blobstore.OpPut, ID: wire.NewID(), ProofHash: w.Hash(), Data: data,
		ETag: wire.ETagOf(data), Bucket: p.bk.Bucket(p.bk.Current() - purgeRetention)}
	if _, err := st.Apply(context.Background(), []blobstore.Op{op}); err != nil {
		t.Fatal(err)
	}
}

// state returns how many blocks the store holds and its highest period.
func (p *purgeStore) state(t *testing.T) (int64, uint64) {
	t.Helper()
	st, err := bolt.Open(filepath.Join(p.dir, "blocks.db"), p.params())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := st.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	h, err := st.HighestPeriod(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s.Blocks, h
}

func oneLine(t *testing.T, out string) string {
	t.Helper()
	out = strings.TrimSpace(out)
	if strings.Contains(out, "\n") {
		t.Errorf("want one line of output, got:\n%s", out)
	}
	return out
}

// A dry run counts what a purge would delete and deletes nothing (nor
// records the period); the real run deletes exactly the expired blocks.
func TestPurgeCommandDryRunThenPurge(t *testing.T) {
	p := newPurgeStore(t, 3, 1, 1)
	_, h0 := p.state(t)
	for i := 0; i < 2; i++ {
		out, code := runCLI(t, nil, p.args("--dry-run")...)
		if code != exitOK || oneLine(t, out) != "dry run: would purge 1 of 4 blocks (1 expired); nothing deleted" {
			t.Fatalf("dry run: exit %d, %q", code, out)
		}
	}
	if n, h := p.state(t); n != 4 || h != h0 {
		t.Fatalf("after dry runs the store holds %d blocks and period %d (was %d)", n, h, h0)
	}
	out, code := runCLI(t, nil, p.args()...)
	if code != exitOK || oneLine(t, out) != "purged 1 of 4 blocks (1 expired)" {
		t.Fatalf("purge: exit %d, %q", code, out)
	}
	if n, h := p.state(t); n != 3 || h <= h0 {
		t.Fatalf("after the purge the store holds %d blocks and period %d (was %d)", n, h, h0)
	}
	out, code = runCLI(t, nil, p.args()...)
	if code != exitOK || oneLine(t, out) != "purged 0 of 3 blocks (0 expired)" {
		t.Fatalf("second purge: exit %d, %q", code, out)
	}
}

// A store whose recorded period is far behind the clock is refused, in
// one line naming the flag, with exit 1 and nothing changed, until the
// operator confirms the jump.
func TestPurgeCommandClockJumpNeedsConfirmation(t *testing.T) {
	p := newPurgeStore(t, 3, 1, 5)
	_, h0 := p.state(t)
	for _, extra := range [][]string{nil, {"--dry-run"}, {"--force"}} {
		out, code := runCLI(t, nil, p.args(extra...)...)
		line := oneLine(t, out)
		if code != exitError || !strings.Contains(line, "refused") || !strings.Contains(line, "--confirm-jump") || !strings.Contains(line, "5 periods") {
			t.Fatalf("purge %v with the clock 5 periods ahead: exit %d, %q", extra, code, out)
		}
	}
	if n, h := p.state(t); n != 4 || h != h0 {
		t.Fatalf("refused purges changed the store: %d blocks, period %d (was %d)", n, h, h0)
	}
	out, code := runCLI(t, nil, p.args("--confirm-jump")...)
	if code != exitOK || oneLine(t, out) != "purged 1 of 4 blocks (1 expired)" {
		t.Fatalf("confirmed: exit %d, %q", code, out)
	}
	if _, h := p.state(t); h < h0+5 {
		t.Fatalf("a confirmed jump did not record the period: %d", h)
	}
	if out, code := runCLI(t, nil, p.args()...); code != exitOK {
		t.Fatalf("the purge after a confirmed jump: exit %d, %q", code, out)
	}
}

// A purge that would delete more than the allowed fraction is refused
// until forced, or until the fraction allows it.
func TestPurgeCommandFractionNeedsForce(t *testing.T) {
	p := newPurgeStore(t, 1, 3, 0)
	out, code := runCLI(t, nil, p.args()...)
	if line := oneLine(t, out); code != exitError || !strings.Contains(line, "--force") || !strings.Contains(line, "3 of 4") {
		t.Fatalf("3 of 4 expired: exit %d, %q", code, out)
	}
	if n, _ := p.state(t); n != 4 {
		t.Fatalf("a refused purge deleted blocks: %d left", n)
	}
	if out, code := runCLI(t, []string{"BLINDSTORE_PURGE_MAX_FRACTION=0.75"}, p.args("--dry-run")...); code != exitOK {
		t.Fatalf("with the fraction at 0.75: exit %d, %q", code, out)
	}
	out, code = runCLI(t, nil, p.args("--force")...)
	if code != exitOK || oneLine(t, out) != "purged 3 of 4 blocks (3 expired)" {
		t.Fatalf("forced: exit %d, %q", code, out)
	}
}

// The purge never creates a bucket key or a store: without them it
// fails and leaves the directory as it was. Under another key the store
// refuses to open.
func TestPurgeCommandNeedsTheStoreAndItsKey(t *testing.T) {
	p := newPurgeStore(t, 1, 0, 0)
	if err := os.Rename(filepath.Join(p.dir, "bucket.key"), filepath.Join(p.dir, "moved.key")); err != nil {
		t.Fatal(err)
	}
	if out, code := runCLI(t, nil, p.args()...); code != exitError || !strings.Contains(out, "bucket key") {
		t.Fatalf("without a key file: exit %d, %q", code, out)
	}
	if _, err := os.Stat(filepath.Join(p.dir, "bucket.key")); err == nil {
		t.Fatal("purge created a bucket key")
	}
	other, _, err := newKeyHex()
	if err != nil {
		t.Fatal(err)
	}
	if out, code := runCLI(t, nil, p.args("--bucket-key", other)...); code != exitError || !strings.Contains(out, "another bucket key") {
		t.Fatalf("under another key: exit %d, %q", code, out)
	}
	if n, _ := p.state(t); n != 1 {
		t.Fatalf("store holds %d blocks, want 1", n)
	}

	empty := t.TempDir()
	if out, code := runCLI(t, nil, "purge", "--data", empty, "--bucket-key", other); code != exitError || !strings.Contains(out, "no embedded store") {
		t.Fatalf("no store: exit %d, %q", code, out)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Fatalf("purge left %d files in an empty directory", len(entries))
	}

	for _, args := range [][]string{{"purge", "extra"}, {"purge", "--purge-max-fraction", "1.5"}, {"purge", "--bogus"}} {
		if out, code := runCLI(t, nil, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d: %q", args, code, exitUsage, out)
		}
	}
}

// serve purges at start, and its guards speak in its log: expired blocks
// go at once, and a bad interval flag is a usage error.
func TestServePurgesAtStart(t *testing.T) {
	p := newPurgeStore(t, 3, 1, 0)
	args := p.args()[1:]
	s := startServer(t, nil, args...)
	waitLog(t, s, "purge done")
	if !strings.Contains(s.logs.String(), "deleted=1") {
		t.Fatalf("the purge at start did not delete the expired block:\n%s", s.logs)
	}
	s.stop(t, os.Interrupt)
	if n, _ := p.state(t); n != 3 {
		t.Fatalf("after serve's purge the store holds %d blocks, want 3", n)
	}
	out, code := runCLI(t, nil, append([]string{"serve", "--listen", "127.0.0.1:0", "--purge-every", "1500ms"}, args...)...)
	if code != exitUsage {
		t.Fatalf("--purge-every 1500ms: exit %d, %q", code, out)
	}

	// Clock far ahead of the record: serve keeps serving, and says why it
	// does not purge and what to run.
	q := newPurgeStore(t, 3, 1, 4)
	s = startServer(t, nil, q.args()[1:]...)
	waitLog(t, s, "purge refused")
	if logs := s.logs.String(); !strings.Contains(logs, "guard=clock") || !strings.Contains(logs, "--confirm-jump") {
		t.Fatalf("refusal log:\n%s", logs)
	}
	if resp, err := http.Get(s.url + "/v1/config"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("serve stopped serving after a refused purge: %v", err)
	} else {
		resp.Body.Close()
	}
	s.stop(t, os.Interrupt)
	if n, _ := q.state(t); n != 4 {
		t.Fatalf("a refused purge deleted blocks: %d left", n)
	}
}

// With --redis, serve takes its runs through the Redis locker, under a
// prefix derived from the bucket key; an unreachable Redis stops the
// start with exit 1, a malformed URL with exit 2.
func TestServePurgeWithRedis(t *testing.T) {
	url := redistest.URL(t)
	p := newPurgeStore(t, 3, 1, 0)
	fp := p.bk.Fingerprint()
	prefix := "blindstore:scheduler:" + hex.EncodeToString(fp[:8]) + ":"
	c := redistest.Client(t)
	t.Cleanup(func() { redistest.DeleteUnder(context.Background(), c, prefix) })
	s := startServer(t, nil, append(p.args()[1:], "--redis", url)...)
	waitLog(t, s, "purge done")
	if !strings.Contains(s.logs.String(), "distributed=true") {
		t.Fatalf("serve did not use the Redis locker:\n%s", s.logs)
	}
	s.stop(t, os.Interrupt)
	keys, err := c.Keys(context.Background(), prefix+"run:purge:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("claims in Redis: %v (%v), want one", keys, err)
	}
	// A second instance starting in the same hour finds the run claimed,
	// and does not purge the block that expired since. (If the hour
	// turns meanwhile, that is the next run, which it may do.)
	hour := p.bk.Current()
	p.addExpired(t)
	s = startServer(t, nil, append(p.args()[1:], "--redis", url, "--log-level", "debug")...)
	if wait.For(30*time.Second, 20*time.Millisecond, func() bool {
		return strings.Contains(s.logs.String(), "belongs to another instance") || strings.Contains(s.logs.String(), "purge done")
	}) != nil {
		t.Fatalf("the second instance neither skipped nor ran the purge:\n%s", s.logs)
	}
	if p.bk.Current() == hour && strings.Contains(s.logs.String(), "purge done") {
		t.Fatalf("the second instance ran the run the first had done:\n%s", s.logs)
	}
	s.stop(t, os.Interrupt)

	if out, code := runCLI(t, nil, append([]string{"serve", "--listen", "127.0.0.1:0", "--redis", "redis://127.0.0.1:1/0"}, p.args()[1:]...)...); code != exitError || !strings.Contains(out, "not reachable") {
		t.Fatalf("unreachable Redis: exit %d, %q", code, out)
	}
	if out, code := runCLI(t, nil, append([]string{"serve", "--listen", "127.0.0.1:0", "--redis", "http://x"}, p.args()[1:]...)...); code != exitUsage {
		t.Fatalf("malformed --redis: exit %d, %q", code, out)
	}
}

func waitLog(t *testing.T, s *server, what string) {
	t.Helper()
	if wait.For(30*time.Second, 20*time.Millisecond, func() bool { return strings.Contains(s.logs.String(), what) }) != nil {
		t.Fatalf("no %q in the log after 30s:\n%s", what, s.logs)
	}
}
