package perf

import (
	"encoding/binary"
	"encoding/hex"
	"math/bits"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"hyperpath/bdev"
	"hyperpath/internal/hugemem"
	"hyperpath/reactor"
)

// Histogram range: latencies are recorded in nanoseconds from 1 ns to one
// hour with 3 significant digits; longer ones are clamped to the top so
// that recording never fails (a failed RecordValue would allocate its
// error).
const (
	histLowestNs  = 1
	histHighestNs = 3600 * 1_000_000_000
	histSigFigs   = 3
)

func newHist() *hdr.Histogram { return hdr.New(histLowestNs, histHighestNs, histSigFigs) }

// maxDetails bounds the miscompares and IO errors a job keeps the details
// of; the counters go on counting.
const maxDetails = 8

// Miscompare describes one verify read that returned other data than the
// job wrote there.
type Miscompare struct {
	// OffsetBlocks is where the IO started; LBA is the block that differs
	// and ByteOffset the first differing byte within it (8-byte aligned).
	OffsetBlocks uint64 `json:"offset_blocks"`
	LBA          uint64 `json:"lba"`
	ByteOffset   int    `json:"byte_offset"`
	// Expected and Got are the 16 bytes from ByteOffset (fewer at the end
	// of the block). Bytes 0-7 of a block hold its LBA, 8-15 the run's
	// seed and 16-23 the write's sequence number (see the pattern doc).
	Expected HexBytes `json:"expected"`
	Got      HexBytes `json:"got"`
}

// HexBytes is a byte string that marshals as hexadecimal text.
type HexBytes []byte

// MarshalText implements encoding.TextMarshaler.
func (h HexBytes) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }

// IOError describes one IO that completed with a status other than
// success.
type IOError struct {
	Type         bdev.IOType `json:"-"`
	TypeName     string      `json:"type"`
	OffsetBlocks uint64      `json:"offset_blocks"`
	NumBlocks    uint64      `json:"num_blocks"`
	Status       bdev.Status `json:"-"`
	StatusName   string      `json:"status"`
}

// miscompareRec is the allocation-free form of Miscompare kept on the
// reactor.
type miscompareRec struct {
	offsetBlocks, lba uint64
	byteOffset, n     int
	expected, got     [16]byte
}

// Verify slot phases.
const (
	phaseWrite uint8 = iota // the next IO writes the pattern
	phaseRead               // the next IO reads it back
)

// slot is one of a job's QueueDepth outstanding IOs: its buffer and, for
// verify, the region of the job's range it alone writes.
type slot struct {
	buf   []byte
	iov   [1][]byte
	start reactor.Ticks

	// Verify state. The slot owns IOs [regionBase, regionBase+regionIOs)
	// of the job's range and walks them in order.
	phase      uint8
	regionBase uint64
	regionIOs  uint64
	cursor     uint64
	seq        uint64
}

// counters are a job's running totals. IOs, bytes, latencies and failures
// count completions inside the measured window; miscompares and errors
// count every completion.
type counters struct {
	ios, bytes, failed    uint64
	latSumNs              uint64
	latMinNs, latMaxNs    uint64
	miscompares, ioErrors uint64
}

// job drives one bdev from one reactor. Every field below the setup ones
// belongs to that reactor once the job is set up; the control plane reads
// them only after done is closed, or through a message (snapshot).
type job struct {
	// Set up on the control plane before the job reaches its reactor.
	id        int
	bdevName  string
	r         *reactor.Reactor
	desc      *bdev.Desc
	mem       *hugemem.Region
	devBuf    []byte          // buffers from the device's shared memory
	devAlloc  BufferAllocator // who to give devBuf back to
	wl        Workload
	typ       bdev.IOType // the IO type of single-type workloads
	readPct   uint64
	bs        uint64
	ioBlocks  uint64
	base      uint64 // first block of the job's range
	numIOs    uint64 // IO-sized units in the range
	seed      uint64
	durTicks  reactor.Ticks
	nsPerTick uint64 // ticks to ns as a 32.32 fixed-point factor (see ticksToNs)
	slots     []slot
	done      chan struct{} // closed by the reactor when the job is over
	launched  bool          // control plane: the start message was sent

	// Reactor-owned.
	ch          *bdev.IOChannel
	poller      *reactor.Poller
	cb          bdev.CompletionFunc
	rng         xorshift
	cursor      uint64
	parked      []*slot // slots waiting for a free bdev IO (cap QueueDepth)
	outstanding int
	started     bool
	draining    bool
	interrupted bool
	finished    bool
	startTicks  reactor.Ticks
	deadline    reactor.Ticks
	stopTicks   reactor.Ticks
	c           counters
	hist        *hdr.Histogram
	mis         [maxDetails]miscompareRec
	nmis        int
	errs        [maxDetails]IOError
	nerrs       int
	wlog        *writeBuf // Config.WriteLog's buffers for this job, or nil
}

