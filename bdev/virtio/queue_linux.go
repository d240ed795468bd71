package virtio

import (
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"hyperpath/bdev"
	"hyperpath/reactor"
	"hyperpath/vhost/virtq"
)

// Per-IO progress kept in bdev.IO.DriverCtx while the module owns the IO.
// A read, write or flush is one virtio request; a discard or write-zeroes
// range larger than the device's per-request limit is several, issued as
// slots and descriptors allow.
//
//	bits 0-39   sectors issued so far (range IOs)
//	bits 40-62  requests in flight
//	bit  63     a request failed
const (
	ctxIssuedMask  = 1<<40 - 1
	ctxInflightOne = 1 << 40
	ctxInflightMax = 1<<23 - 1
	ctxFailed      = 1 << 63
)

func ctxInflight(c uint64) uint64 { return c >> 40 & ctxInflightMax }

// slot is the per-request state of one request slot; its header, range
// segment and status byte live in the shared region (see slotSize).
type slot struct {
	io      *bdev.IO
	nchunks int
	chunks  []uint16 // bounce chunks held, [:nchunks]
}

// queue is one virtqueue with everything a request on it needs. Its
// data-path fields belong to the reactor of the channel that holds it
// (owner, guarded by Disk.mu); a queue changes hands only between
// channels, through that mutex, with no IO outstanding.
type queue struct {
	d      *Disk
	idx    int
	cfg    virtq.Config
	drv    *virtq.Driver
	kickFd int
	callFd int

	slotMem   []byte // QueueSize slots of slotSize bytes
	slotGPA   uint64
	slots     []slot
	freeSlots []uint16 // stack
	headSlot  []uint16 // descriptor head -> slot, valid while outstanding

	chunkMem   []byte // bounce chunks
	chunkGPA   uint64
	freeChunks []uint16 // stack

	out, in []virtq.Buf  // scratch for Driver.Add, cap segMax+2
	used    []virtq.Used // reaped entries; Head is replaced by the slot index
	parked  bdev.IOQueue // range IOs with requests left to issue and none in flight
	kick    [8]byte      // the eventfd increment (1)
	drain   [8]byte

	owner    *channel      // Disk.mu
	resetGen atomic.Uint64 // the failure generation the ring was last reset for

	// ctr is written by the owning channel's reactor only, with plain
	// stores (no atomic per IO); see Disk.queueCounters for how Stats
	// reads it. lastRead is Stats' last reading (Disk.mu).
	ctr      counters
	lastRead counters
}

func newQueue(d *Disk, i int) (*queue, error) {
	ql := d.lay.queues[i]
	size := uint16(d.opts.QueueSize)
	q := &queue{d: d, idx: i, kickFd: -1, callFd: -1}
	q.cfg = virtq.Config{
		Size: size, Addrs: virtq.GuestAddrs, EventIdx: d.eventIdx,
		Desc:  ql.ringOff + ql.ring.DescOff,
		Avail: ql.ringOff + ql.ring.AvailOff,
		Used:  ql.ringOff + ql.ring.UsedOff,
	}
	var err error
	if q.drv, err = virtq.NewDriver(d.mem, q.cfg); err != nil {
		return nil, err
	}
	if q.kickFd, err = eventfd(); err != nil {
		return nil, err
	}
	if q.callFd, err = eventfd(); err != nil {
		q.close()
		return nil, err
	}
	q.slotGPA = ql.slotsOff
	q.slotMem = d.region.Mem[ql.slotsOff : ql.slotsOff+uint64(size)*slotSize]
	q.slots = make([]slot, size)
	q.freeSlots = make([]uint16, size)
	q.headSlot = make([]uint16, size)
	for j := range q.slots {
		q.slots[j].chunks = make([]uint16, d.maxChunks)
		q.freeSlots[j] = uint16(int(size) - 1 - j)
	}
	chunks := d.lay.chunks
	q.chunkGPA = ql.bounceOff
	q.chunkMem = d.region.Mem[ql.bounceOff : ql.bounceOff+uint64(chunks)*d.lay.chunkSize]
	q.freeChunks = make([]uint16, chunks)
	for j := range q.freeChunks {
		q.freeChunks[j] = uint16(chunks - 1 - j)
	}
	q.out = make([]virtq.Buf, 0, d.segMax+2)
	q.in = make([]virtq.Buf, 0, d.segMax+2)
	q.used = make([]virtq.Used, reapBatch)
	q.kick[0] = 1
	return q, nil
}

