package uring

import "golang.org/x/sys/unix"

// Prep helpers. Each one overwrites the whole SQE (slots are reused, so a
// field left over from an earlier request must never leak into this one);
// set UserData, Flags (SQEFixedFile, links) and OpFlags (RWF_*) afterwards.
//
// Every buffer, iovec array, and buffer an iovec points to must stay valid
// and unmoved until the request's CQE is reaped: keep them in long-lived
// heap objects (a channel's task pool) or in memory mapped outside the Go
// heap. The helpers make their arguments escape, so the compiler never puts
// them on a goroutine stack.

// PrepNop prepares a request that does nothing and completes with res 0.
func (s *SQE) PrepNop() {
	*s = SQE{Opcode: OpNop}
}

// PrepRW fills the common read/write layout: fd, addr, len, off. It is the
// escape hatch for opcodes without a helper and for addresses that are not
// Go slices (guest memory mapped elsewhere); the caller vouches for addr.
func (s *SQE) PrepRW(op uint8, fd int32, addr uint64, n uint32, off uint64) {
	*s = SQE{Opcode: op, Fd: fd, Addr: addr, Len: n, Off: off}
}

// PrepReadv reads into the buffers described by iovs at byte offset off
// (IORING_OP_READV, preadv2). Res is the number of bytes read.
func (s *SQE) PrepReadv(fd int32, iovs []unix.Iovec, off uint64) {
	*s = SQE{Opcode: OpReadv, Fd: fd, Addr: iovecsAddr(iovs), Len: uint32(len(iovs)), Off: off}
}

// PrepWritev writes the buffers described by iovs at byte offset off
// (IORING_OP_WRITEV, pwritev2). Set OpFlags = unix.RWF_DSYNC afterwards for
// a forced-unit-access write.
func (s *SQE) PrepWritev(fd int32, iovs []unix.Iovec, off uint64) {
	*s = SQE{Opcode: OpWritev, Fd: fd, Addr: iovecsAddr(iovs), Len: uint32(len(iovs)), Off: off}
}

// PrepRead reads into buf at byte offset off (IORING_OP_READ).
func (s *SQE) PrepRead(fd int32, buf []byte, off uint64) {
	*s = SQE{Opcode: OpRead, Fd: fd, Addr: bytesAddr(buf), Len: uint32(len(buf)), Off: off}
}

// PrepWrite writes buf at byte offset off (IORING_OP_WRITE).
func (s *SQE) PrepWrite(fd int32, buf []byte, off uint64) {
	*s = SQE{Opcode: OpWrite, Fd: fd, Addr: bytesAddr(buf), Len: uint32(len(buf)), Off: off}
}

// PrepReadFixed reads into buf, which must lie inside registered buffer
// bufIndex (IORING_OP_READ_FIXED).
func (s *SQE) PrepReadFixed(fd int32, buf []byte, off uint64, bufIndex uint16) {
	*s = SQE{Opcode: OpReadFixed, Fd: fd, Addr: bytesAddr(buf), Len: uint32(len(buf)), Off: off, BufIndex: bufIndex}
}

// PrepWriteFixed writes buf, which must lie inside registered buffer
// bufIndex (IORING_OP_WRITE_FIXED).
func (s *SQE) PrepWriteFixed(fd int32, buf []byte, off uint64, bufIndex uint16) {
	*s = SQE{Opcode: OpWriteFixed, Fd: fd, Addr: bytesAddr(buf), Len: uint32(len(buf)), Off: off, BufIndex: bufIndex}
}

// PrepFsync flushes fd (IORING_OP_FSYNC); flags FsyncDatasync gives
// fdatasync semantics, 0 a full fsync.
func (s *SQE) PrepFsync(fd int32, flags uint32) {
	*s = SQE{Opcode: OpFsync, Fd: fd, OpFlags: flags}
}

// PrepFallocate calls fallocate(fd, mode, off, lenBytes)
// (IORING_OP_FALLOCATE). Modes come from x/sys/unix:
// FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE deallocates (unmap; reads then
// return zeros), FALLOC_FL_ZERO_RANGE|FALLOC_FL_KEEP_SIZE zeroes (write
// zeroes), 0 allocates. The kernel takes the length in the addr field and
// the mode in the len field.
func (s *SQE) PrepFallocate(fd int32, mode uint32, off, lenBytes uint64) {
	*s = SQE{Opcode: OpFallocate, Fd: fd, Off: off, Addr: lenBytes, Len: mode}
}
