package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/internal/pgtest"
	"github.com/blindstore/blindstore/wire"
)

// readTogether reads ids in one grouped statement, as a group the queue
// formed would, and returns each call.
func readTogether(s *Store, ids ...wire.ID) []*readCall {
	calls := make([]*readCall, len(ids))
	for i, id := range ids {
		calls[i] = &readCall{id: id, done: make(chan struct{})}
	}
	s.readGroup(context.Background(), calls)
	return calls
}

func setSlots(s *Store, n int) {
	s.reads.mu.Lock()
	s.reads.slots = n
	s.reads.mu.Unlock()
}

// TestReadGroupMixesFoundAndMissing reads, in one statement, live blocks
// of every layer, a deleted one, one never written and one twice, and
// checks that each caller gets its own answer.
func TestReadGroupMixesFoundAndMissing(t *testing.T) {
	s := openTest(t, pgtest.URL(t), testParams())
	bucket := randBucket(t)
	sealed, hot, deleted, never := newOwned(t, testBlockSize), newOwned(t, testBlockSize), newOwned(t, testBlockSize), newOwned(t, testBlockSize)
	mustApply(t, s, sealed.put(bucket), deleted.put(bucket))
	mustSeal(t, s)
	mustApply(t, s, hot.put(bucket), deleted.del())

	calls := readTogether(s, sealed.id, never.id, hot.id, deleted.id, sealed.id)
	for i, want := range [][]byte{sealed.data, nil, hot.data, nil, sealed.data} {
		c := calls[i]
		select {
		case <-c.done:
		default:
			t.Fatalf("call %d was left unfinished", i)
		}
		if want == nil {
			if !blobstore.IsNotFound(c.err) {
				t.Errorf("call %d: err %v, want not found", i, c.err)
			}
			continue
		}
		if c.err != nil || !bytes.Equal(c.out, want) || c.etag != wire.ETagOf(want) {
			t.Errorf("call %d: err %v, %d bytes, want the block", i, c.err, len(c.out))
		}
	}
}

