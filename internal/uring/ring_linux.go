package uring

import (
	"errors"
	"fmt"
	"math/bits"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Errors of the control path. Failed system calls are wrapped errnos, so
// errors.Is(err, unix.EINVAL) and the like work.
var (
	// ErrUnsupportedFlags: Options asked for a layout this package does not
	// implement (SetupSQE128, SetupCQE32).
	ErrUnsupportedFlags = errors.New("uring: unsupported setup flags")
	// ErrEntries: Options.Entries is zero or above MaxEntries.
	ErrEntries = errors.New("uring: entries out of range")
	// ErrClosed: the ring was closed.
	ErrClosed = errors.New("uring: ring closed")
)

// MaxEntries is the kernel's limit on SQ entries (IORING_MAX_ENTRIES).
const MaxEntries = 32768

// Options configures New.
type Options struct {
	// Entries is the SQ size, 1..MaxEntries; the kernel rounds it up to a
	// power of two. It bounds how many SQEs may be queued between Submits.
	Entries uint32
	// CQEntries, when nonzero, sizes the CQ (IORING_SETUP_CQSIZE; rounded
	// up to a power of two, at least Entries). Zero means twice Entries.
	CQEntries uint32
	// Flags are setup flags the ring must have; New fails if the kernel
	// refuses them.
	Flags uint32
	// OptionalFlags are setup flags the ring should have if the kernel
	// accepts them. When io_uring_setup fails with EINVAL, New drops the
	// highest optional flag still set and tries again, until only Flags
	// remain. Ring.Flags reports what was granted. SetupCoopTaskrun and
	// SetupDeferTaskrun always bring SetupTaskrunFlag with them.
	OptionalFlags uint32
	// SQThreadIdleMs and SQThreadCPU configure SetupSQPoll / SetupSQAff.
	SQThreadIdleMs uint32
	SQThreadCPU    uint32
}

// Ring is one io_uring instance: an SQ, a CQ and the SQE array, all mapped
// shared with the kernel. See the package documentation for who may call
// what from which thread.
type Ring struct {
	fd       int
	flags    uint32
	features uint32

	// Submission queue. sqHead, sqFlags and sqDropped are written by the
	// kernel; sqTail by us.
	sqHead    *uint32
	sqTail    *uint32
	sqFlags   *uint32
	sqDropped *uint32
	sqMask    uint32
	sqEntries uint32
	sqes      []SQE
	// sqeTail is the next SQE slot GetSQE hands out; slots in
	// [sqPublished, sqeTail) are being filled and not yet visible.
	sqeTail uint32
	// sqPublished is the last value stored to *sqTail.
	sqPublished uint32
	// sqHeadCache is the last value loaded from *sqHead.
	sqHeadCache uint32

	// Completion queue. cqTail and cqOverflow are written by the kernel;
	// cqHead and cqFlags by us.
	cqHead     *uint32
	cqTail     *uint32
	cqOverflow *uint32
	cqFlags    *uint32 // nil on kernels without the CQ flags word
	cqMask     uint32
	cqEntries  uint32
	cqes       []CQE

	sqRingMem []byte
	cqRingMem []byte // aliases sqRingMem with FeatSingleMmap
	sqeMem    []byte
}

// New creates a ring. With SetupSingleIssuer (or SetupDeferTaskrun) the
// calling OS thread becomes the only one allowed to submit: call
// runtime.LockOSThread before New and make every later call from that
// goroutine.
func New(opts Options) (*Ring, error) {
	if opts.Entries == 0 || opts.Entries > MaxEntries {
		return nil, fmt.Errorf("uring: entries=%d: %w", opts.Entries, ErrEntries)
	}
	if (opts.Flags|opts.OptionalFlags)&(SetupSQE128|SetupCQE32) != 0 {
		return nil, fmt.Errorf("uring: flags=%#x: %w", opts.Flags|opts.OptionalFlags, ErrUnsupportedFlags)
	}
	optional := opts.OptionalFlags &^ opts.Flags
	var p params
	var fd int
	for {
		flags := opts.Flags | optional
		if flags&(SetupCoopTaskrun|SetupDeferTaskrun) != 0 {
			flags |= SetupTaskrunFlag
		} else if opts.Flags&SetupTaskrunFlag == 0 {
			flags &^= SetupTaskrunFlag
		}
		p = params{
			flags:        flags,
			sqThreadIdle: opts.SQThreadIdleMs,
			sqThreadCPU:  opts.SQThreadCPU,
		}
		if opts.CQEntries != 0 {
			p.flags |= SetupCQSize
			p.cqEntries = opts.CQEntries
		}
		var errno unix.Errno
		fd, errno = sysSetup(opts.Entries, &p)
		if errno == 0 {
			p.flags = flags | p.flags&SetupCQSize
			break
		}
		if errno == unix.EINVAL && optional != 0 {
			optional &^= 1 << (31 - bits.LeadingZeros32(optional))
			continue
		}
		return nil, fmt.Errorf("uring: io_uring_setup entries=%d flags=%#x: %w", opts.Entries, flags, errno)
	}
	r := &Ring{fd: fd, flags: p.flags, features: p.features}
	if err := r.mapRings(&p); err != nil {
		r.unmap()
		unix.Close(fd)
		return nil, err
	}
	return r, nil
}

func (r *Ring) mapRings(p *params) error {
	sqSize := int(p.sqOff.array) + int(p.sqEntries)*4
	if p.flags&SetupNoSQArray != 0 {
		sqSize = int(p.sqOff.flags) + 4
		if d := int(p.sqOff.dropped) + 4; d > sqSize {
			sqSize = d
		}
	}
	cqSize := int(p.cqOff.cqes) + int(p.cqEntries)*16
	single := p.features&FeatSingleMmap != 0
	if single && cqSize > sqSize {
		sqSize = cqSize
	}
	var err error
	r.sqRingMem, err = unix.Mmap(r.fd, offSQRing, sqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("uring: mmap SQ ring (%d bytes): %w", sqSize, err)
	}
	if single {
		r.cqRingMem = r.sqRingMem
	} else {
		r.cqRingMem, err = unix.Mmap(r.fd, offCQRing, cqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return fmt.Errorf("uring: mmap CQ ring (%d bytes): %w", cqSize, err)
		}
	}
	r.sqeMem, err = unix.Mmap(r.fd, offSQEs, int(p.sqEntries)*64, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("uring: mmap SQEs (%d bytes): %w", int(p.sqEntries)*64, err)
	}

	sq := r.sqRingMem
	r.sqHead = u32At(sq, p.sqOff.head)
	r.sqTail = u32At(sq, p.sqOff.tail)
	r.sqFlags = u32At(sq, p.sqOff.flags)
	r.sqDropped = u32At(sq, p.sqOff.dropped)
	r.sqMask = *u32At(sq, p.sqOff.ringMask)
	r.sqEntries = *u32At(sq, p.sqOff.ringEntries)
	r.sqes = sqeSlice(r.sqeMem, r.sqEntries)
	if p.flags&SetupNoSQArray == 0 {
		// SQE slot i is always described by array entry i, so the array
		// is filled once here and never written again.
		arr := u32Slice(sq, p.sqOff.array, r.sqEntries)
		for i := range arr {
			arr[i] = uint32(i)
		}
	}
	r.sqeTail = atomic.LoadUint32(r.sqTail)
	r.sqPublished = r.sqeTail
	r.sqHeadCache = atomic.LoadUint32(r.sqHead)

	cq := r.cqRingMem
	r.cqHead = u32At(cq, p.cqOff.head)
	r.cqTail = u32At(cq, p.cqOff.tail)
	r.cqOverflow = u32At(cq, p.cqOff.overflow)
	if p.cqOff.flags != 0 {
		r.cqFlags = u32At(cq, p.cqOff.flags)
	}
	r.cqMask = *u32At(cq, p.cqOff.ringMask)
	r.cqEntries = *u32At(cq, p.cqOff.ringEntries)
	r.cqes = cqeSlice(cq, p.cqOff.cqes, r.cqEntries)
	return nil
}

func (r *Ring) unmap() {
	if r.sqeMem != nil {
		unix.Munmap(r.sqeMem)
	}
	if r.cqRingMem != nil && (r.sqRingMem == nil || &r.cqRingMem[0] != &r.sqRingMem[0]) {
		unix.Munmap(r.cqRingMem)
	}
	if r.sqRingMem != nil {
		unix.Munmap(r.sqRingMem)
	}
	*r = Ring{fd: -1}
}

// Close unmaps the rings and closes the ring fd; the kernel cancels or
// waits out any request still in flight. Buffers named by in-flight SQEs
// must stay valid until Close returns. No method other than Close may be
// called afterwards; Close itself may be called again and returns nil.
func (r *Ring) Close() error {
	if r.fd < 0 {
		return nil
	}
	fd := r.fd
	r.unmap()
	if err := unix.Close(fd); err != nil {
		return fmt.Errorf("uring: close: %w", err)
	}
	return nil
}

// Fd returns the ring's file descriptor.
func (r *Ring) Fd() int { return r.fd }

// Flags returns the setup flags in effect (after any fallback in New).
func (r *Ring) Flags() uint32 { return r.flags }

// Features returns the kernel's Feat* bits.
func (r *Ring) Features() uint32 { return r.features }

// SQEntries returns the SQ size (a power of two).
func (r *Ring) SQEntries() uint32 { return r.sqEntries }

// CQEntries returns the CQ size (a power of two). Keep no more requests in
// flight than this, or completions take the slow overflow path.
func (r *Ring) CQEntries() uint32 { return r.cqEntries }

// ---------------------------------------------------------------------------
// Submission. Owner thread only.

// GetSQE returns the next free SQE, or nil when the SQ is full (call Submit
// and try again). The SQE holds stale contents: fill it with one of the
// Prep methods, which overwrite all 64 bytes, then set UserData and any
// Flags. It is handed to the kernel by the next Submit. The pointer is valid
// only until that Submit.
func (r *Ring) GetSQE() *SQE {
	tail := r.sqeTail
	if tail-r.sqHeadCache >= r.sqEntries {
		// Acquire: the kernel is done reading the slots before head.
		r.sqHeadCache = atomic.LoadUint32(r.sqHead)
		if tail-r.sqHeadCache >= r.sqEntries {
			return nil
		}
	}
	r.sqeTail = tail + 1
	return &r.sqes[tail&r.sqMask]
}

// SQSpace returns how many more SQEs GetSQE can hand out now.
func (r *Ring) SQSpace() uint32 {
	return r.sqEntries - (r.sqeTail - atomic.LoadUint32(r.sqHead))
}

// SQPending returns how many SQEs were handed out and not yet consumed by
// the kernel.
func (r *Ring) SQPending() uint32 {
	return r.sqeTail - atomic.LoadUint32(r.sqHead)
}

// publish makes every filled SQE visible to the kernel and returns how many
// it has not consumed yet.
func (r *Ring) publish() uint32 {
	tail := r.sqeTail
	if tail != r.sqPublished {
		// Release: the SQE stores above happen before the kernel sees tail.
		atomic.StoreUint32(r.sqTail, tail)
		r.sqPublished = tail
	}
	r.sqHeadCache = atomic.LoadUint32(r.sqHead)
	return tail - r.sqHeadCache
}

// Submit hands every SQE filled since the last Submit to the kernel and
// returns how many the kernel consumed. It makes no system call when there
// is nothing to submit and the kernel has flagged no pending work; when the
// kernel flags CQ overflow or deferred completion work (IORING_SQ_CQ_OVERFLOW,
// IORING_SQ_TASKRUN) it enters with GETEVENTS so those completions reach the
// CQ ring. A reactor therefore calls Submit then ReapCQEs on every poll.
//
// On error (EAGAIN, EBUSY: the kernel is short of resources or holds
// overflowed completions) the unconsumed SQEs stay queued and the next
// Submit retries them. Submit never sleeps.
func (r *Ring) Submit() (int, error) {
	if r.flags&SetupSQPoll != 0 {
		return r.submitSQPoll()
	}
	for {
		n := r.publish()
		var flags uint32
		if atomic.LoadUint32(r.sqFlags)&(sqCQOverflow|sqTaskrun) != 0 {
			flags = enterGetEvents
		}
		if n == 0 && flags == 0 {
			return 0, nil
		}
		got, errno := sysEnter(r.fd, n, 0, flags)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		return got, nil
	}
}

// submitSQPoll publishes the SQ for the kernel's polling thread and wakes it
// if it went to sleep. It returns the number of SQEs published.
func (r *Ring) submitSQPoll() (int, error) {
	n := r.sqeTail - r.sqPublished
	r.publish()
	// Go atomics are sequentially consistent: the tail store above is
	// ordered before this flags load, as the wakeup protocol requires.
	sqf := atomic.LoadUint32(r.sqFlags)
	var flags uint32
	if sqf&sqNeedWakeup != 0 {
		flags |= enterSQWakeup
	}
	if sqf&sqCQOverflow != 0 {
		flags |= enterGetEvents
	}
	if flags == 0 {
		return int(n), nil
	}
	for {
		_, errno := sysEnter(r.fd, 0, 0, flags)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		return int(n), nil
	}
}

// SubmitAndWait submits like Submit and then sleeps until at least
// waitNr completions are in the CQ ring. It returns how many SQEs were
// consumed. It blocks the OS thread: tests and shutdown only, never a
// reactor's poll.
func (r *Ring) SubmitAndWait(waitNr uint32) (int, error) {
	total := 0
	for {
		n := r.publish()
		if r.flags&SetupSQPoll != 0 {
			n = 0
			if atomic.LoadUint32(r.sqFlags)&sqNeedWakeup != 0 {
				if _, errno := sysEnter(r.fd, 0, 0, enterSQWakeup); errno != 0 && errno != unix.EINTR {
					return total, errno
				}
			}
		}
		got, errno := sysEnter(r.fd, n, waitNr, enterGetEvents)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return total, errno
		}
		total += got
		if uint32(got) >= n && (waitNr == 0 || r.CQReady() >= waitNr) {
			return total, nil
		}
	}
}

