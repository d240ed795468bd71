package local

import (
	"errors"
	"fmt"

	"sync/atomic"

	"golang.org/x/sys/unix"

	"hyperpath/bdev"
	"hyperpath/internal/uring"
	"hyperpath/reactor"
)

// taskOp is what a task's current SQE does.
type taskOp uint8

const (
	// opRead: readv into io.Iovs.
	opRead taskOp = iota
	// opWrite: writev from io.Iovs.
	opWrite
	// opFlush: fdatasync.
	opFlush
	// opUnmap: fallocate PUNCH_HOLE|KEEP_SIZE.
	opUnmap
	// opZeroRange: write_zeroes as fallocate ZERO_RANGE|KEEP_SIZE.
	opZeroRange
	// opZeroPunch: write_zeroes as fallocate PUNCH_HOLE|KEEP_SIZE.
	opZeroPunch
	// opZeroWrite: write_zeroes as writes from Disk.zeroBuf, one chunk at
	// a time.
	opZeroWrite
)

// Fixed-file indexes in every channel's ring.
const (
	fileDirect   = 0 // Disk.fd (O_DIRECT when the Disk is direct)
	fileBuffered = 1 // Disk.bufFd, present only when the Disk is direct
)

const (
	cqBatch  = 64 // CQEs reaped per ReapCQEs call
	cqRounds = 8  // reap rounds (and at most as many extra enters) per poll
	initIovs = 16 // iovec slots a task starts with; grown once if needed
)

// task is the state of one IO between Submit and its completion. It
// belongs to its channel's reactor. A task owns at most one SQE at a time
// (queued or in the kernel), so the SQ, sized to the task count, never
// overflows when a completion queues the task's next step.
type task struct {
	io *bdev.IO // nil while the task is free
	// iov is the iovec array handed to the kernel; it must stay put until
	// the CQE is reaped, hence it lives in the channel's task array.
	iov     []unix.Iovec
	niov    int
	op      taskOp
	file    uint8
	retried bool   // an O_DIRECT -EINVAL was already retried buffered
	seq     uint64 // launch sequence number (channel.started before launch)
	base    uint64 // byte offset of the IO
	done    uint64 // bytes transferred so far (read/write, zero writes)
	total   uint64 // bytes of the IO
}

// resetWait is a reset parked until the IO outstanding when it arrived has
// completed on every channel of the Disk.
type resetWait struct {
	io    *bdev.IO
	chans *[]*channel
	marks []uint64 // each channel's started count when the reset arrived
}

// channel is a Disk's per-reactor state. Everything but the atomics is
// touched only on its reactor.
type channel struct {
	d      *Disk
	r      *reactor.Reactor
	ring   *uring.Ring
	efd    int
	poller *reactor.Poller
	bs     uint64

	tasks  []task
	free   []uint32 // stack of free task indexes
	cqes   [cqBatch]uring.CQE
	queued int // SQEs prepared and not yet consumed by the kernel
	armed  bool

	resets  []resetWait // [0:nresets) are parked; the rest are reusable
	nresets int

	// started counts launched tasks (the next task's seq), finished the
	// completed ones. lowWater is the smallest seq still in flight (or
	// started when none is), published while a reset is pending anywhere
	// on the Disk. Written by the owner, read by resets on any reactor.
	started, finished, lowWater atomic.Uint64
	closed                      atomic.Bool
}

var _ bdev.Channel = (*channel)(nil)

// lockedCaller is a test seam: tests that step a reactor with Poll from a
// goroutine locked to its OS thread set it, so that their channels get
// reactor rings too.
var lockedCaller bool

// ringFlags picks the ring's setup flags. A reactor running on this very
// thread gets SINGLE_ISSUER|DEFER_TASKRUN (completions are posted only when
// this thread asks, no interrupts). Anywhere else (a reactor not started
// yet, a test stepping Poll from an ordinary goroutine, which Go may move
// between threads) the ring is a plain one that any thread may drive:
// SINGLE_ISSUER would bind it to whatever thread happened to create it.
func ringFlags(r *reactor.Reactor) uint32 {
	if lockedCaller || (r.Tid() != 0 && r.Tid() == unix.Gettid()) {
		return uring.ReactorFlags
	}
	return 0
}

