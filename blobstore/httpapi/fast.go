package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/blindstore/blindstore/wire"
)

// The fast path for block reads. Profiles of the peer row (blindbench,
// wrk against nginx) showed a GET through net/http costing about twice
// nginx's CPU: half in the syscalls around the answer (a read, the room
// check's getsockopt and ioctl, a write of the header, more for the
// block), half in net/http's per-request work (its goroutine hand-offs,
// header maps, contexts, deadlines). A plain keep-alive
// `GET /v1/blocks/{id}` of a block that exists needs none of it: the
// listener that FastReads returns answers exactly those requests on the
// connection itself, header and block in one writev from the store's
// pages, and hands the connection to net/http, with the bytes it has
// read, at the first request that is anything else. net/http then
// serves that request and the rest of the connection as always, so
// every answer other than 200 to such a GET (404, 304, 429, 431, HEAD,
// CORS, errors) still comes from the handlers.

// routeBlock is the route pattern of a block, as the metrics name it.
const routeBlock = "/v1/blocks/:id"

// fastBufSize is the buffer a fast connection reads requests into. A
// request that does not fit in one read of it goes to net/http.
const fastBufSize = 4 << 10

// FastReads returns ln for srv.Serve with the fast path for block reads
// in front of h, which must be New's handler; any other handler, a
// store that cannot lend its pages, CORS origins (whose answers vary by
// Origin), a system without the raw write it uses, or ln serving TLS
// (wrap the plain listener, and only without TLS) get ln back as it is.
// connState is the http.Server's ConnState (or nil): the fast path
// reports a connection as new and, when it hands the connection over
// or closes it, as closed, so that a gauge of open connections holds.
func FastReads(ln net.Listener, h http.Handler, connState func(net.Conn, http.ConnState)) net.Listener {
	a, ok := h.(*api)
	if !ok || a.cors != nil || !rawWriteSupported {
		return ln
	}
	// Lend validates the ID before anything else: the zero ID is refused
	// without a read, and a store that lends nothing says so first.
	if lends, _ := a.svc.Lend(context.Background(), wire.ID{}, func([]byte, wire.ETag) error { return nil }); !lends {
		return ln
	}
	if connState == nil {
		connState = func(net.Conn, http.ConnState) {}
	}
	l := &fastListener{
		Listener: ln, a: a, state: connState,
		handoff: make(chan net.Conn), errc: make(chan error), done: make(chan struct{}),
		conns: map[*fastConn]struct{}{},
	}
	go l.acceptLoop()
	return l
}

// fastListener accepts connections for the fast path and passes to
// net/http's Serve those that the fast path hands over.
type fastListener struct {
	net.Listener
	a       *api
	state   func(net.Conn, http.ConnState)
	handoff chan net.Conn
	errc    chan error
	done    chan struct{}
	once    sync.Once
	closed  atomic.Bool
	rests   sync.Pool // *[]byte: see getRest
	// answered counts the requests the fast path answered (tests).
	answered atomic.Int64

	mu    sync.Mutex
	conns map[*fastConn]struct{}
	wg    sync.WaitGroup
}

func (l *fastListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.handoff:
		return c, nil
	case err := <-l.errc:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting and closes the fast connections that wait for
// a request; one that is answering closes once its answer is out.
// Shutdown calls it, then waits for the connections it was handed.
func (l *fastListener) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() {
		l.closed.Store(true)
		close(l.done)
		l.mu.Lock()
		for c := range l.conns {
			if c.state.CompareAndSwap(fastIdle, fastClosing) {
				// Wakes the read it waits in.
				_ = c.conn.SetReadDeadline(time.Unix(1, 0))
			}
		}
		l.mu.Unlock()
	})
	return err
}

// wait returns once every fast connection has closed or been handed
// over (tests).
func (l *fastListener) wait() { l.wg.Wait() }

func (l *fastListener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			// Unbuffered: Serve takes the error at its next Accept, and
			// backs off from temporary ones before it asks again.
			select {
			case l.errc <- err:
			case <-l.done:
				return
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		tc := tcpConnOf(c)
		if tc == nil {
			l.give(c)
			continue
		}
		rc, err := tc.SyscallConn()
		if err != nil {
			l.give(c)
			continue
		}
		fc := &fastConn{l: l, conn: c, tc: tc, rc: rc}
		fc.write = fc.writeOnce
		l.mu.Lock()
		if l.closed.Load() {
			l.mu.Unlock()
			_ = c.Close()
			continue
		}
		l.conns[fc] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		l.state(c, http.StateNew)
		go fc.serve()
	}
}

// getRest returns an empty buffer that holds a block's answer; putRest
// takes it back. Under load many answers wait for their clients at
// once, and a fresh block for each is garbage that grows the heap.
func (l *fastListener) getRest() []byte {
	if b, ok := l.rests.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, l.a.svc.BlockSize()+fastBufSize)
}

func (l *fastListener) putRest(b []byte) {
	if cap(b) >= l.a.svc.BlockSize()+fastBufSize {
		l.rests.Put(&b)
	}
}