// SubmitAndWaitTimeout is SubmitAndWait with a limit: it returns unix.ETIME
// when fewer than waitNr completions are in the CQ ring after timeout
// (IORING_ENTER_EXT_ARG, FeatExtArg). Tests and shutdown only.
func (r *Ring) SubmitAndWaitTimeout(waitNr uint32, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	total := 0
	for {
		n := r.publish()
		if r.flags&SetupSQPoll != 0 {
			n = 0
			if atomic.LoadUint32(r.sqFlags)&sqNeedWakeup != 0 {
				if _, errno := sysEnter(r.fd, 0, 0, enterSQWakeup); errno != 0 && errno != unix.EINTR {
					return total, errno
				}
			}
		}
		left := max(time.Until(deadline), 0)
		got, errno := sysEnterTimeout(r.fd, n, waitNr, enterGetEvents|enterExtArg, unix.NsecToTimespec(int64(left)))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return total, errno
		}
		total += got
		if uint32(got) >= n && r.CQReady() >= waitNr {
			return total, nil
		}
		if left == 0 {
			return total, unix.ETIME
		}
	}
}

// ---------------------------------------------------------------------------
// Completion. Owner thread only; no system calls.

// CQReady returns how many completions ReapCQEs would return now.
func (r *Ring) CQReady() uint32 {
	// Acquire on tail: the CQEs before it are fully written.
	return atomic.LoadUint32(r.cqTail) - atomic.LoadUint32(r.cqHead)
}