// jobParams are what newJob needs besides the bdev.
type jobParams struct {
	id         int
	r          *reactor.Reactor
	desc       *bdev.Desc
	base, nblk uint64
	cfg        *Config
	seed       uint64
}

// newJob builds a job and its buffers. Control plane.
func newJob(p jobParams) (*job, error) {
	cfg := p.cfg
	info := p.desc.Bdev().Info()
	bs := uint64(info.BlockSize)
	j := &job{
		id: p.id, bdevName: info.Name, r: p.r, desc: p.desc, wl: cfg.Workload,
		readPct: uint64(cfg.ReadPercent), bs: bs, ioBlocks: uint64(cfg.IOSizeBytes) / bs,
		base: p.base, seed: p.seed,
		durTicks:  reactor.TicksFromDuration(cfg.Duration),
		nsPerTick: uint64(1e9 * (1 << 32) / float64(reactor.TickRate())),
		slots:     make([]slot, cfg.QueueDepth),
		parked:    make([]*slot, 0, cfg.QueueDepth),
		done:      make(chan struct{}),
		rng:       newXorshift(p.seed ^ uint64(p.id)*0x9e3779b97f4a7c15),
		hist:      newHist(),
	}
	j.numIOs = p.nblk / j.ioBlocks
	j.c.latMinNs = ^uint64(0)
	if t := cfg.Workload.ioTypes(); len(t) == 1 {
		j.typ = t[0]
	}
	if cfg.Workload == Verify {
		per := j.numIOs / uint64(cfg.QueueDepth)
		for i := range j.slots {
			j.slots[i].regionBase = uint64(i) * per
			j.slots[i].regionIOs = per
		}
	}
	if cfg.Workload.needsBuffers() {
		size := cfg.QueueDepth * cfg.IOSizeBytes
		var buf []byte
		// A device that shares memory with its back end (bdev/virtio)
		// hands out buffers from that memory so IO needs no bounce copy.
		if ba, ok := p.desc.Bdev().Device().(BufferAllocator); ok {
			if buf = ba.AllocBuffer(size); buf != nil {
				j.devBuf, j.devAlloc = buf, ba
			}
		}
		if buf == nil {
			mem, err := hugemem.Alloc("bdevperf-"+info.Name, size, cfg.Buffers)
			if err != nil {
				return nil, err
			}
			j.mem, buf = mem, mem.Mem
		}
		if cfg.Workload != Verify {
			// Writes carry arbitrary but non-trivial data, filled once.
			x := newXorshift(p.seed)
			for i := 0; i+8 <= size; i += 8 {
				binary.LittleEndian.PutUint64(buf[i:], x.next())
			}
		}
		for i := range j.slots {
			s := &j.slots[i]
			s.buf = buf[i*cfg.IOSizeBytes : (i+1)*cfg.IOSizeBytes : (i+1)*cfg.IOSizeBytes]
			s.iov[0] = s.buf
		}
	}
	if cfg.WriteLog != nil {
		j.wlog = cfg.WriteLog.add(p.r, j.done, WriteLogJob{Job: p.id, Bdev: info.Name, BlockSize: info.BlockSize, Seed: p.seed})
	}
	j.cb = j.complete
	return j, nil
}

// setup creates the job's bdev channel and poller. Runs on j.r.
func (j *job) setup() error {
	ch, err := j.desc.GetChannel(j.r)
	if err != nil {
		return err
	}
	j.ch = ch
	j.poller = j.r.RegisterPoller("bdevperf_"+j.bdevName, j.poll, 0)
	return nil
}