// give passes c to Serve, or closes it once the listener is closed.
func (l *fastListener) give(c net.Conn) {
	select {
	case l.handoff <- c:
	case <-l.done:
		_ = c.Close()
	}
}

// tcpConnOf finds the TCP connection under c's wrappers (such as
// blindstored's connection limiter), nil if there is none.
func tcpConnOf(c net.Conn) *net.TCPConn {
	for range 4 {
		if tc, ok := c.(*net.TCPConn); ok {
			return tc
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		c = u.NetConn()
	}
	return nil
}

// States of a fast connection, for Close.
const (
	fastBusy int32 = iota
	fastIdle
	fastClosing
)

// fastConn is one connection on the fast path.
type fastConn struct {
	l     *fastListener
	conn  net.Conn // as accepted: closing it frees its slot
	tc    *net.TCPConn
	rc    syscall.RawConn
	state atomic.Int32

	buf   [fastBufSize]byte
	hdr   []byte
	rest  []byte // what the socket did not take at once
	first bool   // the connection's first request is still to come

	// The raw write's arguments and results; write is writeOnce as a
	// method value made once, so that a request allocates nothing.
	iov   [2][]byte
	wrote int
	werr  error
	write func(fd uintptr) bool
}

func (c *fastConn) serve() {
	l := c.l
	handedOver := false
	defer func() {
		l.mu.Lock()
		delete(l.conns, c)
		l.mu.Unlock()
		if !handedOver {
			_ = c.conn.Close()
			l.state(c.conn, http.StateClosed)
		}
		l.wg.Done()
	}()
	c.first = true
	var pending []byte
	for {
		if len(pending) == 0 {
			n, ok := c.read()
			if !ok {
				return
			}
			pending = c.buf[:n]
		}
		n, res := c.answer(pending)
		if res == fastBroken {
			return
		}
		if res == fastHandOver {
			// Everything from this request on is net/http's. The bytes
			// read go with the connection; the copy frees c.buf.
			l.state(c.conn, http.StateClosed)
			handedOver = true
			l.give(&replayConn{Conn: c.conn, pending: bytes.Clone(pending)})
			return
		}
		pending = pending[n:]
		if l.closed.Load() {
			return
		}
	}
}

// read waits for the next request's first bytes: at most
// ReadHeaderTimeout for a new connection's first, IdleTimeout after an
// answer, as net/http does. false: the connection is done (timeout,
// closed by either side, or the listener closing).
func (c *fastConn) read() (int, bool) {
	opt := &c.l.a.opt
	d := opt.IdleTimeout
	if c.first {
		c.first = false
		d = opt.ReadHeaderTimeout
	}
	if err := c.conn.SetReadDeadline(time.Now().Add(d)); err != nil {
		return 0, false
	}
	c.state.Store(fastIdle)
	if c.l.closed.Load() {
		return 0, false
	}
	n, err := c.conn.Read(c.buf[:])
	if !c.state.CompareAndSwap(fastIdle, fastBusy) {
		return 0, false
	}
	if n == 0 || err != nil {
		// With bytes and an error (a reset after a request), the
		// request is not worth answering on a connection that failed.
		return 0, false
	}
	return n, true
}

// Outcomes of fastConn.answer.
const (
	fastAnswered = iota // the answer is out
	fastHandOver        // nothing written: net/http must answer
	fastBroken          // a write failed: the connection must close
)

// answer answers the request at the start of b if it is one for the fast
// path, and reports how many bytes of b it took.
func (c *fastConn) answer(b []byte) (int, int) {
	a := c.l.a
	id, n, ok := parseFastGet(b, a.opt.MaxHeaderBytes)
	if !ok {
		return 0, fastHandOver
	}
	// The access log at debug level, and a probe limiter that may be
	// blocking someone, are net/http's path.
	if q, isQuiet := a.probe.(quietLimiter); !isQuiet || !q.quiet() {
		return 0, fastHandOver
	}
	if a.log.Enabled(context.Background(), slog.LevelDebug) {
		return 0, fastHandOver
	}
	m := a.opt.Metrics
	var start time.Time
	if m != nil {
		start = time.Now()
		m.inFlight.Inc()
	}
	sent, failed := false, false
	_, _ = a.svc.Lend(context.Background(), id, func(data []byte, etag wire.ETag) error {
		c.hdr = appendBlockHeader(c.hdr[:0], etag, len(data))
		c.iov = [2][]byte{c.hdr, data}
		c.wrote, c.werr = 0, nil
		if err := c.rc.Write(c.write); err != nil || c.werr != nil {
			failed = true
			return nil
		}
		sent = true
		// The rest waits for the client outside the read transaction,
		// which must never wait on one (room.go).
		if w := c.wrote; w < len(c.hdr)+len(data) {
			c.rest = c.l.getRest()
			if w < len(c.hdr) {
				c.rest = append(append(c.rest, c.hdr[w:]...), data...)
			} else {
				c.rest = append(c.rest, data[w-len(c.hdr):]...)
			}
		}
		return nil
	})
	c.iov = [2][]byte{}
	if !sent && !failed {
		// Not found, an invalid ID, a store error: the handler answers
		// (and counts a failed probe), as for any other request.
		if m != nil {
			m.inFlight.Dec()
		}
		return 0, fastHandOver
	}
	if !failed && len(c.rest) > 0 {
		opt := &a.opt
		failed = c.conn.SetWriteDeadline(time.Now().Add(opt.WriteTimeout)) != nil
		if !failed {
			_, werr := c.conn.Write(c.rest)
			// The raw write checks deadlines too: a past one would
			// fail the next answer.
			failed = werr != nil || c.conn.SetWriteDeadline(time.Time{}) != nil
		}
		// Only slow readers need it: a block per idle connection would
		// be a block per connection.
		c.l.putRest(c.rest)
		c.rest = nil
	}
	if m != nil {
		m.inFlight.Dec()
		m.seriesOf(seriesKey{http.MethodGet, routeBlock, http.StatusOK}).observe(time.Since(start))
	}
	if failed {
		// Part of an answer may be out: the connection cannot be reused,
		// and closing it is what net/http does when a write fails.
		return n, fastBroken
	}
	c.l.answered.Add(1)
	return n, fastAnswered
}

// appendBlockHeader appends the status line and header of a block's 200
// answer, byte for byte what net/http writes for getBlock's (the
// handler's headers sorted, then Date).
func appendBlockHeader(b []byte, etag wire.ETag, n int) []byte {
	b = append(b, "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, "\r\nContent-Type: "+wire.MediaBlock+"\r\nEtag: \""...)
	b = base64.RawURLEncoding.AppendEncode(b, etag[:])
	b = append(b, "\"\r\nDate: "...)
	b = appendDate(b)
	return append(b, "\r\n\r\n"...)
}

// httpDate caches the Date header's value for the current second.
type httpDate struct {
	sec int64
	val []byte
}

var cachedDate atomic.Pointer[httpDate]

func appendDate(b []byte) []byte {
	now := time.Now()
	d := cachedDate.Load()
	if d == nil || d.sec != now.Unix() {
		d = &httpDate{sec: now.Unix(), val: now.UTC().AppendFormat(nil, http.TimeFormat)}
		cachedDate.Store(d)
	}
	return append(b, d.val...)
}

// replayConn is a connection handed to net/http: its reads return the
// bytes the fast path read first.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// NetConn names the connection below, for roomFor.
func (c *replayConn) NetConn() net.Conn { return c.Conn }

// ReadFrom keeps sendfile(2) for net/http's answers from a file.
func (c *replayConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{c.Conn}, r)
}

