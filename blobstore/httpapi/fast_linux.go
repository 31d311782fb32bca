package httpapi

import (
	"syscall"
	"unsafe"
)

// rawWriteSupported: fastConn.writeOnce is implemented here.
const rawWriteSupported = true

// writeOnce is the raw write of a fast answer, run by the connection's
// RawConn.Write: one writev(2) of c.iov on the non-blocking socket,
// never waiting, so that the store's read transaction around it never
// waits on the client either. c.wrote is what the socket took, perhaps
// nothing; c.werr a failure other than a full buffer.
func (c *fastConn) writeOnce(fd uintptr) bool {
	var iov [2]syscall.Iovec
	cnt := 0
	for _, b := range c.iov {
		if len(b) == 0 {
			continue
		}
		iov[cnt].Base = unsafe.SliceData(b)
		iov[cnt].SetLen(len(b))
		cnt++
	}
	for {
		n, _, errno := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(cnt))
		switch errno {
		case 0:
			c.wrote = int(n)
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			c.wrote = 0
		default:
			c.werr = errno
		}
		return true
	}
}
