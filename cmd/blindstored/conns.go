package main

import (
	"io"
	"net"
	"sync"

	"github.com/blindstore/blindstore/blobstore/httpapi"
)

// DefaultMaxConnections bounds the API's open connections. Each costs
// the server about 15 KiB idle and, while it sends headers, about twice
// the hard header cap: the bound is what keeps memory bounded when one
// client opens connections by the thousand.
const DefaultMaxConnections = 1024

// hardHeaderCap is the http.Server's own header cap for a soft cap of
// soft bytes (--max-header-bytes): headers between the two get the API's
// 431 problem+json, beyond it Go's plain 431. A connection sending a long
// header line makes the server hold about four times what it sent so far
// (the line grows by doubling), so httpapi's default hard cap (1 MiB)
// would let --max-connections connections pin gigabytes; twice the soft
// cap keeps it to about 128 KiB a connection by default, 128 MiB at the
// default connection cap.
func hardHeaderCap(soft int) int {
	return min(2*max(soft, httpapi.DefaultMaxHeaderBytes), httpapi.HardMaxHeaderBytes)
}

// limitListener accepts at most n connections at a time. Beyond that,
// Accept waits for one to close, and new connections wait in the
// kernel's backlog: a client is kept waiting, never refused, and
// attackers who fill every slot hold one only until the read timeouts
// close it.
type limitListener struct {
	net.Listener
	sem       chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
}

func newLimitListener(l net.Listener, n int) net.Listener {
	return &limitListener{Listener: l, sem: make(chan struct{}, n), closed: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.closed:
		// Shutdown closed the listener while every slot was taken.
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// limitConn gives its slot back once, on the first Close.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// NetConn returns the accepted connection, so that the API can ask the
// kernel about its send buffer (httpapi's roomFor).
func (c *limitConn) NetConn() net.Conn { return c.Conn }

// ReadFrom lets net/http send a file with sendfile(2), as it does on
// the bare connection.
func (c *limitConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}
