package httpapi

import (
	"context"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/blindstore/blindstore/wire"
)

// A client that asks for blocks and reads none must not hold the store's
// read transaction while its answers wait: the embedded store lends its
// pages only while the connection's send buffer can take a whole block.
// Otherwise every commit that grows the file would wait for the client,
// up to the write timeout.
func TestStalledReaderHoldsNoReadTransaction(t *testing.T) {
	testStalledReader(t, func(c *envConfig) { c.blockSize = wire.DefaultBlockSize })
}

func testStalledReader(t *testing.T, adjust func(*envConfig)) {
	e := newEnv(t, adjust)
	blk := e.newBlock()
	e.mustPut(blk)

	// A small receive window, so that the server's buffer fills soon.
	c := dialSmallWindow(t, e.addr)
	defer c.Close()
	req := "GET /v1/blocks/" + blk.id + " HTTP/1.1\r\nHost: x\r\n\r\n"
	if _, err := c.Write([]byte(strings.Repeat(req, 400))); err != nil {
		t.Fatal(err)
	}
	// Let the server write into the buffers until they are full.
	time.Sleep(500 * time.Millisecond)

	// Growing the file remaps it, which waits for every read
	// transaction: these puts finish only if the stalled client holds
	// none. e.hc gives up after 10 s; the server's write timeout is 60 s.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 64 {
			b := e.newBlock()
			if r := e.put(b); r.status != 201 {
				t.Errorf("put: status %d", r.status)
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("writes waited for a client that reads nothing")
	}
}

func TestRoomFor(t *testing.T) {
	if room := roomFor(context.Background(), 1); room {
		t.Error("room reported without a connection")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	ctx := withConn(context.Background(), server)
	if room := roomFor(ctx, 4096); !room {
		t.Fatal("no room on an idle connection")
	}
	// Fill the buffers: the client reads nothing.
	buf := make([]byte, 1<<20)
	for {
		_ = server.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := server.Write(buf); err != nil {
			break
		}
	}
	if room := roomFor(ctx, wire.DefaultBlockSize); room {
		t.Error("room reported on a connection whose client reads nothing")
	}
}

// dialSmallWindow connects to addr with a 4 KiB receive buffer, so that
// the server's answers wait in its send buffer almost at once.
func dialSmallWindow(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
