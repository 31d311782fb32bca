package httpapi

import (
	"net"

	"golang.org/x/sys/unix"
)

// sendRoom is how many bytes c's send buffer surely takes without
// waiting: its size less the bytes queued in it (sent and not yet
// acknowledged, or unsent), both scaled by lendMargin for the kernel's
// bookkeeping. 0 or less on any error.
func sendRoom(c *net.TCPConn) int {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	room := 0
	_ = rc.Control(func(fd uintptr) {
		size, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
		if err != nil {
			return
		}
		queued, err := unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
		if err != nil {
			return
		}
		room = size/lendMargin - queued
	})
	return room
}