func newChannel(d *Disk, r *reactor.Reactor) (*channel, error) {
	qd := d.opts.QueueDepth
	ring, err := uring.New(uring.Options{Entries: qd, CQEntries: 2 * qd, OptionalFlags: ringFlags(r)})
	if err != nil {
		return nil, err
	}
	c := &channel{d: d, r: r, ring: ring, efd: -1, bs: uint64(d.info.BlockSize)}
	fail := func(err error) (*channel, error) {
		if c.efd >= 0 {
			unix.Close(c.efd)
		}
		ring.Close()
		return nil, err
	}
	fds := []int32{int32(d.fd)}
	if d.bufFd >= 0 {
		fds = append(fds, int32(d.bufFd))
	}
	if err := ring.RegisterFiles(fds); err != nil {
		return fail(err)
	}
	if c.efd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return fail(fmt.Errorf("eventfd: %w", err))
	}
	if err := ring.RegisterEventfd(c.efd, false); err != nil {
		return fail(err)
	}
	// Notifications stay off while the poller runs; Arm turns them on.
	ring.SetEventfdEnabled(false)
	if err := r.WatchFd(c.efd); err != nil {
		return fail(err)
	}
	c.tasks = make([]task, qd)
	c.free = make([]uint32, qd)
	for i := range c.tasks {
		c.tasks[i].iov = make([]unix.Iovec, initIovs)
		c.free[i] = uint32(qd) - 1 - uint32(i)
	}
	c.poller = r.RegisterPollerOpts("local_"+d.info.Name, c.poll, reactor.PollerOptions{Arm: c.arm})
	return c, nil
}

// Submit implements bdev.Channel. It only prepares SQEs; the poller
// submits them.
func (c *channel) Submit(io *bdev.IO) {
	ro := c.d.opts.ReadOnly
	switch io.Type {
	case bdev.IORead, bdev.IOWrite:
		if io.Type == bdev.IOWrite && ro {
			io.Complete(bdev.StatusFailed)
			return
		}
		if len(io.Iovs) > MaxIovs {
			io.Complete(bdev.StatusInvalid)
			return
		}
		op := opRead
		if io.Type == bdev.IOWrite {
			op = opWrite
		}
		t, idx := c.getTask(io, op)
		if t == nil {
			io.Complete(bdev.StatusNoMem)
			return
		}
		t.file = fileDirect
		if !c.buildIovs(t) && c.d.direct {
			t.file = fileBuffered
		}
		c.launch(t, idx, c.prepRW(t, idx))
	case bdev.IOFlush:
		t, idx := c.getTask(io, opFlush)
		if t == nil {
			io.Complete(bdev.StatusNoMem)
			return
		}
		c.launch(t, idx, c.prepSimple(t, idx))
	case bdev.IOUnmap, bdev.IOWriteZeroes:
		if ro || !c.d.opts.Fallocate {
			io.Complete(bdev.StatusFailed)
			return
		}
		op := opUnmap
		if io.Type == bdev.IOWriteZeroes {
			op = opZeroRange + taskOp(c.d.zeroMode.Load())
		}
		t, idx := c.getTask(io, op)
		if t == nil {
			io.Complete(bdev.StatusNoMem)
			return
		}
		c.launch(t, idx, c.prepSimple(t, idx))
	case bdev.IOReset:
		c.reset(io)
	default:
		io.Complete(bdev.StatusInvalid)
	}
}

