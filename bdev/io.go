package bdev

import "hyperpath/reactor"

// IOType is the kind of an IO.
type IOType uint8

const (
	// IORead reads NumBlocks blocks at OffsetBlocks into Iovs.
	IORead IOType = iota
	// IOWrite writes Iovs to NumBlocks blocks at OffsetBlocks.
	IOWrite
	// IOFlush makes completed writes in the range durable.
	IOFlush
	// IOUnmap deallocates the range (reads may then return zeroes).
	IOUnmap
	// IOWriteZeroes writes zeroes to the range without a data buffer.
	IOWriteZeroes
	// IOReset aborts or drains outstanding IO and resets the device.
	IOReset
	// IOCompare compares Iovs with the range (NVMe Compare).
	IOCompare
	numIOTypes
)

// NumIOTypes is the number of IO types, for per-type tables.
const NumIOTypes = int(numIOTypes)

var ioTypeNames = [...]string{"read", "write", "flush", "unmap", "write_zeroes", "reset", "compare"}

func (t IOType) String() string {
	if int(t) < len(ioTypeNames) {
		return ioTypeNames[t]
	}
	return "unknown"
}

// ParseIOType maps SPDK's io type names ("read", "write", ...) to IOType.
func ParseIOType(s string) (IOType, bool) {
	for i, n := range ioTypeNames {
		if n == s {
			return IOType(i), true
		}
	}
	return 0, false
}

// Status is an IO's outcome: a small value, never an error, so completing
// allocates nothing.
type Status uint8

const (
	// StatusPending: submitted, not completed yet.
	StatusPending Status = iota
	// StatusSuccess: done.
	StatusSuccess
	// StatusFailed: a device or media error.
	StatusFailed
	// StatusNoMem: the module ran out of a resource; the generic layer
	// queues the IO and submits it again later. Submitters never see it.
	StatusNoMem
	// StatusAborted: aborted by a reset or a removal.
	StatusAborted
	// StatusMiscompare: an IOCompare found different data.
	StatusMiscompare
	// StatusInvalid: the IO was malformed (range, buffers, unsupported
	// type) and was not sent to the device.
	StatusInvalid
)

var statusNames = [...]string{"pending", "success", "failed", "nomem", "aborted", "miscompare", "invalid"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "unknown"
}

// CompletionFunc is called, on the submitting reactor, when an IO
// completes. The IO goes back to its channel's pool when the function
// returns: copy out what you need.
type CompletionFunc func(io *IO)

// IO is one block request. IOs come from an IOChannel's pool (Alloc) and
// belong to that channel's reactor for their whole life.
//
// Ownership: the submitter fills Type, OffsetBlocks, NumBlocks, Iovs and
// Ctx and calls IOChannel.Submit; from then on the generic layer and the
// module own the IO until the CompletionFunc runs; after it returns the IO
// is recycled.
type IO struct {
	Type         IOType
	OffsetBlocks uint64
	NumBlocks    uint64
	// Iovs are the data buffers (read, write, compare): they may point into
	// guest memory or a peer's registered region; nobody copies them.
	Iovs [][]byte
	// Ctx is the submitter's; the layer never touches it.
	Ctx any
	// Status is valid in the CompletionFunc.
	Status Status

	// DriverLink and DriverCtx are scratch space for the module that owns
	// the IO between Submit and Complete (queue links, ring slots).
	DriverLink *IO
	DriverCtx  uint64

	cb        CompletionFunc
	ch        *IOChannel
	link      *IO // generic layer queues (deferred, nomem, qos)
	start     reactor.Ticks
	end       reactor.Ticks
	parent    *IO
	remaining int    // children not yet completed (parent of a split)
	splitOff  uint64 // blocks of a split parent handed to children so far
	failed    Status // first failure among children
	iovStore  [][]byte
	inPool    bool
}

// Complete finishes the IO with s. Modules call it on the reactor the IO
// was submitted on, inside Submit or later.
func (io *IO) Complete(s Status) { io.ch.complete(io, s) }

// SubmitTicks is the reactor's Clock when Submit was called: the end of the
// last busy poller before the submitting code ran (see Reactor.Clock).
func (io *IO) SubmitTicks() reactor.Ticks { return io.start }

// CompleteTicks is the reactor's Clock when the IO completed; valid in the
// CompletionFunc. Submitters measure latency as CompleteTicks-SubmitTicks
// without reading the clock themselves.
func (io *IO) CompleteTicks() reactor.Ticks { return io.end }

// Channel returns the channel the IO belongs to.
func (io *IO) Channel() *IOChannel { return io.ch }

// BlockSize is the block size of the IO's device.
func (io *IO) BlockSize() uint32 { return io.ch.bdev.info.BlockSize }

// LenBytes is NumBlocks times the block size.
func (io *IO) LenBytes() uint64 { return io.NumBlocks * uint64(io.ch.bdev.info.BlockSize) }

// IOQueue is an intrusive FIFO of IOs linked through DriverLink, for
// modules that complete out of line. It allocates nothing.
type IOQueue struct {
	head, tail *IO
	n          int
}

// Push appends io.
func (q *IOQueue) Push(io *IO) {
	io.DriverLink = nil
	if q.tail == nil {
		q.head = io
	} else {
		q.tail.DriverLink = io
	}
	q.tail = io
	q.n++
}

// Pop removes the oldest IO, or returns nil.
func (q *IOQueue) Pop() *IO {
	io := q.head
	if io == nil {
		return nil
	}
	q.head = io.DriverLink
	if q.head == nil {
		q.tail = nil
	}
	io.DriverLink = nil
	q.n--
	return io
}

// Len is the number of queued IOs.
func (q *IOQueue) Len() int { return q.n }

// genQueue is the generic layer's own FIFO, linked through IO.link so it
// never collides with a module's DriverLink.
type genQueue struct {
	head, tail *IO
	n          int
}

func (q *genQueue) push(io *IO) {
	io.link = nil
	if q.tail == nil {
		q.head = io
	} else {
		q.tail.link = io
	}
	q.tail = io
	q.n++
}

func (q *genQueue) pop() *IO {
	io := q.head
	if io == nil {
		return nil
	}
	q.head = io.link
	if q.head == nil {
		q.tail = nil
	}
	io.link = nil
	q.n--
	return io
}

// IovLen returns the total length of iovs.
func IovLen(iovs [][]byte) uint64 {
	var n uint64
	for _, v := range iovs {
		n += uint64(len(v))
	}
	return n
}

// CopyToIovs copies src into iovs starting at byte offset off of the
// iovecs, and returns the bytes copied.
func CopyToIovs(iovs [][]byte, off uint64, src []byte) int {
	n := 0
	for _, v := range iovs {
		if off >= uint64(len(v)) {
			off -= uint64(len(v))
			continue
		}
		c := copy(v[off:], src[n:])
		off = 0
		n += c
		if n == len(src) {
			break
		}
	}
	return n
}

// CopyFromIovs copies from iovs, starting at byte offset off, into dst and
// returns the bytes copied.
func CopyFromIovs(dst []byte, iovs [][]byte, off uint64) int {
	n := 0
	for _, v := range iovs {
		if off >= uint64(len(v)) {
			off -= uint64(len(v))
			continue
		}
		c := copy(dst[n:], v[off:])
		off = 0
		n += c
		if n == len(dst) {
			break
		}
	}
	return n
}