// ReapCQEs copies up to len(buf) completions into buf, in the order the
// kernel posted them, releases their slots to the kernel and returns how
// many it copied. It makes no system call and does not allocate.
func (r *Ring) ReapCQEs(buf []CQE) int {
	head := atomic.LoadUint32(r.cqHead)
	ready := atomic.LoadUint32(r.cqTail) - head
	n := uint32(len(buf))
	if ready < n {
		n = ready
	}
	for i := uint32(0); i < n; i++ {
		buf[i] = r.cqes[(head+i)&r.cqMask]
	}
	if n > 0 {
		// Release: our reads of the slots happen before the kernel may
		// overwrite them.
		atomic.StoreUint32(r.cqHead, head+n)
	}
	return int(n)
}

// PeekCQE returns the oldest completion without consuming it, or nil. The
// pointer aims into the shared ring and is valid until AdvanceCQ.
func (r *Ring) PeekCQE() *CQE {
	head := atomic.LoadUint32(r.cqHead)
	if atomic.LoadUint32(r.cqTail) == head {
		return nil
	}
	return &r.cqes[head&r.cqMask]
}

// AdvanceCQ consumes n completions seen through PeekCQE.
// Precondition: n <= CQReady().
func (r *Ring) AdvanceCQ(n uint32) {
	atomic.StoreUint32(r.cqHead, atomic.LoadUint32(r.cqHead)+n)
}