// teardown undoes setup for a job that never started. Runs on j.r.
func (j *job) teardown() {
	if j.poller != nil {
		j.poller.Unregister()
	}
	if j.ch != nil {
		j.ch.PutChannel()
		j.ch = nil
	}
}

// start submits the first QueueDepth IOs. Runs on j.r.
func (j *job) start(now reactor.Ticks) {
	j.started = true
	j.startTicks = now
	j.deadline = now + j.durTicks
	j.stopTicks = j.deadline
	for i := range j.slots {
		j.next(&j.slots[i], now)
	}
}

// stop ends the measured window early (an interrupt, a hot removal). Runs
// on j.r.
func (j *job) stop(now reactor.Ticks) {
	if j.draining || j.finished {
		return
	}
	j.draining = true
	j.interrupted = true
	if now < j.stopTicks {
		j.stopTicks = now
	}
}

// next submits slot s's next IO. now is when it counts as submitted.
// Hot path: no allocation, no locks.
func (j *job) next(s *slot, now reactor.Ticks) {
	io := j.ch.Alloc()
	if io == nil {
		// The channel's IO pool is exhausted (QueueDepth above the
		// registry's pool size); the poller retries.
		j.parked = append(j.parked, s)
		return
	}
	io.NumBlocks = j.ioBlocks
	typ := j.typ
	switch {
	case j.wl == Verify:
		io.OffsetBlocks = j.base + (s.regionBase+s.cursor)*j.ioBlocks
		if s.phase == phaseWrite {
			typ = bdev.IOWrite
			fillPattern(s.buf, int(j.bs), io.OffsetBlocks, j.seed, s.seq)
		} else {
			typ = bdev.IORead
			clear(s.buf) // a read that moves no data must not pass
		}
		now = reactor.Now()
	case j.wl.Random():
		io.OffsetBlocks = j.base + j.rng.below(j.numIOs)*j.ioBlocks
	default:
		io.OffsetBlocks = j.base + j.cursor*j.ioBlocks
		if j.cursor++; j.cursor == j.numIOs {
			j.cursor = 0
		}
	}
	if j.wl.Mixed() {
		typ = bdev.IOWrite
		if j.rng.below(100) < j.readPct {
			typ = bdev.IORead
		}
	}
	io.Type = typ
	if j.wl.needsBuffers() {
		io.Iovs = s.iov[:]
	}
	io.Ctx = s
	s.start = now
	j.outstanding++
	j.ch.Submit(io, j.cb)
}

// complete is the jobs' bdev.CompletionFunc: account, verify, resubmit.
// Hot path.
func (j *job) complete(io *bdev.IO) {
	s := io.Ctx.(*slot)
	now := io.CompleteTicks() // the bdev layer read the clock already
	j.outstanding--
	if !j.draining && now >= j.deadline {
		j.draining = true
	}
	counted := !j.draining
	ok := io.Status == bdev.StatusSuccess
	if !ok {
		j.recordError(io)
	}
	if j.wl == Verify {
		if s.phase == phaseWrite && ok {
			if j.wlog != nil {
				j.wlog.push(io.OffsetBlocks, io.NumBlocks, s.seq)
			}
			s.phase = phaseRead
		} else {
			if s.phase == phaseRead && ok {
				j.check(s, io.OffsetBlocks)
			}
			s.phase = phaseWrite
			s.seq++
			if s.cursor++; s.cursor == s.regionIOs {
				s.cursor = 0
			}
		}
	}
	if counted {
		if ok {
			j.c.ios++
			j.c.bytes += j.ioBlocks * j.bs
			var ns uint64
			if now > s.start {
				ns = min(ticksToNs(uint64(now-s.start), j.nsPerTick), histHighestNs)
			}
			j.c.latSumNs += ns
			j.c.latMinNs = min(j.c.latMinNs, ns)
			j.c.latMaxNs = max(j.c.latMaxNs, ns)
			_ = j.hist.RecordValue(int64(ns)) // in range: cannot fail
		} else {
			j.c.failed++
		}
	}
	if j.draining {
		return // the poller finishes the job once nothing is outstanding
	}
	j.next(s, now)
}

