package uring

// This file holds the kernel ABI of io_uring (include/uapi/linux/io_uring.h)
// as Go constants and layout-compatible structs. Only the parts this package
// uses are spelled out.

// Setup flags, passed in Options.Flags / Options.OptionalFlags
// (io_uring_params.flags, IORING_SETUP_*).
const (
	// SetupIOPoll busy-polls for completions instead of taking interrupts
	// (O_DIRECT on polled block queues only).
	SetupIOPoll uint32 = 1 << 0
	// SetupSQPoll starts a kernel thread that consumes the SQ.
	SetupSQPoll uint32 = 1 << 1
	// SetupSQAff pins the SQPOLL thread to Options.SQThreadCPU.
	SetupSQAff uint32 = 1 << 2
	// SetupCQSize sizes the CQ from Options.CQEntries (set by New itself).
	SetupCQSize uint32 = 1 << 3
	// SetupClamp clamps oversized entry counts instead of failing.
	SetupClamp uint32 = 1 << 4
	// SetupSubmitAll keeps submitting the batch after an SQE fails to prep.
	SetupSubmitAll uint32 = 1 << 7
	// SetupCoopTaskrun stops the kernel from interrupting the submitter with
	// an IPI to post completions; it posts them on the next kernel entry.
	// New adds SetupTaskrunFlag with it so Submit knows when to enter.
	SetupCoopTaskrun uint32 = 1 << 8
	// SetupTaskrunFlag makes the kernel raise SQ flag IORING_SQ_TASKRUN when
	// completions wait for the submitter to enter the kernel.
	SetupTaskrunFlag uint32 = 1 << 9
	// SetupSQE128 (128-byte SQEs) is not supported by this package.
	SetupSQE128 uint32 = 1 << 10
	// SetupCQE32 (32-byte CQEs) is not supported by this package.
	SetupCQE32 uint32 = 1 << 11
	// SetupSingleIssuer promises that one task (OS thread) submits; it must
	// be the thread that creates the ring (Linux 6.0).
	SetupSingleIssuer uint32 = 1 << 12
	// SetupDeferTaskrun defers completion work until the submitter calls
	// io_uring_enter with GETEVENTS (Linux 6.1; needs SetupSingleIssuer).
	// New adds SetupTaskrunFlag with it so Submit knows when to enter.
	SetupDeferTaskrun uint32 = 1 << 13
	// SetupNoSQArray drops the SQ index array (Linux 6.6).
	SetupNoSQArray uint32 = 1 << 16
)

// ReactorFlags is the flag set recommended for a ring owned by one reactor:
// pass it as Options.OptionalFlags so that older kernels fall back.
const ReactorFlags = SetupSingleIssuer | SetupDeferTaskrun | SetupCoopTaskrun | SetupTaskrunFlag

// Feature bits reported by the kernel (io_uring_params.features,
// IORING_FEAT_*), see Ring.Features.
const (
	FeatSingleMmap     uint32 = 1 << 0
	FeatNoDrop         uint32 = 1 << 1
	FeatSubmitStable   uint32 = 1 << 2
	FeatRWCurPos       uint32 = 1 << 3
	FeatCurPersonality uint32 = 1 << 4
	FeatFastPoll       uint32 = 1 << 5
	FeatPoll32Bits     uint32 = 1 << 6
	FeatSQPollNonfixed uint32 = 1 << 7
	FeatExtArg         uint32 = 1 << 8
	FeatNativeWorkers  uint32 = 1 << 9
	FeatRsrcTags       uint32 = 1 << 10
	FeatCQESkip        uint32 = 1 << 11
	FeatLinkedFile     uint32 = 1 << 12
)

// Opcodes (enum io_uring_op). Only those with a Prep helper are listed;
// any other opcode can be issued with PrepRW or by filling an SQE directly.
const (
	OpNop        uint8 = 0
	OpReadv      uint8 = 1
	OpWritev     uint8 = 2
	OpFsync      uint8 = 3
	OpReadFixed  uint8 = 4
	OpWriteFixed uint8 = 5
	OpFallocate  uint8 = 17
	OpRead       uint8 = 22
	OpWrite      uint8 = 23
)