// TestConcurrentReadsGroup has 64 readers of 64 KiB blocks (longer than
// pgx's read buffer, so the receive mark is in play) share one grouped
// statement at a time while a writer replaces and deletes blocks and a
// seal runs, and checks that every answer is a version the block had:
// the data and ETag of one put, or not found once it is deleted.
func TestConcurrentReadsGroup(t *testing.T) {
	const size, n, readers, rounds = 65536, 48, 64, 30
	p := testParams()
	p.BlockSize = size
	s := openTest(t, pgtest.URL(t), p)
	setSlots(s, 1)
	bucket := randBucket(t)
	ctx := context.Background()

	blocks := make([]owned, n)
	var ops []blobstore.Op
	// versions[i] holds every ETag block i had; nil marks a deletion.
	versions := make([]map[wire.ETag]bool, n)
	var vmu sync.Mutex
	for i := range blocks {
		blocks[i] = newOwned(t, size)
		versions[i] = map[wire.ETag]bool{wire.ETagOf(blocks[i].data): true}
		ops = append(ops, blocks[i].put(bucket))
	}
	mustApply(t, s, ops...)
	mustSeal(t, s)
	missing := wire.NewID()

	stop := make(chan struct{})
	var writes sync.WaitGroup
	writes.Add(1)
	go func() {
		defer writes.Done()
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			i := k % (n / 2) // the second half stays as first written
			o := blocks[i]
			d := randBlock(t, size)
			vmu.Lock()
			versions[i][wire.ETagOf(d)] = true
			vmu.Unlock()
			o.data = d
			op := o.put(bucket)
			if k%7 == 3 {
				op = o.del()
			}
			if _, err := s.Apply(ctx, []blobstore.Op{op}); err != nil {
				t.Errorf("write: %v", err)
				return
			}
			if k%20 == 10 {
				if _, err := s.Seal(ctx); err != nil {
					t.Errorf("seal: %v", err)
					return
				}
			}
		}
	}()

	var wg sync.WaitGroup
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, size)
			for k := 0; k < rounds; k++ {
				i := rand.IntN(n + 1)
				if i == n {
					if _, _, err := s.Read(ctx, missing, buf); !blobstore.IsNotFound(err) {
						t.Errorf("read of a block never written: %v", err)
					}
					continue
				}
				var err error
				var e wire.ETag
				buf, e, err = s.Read(ctx, blocks[i].id, buf)
				if blobstore.IsNotFound(err) && i < n/2 {
					continue // deleted meanwhile
				}
				if err != nil {
					t.Errorf("read: %v", err)
					return
				}
				vmu.Lock()
				known := versions[i][e]
				vmu.Unlock()
				if !known || wire.ETagOf(buf) != e {
					t.Errorf("read of block %d: data or ETag of no version it had", i)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	writes.Wait()

	s.reads.mu.Lock()
	largest := s.reads.largest
	s.reads.mu.Unlock()
	if largest < 2 {
		t.Errorf("64 readers through one statement at a time never shared one (largest group %d)", largest)
	}
	waitIdle(t, s)
}

// waitIdle waits until no read statement is out and none is queued: the
// last statement's sender gives its slot back just after it has answered
// its callers.
func waitIdle(t *testing.T, s *Store) {
	t.Helper()
	waitReads(t, s, "no read statement out and no read queued", func(running, queued int) bool { return running == 0 && queued == 0 })
}

// waitReads polls the read group until ok holds of its statements out and
// its reads queued, for at most 10 s.
func waitReads(t *testing.T, s *Store, want string, ok func(running, queued int) bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		s.reads.mu.Lock()
		running, queued := s.reads.running, len(s.reads.queue)
		s.reads.mu.Unlock()
		if ok(running, queued) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d read statements out, %d reads queued; want %s", running, queued, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCancelledReadLeavesItsBuffer cancels a read while it waits in the
// queue: it returns at once with an error of KindUnavailable, and the
// statement that later carries it neither fails the others nor writes
// into the buffer its caller has taken back.
func TestCancelledReadLeavesItsBuffer(t *testing.T) {
	s := openTest(t, pgtest.URL(t), testParams())
	bucket := randBucket(t)
	a, b := newOwned(t, testBlockSize), newOwned(t, testBlockSize)
	mustApply(t, s, a.put(bucket), b.put(bucket))

	setSlots(s, 0) // nothing goes out: reads wait in the queue
	ctx, cancel := context.WithCancel(context.Background())
	buf := bytes.Repeat([]byte{0xA5}, testBlockSize)
	errc := make(chan error, 1)
	go func() {
		_, _, err := s.Read(ctx, a.id, buf[:0])
		errc <- err
	}()
	waitQueued(t, s, 1)
	cancel()
	select {
	case err := <-errc:
		if wire.KindOf(err) != wire.KindUnavailable || !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled read: %v, want an unavailable error wrapping context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled read kept waiting")
	}

	setSlots(s, 1)
	got, _, err := s.Read(context.Background(), b.id, nil)
	if err != nil || !bytes.Equal(got, b.data) {
		t.Fatalf("read queued behind a cancelled one: %v", err)
	}
	if !bytes.Equal(buf, bytes.Repeat([]byte{0xA5}, testBlockSize)) {
		t.Fatal("the statement wrote into the cancelled caller's buffer")
	}
}

func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	waitReads(t, s, fmt.Sprintf("%d queued", n), func(_, queued int) bool { return queued >= n })
}

// TestReadGroupFailsEveryCaller closes the pool under queued reads: each
// caller gets an error, none waits for ever, and no slot stays taken.
func TestReadGroupFailsEveryCaller(t *testing.T) {
	s := openTest(t, pgtest.URL(t), testParams())
	o := newOwned(t, testBlockSize)
	mustApply(t, s, o.put(randBucket(t)))

	setSlots(s, 0)
	const readers = 8
	errc := make(chan error, readers)
	for range readers {
		go func() {
			_, _, err := s.Read(context.Background(), o.id, nil)
			errc <- err
		}()
	}
	waitQueued(t, s, readers)
	s.pool.Close()
	setSlots(s, 1)
	// One more read takes the slot and sends the queue with it.
	go func() {
		_, _, err := s.Read(context.Background(), o.id, nil)
		errc <- err
	}()
	for range readers + 1 {
		select {
		case err := <-errc:
			if err == nil {
				t.Error("a read on a closed pool succeeded")
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a read on a closed pool kept waiting")
		}
	}
	waitIdle(t, s)
}

// TestReceiveMarkWaitsForTheRest reads, over a real loopback TCP
// connection, a 5-byte header and then a 70,000-byte body sent in 8 KiB
// pieces a few milliseconds apart, as PostgreSQL sends a long row: the
// body arrives in at most three reads (what came with the header's, what
// is there when the body's first read comes, the rest) instead of one
// per piece; a short reply after it is not held back by the mark the
// body set.
func TestReceiveMarkWaitsForTheRest(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	body := randBlock(t, 70000)
	next := make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Write([]byte("head:"))
		for off := 0; off < len(body); off += 8192 {
			time.Sleep(3 * time.Millisecond)
			if _, err := c.Write(body[off:min(off+8192, len(body))]); err != nil {
				return
			}
		}
		<-next
		_, _ = c.Write([]byte("short"))
		<-next
	}()
	var d net.Dialer
	c, err := lowatDial(d.DialContext)(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, chunkBuf)
	n, err := io.ReadAtLeast(c, head, 5)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(body))
	have := copy(got, head[5:n])
	reads := 0
	for have < len(got) {
		m, err := c.Read(got[have:])
		if err != nil {
			t.Fatal(err)
		}
		have += m
		reads++
	}
	if !bytes.Equal(got, body) {
		t.Fatal("the body arrived changed")
	}
	if reads > 3 {
		t.Errorf("the body took %d reads; the mark should have held them to at most 3", reads)
	}
	next <- struct{}{}
	short := make([]byte, chunkBuf)
	m, err := io.ReadAtLeast(c, short, 5)
	if err != nil || string(short[:m]) != "short" {
		t.Fatalf("short reply after the body: %q, %v", short[:m], err)
	}
	close(next)
}
