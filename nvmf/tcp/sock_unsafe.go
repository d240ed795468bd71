//go:build linux

package tcp

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// setIov points v at b, which must not be empty.
func setIov(v *unix.Iovec, b []byte) {
	v.Base = unsafe.SliceData(b)
	v.SetLen(len(b))
}

// readv is readv(2) without the allocation-prone wrappers: the errno comes
// back as a value (0 on success).
func readv(fd int, iov []unix.Iovec) (int, unix.Errno) {
	n, _, e := unix.Syscall(unix.SYS_READV, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(iov))), uintptr(len(iov)))
	return int(n), e
}

// writev is writev(2), errno as a value.
func writev(fd int, iov []unix.Iovec) (int, unix.Errno) {
	n, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(iov))), uintptr(len(iov)))
	return int(n), e
}
