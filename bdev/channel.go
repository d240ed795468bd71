package bdev

import (
	"errors"

	"hyperpath/reactor"
)

// Sentinel validation errors; Submit maps them to StatusInvalid. They are
// values so that rejecting an IO allocates nothing.
var (
	ErrOutOfRange   = errors.New("bdev: IO range beyond the end of the device")
	ErrZeroLength   = errors.New("bdev: IO of zero blocks")
	ErrIovLength    = errors.New("bdev: iovecs do not add up to the IO length")
	ErrUnsupported  = errors.New("bdev: IO type not supported by the device")
	ErrBadIOType    = errors.New("bdev: unknown IO type")
	ErrDeviceGone   = errors.New("bdev: device is being removed")
	ErrReadOnlyDesc = errors.New("bdev: descriptor opened read-only")
)

// IOChannel is the generic layer's per-(bdev, reactor) state: the IO pool,
// the module's Channel, the deferred-completion and NoMem queues, stats and
// histograms. Every method must be called on its reactor.
type IOChannel struct {
	bdev *Bdev
	r    *reactor.Reactor
	mod  Channel
	refs int

	free []*IO // pool: a stack of IOs not in use
	all  []IO

	inSubmit    bool
	deferred    genQueue // completions that happened inside Submit
	nomem       genQueue // IOs the module bounced with StatusNoMem
	qosq        genQueue // IOs waiting for QoS tokens
	completions uint64   // finished IOs, to decide when NoMem retry is worth it
	retryMark   uint64
	outstanding int
	closing     bool
	destroyed   bool
	poller      *reactor.Poller

	stats IOStat
	hist  *chanHist
}

func newIOChannel(b *Bdev, r *reactor.Reactor, mod Channel, poolSize int) *IOChannel {
	c := &IOChannel{bdev: b, r: r, mod: mod, all: make([]IO, poolSize), free: make([]*IO, poolSize)}
	for i := range c.all {
		io := &c.all[i]
		io.ch = c
		io.inPool = true
		c.free[i] = io
	}
	c.stats.reset(ResetAll)
	c.poller = r.RegisterPoller("bdev_"+b.info.Name, c.poll, 0)
	return c
}

// Bdev returns the channel's device.
func (c *IOChannel) Bdev() *Bdev { return c.bdev }

// Reactor returns the reactor the channel belongs to.
func (c *IOChannel) Reactor() *reactor.Reactor { return c.r }

// Outstanding is the number of IOs submitted and not yet completed.
func (c *IOChannel) Outstanding() int { return c.outstanding }

// Alloc takes an IO from the pool, or returns nil when the pool is empty
// (wait for a completion and try again). The IO comes zeroed but for its
// iovec storage.
func (c *IOChannel) Alloc() *IO {
	n := len(c.free)
	if n == 0 {
		return nil
	}
	io := c.free[n-1]
	c.free = c.free[:n-1]
	io.inPool = false
	return io
}

// Release returns an IO obtained from Alloc that was never submitted.
func (c *IOChannel) Release(io *IO) { c.recycle(io) }

func (c *IOChannel) recycle(io *IO) {
	if io.inPool {
		panic("bdev: IO freed twice")
	}
	// Reset what Alloc promises (zeroed request fields) and what the layer
	// relies on; iovStore keeps its capacity for the next split.
	io.Type, io.OffsetBlocks, io.NumBlocks = 0, 0, 0
	io.Iovs, io.Ctx, io.Status = nil, nil, StatusPending
	io.DriverLink, io.DriverCtx = nil, 0
	io.cb, io.link, io.parent = nil, nil, nil
	io.remaining, io.failed, io.splitOff = 0, 0, 0
	io.iovStore = io.iovStore[:0]
	io.inPool = true
	c.free = append(c.free, io)
}