// getTask takes a free task for io, or returns nil.
func (c *channel) getTask(io *bdev.IO, op taskOp) (*task, uint32) {
	n := len(c.free)
	if n == 0 {
		return nil, 0
	}
	idx := c.free[n-1]
	c.free = c.free[:n-1]
	t := &c.tasks[idx]
	t.io, t.op, t.retried = io, op, false
	t.base = io.OffsetBlocks * c.bs
	t.total = io.NumBlocks * c.bs
	t.done = 0
	io.DriverCtx = uint64(idx)
	return t, idx
}

// launch counts a task whose first SQE was prepared, or gives the task
// back and bounces the IO with NoMem when there was no SQE.
func (c *channel) launch(t *task, idx uint32, ok bool) {
	if !ok {
		io := t.io
		t.io = nil
		c.free = append(c.free, idx)
		io.Complete(bdev.StatusNoMem)
		return
	}
	t.seq = c.started.Load()
	c.started.Store(t.seq + 1)
}

// buildIovs fills t.iov from t.io.Iovs, skipping the t.done bytes already
// transferred, and reports whether every segment is aligned for O_DIRECT.
// It allocates only the first time a task slot sees more iovecs than it
// has room for.
func (c *channel) buildIovs(t *task) bool {
	src := t.io.Iovs
	if len(t.iov) < len(src) {
		t.iov = make([]unix.Iovec, len(src))
	}
	mask := c.d.memAlign - 1
	if c.d.memAlign == 0 {
		mask = 0
	}
	skip := t.done
	aligned := true
	n := 0
	for _, b := range src {
		if skip >= uint64(len(b)) {
			skip -= uint64(len(b))
			continue
		}
		b = b[skip:]
		skip = 0
		v := &t.iov[n]
		v.Base = &b[0]
		v.SetLen(len(b))
		n++
		if (uint64(addrOf(b))|uint64(len(b)))&mask != 0 {
			aligned = false
		}
	}
	t.niov = n
	return aligned
}

// prepRW queues the readv/writev for the rest of t's transfer.
func (c *channel) prepRW(t *task, idx uint32) bool {
	sqe := c.ring.GetSQE()
	if sqe == nil {
		return false
	}
	off := t.base + t.done
	if t.op == opRead {
		sqe.PrepReadv(int32(t.file), t.iov[:t.niov], off)
	} else {
		sqe.PrepWritev(int32(t.file), t.iov[:t.niov], off)
	}
	sqe.Flags |= uring.SQEFixedFile
	if c.d.opts.NoWait {
		sqe.OpFlags = unix.RWF_NOWAIT
	}
	sqe.UserData = uint64(idx)
	c.queued++
	return true
}

// prepSimple queues t's next step for the operations other than read and
// write.
func (c *channel) prepSimple(t *task, idx uint32) bool {
	sqe := c.ring.GetSQE()
	if sqe == nil {
		return false
	}
	switch t.op {
	case opFlush:
		sqe.PrepFsync(fileDirect, uring.FsyncDatasync)
	case opUnmap, opZeroPunch:
		sqe.PrepFallocate(fileDirect, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, t.base, t.total)
	case opZeroRange:
		sqe.PrepFallocate(fileDirect, unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, t.base, t.total)
	case opZeroWrite:
		n := min(t.total-t.done, uint64(len(c.d.zeroBuf)))
		sqe.PrepWrite(fileDirect, c.d.zeroBuf[:n], t.base+t.done)
	}
	sqe.Flags |= uring.SQEFixedFile
	sqe.UserData = uint64(idx)
	c.queued++
	return true
}

// finish completes t's IO with s and frees the task (before the
// completion callback runs, so the callback may reuse it).
func (c *channel) finish(t *task, idx uint32, s bdev.Status) {
	io := t.io
	t.io = nil
	c.free = append(c.free, idx)
	c.finished.Store(c.finished.Load() + 1)
	io.Complete(s)
}