// ticksToNs scales ticks by a 32.32 fixed-point factor: a 64x64-bit
// multiply instead of two float conversions per IO, exact to 2^-32 ns
// per tick and free of overflow for any tick count below 2^63.
func ticksToNs(ticks, factor uint64) uint64 {
	hi, lo := bits.Mul64(ticks, factor)
	return hi<<32 | lo>>32
}

func (j *job) recordError(io *bdev.IO) {
	j.c.ioErrors++
	if j.nerrs < maxDetails {
		j.errs[j.nerrs] = IOError{Type: io.Type, OffsetBlocks: io.OffsetBlocks, NumBlocks: io.NumBlocks, Status: io.Status}
		j.nerrs++
	}
}

// check compares a verify read with the pattern the slot wrote there.
func (j *job) check(s *slot, off uint64) {
	at := checkPattern(s.buf, int(j.bs), off, j.seed, s.seq)
	if at < 0 {
		return
	}
	j.c.miscompares++
	if j.nmis == maxDetails {
		return
	}
	m := &j.mis[j.nmis]
	j.nmis++
	bs := int(j.bs)
	blk := at / bs
	m.offsetBlocks = off
	m.lba = off + uint64(blk)
	m.byteOffset = at % bs
	end := min(at+16, (blk+1)*bs)
	m.n = end - at
	copy(m.got[:], s.buf[at:end])
	for w := 0; w*8 < m.n; w++ {
		word := patternWord(m.lba, j.seed, s.seq, m.byteOffset/8+w)
		binary.LittleEndian.PutUint64(m.expected[w*8:], word)
	}
}

// poll resubmits parked slots, ends the window at the deadline even when
// no IO completes, and finishes the job once it has drained. Runs on j.r.
func (j *job) poll(now reactor.Ticks) reactor.Status {
	if !j.started || j.finished {
		return reactor.Idle
	}
	busy := reactor.Idle
	if !j.draining && now >= j.deadline {
		j.draining = true
	}
	if j.draining {
		j.parked = j.parked[:0]
		if j.outstanding == 0 {
			j.finish()
			busy = reactor.Busy
		}
		return busy
	}
	for len(j.parked) > 0 {
		n := len(j.parked)
		s := j.parked[n-1]
		j.parked = j.parked[:n-1]
		j.next(s, reactor.Now())
		busy = reactor.Busy
		if len(j.parked) == n { // parked again: the pool is still empty
			break
		}
	}
	return busy
}

// finish releases the job's channel and poller and signals the control
// plane. Runs on j.r from the job's poller, once the last IO's completion
// callback has returned and the generic layer has recycled that IO.
func (j *job) finish() {
	j.finished = true
	j.poller.Unregister()
	j.ch.PutChannel()
	j.ch = nil
	close(j.done)
}

// snapshot is a job's progress as the control plane sees it.
type snapshot struct {
	ios, bytes, failed, miscompares, ioErrors uint64
}

func (j *job) snapshot() snapshot {
	return snapshot{ios: j.c.ios, bytes: j.c.bytes, failed: j.c.failed, miscompares: j.c.miscompares, ioErrors: j.c.ioErrors}
}

// Messages (top-level funcs and pointer args: Send allocates nothing).
func msgStart(arg any) { j := arg.(*job); j.start(reactor.Now()) }
func msgStop(arg any)  { j := arg.(*job); j.stop(reactor.Now()) }

// BufferAllocator is implemented by devices whose IO buffers are best taken
// from memory they share with their back end (bdev/virtio): IO on such
// buffers needs no copy. Called at job setup, never per IO.
type BufferAllocator interface {
	AllocBuffer(size int) []byte
	FreeBuffer(b []byte)
}

// freeBuffers returns the job's IO buffers to where they came from.
func (j *job) freeBuffers() {
	if j.mem != nil {
		j.mem.Free()
		j.mem = nil
	}
	if j.devBuf != nil {
		j.devAlloc.FreeBuffer(j.devBuf)
		j.devBuf = nil
	}
}
