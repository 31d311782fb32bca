//go:build !linux

package httpapi

// rawWriteSupported: FastReads is a no-op off Linux.
const rawWriteSupported = false

func (c *fastConn) writeOnce(uintptr) bool {
	panic("httpapi: fast path without raw writes")
}