// completeCQE advances the task the CQE belongs to.
func (c *channel) completeCQE(cqe *uring.CQE) {
	idx := uint32(cqe.UserData)
	if uint64(idx) != cqe.UserData || int(idx) >= len(c.tasks) || c.tasks[idx].io == nil {
		return // not ours; cannot happen
	}
	t := &c.tasks[idx]
	res := cqe.Res
	switch t.op {
	case opRead, opWrite:
		switch {
		case res == -int32(unix.EINVAL) && t.file == fileDirect && c.d.direct && !t.retried:
			// The kernel refused the buffers for O_DIRECT (an alignment
			// our check did not know about): once more, buffered.
			t.retried = true
			t.file = fileBuffered
			if c.prepRW(t, idx) {
				return
			}
			c.finish(t, idx, bdev.StatusFailed)
		case res == -int32(unix.EAGAIN):
			c.finish(t, idx, bdev.StatusNoMem)
		case res <= 0:
			c.finish(t, idx, bdev.StatusFailed) // error, or EOF inside the device
		default:
			t.done += uint64(res)
			if t.done >= t.total {
				c.finish(t, idx, bdev.StatusSuccess)
				return
			}
			// Short transfer: continue where it stopped.
			if !c.buildIovs(t) && c.d.direct {
				t.file = fileBuffered
			}
			if !c.prepRW(t, idx) {
				c.finish(t, idx, bdev.StatusFailed)
			}
		}
	case opFlush, opUnmap:
		if res < 0 {
			c.finish(t, idx, bdev.StatusFailed)
			return
		}
		c.finish(t, idx, bdev.StatusSuccess)
	case opZeroRange, opZeroPunch:
		switch {
		case res >= 0:
			c.finish(t, idx, bdev.StatusSuccess)
		case res == -int32(unix.EOPNOTSUPP):
			// Fall back for this IO and, from now on, for every IO.
			cur := int32(t.op - opZeroRange)
			c.d.zeroMode.CompareAndSwap(cur, cur+1)
			t.op++
			if !c.prepSimple(t, idx) {
				c.finish(t, idx, bdev.StatusFailed)
			}
		default:
			c.finish(t, idx, bdev.StatusFailed)
		}
	case opZeroWrite:
		if res <= 0 {
			c.finish(t, idx, bdev.StatusFailed)
			return
		}
		t.done += uint64(res)
		if t.done >= t.total {
			c.finish(t, idx, bdev.StatusSuccess)
			return
		}
		if !c.prepSimple(t, idx) {
			c.finish(t, idx, bdev.StatusFailed)
		}
	}
}

// poll is the channel's poller: one io_uring_enter for everything queued
// since the last poll (and for completion work the kernel deferred to this
// thread), then the completions, read from the CQ ring without a system
// call.
func (c *channel) poll(reactor.Ticks) reactor.Status {
	if c.armed {
		c.ring.SetEventfdEnabled(false)
		c.armed = false
	}
	busy := reactor.Idle
	if c.queued > 0 {
		busy = reactor.Busy
	}
	if c.queued > 0 || c.ring.TaskrunPending() || c.ring.CQOverflowPending() {
		c.enter()
	}
	for round := 0; round < cqRounds; round++ {
		n := c.ring.ReapCQEs(c.cqes[:])
		for i := 0; i < n; i++ {
			c.completeCQE(&c.cqes[i])
		}
		if n > 0 {
			busy = reactor.Busy
		}
		if c.closed.Load() {
			// The last completion's callback closed the channel (the
			// generic layer closes it when its last IO completes after
			// PutChannel): the ring is gone.
			return reactor.Busy
		}
		if c.ring.TaskrunPending() || c.ring.CQOverflowPending() {
			// The kernel posts deferred completions in bounded batches
			// (20 per entry on recent kernels): fetch the next batch,
			// submitting what the callbacks queued meanwhile.
			c.enter()
			continue
		}
		if n < len(c.cqes) {
			break
		}
	}
	if c.d.resetsPending.Load() > 0 {
		c.publishLowWater()
	}
	if c.nresets > 0 && c.checkResets() {
		busy = reactor.Busy
	}
	return busy
}

