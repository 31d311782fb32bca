package pool

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/bolt"
	"github.com/blindstore/blindstore/blobstore/postgres"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/internal/pgtest"
	"github.com/blindstore/blindstore/wire"
)

const testBlockSize = wire.MinBlockSize

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testKey(t testing.TB) []byte {
	k, err := bucketer.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testBucketer(t testing.TB) *bucketer.Bucketer {
	bk, err := bucketer.New(bucketer.Config{Key: testKey(t), Period: bucketer.DefaultPeriod, Retention: bucketer.DefaultRetention})
	if err != nil {
		t.Fatal(err)
	}
	return bk
}

// storeKind opens a fresh real store for a test.
type storeKind struct {
	name string
	open func(t testing.TB, bk *bucketer.Bucketer) blobstore.Store
}

func openBolt(t testing.TB, bk *bucketer.Bucketer) blobstore.Store {
	s, err := bolt.Open(filepath.Join(t.TempDir(), "blocks.db"), blobstore.Params{BlockSize: testBlockSize, Fingerprint: bk.Fingerprint()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openPostgres(t testing.TB, bk *bucketer.Bucketer) blobstore.Store {
	return openPostgresAt(t, pgtest.URL(t), bk)
}

func openPostgresAt(t testing.TB, url string, bk *bucketer.Bucketer) *postgres.Store {
	s, err := postgres.Open(context.Background(), url, blobstore.Params{BlockSize: testBlockSize, Fingerprint: bk.Fingerprint()},
		postgres.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var storeKinds = []storeKind{{"bolt", openBolt}, {"postgres", openPostgres}}

// owned is a block with its owner's write proof.
type owned struct {
	id   wire.ID
	w    wire.WriteProof
	data []byte
}

func newOwned(t testing.TB) owned {
	o := owned{id: wire.NewID(), data: make([]byte, testBlockSize)}
	if _, err := rand.Read(o.w[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := rand.Read(o.data); err != nil {
		t.Fatal(err)
	}
	return o
}

func (o owned) etag() wire.ETag { return wire.ETagOf(o.data) }

func (o owned) put(b bucketer.Bucket, c blobstore.Cond) blobstore.Op {
	return blobstore.Op{Kind: blobstore.OpPut, ID: o.id, ProofHash: o.w.Hash(), Data: o.data, ETag: o.etag(), Bucket: b, Cond: c}
}

func (o owned) del(c blobstore.Cond) blobstore.Op {
	return blobstore.Op{Kind: blobstore.OpDelete, ID: o.id, ProofHash: o.w.Hash(), Cond: c}
}

func (o owned) renew(b bucketer.Bucket) blobstore.Op {
	return blobstore.Op{Kind: blobstore.OpRenew, ID: o.id, ProofHash: o.w.Renew().Hash(), Bucket: b}
}

// withData returns o with new random content (same id and proof).
func (o owned) withData(t testing.TB) owned {
	n := o
	n.data = make([]byte, testBlockSize)
	if _, err := rand.Read(n.data); err != nil {
		t.Fatal(err)
	}
	return n
}

func ifMatch(e wire.ETag) blobstore.Cond { return blobstore.Cond{IfMatch: &e} }

var createOnly = blobstore.Cond{IfNoneMatchAny: true}

// observed is one Apply as the observer saw it.
type observed struct {
	ids        []wire.ID
	start, end time.Time
	err        error
}

// observer passes every Apply to a real store and records what it
// committed and when. gate, when set, holds each Apply until it can
// receive from it, so a test can keep a commit in flight.
type observer struct {
	Applier
	gate chan struct{}

	mu      sync.Mutex
	applies []observed
	started chan struct{} // receives once per Apply, when set
}

func (o *observer) Apply(ctx context.Context, ops []blobstore.Op) ([]blobstore.Result, error) {
	if o.started != nil {
		o.started <- struct{}{}
	}
	if o.gate != nil {
		<-o.gate
	}
	ob := observed{start: time.Now()}
	for i := range ops {
		ob.ids = append(ob.ids, ops[i].ID)
	}
	rs, err := o.Applier.Apply(ctx, ops)
	ob.end, ob.err = time.Now(), err
	o.mu.Lock()
	o.applies = append(o.applies, ob)
	o.mu.Unlock()
	return rs, err
}

func (o *observer) snapshot() []observed {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]observed(nil), o.applies...)
}

// applyOf returns the index of the Apply that committed id, or -1.
func applyOf(obs []observed, id wire.ID) int {
	for i, ob := range obs {
		for _, x := range ob.ids {
			if x == id {
				return i
			}
		}
	}
	return -1
}

// awaitQuorum waits for n committed requests on done, which a quorum
// must commit long before the tests' one-minute window.
func awaitQuorum(t *testing.T, done <-chan error, n int, within time.Duration) {
	t.Helper()
	timeout := time.After(within)
	for range n {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-timeout:
			t.Fatal("a quorum of requests waited for the one-minute window")
		}
	}
}