// Validate checks io against the device without submitting it.
func (c *IOChannel) Validate(io *IO) error {
	info := &c.bdev.info
	if io.Type >= numIOTypes {
		return ErrBadIOType
	}
	if !c.bdev.supported[io.Type] {
		return ErrUnsupported
	}
	if io.Type == IOReset {
		return nil
	}
	if io.NumBlocks == 0 && io.Type != IOFlush {
		return ErrZeroLength
	}
	end := io.OffsetBlocks + io.NumBlocks
	if end < io.OffsetBlocks || end > info.NumBlocks {
		return ErrOutOfRange
	}
	switch io.Type {
	case IORead, IOWrite, IOCompare:
		if io.NumBlocks > (1<<63)/uint64(info.BlockSize) || IovLen(io.Iovs) != io.NumBlocks*uint64(info.BlockSize) {
			return ErrIovLength
		}
	}
	return nil
}

// Submit starts io, which completes by calling cb on this reactor, never
// from inside Submit. A malformed IO completes with StatusInvalid.
func (c *IOChannel) Submit(io *IO, cb CompletionFunc) {
	io.cb = cb
	io.Status = StatusPending
	io.start = c.r.Clock()
	c.outstanding++
	if c.bdev.removing.Load() {
		c.completeNow(io, StatusAborted)
		return
	}
	if c.Validate(io) != nil {
		c.completeNow(io, StatusInvalid)
		return
	}
	if q := c.bdev.qosState.Load(); q != nil && (c.qosq.n > 0 || !q.allow(io)) {
		c.qosq.push(io) // keep order: nobody overtakes parked IOs
		return
	}
	c.dispatch(io)
}

// dispatch sends a validated, admitted IO to the module, split if needed.
func (c *IOChannel) dispatch(io *IO) {
	if c.needsSplit(io) {
		c.split(io)
		return
	}
	c.submitToModule(io)
}

// completeNow completes an IO that never reached the module, out of line.
func (c *IOChannel) completeNow(io *IO, s Status) {
	io.Status = s
	c.deferred.push(io)
}

func (c *IOChannel) submitToModule(io *IO) {
	was := c.inSubmit
	c.inSubmit = true
	c.mod.Submit(io)
	c.inSubmit = was
}

func (c *IOChannel) complete(io *IO, s Status) {
	if s == StatusNoMem {
		c.nomem.push(io)
		return
	}
	io.Status = s
	if c.inSubmit {
		c.deferred.push(io) // never re-enter the submitter
		return
	}
	c.finish(io)
}

func (c *IOChannel) finish(io *IO) {
	c.completions++
	if p := io.parent; p != nil {
		if io.Status != StatusSuccess && p.failed == StatusSuccess {
			p.failed = io.Status
		}
		c.recycle(io)
		p.remaining--
		if p.remaining > 0 {
			return
		}
		if p.splitOff < p.NumBlocks {
			c.splitMore(p) // next wave
			return
		}
		p.Status = p.failed
		io = p
	}
	io.end = c.r.Clock()
	lat := uint64(io.end - io.start)
	c.stats.record(io, lat)
	if s := c.bdev.histCfg.Load(); s != nil {
		if c.hist == nil || c.hist.s != s {
			c.hist = newChanHist(s) // once per bdev_enable_histogram
		}
		c.hist.record(io.Type, lat)
	} else if c.hist != nil {
		c.hist = nil
	}
	c.outstanding--
	io.cb(io)
	c.recycle(io)
	if c.closing && c.outstanding == 0 {
		c.destroy()
	}
}

// poll drains completions deferred out of Submit and retries IOs that hit
// NoMem once something completed since the last try.
func (c *IOChannel) poll(reactor.Ticks) reactor.Status {
	busy := reactor.Idle
	for n := c.deferred.n; n > 0; n-- {
		c.finish(c.deferred.pop())
		busy = reactor.Busy
	}
	if c.nomem.n > 0 && (c.completions != c.retryMark || c.outstanding == c.nomem.n) {
		c.retryMark = c.completions
		for n := c.nomem.n; n > 0; n-- {
			io := c.nomem.pop()
			if io.remaining == -1 { // a parent waiting for child IOs
				io.remaining = 0
				c.splitMore(io)
				continue
			}
			c.submitToModule(io)
		}
		busy = reactor.Busy
	}
	if c.qosq.n > 0 {
		q := c.bdev.qosState.Load()
		for c.qosq.n > 0 && (q == nil || q.allow(c.qosq.head)) {
			c.dispatch(c.qosq.pop())
			busy = reactor.Busy
		}
	}
	return busy
}