// enter submits the queued SQEs. When the kernel has completion work
// waiting for this thread (DEFER_TASKRUN), it enters with GETEVENTS so the
// completions land in the CQ ring; that call submits as well. EAGAIN and
// EBUSY leave the SQEs queued for the next poll.
func (c *channel) enter() {
	var err error
	if c.ring.TaskrunPending() {
		_, err = c.ring.SubmitAndWait(0)
	} else {
		_, err = c.ring.Submit()
	}
	if err != nil && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EBUSY) {
		c.d.submitErrors.Add(1)
	}
	c.queued = int(c.ring.SQPending())
}

// arm runs before the reactor sleeps: it turns the eventfd on when IO is
// in flight and vetoes the sleep when there is work already.
func (c *channel) arm() bool {
	if c.queued > 0 || c.nresets > 0 {
		return true
	}
	if c.started.Load() == c.finished.Load() {
		return false // nothing in flight: no completion can arrive
	}
	if c.ring.SetEventfdEnabled(true) {
		c.armed = true
	}
	return c.ring.CQReady() > 0 || c.ring.TaskrunPending() || c.ring.CQOverflowPending()
}

// reset parks io until every IO outstanding on any channel of the Disk
// has completed.
func (c *channel) reset(io *bdev.IO) {
	chans := c.d.chans.Load()
	busy := false
	for _, o := range *chans {
		if !o.idle() {
			busy = true
			break
		}
	}
	if !busy {
		io.Complete(bdev.StatusSuccess)
		return
	}
	if c.nresets == len(c.resets) {
		c.resets = append(c.resets, resetWait{}) // grows once per concurrent reset
	}
	w := &c.resets[c.nresets]
	c.nresets++
	w.io, w.chans = io, chans
	if cap(w.marks) < len(*chans) {
		w.marks = make([]uint64, len(*chans))
	}
	w.marks = w.marks[:len(*chans)]
	for i, o := range *chans {
		w.marks[i] = o.started.Load()
	}
	c.d.resetsPending.Add(1)
}

// idle reports whether the channel had nothing in flight at some instant
// during the call. finished is read first: finished never exceeds started,
// so equal values mean every task started by then had finished.
func (c *channel) idle() bool {
	f := c.finished.Load()
	return c.started.Load() == f
}

// publishLowWater publishes the smallest seq in flight. Owner only; runs
// while a reset is pending on the Disk.
func (c *channel) publishLowWater() {
	low := c.started.Load()
	for i := range c.tasks {
		if t := &c.tasks[i]; t.io != nil && t.seq < low {
			low = t.seq
		}
	}
	c.lowWater.Store(low)
}

// checkResets completes the parked resets whose marks every channel has
// passed.
func (c *channel) checkResets() bool {
	did := false
	for i := 0; i < c.nresets; {
		w := &c.resets[i]
		if !w.drained() {
			i++
			continue
		}
		io := w.io
		c.nresets--
		c.resets[i], c.resets[c.nresets] = c.resets[c.nresets], c.resets[i]
		c.resets[c.nresets].io, c.resets[c.nresets].chans = nil, nil
		c.d.resetsPending.Add(-1)
		io.Complete(bdev.StatusSuccess)
		did = true
	}
	return did
}

// drained reports whether every IO started before the reset has
// completed. lowWater only grows and is at most started at publication,
// so a stale value can make this false but never wrongly true.
func (w *resetWait) drained() bool {
	for i, o := range *w.chans {
		if o.closed.Load() || o.idle() || o.lowWater.Load() >= w.marks[i] {
			continue
		}
		return false
	}
	return true
}

// Close implements bdev.Channel. It runs on the channel's reactor after
// every IO submitted through it has completed, possibly from inside this
// channel's poller (the last completion's callback); a second call does
// nothing.
func (c *channel) Close() {
	if c.closed.Swap(true) {
		return
	}
	c.poller.Unregister()
	c.r.UnwatchFd(c.efd)
	c.ring.Close()
	unix.Close(c.efd)
	c.d.dropChannel(c)
}
