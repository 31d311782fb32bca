package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/internal/pgtest"
	"github.com/blindstore/blindstore/internal/wait"
	"github.com/blindstore/blindstore/wire"
)

// TestRefusesTrackCommitTimestamp starts a private server with commit
// timestamps on (the shared one cannot be switched without a restart) and
// checks that Open refuses it, says what to do, and writes nothing.
func TestRefusesTrackCommitTimestamp(t *testing.T) {
	t.Parallel()
	c := pgtest.StartCluster(t, "track_commit_timestamp = on")
	s, err := Open(context.Background(), c.URL(), testParams(), Options{Logger: quietLogger()})
	if err == nil {
		s.Close()
		t.Fatal("Open on a server with track_commit_timestamp = on succeeded")
	}
	if !errors.Is(err, ErrTrackCommitTimestamp) {
		t.Errorf("Open: error %q is not ErrTrackCommitTimestamp", err)
	}
	const advice = "set track_commit_timestamp = off in postgresql.conf and restart PostgreSQL"
	if !strings.Contains(err.Error(), advice) {
		t.Errorf("Open: error %q does not say %q", err, advice)
	}
	var tables int
	conn := connect(t, c.URL())
	if err := conn.QueryRow(context.Background(),
		"SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Errorf("the refused Open left %d relations behind; it must refuse before writing", tables)
	}
}

// TestRestartUnderLoad writes through one Store while its server is
// stopped at once (as in a crash) and started again. During the outage
// every failure is KindUnavailable; afterwards the same Store works again
// without being reopened; and every write that was acknowledged, before,
// during or after the outage, reads back with its ETag.
func TestRestartUnderLoad(t *testing.T) {
	t.Parallel()
	c := pgtest.StartCluster(t)
	s, err := Open(context.Background(), c.URL(), testParams(), Options{Logger: quietLogger(), MaxConns: 8, ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	bucket := randBucket(t)

	type ack struct {
		id   wire.ID
		data []byte
		etag wire.ETag
	}
	var (
		mu       sync.Mutex
		acked    []ack
		failures []error
		down     atomic.Bool  // the server is stopped
		downErrs atomic.Int64 // failures seen while it was
		acks     atomic.Int64
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	const writers = 4
	deadline := time.Now().Add(10 * time.Second) // a bound whatever happens
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100000 && time.Now().Before(deadline); i++ {
				select {
				case <-stop:
					return
				default:
				}
				o := newOwned(t, testBlockSize)
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				wasDown := down.Load()
				rs, err := s.Apply(ctx, []blobstore.Op{o.put(bucket)})
				cancel()
				mu.Lock()
				switch {
				case err != nil:
					failures = append(failures, err)
					if wasDown {
						downErrs.Add(1)
					}
				case len(rs) != 1 || rs[0].Status != blobstore.StatusCreated:
					failures = append(failures, fmt.Errorf("put of a new block: results %v", rs))
				default:
					acked = append(acked, ack{o.id, o.data, rs[0].ETag})
					acks.Add(1)
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(20 * time.Millisecond)
				} else {
					time.Sleep(2 * time.Millisecond)
				}
			}
		}()
	}
	waitAcks := func(n int64, what string) {
		t.Helper()
		if wait.For(time.Until(deadline), 10*time.Millisecond, func() bool { return acks.Load() >= n }) != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("%s: only %d writes acknowledged, want %d", what, acks.Load(), n)
		}
	}

	waitAcks(50, "before the outage")
	time.Sleep(300 * time.Millisecond)
	before := acks.Load()
	c.Stop(t)
	down.Store(true)
	time.Sleep(700 * time.Millisecond)

	// Reads fail the same way while the server is down.
	probe := newOwned(t, testBlockSize)
	if _, _, err := s.Read(context.Background(), probe.id, nil); wire.KindOf(err) != wire.KindUnavailable {
		t.Errorf("Read during the outage: %v, want an error of KindUnavailable", err)
	}
	if _, err := s.Stat(context.Background(), probe.id); wire.KindOf(err) != wire.KindUnavailable {
		t.Errorf("Stat during the outage: %v, want an error of KindUnavailable", err)
	}
	if err := s.Ping(context.Background()); wire.KindOf(err) != wire.KindUnavailable {
		t.Errorf("Ping during the outage: %v, want an error of KindUnavailable", err)
	}

	down.Store(false)
	c.Start(t)
	restarted := acks.Load()
	waitAcks(restarted+50, "after the restart")
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()

	if downErrs.Load() == 0 {
		t.Error("no Apply failed while the server was stopped")
	}
	mu.Lock()
	defer mu.Unlock()
	causes := map[string]int{}
	for i, err := range failures {
		if k := wire.KindOf(err); k != wire.KindUnavailable {
			t.Errorf("failure %d of %d is of kind %v, want KindUnavailable: %v", i+1, len(failures), k, err)
		}
		causes[err.Error()]++
	}
	for cause, n := range causes {
		t.Logf("%4d× %s", n, cause)
	}
	t.Logf("%d writes acknowledged (%d before the stop, %d after the restart), %d refused as unavailable",
		len(acked), before, int64(len(acked))-restarted, len(failures))

	var buf []byte
	for i, a := range acked {
		got, etag, err := s.Read(context.Background(), a.id, buf)
		if err != nil {
			t.Fatalf("acknowledged write %d of %d: Read: %v", i+1, len(acked), err)
		}
		if !bytes.Equal(got, a.data) || etag != a.etag || etag != wire.ETagOf(a.data) {
			t.Fatalf("acknowledged write %d of %d reads back different data or ETag", i+1, len(acked))
		}
		buf = got
	}
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Blocks < int64(len(acked)) {
		t.Errorf("Stats counts %d blocks, fewer than the %d acknowledged", st.Blocks, len(acked))
	}
}