func (q *queue) close() {
	if q.kickFd >= 0 {
		unix.Close(q.kickFd)
		q.kickFd = -1
	}
	if q.callFd >= 0 {
		unix.Close(q.callFd)
		q.callFd = -1
	}
}

// reset re-initialises the ring for a new back end, after every request
// on it was failed. Runs on the owner's reactor, or under Disk.mu for a
// queue nobody holds.
func (q *queue) reset(gen uint64) {
	drv, err := virtq.NewDriver(q.d.mem, q.cfg)
	if err != nil {
		// The ring was valid at attach and the region has not changed.
		panic("virtio: ring reset: " + err.Error())
	}
	q.drv = drv
	q.resetGen.Store(gen)
}

// slotBytes returns slot si's bytes in the shared region.
func (q *queue) slotBytes(si uint16) []byte {
	off := int(si) * slotSize
	return q.slotMem[off : off+slotSize : off+slotSize]
}

func (q *queue) chunk(ci uint16) []byte {
	off := uint64(ci) * q.d.lay.chunkSize
	return q.chunkMem[off : off+q.d.lay.chunkSize : off+q.d.lay.chunkSize]
}

// channel is a Disk's per-reactor state: the queue it holds and its
// poller. Everything in it is touched only on reactor r.
type channel struct {
	d      *Disk
	r      *reactor.Reactor
	q      *queue
	poller *reactor.Poller

	inPoll      bool // completions are being delivered: defer kicks to the end of the poll
	kickPending bool
	armed       bool // interrupts were enabled before the reactor slept
	closed      bool // Close ran: the queue may belong to another channel now
	inflight    int  // requests in the ring

	// held are the IOs waiting for a reconnect, linked through their
	// DriverLink (no allocation; at most the generic layer's IO pool):
	// those taken back from the ring at the loss and those submitted
	// while the device is StateReconnecting. They go out again, oldest
	// first, when the device is connected, and fail when it moves to
	// StateFailingIO or StateFailed.
	held bdev.IOQueue
}

var _ bdev.Channel = (*channel)(nil)

// Submit implements bdev.Channel. Reactor c.r only.
func (c *channel) Submit(io *bdev.IO) {
	c.r.AssertCurrent()
	if st := State(c.d.state.Load()); st != StateConnected {
		if st == StateReconnecting {
			c.hold(io)
			return
		}
		io.Complete(bdev.StatusFailed)
		return
	}
	c.submit(io)
}

// hold puts io on the held list until the device reconnects.
func (c *channel) hold(io *bdev.IO) {
	c.held.Push(io)
	c.q.ctr.held++
}

// submit puts io in the ring. Precondition: the device was connected when
// it was submitted (a loss right after is handled by the next poll, which
// takes the request back).
func (c *channel) submit(io *bdev.IO) {
	switch io.Type {
	case bdev.IORead:
		c.submitRW(io, reqIn)
	case bdev.IOWrite:
		c.submitRW(io, reqOut)
	case bdev.IOFlush:
		if c.d.acked&FeatureFlush == 0 {
			// No FLUSH feature: the device has no volatile cache
			// (VIRTIO v1.2, 5.2.5.1), so completed writes are durable.
			io.Complete(bdev.StatusSuccess)
			return
		}
		c.submitFlush(io)
	case bdev.IOUnmap, bdev.IOWriteZeroes:
		total := io.NumBlocks << c.d.sectorShift
		if total > ctxIssuedMask || io.NumBlocks > ctxIssuedMask {
			io.Complete(bdev.StatusInvalid)
			return
		}
		io.DriverCtx = 0
		if c.issueRange(io) == 0 {
			io.Complete(bdev.StatusNoMem)
			return
		}
		c.publish()
	default:
		io.Complete(bdev.StatusInvalid)
	}
}