// CQOverflowPending reports that the kernel holds completions that did not
// fit in the CQ ring (IORING_SQ_CQ_OVERFLOW). Reap, then Submit to move them
// into the ring.
func (r *Ring) CQOverflowPending() bool {
	return atomic.LoadUint32(r.sqFlags)&sqCQOverflow != 0
}

// TaskrunPending reports that completions wait for this thread to enter the
// kernel (IORING_SQ_TASKRUN; only with SetupCoopTaskrun/SetupDeferTaskrun).
// Submit enters in that case.
func (r *Ring) TaskrunPending() bool {
	return atomic.LoadUint32(r.sqFlags)&sqTaskrun != 0
}

// CQDropped returns the kernel's count of completions it had to drop
// (cq overflow counter). With FeatNoDrop it stays zero unless the kernel
// ran out of memory; nonzero means requests were lost.
func (r *Ring) CQDropped() uint32 { return atomic.LoadUint32(r.cqOverflow) }

// SQDropped returns the kernel's count of invalid SQ entries it skipped.
func (r *Ring) SQDropped() uint32 { return atomic.LoadUint32(r.sqDropped) }

// SetEventfdEnabled turns eventfd notification on completions on or off
// (IORING_CQ_EVENTFD_DISABLED). A reactor turns it off while it polls and
// on before it sleeps, then checks CQReady and TaskrunPending once more.
// Returns false when the kernel lacks the CQ flags word.
func (r *Ring) SetEventfdEnabled(on bool) bool {
	if r.cqFlags == nil {
		return false
	}
	f := atomic.LoadUint32(r.cqFlags)
	if on {
		f &^= cqEventfdDisabled
	} else {
		f |= cqEventfdDisabled
	}
	atomic.StoreUint32(r.cqFlags, f)
	return true
}

