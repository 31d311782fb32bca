package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/wire"
	"github.com/jackc/pgx/v5/pgtype"
)

// Reads are grouped: while readSlots statements are out, further reads
// queue, and the next statement to go asks for every queued block at
// once (sqlReadMany). A lone read goes out at once, as before; under
// load, a round trip, a backend wake-up and an execution of the statement
// serve many reads instead of one, which is most of what a read of a
// 64 KiB block costs PostgreSQL beside sending its bytes.
//
// Blocks read together are read together in any case, by one server
// that sees them all; the group keeps nothing and logs nothing about
// which ones were.

// readSlots is how many grouped read statements may be out at once:
// half the pool's connections, leaving the rest to writes. With the
// default pool of 4 that is two, which keep both cores of a small server
// busy (one backend runs while the other's rows are copied); four made
// the groups smaller and cost more CPU per GET in the bench's peer row.
func readSlots(maxConns int32) int { return max(1, int(maxConns)/2) }

const (
	// readGroupMax bounds the blocks one statement asks for: 64 blocks of
	// 64 KiB are 4 MiB streaming through one connection.
	readGroupMax = 64
	// readTimeout bounds a grouped statement. It no longer belongs to the
	// caller that sent it, whose cancellation must not fail the others'
	// reads; each caller still stops waiting when its own context ends.
	readTimeout = 30 * time.Second
)

// readCall is one caller's read, waiting in a group.
type readCall struct {
	id   wire.ID
	lend bool          // the caller takes a cached block's own slice (Lend)
	done chan struct{} // closed once the result is set

	mu   sync.Mutex
	gone bool   // the caller stopped waiting: dst is no longer ours
	set  bool   // the result below is final
	dst  []byte // the caller's buffer, appended to
	out  []byte
	etag wire.ETag
	err  error
}

// finish sets the result unless it is set or the caller left. data, if
// not nil, is copied into the caller's buffer: it points into the
// connection's read buffer, which the next row overwrites. A cached
// block (stable) is handed as it is to a caller that lends it.
func (c *readCall) finish(data []byte, stable bool, etag wire.ETag, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.set {
		return
	}
	c.set = true
	if !c.gone {
		if err == nil {
			if c.lend && stable {
				c.out = data
			} else {
				c.out = append(c.dst[:0], data...)
			}
			c.etag = etag
		}
		c.err = err
	}
	c.dst = nil
	close(c.done)
}

// leave marks the caller gone, unless the result is already set; it
// reports whether it was.
func (c *readCall) leave() (set bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.set {
		c.gone = true
	}
	return c.set
}

// readGroup queues reads for grouped statements.
type readGroup struct {
	slots int // readSlots of the pool; tests vary it

	mu      sync.Mutex
	queue   []*readCall
	running int // grouped statements out, at most slots
	largest int // the most reads one statement carried, for tests
}

// Read appends the block's data to dst[:0].
func (s *Store) Read(ctx context.Context, id wire.ID, dst []byte) ([]byte, wire.ETag, error) {
	return s.read(ctx, &readCall{id: id, dst: dst, done: make(chan struct{})})
}

// Lend calls fn with the block's data: the read cache's own copy when
// there is a cache, else a buffer of the store's that is reused once fn
// returns. Nothing is held while fn runs, but fn must not keep the slice.
func (s *Store) Lend(ctx context.Context, id wire.ID, fn func(data []byte, etag wire.ETag) error) error {
	c, bufp := s.lendCall(id)
	if bufp != nil {
		defer s.lendBuf.Put(bufp)
	}
	data, etag, err := s.read(ctx, c)
	if err != nil {
		return err
	}
	return fn(data, etag)
}

// lendCall is a read of id for a caller that lends the data (Lend,
// ReadMany): without a cache it lands in a pooled buffer, bufp, which goes
// back to s.lendBuf once the caller is done with the call; with one, bufp
// is nil and the cache's own copy is lent.
func (s *Store) lendCall(id wire.ID) (c *readCall, bufp *[]byte) {
	c = &readCall{id: id, lend: true, done: make(chan struct{})}
	if s.cache == nil {
		if bufp, _ = s.lendBuf.Get().(*[]byte); bufp == nil {
			b := make([]byte, 0, s.blockSize)
			bufp = &b
		}
		c.dst = *bufp
	}
	return c, bufp
}