// needsSplit reports whether io must be cut at the device's maximum
// transfer size or optimal IO boundary.
func (c *IOChannel) needsSplit(io *IO) bool {
	if io.Type != IORead && io.Type != IOWrite && io.Type != IOCompare {
		return false
	}
	info := &c.bdev.info
	if info.MaxTransferBlocks != 0 && io.NumBlocks > info.MaxTransferBlocks {
		return true
	}
	if info.SplitOnBoundary && info.OptimalIOBoundary != 0 {
		b := info.OptimalIOBoundary
		return io.OffsetBlocks/b != (io.OffsetBlocks+io.NumBlocks-1)/b
	}
	return false
}

// nextPiece returns the length in blocks of the child starting at off.
func (c *IOChannel) nextPiece(off, left uint64) uint64 {
	info := &c.bdev.info
	n := left
	if info.MaxTransferBlocks != 0 && n > info.MaxTransferBlocks {
		n = info.MaxTransferBlocks
	}
	if info.SplitOnBoundary && info.OptimalIOBoundary != 0 {
		if toB := info.OptimalIOBoundary - off%info.OptimalIOBoundary; n > toB {
			n = toB
		}
	}
	return n
}

// split submits io as children that each satisfy the device's limits. The
// parent completes when the last child does, with the first failure. A
// parent needing more children than the pool holds is sent in waves: each
// wave takes what the pool has, and the next starts when it completes.
func (c *IOChannel) split(io *IO) {
	io.failed = StatusSuccess
	io.splitOff = 0
	c.splitMore(io)
}

// splitMore submits the next wave of io's children.
func (c *IOChannel) splitMore(io *IO) {
	bs := uint64(c.bdev.info.BlockSize)
	was := c.inSubmit
	c.inSubmit = true // children completing inline are deferred
	for io.splitOff < io.NumBlocks {
		ch := c.Alloc()
		if ch == nil {
			break
		}
		off := io.OffsetBlocks + io.splitOff
		n := c.nextPiece(off, io.NumBlocks-io.splitOff)
		ch.Type = io.Type
		ch.OffsetBlocks = off
		ch.NumBlocks = n
		ch.parent = io
		ch.start = io.start
		ch.iovStore = sliceIovs(ch.iovStore[:0], io.Iovs, io.splitOff*bs, n*bs)
		ch.Iovs = ch.iovStore
		io.splitOff += n
		io.remaining++
		c.mod.Submit(ch)
	}
	c.inSubmit = was
	if io.remaining == 0 {
		// Not a single child IO free: retry once something completes.
		io.remaining = -1
		c.nomem.push(io)
	}
}

// sliceIovs appends to dst the pieces of src covering [off, off+n) bytes.
func sliceIovs(dst, src [][]byte, off, n uint64) [][]byte {
	for _, v := range src {
		if n == 0 {
			break
		}
		l := uint64(len(v))
		if off >= l {
			off -= l
			continue
		}
		piece := v[off:]
		if uint64(len(piece)) > n {
			piece = piece[:n]
		}
		dst = append(dst, piece)
		n -= uint64(len(piece))
		off = 0
	}
	return dst
}

// destroy closes the module channel and folds the stats into the bdev.
func (c *IOChannel) destroy() {
	if c.destroyed { // a completion callback may have put the last ref
		return
	}
	c.destroyed = true
	c.poller.Unregister()
	c.mod.Close()
	c.bdev.channelClosed(c)
}