// ---------------------------------------------------------------------------
// Registration. Control path; owner thread for SINGLE_ISSUER rings.

func (r *Ring) register(op uint32, what string, call func() (int, unix.Errno)) (int, error) {
	if r.fd < 0 {
		return 0, ErrClosed
	}
	for {
		n, errno := call()
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, fmt.Errorf("uring: register %s (op %d): %w", what, op, errno)
		}
		return n, nil
	}
}

// RegisterBuffers registers fixed buffers (IORING_REGISTER_BUFFERS); buffer
// i is then used by PrepReadFixed/PrepWriteFixed with bufIndex i on any
// sub-slice of it. The kernel pins the pages; the memory must stay mapped
// until UnregisterBuffers or Close. Page-aligned memory outside the Go heap
// (mmap, hugepages) is the intended use.
func (r *Ring) RegisterBuffers(bufs [][]byte) error {
	if len(bufs) == 0 {
		return fmt.Errorf("uring: register buffers: none given: %w", unix.EINVAL)
	}
	iovs := make([]unix.Iovec, len(bufs))
	for i, b := range bufs {
		if len(b) == 0 {
			return fmt.Errorf("uring: register buffers: buffer %d is empty: %w", i, unix.EINVAL)
		}
		iovs[i].Base = &b[0]
		iovs[i].SetLen(len(b))
	}
	_, err := r.register(regBuffers, "buffers", func() (int, unix.Errno) { return registerIovecs(r.fd, regBuffers, iovs) })
	return err
}

