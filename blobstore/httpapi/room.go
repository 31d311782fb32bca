package httpapi

import (
	"context"
	"net"
)

// connKey is the context key under which NewServer's ConnContext keeps a
// request's connection, for roomFor.
type connKey struct{}

func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// lendMargin is the factor by which the kernel's charge for queued bytes
// may exceed the bytes: it charges a send buffer for each packet's
// bookkeeping too. A filled buffer measured 4.03 MB queued of a 4.19 MB
// buffer, which a margin of 1 would have taken for room for a block.
const lendMargin = 2

// roomFor reports whether the connection of ctx can take n more bytes
// into its kernel send buffer now, so that writing them returns without
// waiting on the client. A store lends its pages only inside a read
// transaction, which must never wait on a client: a slow one would hold
// back every commit that grows the file, and a seal. false when unsure
// (no connection known, not TCP, not Linux): the caller copies instead.
func roomFor(ctx context.Context, n int) bool {
	c, _ := ctx.Value(connKey{}).(net.Conn)
	if c == nil {
		return false
	}
	// TLS, and wrappers such as blindstored's connection limiter, name
	// the connection below them this way; TLS records add little.
	tc := tcpConnOf(c)
	return tc != nil && sendRoom(tc) >= n
}
