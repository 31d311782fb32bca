package postgres

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// A 64 KiB block reaches the store in the 8 KiB pieces that PostgreSQL
// (before 17) sends a long message in, and a reader that is woken for
// each piece pays a wake-up, a read and a wait per piece: in a GET
// profile, more time than PostgreSQL spent finding the block. pgx
// reads a message longer than its 8 KiB buffer into a buffer of exactly
// the message's length, so a read asking for more than that is a read of
// bytes certainly on their way. When such a read comes back short, the
// next one, of the rest, sets SO_RCVLOWAT to the rest's length, and the
// kernel wakes the reader once it is all there. (Setting the mark costs
// a system call, so a read that finds the whole message waiting does not
// set it.) Any other read lowers the mark to one byte again first, so a
// read is never held for bytes that may not come.

// chunkBuf is pgx's smallest read buffer (pgproto3's chunkReader): a
// read into more than this is of the rest of one message.
const chunkBuf = 8192

// lowatDial is a pgconn.DialFunc whose TCP connections set their
// receive low-water mark as above.
func lowatDial(dial pgconn.DialFunc) pgconn.DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc, ok := c.(*net.TCPConn)
		if !ok {
			return c, nil
		}
		raw, err := tc.SyscallConn()
		if err != nil {
			return c, nil
		}
		lc := &lowatConn{Conn: c, raw: raw}
		lc.mark.Store(1)
		return lc, nil
	}
}

type lowatConn struct {
	net.Conn
	raw   syscall.RawConn
	mark  atomic.Int64 // the mark set, 0 when unknown
	short atomic.Bool  // the last read was of the rest of a message and came back short
}

func (c *lowatConn) Read(p []byte) (int, error) {
	want := 1
	if len(p) > chunkBuf && c.short.Load() {
		want = len(p)
	}
	if c.mark.Load() != int64(want) {
		if err := c.setMark(want); err != nil {
			c.mark.Store(0)
			if want == 1 {
				// A mark left high could hold this read for bytes that
				// never come.
				return 0, fmt.Errorf("postgres: lower the socket's receive mark: %w", err)
			}
			if err := c.setMark(1); err != nil {
				return 0, fmt.Errorf("postgres: lower the socket's receive mark: %w", err)
			}
		}
	}
	n, err := c.Conn.Read(p)
	c.short.Store(len(p) > chunkBuf && n < len(p))
	return n, err
}

func (c *lowatConn) setMark(n int) error {
	var serr error
	err := c.raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, n)
	})
	if err == nil {
		err = serr
	}
	if err == nil {
		c.mark.Store(int64(n))
	}
	return err
}
