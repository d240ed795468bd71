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
// The fd is non-blocking, so the call is raw: no scheduler hand-off, which
// costs a quarter of a microsecond per call on the reactor path.
func readv(fd int, iov []unix.Iovec) (int, unix.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_READV, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(iov))), uintptr(len(iov)))
	return int(n), e
}

// writev is writev(2), errno as a value.
func writev(fd int, iov []unix.Iovec) (int, unix.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(iov))), uintptr(len(iov)))
	return int(n), e
}

// acceptBuf is a listener's preallocated peer address for accept4(2):
// unix.Accept4 allocates one on every call, EAGAIN included, which the
// acceptor poller would pay every period.
type acceptBuf struct {
	rsa unix.RawSockaddrAny
	n   uint32
}

// accept4 accepts one connection; the peer address stays in b until the
// next call.
func accept4(fd int, b *acceptBuf, flags int) (int, unix.Errno) {
	b.n = unix.SizeofSockaddrAny
	nfd, _, e := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(&b.rsa)), uintptr(unsafe.Pointer(&b.n)), uintptr(flags), 0, 0)
	return int(nfd), e
}

// peer decodes the address of the last accept4: IP bytes and port.
func (b *acceptBuf) peer() (ip []byte, port int, ok bool) {
	switch b.rsa.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&b.rsa))
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return append([]byte(nil), sa.Addr[:]...), int(p[0])<<8 | int(p[1]), true
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&b.rsa))
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return append([]byte(nil), sa.Addr[:]...), int(p[0])<<8 | int(p[1]), true
	}
	return nil, 0, false
}

// epollWaitNow is epoll_wait with a zero timeout: it never blocks, so it
// is issued as a raw syscall, without the scheduler hand-off that
// unix.EpollWait pays on every reactor iteration. Errors count as no events.
func epollWaitNow(epfd int, evs []unix.EpollEvent) int {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(unsafe.SliceData(evs))), uintptr(len(evs)), 0, 0, 0)
	if e != 0 {
		return 0
	}
	return int(n)
}
