//go:build linux

package uring

// Every use of unsafe in the package lives here: the three raw system calls,
// the views of the shared rings, and the conversion of Go buffers to the
// addresses an SQE carries.

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Compile-time checks that the Go structs match the kernel's sizes.
var (
	_ [64]byte  = [unsafe.Sizeof(SQE{})]byte{}
	_ [16]byte  = [unsafe.Sizeof(CQE{})]byte{}
	_ [120]byte = [unsafe.Sizeof(params{})]byte{}
	_ [16]byte  = [unsafe.Sizeof(filesUpdate{})]byte{}
	_ [24]byte  = [unsafe.Sizeof(geteventsArg{})]byte{}
	_ [16]byte  = [unsafe.Sizeof(unix.Iovec{})]byte{}
)

func sysSetup(entries uint32, p *params) (int, unix.Errno) {
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(p)), 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), 0
}

// sysEnter calls io_uring_enter(2). A call that may sleep (minComplete > 0)
// goes through the scheduler-aware Syscall6 so the Go runtime can run other
// goroutines meanwhile; one that cannot sleep uses RawSyscall6, which is
// cheaper and is what a reactor's poll loop issues.
func sysEnter(fd int, toSubmit, minComplete, flags uint32) (int, unix.Errno) {
	var n uintptr
	var errno unix.Errno
	if minComplete > 0 {
		n, _, errno = unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(fd), uintptr(toSubmit), uintptr(minComplete), uintptr(flags), 0, 0)
	} else {
		n, _, errno = unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(fd), uintptr(toSubmit), 0, uintptr(flags), 0, 0)
	}
	if errno != 0 {
		return 0, errno
	}
	return int(n), 0
}

// sysEnterTimeout waits with a timeout through IORING_ENTER_EXT_ARG.
func sysEnterTimeout(fd int, toSubmit, minComplete, flags uint32, ts unix.Timespec) (int, unix.Errno) {
	arg := geteventsArg{ts: uint64(uintptr(unsafe.Pointer(&ts)))}
	n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(fd), uintptr(toSubmit), uintptr(minComplete),
		uintptr(flags), uintptr(unsafe.Pointer(&arg)), unsafe.Sizeof(arg))
	// arg.ts hides &ts from the collector; keep ts alive across the call.
	runtime.KeepAlive(&ts)
	if errno != 0 {
		return 0, errno
	}
	return int(n), 0
}

func sysRegister(fd int, op uint32, arg unsafe.Pointer, nr uint32) (int, unix.Errno) {
	n, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(fd), uintptr(op), uintptr(arg), uintptr(nr), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), 0
}

// registerInt32s passes an int32 array (fds) to io_uring_register.
func registerInt32s(fd int, op uint32, vals []int32) (int, unix.Errno) {
	if len(vals) == 0 {
		return sysRegister(fd, op, nil, 0)
	}
	return sysRegister(fd, op, unsafe.Pointer(&vals[0]), uint32(len(vals)))
}

func registerIovecs(fd int, op uint32, iovs []unix.Iovec) (int, unix.Errno) {
	return sysRegister(fd, op, unsafe.Pointer(&iovs[0]), uint32(len(iovs)))
}

func registerFilesUpdate(fd int, off uint32, fds []int32) (int, unix.Errno) {
	u := filesUpdate{offset: off, fds: uint64(uintptr(unsafe.Pointer(&fds[0])))}
	n, errno := sysRegister(fd, regFilesUpdate, unsafe.Pointer(&u), uint32(len(fds)))
	// u.fds hides the pointer from the collector; keep fds alive across the call.
	runtime.KeepAlive(fds)
	return n, errno
}

func registerProbe(fd int, buf []byte) unix.Errno {
	_, errno := sysRegister(fd, regProbe, unsafe.Pointer(&buf[0]), probeMaxOps)
	return errno
}

// u32At views the little-endian uint32 at off in a mapped ring.
func u32At(mem []byte, off uint32) *uint32 {
	return (*uint32)(unsafe.Pointer(&mem[off]))
}

// u32Slice views n uint32s at off in a mapped ring.
func u32Slice(mem []byte, off, n uint32) []uint32 {
	_ = mem[uintptr(off)+uintptr(n)*4-1] // bounds check once
	return unsafe.Slice((*uint32)(unsafe.Pointer(&mem[off])), n)
}

// cqeSlice views n CQEs at off in the mapped CQ ring.
func cqeSlice(mem []byte, off, n uint32) []CQE {
	_ = mem[uintptr(off)+uintptr(n)*unsafe.Sizeof(CQE{})-1]
	return unsafe.Slice((*CQE)(unsafe.Pointer(&mem[off])), n)
}

// sqeSlice views the mapped SQE array.
func sqeSlice(mem []byte, n uint32) []SQE {
	_ = mem[uintptr(n)*unsafe.Sizeof(SQE{})-1]
	return unsafe.Slice((*SQE)(unsafe.Pointer(&mem[0])), n)
}

// escapeSink and escapeNever make every buffer handed to an SQE escape to
// the heap in the eyes of the compiler's escape analysis (which ignores the
// value of escapeNever). Without this, a caller's local array could live on
// its goroutine stack, which the runtime moves when the stack grows, and the
// kernel would later read or write the old location. The branch is never
// taken; its cost is one load of a global that stays in cache.
var (
	escapeSink  unsafe.Pointer
	escapeNever bool
)

func addrOf(p unsafe.Pointer) uint64 {
	if escapeNever {
		escapeSink = p
	}
	return uint64(uintptr(p))
}

// bytesAddr returns the address of b's first byte (0 for an empty slice).
func bytesAddr(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	return addrOf(unsafe.Pointer(&b[0]))
}

// iovecsAddr returns the address of the first iovec (0 for none).
func iovecsAddr(v []unix.Iovec) uint64 {
	if len(v) == 0 {
		return 0
	}
	return addrOf(unsafe.Pointer(&v[0]))
}