// ReadMany reads ids through the group, all queued at once, so that
// they go out in as few statements as readGroupMax allows rather than one
// group each (blobstore.ManyReader). Without a cache each block lands in
// a pooled buffer of its own, back in the pool once fn has seen it.
func (s *Store) ReadMany(ctx context.Context, ids []wire.ID, fn func(i int, data []byte, etag wire.ETag, err error) error) error {
	calls := make([]*readCall, len(ids))
	bufs := make([]*[]byte, len(ids))
	for i, id := range ids {
		calls[i], bufs[i] = s.lendCall(id)
	}
	// Every call is waited for or left before its buffer goes back, so
	// that a statement still out never writes into a buffer reused.
	next := 0
	defer func() {
		for i := next; i < len(calls); i++ {
			calls[i].leave()
		}
		for _, b := range bufs {
			if b != nil {
				s.lendBuf.Put(b)
			}
		}
	}()
	s.enqueue(ctx, calls...)
	for i, c := range calls {
		next = i + 1
		data, etag, err := s.wait(ctx, c)
		if err != nil && wire.KindOf(err) != wire.KindNotFound {
			return err
		}
		if err := fn(i, data, etag, err); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) read(ctx context.Context, c *readCall) ([]byte, wire.ETag, error) {
	s.enqueue(ctx, c)
	return s.wait(ctx, c)
}

// enqueue queues calls, and sends a statement for them at once, in this
// goroutine, if a slot is free.
func (s *Store) enqueue(ctx context.Context, calls ...*readCall) {
	g := &s.reads
	g.mu.Lock()
	g.queue = append(g.queue, calls...)
	// A statement that finds the queue not empty when it ends sends the
	// next one, so when a slot is free the queue was empty and these
	// reads go out now.
	lead := g.running < g.slots
	if lead {
		g.running++
	}
	g.mu.Unlock()
	if lead {
		s.sendReads(ctx, true)
	}
}

// wait waits for c's result, or leaves it when ctx ends first.
func (s *Store) wait(ctx context.Context, c *readCall) ([]byte, wire.ETag, error) {
	select {
	case <-c.done:
	case <-ctx.Done():
		if !c.leave() {
			return nil, wire.ETag{}, classify("read block", ctx.Err())
		}
	}
	if c.err != nil {
		return nil, wire.ETag{}, classify("read block", c.err)
	}
	return c.out, c.etag, nil
}

// sendReads sends one grouped statement for what is queued. The caller
// holds a slot, which it passes on to a new goroutine if reads are queued
// when the statement ends: a caller whose own read is done goes back to
// its client rather than serving others'. inline is false in that
// goroutine, which goes on until the queue is empty.
func (s *Store) sendReads(ctx context.Context, inline bool) {
	ctx = context.WithoutCancel(ctx)
	g := &s.reads
	for {
		g.mu.Lock()
		n := min(len(g.queue), readGroupMax)
		g.largest = max(g.largest, n)
		calls := make([]*readCall, n)
		copy(calls, g.queue)
		// The queue's array is kept for the next ones unless it grew
		// large, so that a burst does not pin it.
		if rest := len(g.queue) - n; rest > 0 || cap(g.queue) > 4*readGroupMax {
			g.queue = append([]*readCall(nil), g.queue[n:]...)
		} else {
			clear(g.queue)
			g.queue = g.queue[:0]
		}
		g.mu.Unlock()

		sctx, cancel := context.WithTimeout(ctx, readTimeout)
		s.readGroup(sctx, calls)
		cancel()

		g.mu.Lock()
		more := len(g.queue) > 0
		if !more {
			g.running--
		}
		g.mu.Unlock()
		if !more {
			return
		}
		if inline {
			go s.sendReads(context.Background(), false)
			return
		}
	}
}

// readGroup reads the calls' blocks and finishes every call.
func (s *Store) readGroup(ctx context.Context, calls []*readCall) {
	pending := make(map[wire.ID][]*readCall, len(calls))
	for _, c := range calls {
		c.mu.Lock()
		gone := c.gone
		c.mu.Unlock()
		if gone {
			c.finish(nil, false, wire.ETag{}, context.Canceled)
			continue
		}
		pending[c.id] = append(pending[c.id], c)
	}
	if len(pending) == 0 {
		return
	}
	err := retryBroken(ctx, func() error { return s.readMany(ctx, pending) })
	if err == nil && len(pending) > 0 {
		err = fmt.Errorf("the read answered for %d blocks fewer than asked", len(pending))
	}
	for _, cs := range pending {
		for _, c := range cs {
			c.finish(nil, false, wire.ETag{}, err)
		}
	}
}

// readMany reads the pending blocks in one statement, finishing each
// block's calls as its row arrives and removing it from pending, so that
// a retry after a broken connection asks only for the rest.
func (s *Store) readMany(ctx context.Context, pending map[wire.ID][]*readCall) error {
	ids := make([]pgtype.UUID, 0, len(pending))
	// The ETag of each block the cache holds, or NULL; cached keeps
	// those blocks for the rows that say they are unchanged.
	haves := make([][]byte, 0, len(pending))
	var cached map[wire.ID]cachedBlock
	for id := range pending {
		ids = append(ids, uuidOf(id))
		b, ok := s.cache.get(id)
		if !ok {
			haves = append(haves, nil)
			continue
		}
		if cached == nil {
			cached = make(map[wire.ID]cachedBlock, len(pending))
		}
		cached[id] = b
		haves = append(haves, b.etag[:])
	}
	for attempt := 0; ; attempt++ {
		l := s.layer()
		moved, err := s.readRows(ctx, l, ids, haves, cached, pending)
		if err != nil || !moved {
			return err
		}
		if attempt >= maxSideAttempts {
			return errSidesMoving
		}
	}
}

// readRows runs l's grouped read. moved reports that a seal switched
// sides, seen on the first row, before any call was finished.
func (s *Store) readRows(ctx context.Context, l *layerSQL, ids []pgtype.UUID, haves [][]byte, cached map[wire.ID]cachedBlock, pending map[wire.ID][]*readCall) (moved bool, err error) {
	rows, err := s.pool.Query(ctx, l.readMany, ids, haves)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	first := true
	for rows.Next() {
		// DriverBytes point into pgx's read buffer, valid until the next
		// row: finish copies the data into the caller's buffer.
		var idV, sideV, etag, data pgtype.DriverBytes
		var live bool
		if err := rows.Scan(&idV, &sideV, &live, &etag, &data); err != nil {
			return false, err
		}
		if first {
			first = false
			sd, err := sideOf(sideV)
			if err != nil {
				return false, err
			}
			if sd != l.side {
				// The layers' order was read wrong for every row.
				s.side.set(sd)
				return true, nil
			}
		}
		var id wire.ID
		if len(idV) != len(id) {
			return false, fmt.Errorf("a read returned a %d-byte id", len(idV))
		}
		copy(id[:], idV)
		cs, ok := pending[id]
		if !ok {
			return false, errors.New("a read returned a block it was not asked for")
		}
		delete(pending, id)
		var e wire.ETag
		var rerr error
		stable := false
		hit, isCached := cached[id]
		switch {
		case !live:
			rerr = blobstore.ErrNotFound
			s.cache.remove(id)
		case len(etag) != len(e):
			rerr = fmt.Errorf("postgres: a block has a lease but a malformed or missing row (%d-byte ETag)", len(etag))
		case data == nil && isCached && wire.ETag(etag) == hit.etag:
			// Unchanged since it was cached: the statement left its
			// data unread.
			e, data, stable = hit.etag, hit.data, true
			s.cache.hits.Add(1)
		case data == nil:
			rerr = fmt.Errorf("postgres: a block has a lease but no data row")
		default:
			copy(e[:], etag)
			if s.cache != nil {
				data, stable = s.cache.add(id, e, data).data, true
			}
		}
		for _, c := range cs {
			c.finish(data, stable, e, rerr)
		}
	}
	if err := rows.Err(); err != nil {
		return false, err
	}
	if first {
		return false, errors.New("meta has no hot side")
	}
	return false, nil
}