// takeSlot pops a free slot and presets its status byte.
func (c *channel) takeSlot() (uint16, bool) {
	q := c.q
	n := len(q.freeSlots)
	if n == 0 {
		return 0, false
	}
	si := q.freeSlots[n-1]
	q.freeSlots = q.freeSlots[:n-1]
	q.slotMem[int(si)*slotSize+slotStatusOff] = statusUnset
	return si, true
}

func (c *channel) putSlot(si uint16) {
	q := c.q
	sl := &q.slots[si]
	for _, ci := range sl.chunks[:sl.nchunks] {
		q.freeChunks = append(q.freeChunks, ci)
	}
	sl.nchunks = 0
	sl.io = nil
	q.freeSlots = append(q.freeSlots, si)
}

// submitRW puts a read or write in the ring: header, data, status. The
// data descriptors point at io.Iovs themselves when they lie in the
// shared region's buffer area (zero copy); otherwise at bounce chunks.
func (c *channel) submitRW(io *bdev.IO, typ uint32) {
	q, d := c.q, c.d
	si, ok := c.takeSlot()
	if !ok {
		io.Complete(bdev.StatusNoMem)
		return
	}
	hdr := q.slotBytes(si)
	putHeader(hdr, typ, io.OffsetBlocks<<d.sectorShift)
	sgpa := q.slotGPA + uint64(si)*slotSize
	out := append(q.out[:0], virtq.Buf{Addr: sgpa + slotHdrOff, Len: slotHdrLen})
	in := q.in[:0]
	data := &out
	if typ == reqIn {
		data = &in
	}
	base := len(*data)
	bounced := false
	if !c.mapIovs(io.Iovs, data) {
		*data = (*data)[:base]
		if st := c.bounce(io, si, typ, data); st != bdev.StatusSuccess {
			c.putSlot(si)
			io.Complete(st)
			return
		}
		bounced = true
	}
	in = append(in, virtq.Buf{Addr: sgpa + slotStatusOff, Len: 1})
	if !c.add(io, si, out, in) {
		return
	}
	// Counted once the request is in the ring: a NoMem retry is not
	// another IO.
	if bounced {
		q.ctr.bounced++
		q.ctr.bouncedBytes += bdev.IovLen(io.Iovs)
	} else {
		q.ctr.zeroCopy++
	}
}

// mapIovs appends descriptors for iovs when every one lies in the
// buffer area and the request stays within seg_max and size_max.
func (c *channel) mapIovs(iovs [][]byte, data *[]virtq.Buf) bool {
	d := c.d
	limit := len(*data) + d.segMax
	sizeMax := uint64(d.cfg.SizeMax)
	for _, v := range iovs {
		n := uint64(len(v))
		if n == 0 {
			continue
		}
		a := virtq.HostAddr(v)
		if a < d.bufLo || a >= d.bufHi || n > d.bufHi-a {
			return false
		}
		gpa := a - d.base
		for n > 0 {
			piece := n
			if sizeMax != 0 && piece > sizeMax {
				piece = sizeMax
			}
			if len(*data) >= limit {
				return false
			}
			*data = append(*data, virtq.Buf{Addr: gpa, Len: uint32(piece)})
			gpa += piece
			n -= piece
		}
	}
	return true
}

// bounce takes chunks for io's payload, copies a write's data into them
// and appends their descriptors. It returns StatusNoMem when the pool is
// short for now, and StatusInvalid for an IO larger than the maximum
// transfer (which the generic layer's splitting rules out).
func (c *channel) bounce(io *bdev.IO, si uint16, typ uint32, data *[]virtq.Buf) bdev.Status {
	q, d := c.q, c.d
	total := bdev.IovLen(io.Iovs)
	cs := d.lay.chunkSize
	need := int((total + cs - 1) / cs)
	if need > d.maxChunks || total > d.maxXfer {
		return bdev.StatusInvalid
	}
	if need > len(q.freeChunks) {
		return bdev.StatusNoMem
	}
	sl := &q.slots[si]
	var off uint64
	for k := range need {
		n := len(q.freeChunks)
		ci := q.freeChunks[n-1]
		q.freeChunks = q.freeChunks[:n-1]
		sl.chunks[k] = ci
		l := min(cs, total-off)
		if typ == reqOut {
			bdev.CopyFromIovs(q.chunk(ci)[:l], io.Iovs, off)
		}
		gpa := q.chunkGPA + uint64(ci)*cs
		for p := uint64(0); p < l; p += d.unit {
			*data = append(*data, virtq.Buf{Addr: gpa + p, Len: uint32(min(d.unit, l-p))})
		}
		off += l
	}
	sl.nchunks = need
	return bdev.StatusSuccess
}

