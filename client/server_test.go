package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/bolt"
	"github.com/blindstore/blindstore/blobstore/httpapi"
	"github.com/blindstore/blindstore/blobstore/pool"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/client/format"
)

// testServer is a real blindstore API over a real bolt store on a
// loopback listener, with a fake clock so tests can cross periods.
type testServer struct {
	url   string
	svc   *blobstore.Service
	store *bolt.Store
	clock *bucketer.FakeClock
	bs    int
}

const (
	testBlockSize = 4096
	testPeriod    = time.Hour
	testRetention = 3
)

func newTestServer(t testing.TB) *testServer { return newTestServerSize(t, testBlockSize) }

// newTestServerSize is newTestServer with another block size.
func newTestServerSize(t testing.TB, testBlockSize int) *testServer {
	return newTestServerWith(t, testBlockSize, 0)
}

// newTestServerWith is newTestServerSize whose writes go through a write
// pool with the given window (0: none, straight to the store).
func newTestServerWith(t testing.TB, testBlockSize int, window time.Duration) *testServer {
	return startTestServer(t, testServerOptions{blockSize: testBlockSize, window: window, renewBatch: 16})
}

// testServerOptions are what tests vary of the test server.
type testServerOptions struct {
	blockSize  int
	window     time.Duration // the write pool's window; 0: no pool
	renewBatch int
	tokens     httpapi.TokenRedeemer // nil: requests cost nothing
}

func startTestServer(t testing.TB, o testServerOptions) *testServer {
	t.Helper()
	key := make([]byte, bucketer.KeySize)
	_, _ = rand.Read(key)
	clock := bucketer.NewFakeClock(time.Unix(1_700_000_000, 0).Truncate(testPeriod).Add(time.Minute))
	bk, err := bucketer.New(bucketer.Config{Key: key, Period: testPeriod, Retention: testRetention, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	store, err := bolt.Open(filepath.Join(t.TempDir(), "blocks.db"), blobstore.Params{BlockSize: o.blockSize, Fingerprint: bk.Fingerprint()})
	if err != nil {
		t.Fatal(err)
	}
	var committer blobstore.Committer
	closePool := func() {}
	if o.window > 0 {
		p := pool.New(store, pool.Options{Window: o.window})
		closePool = func() { _ = p.Close() }
		committer = p
	}
	svc, err := blobstore.NewService(blobstore.ServiceConfig{Store: store, Bucketer: bk, BlockSize: o.blockSize,
		Limits: blobstore.Limits{RenewBatch: o.renewBatch, WriteBatch: 8}, Committer: committer})
	if err != nil {
		t.Fatal(err)
	}
	opt := httpapi.Options{
		Version:    "test",
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		ProbeLimit: httpapi.NewMemoryProbeLimiter(1000, 100000),
		PoolWindow: o.window,
		Tokens:     o.tokens,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httpapi.NewServer(httpapi.New(svc, opt), opt)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		closePool()
		_ = store.Close()
	})
	return &testServer{url: "http://" + ln.Addr().String(), svc: svc, store: store, clock: clock, bs: o.blockSize}
}

func (s *testServer) remote(t testing.TB) *Remote {
	return s.remoteAt(t, s.url)
}

func (s *testServer) remoteAt(t testing.TB, url string) *Remote {
	t.Helper()
	r, err := NewRemote(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Backoff = 5 * time.Millisecond
	r.Retries = 2
	return r
}

func (s *testServer) blocks(t testing.TB) int64 {
	t.Helper()
	st, err := s.store.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Blocks
}

// advance moves the server's clock to the start of the next period, plus
// a minute.
func (s *testServer) advance() {
	now := s.clock.Now()
	s.clock.Set(now.Truncate(testPeriod).Add(testPeriod + time.Minute))
}

// testUsers gives every account of a test its own user name.
var testUsers atomic.Int64

// testLocator derives a locator of its own for each user and password
// without Argon2id, through a recovery code made of their hash: the
// tests are about what surrounds the KDF (format/keys_test.go tests it).
func testLocator(t testing.TB, user, password string) format.Locator {
	t.Helper()
	user, err := format.NormalizeUsername(user)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte("test locator\x00" + user + "\x00" + password))
	return format.RecoveryCode(h[:format.RecoveryCodeSize]).Locator()
}

func newTestAccount(t testing.TB, s *testServer) (*Account, format.Locator) {
	t.Helper()
	user := "user" + string(rune('a'+testUsers.Add(1)%26)) + time.Now().Format("150405.000000000")
	loc := testLocator(t, user, "password")
	a, _, err := signup(context.Background(), s.remote(t), user, loc)
	if err != nil {
		t.Fatal(err)
	}
	return a, loc
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func putBytes(t testing.TB, a *Account, name string, data []byte) {
	t.Helper()
	if _, err := a.Put(context.Background(), bytes.NewReader(data), PutInfo{Name: name, Mode: 0o640, ModTime: time.Unix(1_700_000_000, 5)}, nil); err != nil {
		t.Fatalf("put %s: %v", name, err)
	}
}

func getBytes(t testing.TB, a *Account, name string) ([]byte, error) {
	t.Helper()
	var buf bytes.Buffer
	_, err := a.Get(context.Background(), name, &buf, nil)
	return buf.Bytes(), err
}

// garbageServer answers every request with an HTML page.
func garbageServer(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<html>hello</html>")
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}