// SQE flags (SQE.Flags, IOSQE_*).
const (
	// SQEFixedFile: SQE.Fd is an index into the registered file table.
	SQEFixedFile uint8 = 1 << 0
	// SQEIODrain: start only after every earlier SQE has completed.
	SQEIODrain uint8 = 1 << 1
	// SQEIOLink: the next SQE starts after this one completes successfully.
	SQEIOLink uint8 = 1 << 2
	// SQEIOHardlink: like SQEIOLink but the chain survives failures.
	SQEIOHardlink uint8 = 1 << 3
	// SQEAsync: always punt to the kernel's async workers.
	SQEAsync uint8 = 1 << 4
	// SQECQESkipSuccess: post no CQE when the operation succeeds.
	SQECQESkipSuccess uint8 = 1 << 6
)

// FsyncDatasync makes OpFsync behave as fdatasync (IORING_FSYNC_DATASYNC).
const FsyncDatasync uint32 = 1 << 0

// io_uring_enter flags (IORING_ENTER_*).
const (
	enterGetEvents uint32 = 1 << 0
	enterSQWakeup  uint32 = 1 << 1
	enterExtArg    uint32 = 1 << 3
)

// SQ ring flags written by the kernel (IORING_SQ_*).
const (
	sqNeedWakeup uint32 = 1 << 0
	sqCQOverflow uint32 = 1 << 1
	sqTaskrun    uint32 = 1 << 2
)

// CQ ring flags written by the application (IORING_CQ_*).
const cqEventfdDisabled uint32 = 1 << 0

// mmap offsets of the three regions (IORING_OFF_*).
const (
	offSQRing int64 = 0
	offCQRing int64 = 0x8000000
	offSQEs   int64 = 0x10000000
)

// io_uring_register opcodes (IORING_REGISTER_* / IORING_UNREGISTER_*).
const (
	regBuffers       uint32 = 0
	unregBuffers     uint32 = 1
	regFiles         uint32 = 2
	unregFiles       uint32 = 3
	regEventfd       uint32 = 4
	unregEventfd     uint32 = 5
	regFilesUpdate   uint32 = 6
	regEventfdAsync  uint32 = 7
	regProbe         uint32 = 8
	probeOpSupported        = 1 << 0
	probeMaxOps             = 256
)

// SQE is one submission queue entry (struct io_uring_sqe, 64 bytes). The
// field names follow the kernel's first union member; the Prep helpers say
// what each opcode puts where.
type SQE struct {
	Opcode uint8
	Flags  uint8
	IOPrio uint16
	Fd     int32
	// Off is the file offset (or addr2).
	Off uint64
	// Addr is the buffer or iovec-array address (or, for OpFallocate, the
	// length in bytes).
	Addr uint64
	// Len is the buffer length, iovec count, or fallocate mode.
	Len uint32
	// OpFlags is the per-opcode flag word: rw_flags (RWF_*) for reads and
	// writes, fsync_flags for OpFsync.
	OpFlags  uint32
	UserData uint64
	// BufIndex is the registered-buffer index for OpReadFixed/OpWriteFixed.
	BufIndex    uint16
	Personality uint16
	FileIndex   int32
	Addr3       uint64
	_           uint64
}

// CQE is one completion queue entry (struct io_uring_cqe, 16 bytes).
type CQE struct {
	UserData uint64
	// Res is the operation's result: bytes transferred, 0, or a negated
	// errno (for example -EBADF, -EINVAL).
	Res   int32
	Flags uint32
}

// sqringOffsets is struct io_sqring_offsets.
type sqringOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

// cqringOffsets is struct io_cqring_offsets.
type cqringOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

// params is struct io_uring_params (120 bytes).
type params struct {
	sqEntries    uint32
	cqEntries    uint32
	flags        uint32
	sqThreadCPU  uint32
	sqThreadIdle uint32
	features     uint32
	wqFd         uint32
	resv         [3]uint32
	sqOff        sqringOffsets
	cqOff        cqringOffsets
}

// geteventsArg is struct io_uring_getevents_arg (IORING_ENTER_EXT_ARG).
type geteventsArg struct {
	sigmask   uint64
	sigmaskSz uint32
	minWaitUs uint32
	ts        uint64 // address of a struct __kernel_timespec
}

// filesUpdate is struct io_uring_files_update (IORING_REGISTER_FILES_UPDATE).
type filesUpdate struct {
	offset uint32
	resv   uint32
	fds    uint64
}