func (c *channel) submitFlush(io *bdev.IO) {
	q := c.q
	si, ok := c.takeSlot()
	if !ok {
		io.Complete(bdev.StatusNoMem)
		return
	}
	putHeader(q.slotBytes(si), reqFlush, 0)
	sgpa := q.slotGPA + uint64(si)*slotSize
	out := append(q.out[:0], virtq.Buf{Addr: sgpa + slotHdrOff, Len: slotHdrLen})
	in := append(q.in[:0], virtq.Buf{Addr: sgpa + slotStatusOff, Len: 1})
	c.add(io, si, out, in)
}

// add puts one request in the ring and publishes it. io.DriverCtx counts
// it as the IO's only request. With the ring full it completes io with
// NoMem and reports false.
func (c *channel) add(io *bdev.IO, si uint16, out, in []virtq.Buf) bool {
	q := c.q
	head, err := q.drv.Add(out, in)
	if err != nil {
		c.putSlot(si)
		io.Complete(bdev.StatusNoMem)
		return false
	}
	q.headSlot[head] = si
	q.slots[si].io = io
	io.DriverCtx = ctxInflightOne
	c.inflight++
	c.publish()
	return true
}

// issueRange puts as many of a discard or write-zeroes IO's requests in
// the ring as slots and descriptors allow, each within the device's
// per-request sector limit, and returns how many it added (not yet
// published).
func (c *channel) issueRange(io *bdev.IO) int {
	q, d := c.q, c.d
	typ, max := uint32(reqDiscard), uint64(d.cfg.MaxDiscardSectors)
	if io.Type == bdev.IOWriteZeroes {
		typ, max = reqWriteZeroes, uint64(d.cfg.MaxWriteZeroesSectors)
	}
	start := io.OffsetBlocks << d.sectorShift
	total := io.NumBlocks << d.sectorShift
	// Keep a request's sectors a multiple of the block size.
	max = max >> d.sectorShift << d.sectorShift
	if max == 0 {
		max = 1 << d.sectorShift
	}
	added := 0
	for {
		issued := io.DriverCtx & ctxIssuedMask
		if issued >= total || q.drv.NumFree() < 3 || ctxInflight(io.DriverCtx) == ctxInflightMax {
			break
		}
		si, ok := c.takeSlot()
		if !ok {
			break
		}
		n := min(total-issued, max)
		s := q.slotBytes(si)
		putHeader(s, typ, 0)
		putRangeSeg(s, start+issued, uint32(n), 0)
		sgpa := q.slotGPA + uint64(si)*slotSize
		out := append(q.out[:0], virtq.Buf{Addr: sgpa + slotHdrOff, Len: slotHdrLen},
			virtq.Buf{Addr: sgpa + slotSegOff, Len: slotSegLen})
		in := append(q.in[:0], virtq.Buf{Addr: sgpa + slotStatusOff, Len: 1})
		head, err := q.drv.Add(out, in)
		if err != nil {
			c.putSlot(si)
			break
		}
		q.headSlot[head] = si
		q.slots[si].io = io
		io.DriverCtx += n + ctxInflightOne
		c.inflight++
		added++
	}
	return added
}

// publish makes added requests visible at once and kicks the back end if
// it asks for it. While the poller delivers completions the kick decision
// waits for the end of the poll, so that requests submitted from the
// completion callbacks share at most one kick. (Publishing them together
// at the end of the poll too saves one avail.idx store per request but
// costs more than it saves against a polling back end, which then works on
// nothing while the batch is built: against our polling target, 4K QD32
// fell from 2.1-2.5M to 1.4-1.6M IOPS in alternating runs on a 16-core
// machine; against QSD it made no difference.)
func (c *channel) publish() {
	c.q.drv.Publish()
	if c.inPoll {
		c.kickPending = true
		return
	}
	if c.q.drv.NeedsKick() {
		c.doKick()
	}
}