// UnregisterBuffers drops the registered buffers.
func (r *Ring) UnregisterBuffers() error {
	_, err := r.register(unregBuffers, "unregister buffers", func() (int, unix.Errno) { return sysRegister(r.fd, unregBuffers, nil, 0) })
	return err
}

// RegisterFiles registers a file table (IORING_REGISTER_FILES). An SQE
// whose Flags has SQEFixedFile names file i by Fd = i. An entry of -1 leaves
// a slot empty for UpdateFiles.
func (r *Ring) RegisterFiles(fds []int32) error {
	if len(fds) == 0 {
		return fmt.Errorf("uring: register files: none given: %w", unix.EINVAL)
	}
	_, err := r.register(regFiles, "files", func() (int, unix.Errno) { return registerInt32s(r.fd, regFiles, fds) })
	return err
}

// UpdateFiles replaces registered files starting at slot off
// (IORING_REGISTER_FILES_UPDATE); -1 clears a slot. Requests in flight keep
// the file they started with.
func (r *Ring) UpdateFiles(off uint32, fds []int32) error {
	if len(fds) == 0 {
		return nil
	}
	n, err := r.register(regFilesUpdate, "files update", func() (int, unix.Errno) { return registerFilesUpdate(r.fd, off, fds) })
	if err == nil && n != len(fds) {
		err = fmt.Errorf("uring: files update: %d of %d slots updated: %w", n, len(fds), unix.EIO)
	}
	return err
}

// UnregisterFiles drops the registered file table.
func (r *Ring) UnregisterFiles() error {
	_, err := r.register(unregFiles, "unregister files", func() (int, unix.Errno) { return sysRegister(r.fd, unregFiles, nil, 0) })
	return err
}

// RegisterEventfd makes the kernel signal efd whenever it posts a
// completion (IORING_REGISTER_EVENTFD), so that a reactor asleep on efd
// wakes up. With async true only completions from the kernel's async
// context signal (IORING_REGISTER_EVENTFD_ASYNC).
func (r *Ring) RegisterEventfd(efd int, async bool) error {
	op := regEventfd
	if async {
		op = regEventfdAsync
	}
	fds := []int32{int32(efd)}
	_, err := r.register(op, "eventfd", func() (int, unix.Errno) { return registerInt32s(r.fd, op, fds) })
	return err
}

// UnregisterEventfd stops eventfd notification.
func (r *Ring) UnregisterEventfd() error {
	_, err := r.register(unregEventfd, "unregister eventfd", func() (int, unix.Errno) { return sysRegister(r.fd, unregEventfd, nil, 0) })
	return err
}

// Probe reports which opcodes the running kernel supports.
type Probe struct {
	lastOp    uint8
	supported [probeMaxOps]bool
}

// Supports reports whether op is supported.
func (p *Probe) Supports(op uint8) bool { return p.supported[op] }

// LastOp is the highest opcode the kernel knows.
func (p *Probe) LastOp() uint8 { return p.lastOp }

// Probe asks the kernel which opcodes it supports (IORING_REGISTER_PROBE).
func (r *Ring) Probe() (*Probe, error) {
	// struct io_uring_probe: 16-byte header, then 8-byte io_uring_probe_op
	// entries {op u8, resv u8, flags u16, resv2 u32}.
	buf := make([]byte, 16+probeMaxOps*8)
	if _, err := r.register(regProbe, "probe", func() (int, unix.Errno) { return 0, registerProbe(r.fd, buf) }); err != nil {
		return nil, err
	}
	p := &Probe{lastOp: buf[0]}
	n := int(buf[1])
	for i := 0; i < n && i < probeMaxOps; i++ {
		e := buf[16+i*8:]
		if (uint16(e[2])|uint16(e[3])<<8)&probeOpSupported != 0 {
			p.supported[e[0]] = true
		}
	}
	return p, nil
}
