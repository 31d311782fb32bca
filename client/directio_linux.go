//go:build linux

package client

import (
	"os"

	"golang.org/x/sys/unix"
)

// directAlign returns the alignment O_DIRECT needs of f's offsets and
// lengths, and whether f may take direct writes into stageAlign-aligned
// memory at all. statx reports it since Linux 6.1 (STATX_DIOALIGN);
// without the report, 4096 is tried (the page size, which covers every
// common logical block size) and a refusal falls back to buffered writes.
func directAlign(f *os.File) (int, bool) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, false
	}
	var st unix.Statx_t
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.Statx(int(fd), "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &st)
	}); err != nil {
		return 0, false
	}
	if serr != nil || st.Mask&unix.STATX_DIOALIGN == 0 {
		return 4096, true
	}
	// Both zero: the file system does no direct I/O on this file.
	if st.Dio_mem_align == 0 || st.Dio_offset_align == 0 || st.Dio_mem_align > stageAlign {
		return 0, false
	}
	return int(st.Dio_offset_align), true
}

// setDirect sets or clears O_DIRECT on f. The kernel refuses to set it
// (EINVAL) where the file system has no direct I/O.
func setDirect(f *os.File, on bool) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
		if err != nil {
			ferr = err
			return
		}
		if on {
			fl |= unix.O_DIRECT
		} else {
			fl &^= unix.O_DIRECT
		}
		_, ferr = unix.FcntlInt(fd, unix.F_SETFL, fl)
	}); err != nil {
		return err
	}
	if ferr != nil {
		return &os.PathError{Op: "fcntl", Path: f.Name(), Err: ferr}
	}
	return nil
}
