// Package uring is a small io_uring layer over golang.org/x/sys/unix for
// the data path: bdev/local submits file and block-device IO through it and
// a reactor poller reaps the completions. It is Linux-only; on other systems
// the package is empty.
//
// # Memory layout
//
// io_uring_setup(2) returns a file descriptor; three regions of it are
// mapped shared with the kernel (with FeatSingleMmap the SQ and CQ rings are
// one mapping):
//
//	SQ ring (offset IORING_OFF_SQ_RING)        SQE array (IORING_OFF_SQES)
//	+------------------------------+            +------------------------+
//	| head    u32  kernel writes   |            | SQE 0   64 bytes       |
//	| tail    u32  we write        |            | SQE 1                  |
//	| mask    u32  entries-1       |            | ...                    |
//	| entries u32                  |            | SQE entries-1          |
//	| flags   u32  kernel writes   |            +------------------------+
//	|   NEED_WAKEUP CQ_OVERFLOW TASKRUN           ^
//	| dropped u32  kernel writes   |            |
//	| array[entries] u32 ----------+------------' array[i] = i, set once
//	+------------------------------+              in New (not with NoSQArray)
//
//	CQ ring (IORING_OFF_CQ_RING, or the SQ mapping with FeatSingleMmap)
//	+------------------------------+
//	| head     u32  we write       |
//	| tail     u32  kernel writes  |
//	| mask     u32                 |
//	| entries  u32                 |
//	| overflow u32  kernel writes  |  (completions dropped)
//	| flags    u32  we write       |  (EVENTFD_DISABLED)
//	| cqes[entries] 16 bytes each  |  {user_data u64, res s32, flags u32}
//	+------------------------------+
//
// Head and tail are free-running uint32 counters; slot = counter & mask and
// "tail - head" is the fill level, correct across the 2^32 wrap; a ring is
// full at tail - head == entries.
//
// # Ownership
//
// A Ring belongs to one goroutine, and with SetupSingleIssuer or
// SetupDeferTaskrun to one OS thread: the reactor's, which calls
// runtime.LockOSThread before New and makes every call on the ring from
// then on (the kernel rejects submission from another thread with EEXIST).
// The Ring has no locks; nothing in it may be touched by another goroutine.
//
//   - SQ: the owner hands out slots with GetSQE and fills them; Submit
//     publishes them (tail) and the kernel consumes them (head). A slot
//     belongs to the owner from GetSQE until Submit and to the kernel from
//     then until the kernel moves head past it, which happens inside the
//     io_uring_enter call (or on the SQPOLL thread with SetupSQPoll).
//   - CQ: the kernel fills slots and moves tail; the owner reads them and
//     moves head (ReapCQEs, or PeekCQE + AdvanceCQ). Slots between head and
//     tail belong to the owner.
//   - Buffers named in an SQE belong to the kernel from Submit until the
//     owner reaps the CQE with that request's UserData.
//
// # Memory ordering
//
// Each counter has one writer. The writer fills the slots and then moves
// its counter with a store-release; the reader loads the other side's
// counter with a load-acquire before it touches the slots. Concretely:
// Submit stores SQ tail after the SQE writes; GetSQE loads SQ head before
// reusing a slot; ReapCQEs loads CQ tail before reading CQEs and stores CQ
// head after reading them. Go's sync/atomic operations are sequentially
// consistent, which is at least acquire/release; they also give the
// store-then-load order the SQPOLL wakeup check needs (publish tail, then
// read NEED_WAKEUP). The flags words are read with atomic loads.
//
// # Driving a ring from a reactor
//
//  1. Lock the OS thread, New(Options{Entries: n, OptionalFlags: ReactorFlags}).
//  2. Per IO: sqe := r.GetSQE() (nil: queue full, report NoMem or Submit
//     first); sqe.PrepReadv(...); sqe.UserData = token. An SQE once taken
//     is submitted by the next Submit whatever it holds: to abandon one,
//     PrepNop it and set Flags = SQECQESkipSuccess so that no CQE appears.
//  3. Each poll: r.Submit(), then r.ReapCQEs(buf) and complete each CQE by
//     its UserData. Submit makes no system call when nothing is queued and
//     the kernel flags no work; with SetupCoopTaskrun or SetupDeferTaskrun
//     the kernel posts completions only when this thread enters the kernel,
//     which Submit does exactly when the TASKRUN flag says so.
//  4. Keep at most CQEntries requests in flight. Beyond that the kernel
//     parks completions on an overflow list (FeatNoDrop) until Submit
//     flushes them: slower, never lost unless CQDropped grows.
//  5. Before sleeping: RegisterEventfd once at start, SetEventfdEnabled(true),
//     check CQReady and TaskrunPending again, then sleep on the eventfd; on
//     wake, SetEventfdEnabled(false) and poll. The eventfd fires for device
//     completions in every task-run mode, including SetupDeferTaskrun, where
//     the CQE itself appears only once Submit has entered the kernel
//     (TestEventfd checks all three modes while the thread sleeps in poll).
//
// SetupDeferTaskrun (ReactorFlags) measured best for a polling reactor on
// the reference machine (see BenchmarkRandRead4K): completions are batched
// into the one io_uring_enter that Submit makes when TASKRUN is flagged.
//
// # Files
//
// Linux-specific code is in *_linux.go; the only file that imports unsafe
// is sys_linux_unsafe.go (with a linux build tag): the raw system calls,
// the views of the mapped rings, and Go-slice-to-address conversions.
package uring