func (c *channel) doKick() {
	q := c.q
	unix.Write(q.kickFd, q.kick[:]) // EAGAIN only if 2^64-2 kicks are unread: the back end is woken anyway
	q.ctr.kicks++
}

// complete finishes the request in slot si, which the back end returned.
func (c *channel) complete(si uint16) {
	q := c.q
	sl := &q.slots[si]
	io := sl.io
	ok := q.slotMem[int(si)*slotSize+slotStatusOff] == statusOK
	if ok && sl.nchunks > 0 && io.Type == bdev.IORead {
		cs := c.d.lay.chunkSize
		total := bdev.IovLen(io.Iovs)
		var off uint64
		for _, ci := range sl.chunks[:sl.nchunks] {
			l := min(cs, total-off)
			bdev.CopyToIovs(io.Iovs, off, q.chunk(ci)[:l])
			off += l
		}
	}
	c.putSlot(si)
	c.inflight--
	q.ctr.requests++
	c.finish(io, ok)
}

// finish accounts one finished request of io and completes io after its
// last one (issuing more of a range first).
func (c *channel) finish(io *bdev.IO, ok bool) {
	ctx := io.DriverCtx - ctxInflightOne
	if !ok {
		ctx |= ctxFailed
	}
	io.DriverCtx = ctx
	if ctxInflight(ctx) != 0 {
		return
	}
	switch {
	case ctx&ctxFailed != 0:
		io.Complete(bdev.StatusFailed)
	case (io.Type == bdev.IOUnmap || io.Type == bdev.IOWriteZeroes) && ctx&ctxIssuedMask < io.NumBlocks<<c.d.sectorShift:
		if c.issueRange(io) == 0 {
			c.q.parked.Push(io)
			return
		}
		c.publish()
	default:
		io.Complete(bdev.StatusSuccess)
	}
}

// poll is the channel's poller (reactor c.r only): it reaps completed
// requests, resubmits held IO after a reconnect, resumes parked ranges and
// sends the kick deferred meanwhile.
func (c *channel) poll(reactor.Ticks) reactor.Status {
	c.r.AssertCurrent()
	q := c.q
	if c.armed {
		c.armed = false
		q.drv.DisableInterrupts()
		unix.Read(q.callFd, q.drain[:])
	}
	if st := State(c.d.state.Load()); st != StateConnected {
		return c.pollDown(st)
	}
	c.inPoll = true
	n, err := q.drv.Reap(q.used)
	// Reap has freed the descriptors of all n requests: a completion
	// callback that submits again may get one of their heads back. Look
	// every slot up before completing any.
	for i := range q.used[:n] {
		q.used[i].Head = q.headSlot[q.used[i].Head]
	}
	for _, u := range q.used[:n] {
		c.complete(u.Head)
	}
	busy := n > 0
	if c.held.Len() > 0 && err == nil {
		c.resubmitHeld()
		busy = true
	}
	for k := q.parked.Len(); k > 0; k-- {
		io := q.parked.Pop()
		if c.issueRange(io) == 0 {
			q.parked.Push(io)
			break
		}
		c.kickPending = true
		busy = true
	}
	c.inPoll = false
	if c.kickPending {
		c.kickPending = false
		q.drv.Publish()
		if q.drv.NeedsKick() {
			c.doKick()
		}
	}
	if err != nil {
		c.d.ringBroken(q, err)
		return reactor.Busy
	}
	if busy {
		return reactor.Busy
	}
	return reactor.Idle
}

// resubmitHeld puts held IO in the ring after a reconnect, oldest first,
// while request slots are free; the rest waits for the next poll. An IO
// the ring has no descriptors for completes with NoMem and the generic
// layer retries it. Called from poll with inPoll set.
func (c *channel) resubmitHeld() {
	for n := c.held.Len(); n > 0 && len(c.q.freeSlots) > 0; n-- {
		c.submit(c.held.Pop())
	}
}