// parseFastGet reads the request at the start of b if it is a request
// the fast path answers: `GET /v1/blocks/{id} HTTP/1.1`, complete in b
// within max bytes, with exactly one Host and no header but Host,
// User-Agent, Accept, Accept-Encoding and `Connection: keep-alive`, each
// a well-formed line of printable ASCII. It returns the ID and the
// request's length. Anything else, including what net/http would refuse
// and what it would read differently, is false: net/http answers it.
func parseFastGet(b []byte, max int) (wire.ID, int, bool) {
	const prefix = "GET " + wire.PathBlock
	const idLen = 36
	const proto = " HTTP/1.1\r\n"
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 || end+4 > max {
		return wire.ID{}, 0, false
	}
	if len(b) < len(prefix)+idLen+len(proto) || string(b[:len(prefix)]) != prefix ||
		string(b[len(prefix)+idLen:len(prefix)+idLen+len(proto)]) != proto {
		return wire.ID{}, 0, false
	}
	raw := b[len(prefix) : len(prefix)+idLen]
	for _, ch := range raw {
		if !(ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'f' || ch >= 'A' && ch <= 'F' || ch == '-') {
			return wire.ID{}, 0, false
		}
	}
	id, err := wire.ParseID(string(raw))
	if err != nil {
		return wire.ID{}, 0, false
	}
	hosts := 0
	// Each header line, CRLF excluded; the block ends at end+2.
	for rest := b[len(prefix)+idLen+len(proto) : end+2]; len(rest) > 0; {
		i := bytes.Index(rest, []byte("\r\n"))
		line := rest[:i]
		rest = rest[i+2:]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return wire.ID{}, 0, false
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		for _, ch := range line[colon+1:] {
			if (ch < 0x20 && ch != '\t') || ch > 0x7e {
				return wire.ID{}, 0, false
			}
		}
		switch {
		case asciiEqualFold(name, "Host"):
			hosts++
			for _, ch := range value {
				if !(ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch == '.' || ch == '-' || ch == ':' || ch == '[' || ch == ']') {
					return wire.ID{}, 0, false
				}
			}
		case asciiEqualFold(name, "Connection"):
			if !asciiEqualFold(value, "keep-alive") {
				return wire.ID{}, 0, false
			}
		case asciiEqualFold(name, "User-Agent"), asciiEqualFold(name, "Accept"), asciiEqualFold(name, "Accept-Encoding"):
		default:
			return wire.ID{}, 0, false
		}
	}
	if hosts != 1 {
		return wire.ID{}, 0, false
	}
	return id, end + 4, true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// asciiEqualFold compares b and s, ASCII letters in either case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
