//go:build linux

package initiator

// Every use of unsafe in the package lives here: the two vectored socket
// calls of the data path. unix.Readv and unix.Writev build a fresh iovec
// slice per call; these take the QPair's own iovec arrays instead, so the
// hot path allocates nothing.

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// readv reads from the non-blocking socket fd into iov and returns the
// byte count or the errno (EAGAIN when nothing is buffered).
// The fd is non-blocking, so the call is raw: no scheduler hand-off, which
// costs a quarter of a microsecond per call on the reactor path.
func readv(fd int, iov []unix.Iovec) (int, unix.Errno) {
	if len(iov) == 0 {
		return 0, 0
	}
	n, _, e := unix.RawSyscall(unix.SYS_READV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	return int(n), e
}

// writev writes iov to the non-blocking socket fd and returns the byte
// count or the errno (EAGAIN when the send buffer is full).
func writev(fd int, iov []unix.Iovec) (int, unix.Errno) {
	if len(iov) == 0 {
		return 0, 0
	}
	n, _, e := unix.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	return int(n), e
}