// pollDown is the poller while the device is not connected. It takes
// every request back from the ring (their IOs go to the held list in
// StateReconnecting; pollDown fails them in the other states), resets
// the ring once a reconnect asks for it, and fails held IO unless the
// device is StateReconnecting.
func (c *channel) pollDown(st State) reactor.Status {
	q := c.q
	busy := reactor.Idle
	if c.inflight > 0 || q.parked.Len() > 0 {
		c.takeBack()
		busy = reactor.Busy
	}
	c.kickPending = false
	if g := c.d.resetReq.Load(); g != q.resetGen.Load() && c.inflight == 0 {
		q.reset(g)
		q.drv.DisableInterrupts()
	}
	if st != StateReconnecting && c.held.Len() > 0 {
		// A failed IO's callback may submit again: that IO fails inside
		// Submit (deferred by the generic layer), so the loop is bounded
		// by what was held when it started.
		for n := c.held.Len(); n > 0; n-- {
			c.held.Pop().Complete(bdev.StatusFailed)
		}
		busy = reactor.Busy
	}
	return busy
}

// takeBack empties the ring after the connection was lost: every request
// slot is freed (with its bounce chunks) and each IO whose requests are
// all back goes to the held list, to be submitted again from the start
// (reads, writes, flushes, discards and write-zeroes are all safe to
// repeat). An IO the back end already failed part of completes with
// StatusFailed instead. Parked ranges are held too. Whatever the back end
// wrote into a read's buffers before it died is overwritten by the
// resubmitted read. Reactor c.r only; the old back end no longer serves
// the ring (its connection is closed or it died).
func (c *channel) takeBack() {
	q := c.q
	for si := range q.slots {
		io := q.slots[si].io
		if io == nil {
			continue
		}
		c.putSlot(uint16(si))
		c.inflight--
		io.DriverCtx -= ctxInflightOne
		if ctxInflight(io.DriverCtx) != 0 {
			continue // more of this range IO's requests are in the ring
		}
		if io.DriverCtx&ctxFailed != 0 {
			io.Complete(bdev.StatusFailed)
			continue
		}
		c.hold(io)
	}
	for q.parked.Len() > 0 {
		c.hold(q.parked.Pop())
	}
}

// arm is the poller's Arm hook: before the reactor sleeps it asks the
// back end for a call on the next completion, and vetoes the sleep when
// completions (or work of our own) are already waiting. While the device
// is down the reactor may sleep once the ring is empty and reset: state
// changes wake it by a message.
func (c *channel) arm() bool {
	if st := State(c.d.state.Load()); st != StateConnected {
		return c.inflight > 0 || c.q.parked.Len() > 0 ||
			(c.d.resetReq.Load() != c.q.resetGen.Load()) ||
			(st != StateReconnecting && c.held.Len() > 0)
	}
	c.armed = true
	return c.q.drv.EnableInterrupts() || c.q.parked.Len() > 0 || c.kickPending || c.held.Len() > 0
}

// counterRead asks a channel's reactor for its queue's counters.
type counterRead struct {
	c    *channel
	v    counters
	ok   bool // false: the channel was closed, its queue may have moved
	done chan struct{}
}

func readCountersMsg(arg any) {
	r := arg.(*counterRead)
	if !r.c.closed {
		r.v, r.ok = r.c.q.ctr, true
	}
	close(r.done)
}

// readCounters reads the counters of c's queue on c's reactor and waits
// up to timeout for the answer. Control plane; call it from outside that
// reactor. An abandoned request is written by the reactor later and read
// by nobody.
func (c *channel) readCounters(timeout time.Duration) (counters, bool) {
	r := &counterRead{c: c, done: make(chan struct{})}
	deadline := time.Now().Add(timeout)
	for reactor.Send(c.r, readCountersMsg, r) == reactor.ErrRingFull {
		if time.Now().After(deadline) {
			return counters{}, false
		}
		time.Sleep(time.Millisecond)
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-r.done:
		return r.v, r.ok
	case <-t.C:
		return counters{}, false
	}
}

// runningElsewhere reports whether r runs (Run) on a thread other than
// the caller's. Run locks its goroutine to its thread, so a caller on
// that thread is the reactor itself.
func runningElsewhere(r *reactor.Reactor) bool {
	tid := r.Tid()
	return tid != 0 && tid != unix.Gettid()
}

// Close implements bdev.Channel. It runs on the channel's reactor after
// its IO completed.
func (c *channel) Close() {
	c.r.AssertCurrent()
	c.closed = true
	c.poller.Unregister()
	c.r.UnwatchFd(c.q.callFd)
	c.d.releaseQueue(c)
}
