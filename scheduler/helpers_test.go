package scheduler

import (
	"bytes"
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
	"github.com/jonboulle/clockwork"
)

// Test deployments use short periods on a fake clock: one period is an
// hour of fake time, R = 3, and 1 KiB blocks.
const (
	testPeriod    = time.Hour
	testRetention = 3
	testBlockSize = 1024
)

// t0 is the start of a period (periods of an hour start on the hour).
var t0 = time.Date(2031, 3, 4, 5, 0, 0, 0, time.UTC)

// opener opens a store for a test with the given params. Calling it
// again for the same test opens the same store again (another instance).
type opener struct {
	name string
	open func(t *testing.T, p blobstore.Params) blobstore.Store
}

// stores are the real stores the tests run against.
func stores() []opener {
	return []opener{
		{"bolt", func() func(*testing.T, blobstore.Params) blobstore.Store {
			var path string
			var mu sync.Mutex
			return func(t *testing.T, p blobstore.Params) blobstore.Store {
				mu.Lock()
				if path == "" {
					path = filepath.Join(t.TempDir(), "blocks.db")
				}
				mu.Unlock()
				s, err := bolt.Open(path, p)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
		}()},
		{"postgres", func() func(*testing.T, blobstore.Params) blobstore.Store {
			var url string
			var mu sync.Mutex
			return func(t *testing.T, p blobstore.Params) blobstore.Store {
				mu.Lock()
				if url == "" {
					url = pgtest.URL(t)
				}
				mu.Unlock()
				s, err := postgres.Open(context.Background(), url, p, postgres.Options{Logger: quietLogger()})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
		}()},
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newKey(t testing.TB) []byte {
	t.Helper()
	k, err := bucketer.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newBucketer(t testing.TB, key []byte, clock bucketer.Clock) *bucketer.Bucketer {
	t.Helper()
	bk, err := bucketer.New(bucketer.Config{Key: key, Period: testPeriod, Retention: testRetention, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	return bk
}

// deployment is one store with its bucketer, service and fake clock.
type deployment struct {
	clock *clockwork.FakeClock
	key   []byte
	bk    *bucketer.Bucketer
	store blobstore.Store
	svc   *blobstore.Service
}

func newDeployment(t *testing.T, o opener, start time.Time) *deployment {
	t.Helper()
	d := &deployment{clock: clockwork.NewFakeClockAt(start), key: newKey(t)}
	d.bk = newBucketer(t, d.key, d.clock)
	d.store = o.open(t, blobstore.Params{BlockSize: testBlockSize, Fingerprint: d.bk.Fingerprint()})
	svc, err := blobstore.NewService(blobstore.ServiceConfig{Store: d.store, Bucketer: d.bk, BlockSize: testBlockSize})
	if err != nil {
		t.Fatal(err)
	}
	d.svc = svc
	return d
}

func (d *deployment) purger(t testing.TB, cfg PurgerConfig) *Purger {
	t.Helper()
	if cfg.Store == nil {
		cfg.Store = d.store
	}
	if cfg.Bucketer == nil {
		cfg.Bucketer = d.bk
	}
	p, err := NewPurger(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// block is a block a test wrote and may renew.
type block struct {
	id wire.ID
	w  wire.WriteProof
}

// put writes n blocks in the current period, through the service.
func (d *deployment) put(t testing.TB, n int) []block {
	t.Helper()
	out := make([]block, n)
	for i := range out {
		b := block{id: wire.NewID()}
		rand.Read(b.w[:])
		data := make([]byte, testBlockSize)
		rand.Read(data)
		if _, err := d.svc.Put(context.Background(), blobstore.PutItem{ID: b.id, Proof: b.w, Data: data}); err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

// putAt writes n blocks stamped with period p's bucket, as the service
// would have in period p, without moving the clock.
func (d *deployment) putAt(t testing.TB, p uint64, n int) []block {
	t.Helper()
	out := make([]block, n)
	ops := make([]blobstore.Op, n)
	for i := range out {
		b := block{id: wire.NewID()}
		rand.Read(b.w[:])
		data := make([]byte, testBlockSize)
		rand.Read(data)
		ops[i] = blobstore.Op{Kind: blobstore.OpPut, ID: b.id, ProofHash: b.w.Hash(), Data: data, ETag: wire.ETagOf(data), Bucket: d.bk.Bucket(p)}
		out[i] = b
	}
	res, err := d.store.Apply(context.Background(), ops)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Status != blobstore.StatusCreated {
			t.Fatalf("put of block %d: %v", i, r.Status)
		}
	}
	return out
}

func (d *deployment) renew(t testing.TB, bs []block) {
	t.Helper()
	items := make([]blobstore.RenewItem, len(bs))
	for i, b := range bs {
		items[i] = blobstore.RenewItem{ID: b.id, Proof: b.w.Renew()}
	}
	res, err := d.svc.Renew(context.Background(), items)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Status != blobstore.StatusRenewed && r.Status != blobstore.StatusCurrent {
			t.Fatalf("renew of block %d: %v", i, r.Status)
		}
	}
}

// present counts how many of bs the store still holds.
func (d *deployment) present(t testing.TB, bs []block) int {
	t.Helper()
	n := 0
	for _, b := range bs {
		_, err := d.store.Stat(context.Background(), b.id)
		switch {
		case err == nil:
			n++
		case !blobstore.IsNotFound(err):
			t.Fatal(err)
		}
	}
	return n
}

func (d *deployment) highest(t testing.TB) uint64 {
	t.Helper()
	h, err := d.store.HighestPeriod(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (d *deployment) total(t testing.TB) int64 {
	t.Helper()
	st, err := d.store.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Blocks
}
