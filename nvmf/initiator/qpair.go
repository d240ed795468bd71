package initiator

import (
	"errors"
	"math"

	"golang.org/x/sys/unix"

	"hyperpath/nvmf/proto"
	"hyperpath/reactor"
)

// Op is the kind of an I/O command built by QPair.Submit.
type Op uint8

const (
	// OpRead is an NVM Read; the data arrives in C2HData PDUs and is
	// received straight into Cmd.Iovs.
	OpRead Op = iota + 1
	// OpWrite is an NVM Write; the data goes in capsule when it fits the
	// controller's IOCCSZ, else by R2T/H2CData, written straight from
	// Cmd.Iovs.
	OpWrite
	// OpCompare is an NVM Compare; its data travels like a write's.
	OpCompare
	// OpFlush is a Flush of the namespace.
	OpFlush
	// OpWriteZeroes is an NVM Write Zeroes (no data).
	OpWriteZeroes
	// OpDeallocate is a Dataset Management with the Deallocate attribute
	// over Cmd.Ranges (at most MaxRanges), sent in capsule.
	OpDeallocate
)

// MaxRanges bounds the ranges of one OpDeallocate command; each request
// slot carries that much in-capsule room.
const MaxRanges = 16

// DoneFunc is called on the queue pair's owner (its reactor) when a
// command completes. cpl is valid only during the call. Commands that never
// reached the controller complete with a status the host made up:
// proto.StatusHostPathingError when the connection was lost and the command
// is not held, proto.StatusAbortedByHost when the controller was closed.
type DoneFunc func(ctx any, cpl *proto.CQE)

// Cmd is one I/O command for QPair.Submit. Submit copies what it needs;
// the caller may reuse the Cmd at once but must leave the data buffers
// alone until Done runs.
type Cmd struct {
	Op   Op
	NSID uint32
	SLBA uint64
	// NLB is the block count, 1..65536 (read, write, compare, write
	// zeroes).
	NLB uint32
	// FUA sets Force Unit Access (read, write).
	FUA bool
	// Deallocate sets DEAC on a Write Zeroes.
	Deallocate bool
	// Ranges are the ranges of an OpDeallocate.
	Ranges []proto.DSMRange
	// Iovs, IovOffset and LenBytes are the data of a read, write or
	// compare: LenBytes bytes starting IovOffset bytes into Iovs.
	Iovs      [][]byte
	IovOffset uint64
	LenBytes  uint32
	// Done is called with Ctx when the command completes.
	Done DoneFunc
	Ctx  any
}

// reqState is where a command slot is in its life.
type reqState uint8

const (
	// reqFree: in the free stack.
	reqFree reqState = iota
	// reqHeld: accepted while the queue pair has no connection; waits in
	// the held FIFO to be started when one is installed.
	reqHeld
	// reqActive: its capsule is queued or sent; it waits for R2T, C2HData
	// or its CapsuleResp (and for its own PDUs to leave the tx queue).
	reqActive
)

// maxHdr is room for any PDU header we send: a CapsuleCmd (72) or H2CData
// (24) header, its digest, and padding to a CPDA of up to 128 bytes.
const maxHdr = 128

// request is one command slot of a QPair; its index is the command's CID.
// It belongs to the queue pair's owner.
type request struct {
	cid   uint16
	state reqState
	next  int32 // held FIFO link, -1 at the tail

	sqe     proto.SQE
	xfer    proto.Xfer
	iovs    [][]byte
	iovOff  uint64
	dataLen uint32
	// inCapsule: the data follows the SQE in the CapsuleCmd.
	inCapsule bool

	c2hGot  uint32 // C2H data bytes received (the next DATAO expected)
	h2cSent uint32 // H2C data bytes fully written (the next R2TO expected)
	r2tEnd  uint32 // end of the R2T window being answered
	ttag    uint16
	// txRefs counts this request's PDUs in the tx queue: a command
	// completes only once none of its buffers is referenced any more.
	txRefs   uint8
	respDone bool
	ddgstErr bool
	cqe      proto.CQE

	done DoneFunc
	ctx  any

	seq      uint32       // start sequence number (readOrder)
	hdr      [maxHdr]byte // CapsuleCmd header
	h2cHdr   [maxHdr]byte // H2CData header (one H2CData PDU in flight at a time)
	ddgst    [proto.DigestLen]byte
	h2cDdgst [proto.DigestLen]byte
	dsm      [MaxRanges * proto.DSMRangeSize]byte
	dsmIov   [1][]byte
}

// pduKind says what a tx queue entry is.
type pduKind uint8

const (
	pduCapsule pduKind = iota // a CapsuleCmd, maybe with in-capsule data
	pduH2C                    // an H2CData answering an R2T
	pduTerm                   // an H2CTermReq; the connection closes after it
)

// txPDU is one PDU waiting in the tx queue: its header bytes, a byte range
// of its request's data (sent from the caller's buffers, never copied) and
// the data digest.
type txPDU struct {
	kind    pduKind
	req     *request
	hdr     []byte
	dataOff uint32
	dataLen uint32
	ddgst   []byte
}

func (p *txPDU) size() int { return len(p.hdr) + int(p.dataLen) + len(p.ddgst) }

// qpMode says what Submit does while the queue pair has no connection.
type qpMode uint8

const (
	// modeHold: accept commands and hold them until a connection is
	// installed (reconnect in progress).
	modeHold qpMode = iota
	// modeFailFast: fail commands at once (fast_io_fail_timeout_sec
	// passed, or the controller failed without a reconnect policy).
	modeFailFast
	// modeClosed: the controller is gone; fail everything for good.
	modeClosed
)

const (
	iovMax   = 64 // iovecs per readv/writev
	rxBudget = 32 // reads per poll
	// txEager is the number of queued PDUs that receive writes at once,
	// between reads: commands resubmitted from completions reach the
	// controller while the rest of a burst of responses is read, so that
	// host and controller work at the same time instead of taking turns.
	txEager = 8
	padMax  = 128 // largest PAD before C2H data (HPDA is 0: none in practice)
	// specMax bounds the data of the reads one speculative readv takes
	// together with their C2HData headers, and specPDUs their number (see
	// specPlan).
	specMax  = 64 << 10
	specPDUs = 8
	// specCooldown is the number of reads planned without speculation
	// after a single guess failed.
	specCooldown = 64
	// specHdrMax is the room for one header in a speculative read: a
	// C2HData header with its header digest.
	specHdrMax = 32
	// rxBufSize holds a batch of headers, or, after a failed speculation,
	// the bytes of the stream from the first header that did not match.
	rxBufSize = specMax + (specPDUs+1)*(specHdrMax+proto.DigestLen)
)

// QPair is one NVMe/TCP queue pair (the admin queue or an I/O queue) as the
// host sees it: a pool of command slots whose indexes are the CIDs, a tx
// queue of PDUs written with writev straight from the callers' buffers, and
// a receive state machine that reads C2H data straight into them.
//
// Ownership: a QPair belongs to one goroutine at a time. I/O queue pairs
// and the admin queue pair belong to their reactor, which polls them; the
// control goroutine only reaches them with reactor messages. A queue pair
// being set up (Connect, Identify, ...) belongs to the control goroutine,
// which drives it in sync mode with poll(2), and hands its connection over
// to the long-lived QPair on the reactor afterwards. Nothing in a QPair is
// locked.
//
// Across reconnects the QPair stays; only its connection is replaced. When
// the connection is lost, active commands of an I/O queue pair are held
// (modeHold) and started again on the next connection, or failed
// (modeFailFast, modeClosed).
type QPair struct {
	qid    uint16
	r      *reactor.Reactor // nil while in sync mode
	c      *conn            // nil while disconnected
	holdIO bool             // I/O queue: hold commands over a connection loss
	mode   qpMode
	poller *reactor.Poller
	watch  bool // the socket is watched by the reactor (I/O queue pairs)

	// inCapsuleMax is the most data sent in capsule: 8192 on the admin
	// queue (NVMe/TCP 1.0 §3.3), IOCCSZ*16-64 on I/O queues.
	inCapsuleMax uint32

	reqs      []request
	free      []uint16
	heldHead  int32
	heldTail  int32
	held      int
	active    int
	c2hActive int // active commands that receive C2H data

	tx     []txPDU
	txHead int
	txN    int
	txSent int // bytes of the head PDU already written
	txIov  [iovMax]unix.Iovec

	rxBuf     [rxBufSize]byte
	rxStart   int
	rxEnd     int
	rxWant    int
	rxBody    bool // inside the body of a C2HData PDU
	rxPad     int
	rxData    uint32
	rxDigest  int
	rxDataOff uint32 // next data offset of the current C2HData
	rxPDUOff  uint32 // DATAO of the current C2HData
	rxPDULen  uint32
	rxLast    bool
	rxSuccess bool
	rxReq     *request
	rxMore    bool // the last poll stopped on its budget
	// Speculative read (specPlan): the read in flight was planned as the
	// C2HData PDUs of specReqs[:specN] (header, whole data, data digest),
	// one after the other, then the next header.
	spec       bool
	specN      int
	specK      int // how many PDUs to predict: halved by a miss, doubled by a hit
	specOff    int // reads left without speculation after a miss at specK 1
	specDg     int
	specReqs   [specPDUs]*request
	specHdr    [specPDUs][specHdrMax]byte
	specTail   [specHdrMax]byte // the next header, when specTailOn
	specTailOn bool
	specDig    [specPDUs][proto.DigestLen]byte
	// readOrder lists reads in the order their commands were queued
	// (CID and sequence number), the order a controller usually answers
	// them in; entries of completed commands are skipped.
	readOrder []orderEntry
	orderHead int
	orderN    int
	seq       uint32
	succSeen  bool // the controller's last C2HData had SUCCESS set
	// respDue: the last PDU was a command's last C2HData without SUCCESS,
	// so its CapsuleResp is (most likely) next.
	respDue bool
	// c2hWhole is the longest read the controller answered with one
	// C2HData PDU, c2hSplit the shortest it split (no limit until seen):
	// only reads it is known to answer whole are guessed, except at
	// queue depth 1.
	c2hWhole  uint32
	c2hSplit  uint32
	rxDdgst   [proto.DigestLen]byte
	rxScratch [padMax]byte
	rxIov     [iovMax]unix.Iovec
	hdr       proto.PDUHeader

	cpl     proto.CQE // completion handed to DoneFunc
	termHdr [proto.MaxTermReqPLen]byte

	// onLoss is called, on the owner, after the connection was torn down.
	onLoss  func(q *QPair, err error)
	lastErr error

	// Counters, owner only.
	stats QPairStats
}

// QPairStats are a queue pair's counters.
type QPairStats struct {
	Submitted   uint64
	Completed   uint64
	Resubmitted uint64 // held commands started on a new connection
	Failed      uint64 // completed by the host without the controller
	DigestErrs  uint64
	Reads       uint64 // readv calls
	Writes      uint64 // writev calls
	Copied      uint64 // payload bytes that had to be copied (0 with a well-behaved controller)
	Speculated  uint64 // C2HData PDUs read speculatively with their data
	SpecMisses  uint64 // speculative reads whose guess was wrong
}

// orderEntry is one read in QPair.readOrder.
type orderEntry struct {
	cid uint16
	seq uint32
}

// newQPair returns a disconnected queue pair with depth command slots.
func newQPair(qid uint16, depth int, holdIO bool) *QPair {
	q := &QPair{qid: qid, holdIO: holdIO, heldHead: -1, heldTail: -1}
	q.reqs = make([]request, depth)
	q.free = make([]uint16, depth)
	for i := range q.reqs {
		q.reqs[i].cid = uint16(i)
		q.reqs[i].next = -1
		q.free[i] = uint16(depth - 1 - i)
	}
	// Each request has at most one PDU queued at a time (its capsule, then
	// one H2CData per R2T chunk), plus a TermReq.
	q.tx = make([]txPDU, depth+2)
	q.readOrder = make([]orderEntry, 2*depth)
	q.c2hSplit = math.MaxUint32
	q.specK = 1
	return q
}

// QID returns the queue ID (0 for the admin queue).
func (q *QPair) QID() uint16 { return q.qid }

// Reactor returns the reactor that owns the queue pair (nil in sync mode).
func (q *QPair) Reactor() *reactor.Reactor { return q.r }

// Connected reports whether the queue pair has a connection. Owner only.
func (q *QPair) Connected() bool { return q.c != nil }

// Outstanding is the number of commands submitted and not completed,
// held ones included. Owner only.
func (q *QPair) Outstanding() int { return q.active + q.held }

// Depth is the most commands the queue pair holds at once.
func (q *QPair) Depth() int { return len(q.reqs) }

// Stats returns the counters. Owner only.
func (q *QPair) Stats() QPairStats { return q.stats }

// Submit starts c. It returns ErrQueueFull when every slot is taken,
// ErrPathFailed when there is no connection and commands are not held,
// ErrClosed after the controller was closed, ErrBadCommand for a Cmd that
// cannot be encoded; Done is then not called. Otherwise Done is called
// later, from a poll of the queue pair, never from inside Submit.
// Owner only. It allocates nothing.
func (q *QPair) Submit(c *Cmd) error {
	if q.r != nil {
		q.r.AssertCurrent()
	}
	if err := q.admit(); err != nil {
		return err
	}
	if c.Done == nil {
		return ErrBadCommand
	}
	req := q.alloc()
	if req == nil {
		return ErrQueueFull
	}
	if err := req.build(c); err != nil {
		q.freeReq(req)
		return err
	}
	req.done, req.ctx = c.Done, c.Ctx
	q.dispatch(req)
	return nil
}

// submitRaw starts a command whose SQE the caller built (admin and Fabrics
// commands). The SGL and CID are filled in here.
func (q *QPair) submitRaw(sqe *proto.SQE, xfer proto.Xfer, iovs [][]byte, n uint32, done DoneFunc, ctx any) error {
	if err := q.admit(); err != nil {
		return err
	}
	if n > 0 && iovLen(iovs) < uint64(n) {
		return ErrBadCommand
	}
	req := q.alloc()
	if req == nil {
		return ErrQueueFull
	}
	req.sqe = *sqe
	req.xfer, req.iovs, req.iovOff, req.dataLen = xfer, iovs, 0, n
	if n == 0 {
		req.xfer = proto.XferNone
	}
	req.done, req.ctx = done, ctx
	q.dispatch(req)
	return nil
}

func (q *QPair) admit() error {
	switch {
	case q.mode == modeClosed:
		return ErrClosed
	case q.c == nil && (!q.holdIO || q.mode != modeHold):
		return ErrPathFailed
	}
	return nil
}

func (q *QPair) alloc() *request {
	n := len(q.free)
	if n == 0 {
		return nil
	}
	req := &q.reqs[q.free[n-1]]
	q.free = q.free[:n-1]
	q.stats.Submitted++
	return req
}

// freeReq returns req to the pool, dropping its references to the
// caller's buffers and context.
func (q *QPair) freeReq(req *request) {
	req.state, req.next = reqFree, -1
	req.iovs, req.ctx, req.done = nil, nil, nil
	req.dsmIov[0] = nil
	q.free = append(q.free, req.cid)
}

// build fills req from c.
func (req *request) build(c *Cmd) error {
	req.iovs, req.iovOff, req.dataLen = nil, 0, 0
	rw := proto.RWCmd{CID: req.cid, NSID: c.NSID, SLBA: c.SLBA, NLB: c.NLB, FUA: c.FUA}
	switch c.Op {
	case OpRead, OpWrite, OpCompare:
		if c.LenBytes == 0 || iovLen(c.Iovs) < c.IovOffset+uint64(c.LenBytes) {
			return ErrBadCommand
		}
		rw.Opcode = proto.IORead
		req.xfer = proto.XferCtrlToHost
		if c.Op == OpWrite {
			rw.Opcode, req.xfer = proto.IOWrite, proto.XferHostToCtrl
		} else if c.Op == OpCompare {
			rw.Opcode, req.xfer = proto.IOCompare, proto.XferHostToCtrl
		}
		if req.sqe.PutRW(&rw) != nil {
			return ErrBadCommand
		}
		req.iovs, req.iovOff, req.dataLen = c.Iovs, c.IovOffset, c.LenBytes
	case OpFlush:
		req.sqe.PutFlush(req.cid, c.NSID)
		req.xfer = proto.XferNone
	case OpWriteZeroes:
		rw.Opcode, rw.Deallocate, rw.FUA = proto.IOWriteZeroes, c.Deallocate, false
		if req.sqe.PutRW(&rw) != nil {
			return ErrBadCommand
		}
		req.xfer = proto.XferNone
	case OpDeallocate:
		n := len(c.Ranges)
		if n == 0 || n > MaxRanges {
			return ErrBadCommand
		}
		for i := range c.Ranges {
			c.Ranges[i].Encode(req.dsm[i*proto.DSMRangeSize:])
		}
		if req.sqe.PutDSM(&proto.DSMCmd{CID: req.cid, NSID: c.NSID, Ranges: n, Attrs: proto.DSMAttrDeallocate}) != nil {
			return ErrBadCommand
		}
		req.dsmIov[0] = req.dsm[:n*proto.DSMRangeSize]
		req.iovs, req.iovOff, req.dataLen = req.dsmIov[:], 0, uint32(n*proto.DSMRangeSize)
		req.xfer = proto.XferHostToCtrl
	default:
		return ErrBadCommand
	}
	return nil
}

// dispatch starts req on the connection, or holds it until there is one.
func (q *QPair) dispatch(req *request) {
	if q.c != nil {
		q.start(req)
		return
	}
	req.state = reqHeld
	req.next = -1
	if q.heldTail >= 0 {
		q.reqs[q.heldTail].next = int32(req.cid)
	} else {
		q.heldHead = int32(req.cid)
	}
	q.heldTail = int32(req.cid)
	q.held++
}

func (q *QPair) popHeld() *request {
	if q.heldHead < 0 {
		return nil
	}
	req := &q.reqs[q.heldHead]
	q.heldHead = req.next
	if q.heldHead < 0 {
		q.heldTail = -1
	}
	req.next = -1
	q.held--
	return req
}

// start queues req's CapsuleCmd. Precondition: q.c != nil.
func (q *QPair) start(req *request) {
	req.state = reqActive
	req.c2hGot, req.h2cSent, req.r2tEnd, req.ttag = 0, 0, 0, 0
	req.txRefs, req.respDone, req.ddgstErr = 0, false, false
	req.cqe = proto.CQE{}
	q.active++
	if req.xfer == proto.XferCtrlToHost {
		q.c2hActive++
		q.seq++
		req.seq = q.seq
		q.pushOrder(req)
	}
	// NVMe/TCP 1.0 §3.3.2: in-capsule data is described by a Data Block
	// SGL with the Offset subtype, everything else by the Transport Data
	// Block (command data buffer); a command without data gets a zero
	// length one, as Linux and SPDK hosts send.
	req.inCapsule = req.xfer == proto.XferHostToCtrl && req.dataLen <= q.inCapsuleMax
	sgl := proto.TCPDataSGL(req.dataLen)
	icd := 0
	if req.inCapsule {
		sgl = proto.InCapsuleSGL(0, req.dataLen)
		icd = int(req.dataLen)
	}
	req.sqe.CID = req.cid
	req.sqe.SetPSDT(proto.PSDTSGL)
	req.sqe.SetSGL(sgl)
	n, err := proto.EncodeCapsuleCmd(req.hdr[:], q.c.framing, &req.sqe, icd)
	if err != nil {
		// Cannot happen with our buffer sizes; fail the command rather
		// than the connection.
		q.deactivate(req)
		q.finishHost(req, proto.StatusInternalError)
		return
	}
	p := txPDU{kind: pduCapsule, req: req, hdr: req.hdr[:n], dataLen: uint32(icd)}
	if icd > 0 && q.c.framing.Digests&proto.DigestData != 0 {
		proto.PutDigest(req.ddgst[:], crcIovs(req.iovs, req.iovOff, uint64(icd)))
		p.ddgst = req.ddgst[:]
	}
	q.push(p)
}

// queueH2C queues the next H2CData PDU of req's current R2T window, at
// most MAXH2CDATA bytes (NVMe/TCP 1.0 §3.6.2.8).
func (q *QPair) queueH2C(req *request) {
	chunk := req.r2tEnd - req.h2cSent
	if chunk > q.c.maxH2C {
		chunk = q.c.maxH2C
	}
	d := proto.DataPDU{CCCID: req.cid, TTag: req.ttag, DataO: req.h2cSent, DataL: chunk,
		Last: req.h2cSent+chunk == req.r2tEnd}
	n, err := proto.EncodeH2CData(req.h2cHdr[:], q.c.framing, &d)
	if err != nil {
		q.protocolFail(proto.NewPDUError(proto.PDUR2T, proto.FESInvalidHeaderField, proto.DataPDUOffDATAL, "R2TL", "cannot answer"), nil)
		return
	}
	p := txPDU{kind: pduH2C, req: req, hdr: req.h2cHdr[:n], dataOff: req.h2cSent, dataLen: chunk}
	if q.c.framing.Digests&proto.DigestData != 0 {
		proto.PutDigest(req.h2cDdgst[:], crcIovs(req.iovs, req.iovOff+uint64(req.h2cSent), uint64(chunk)))
		p.ddgst = req.h2cDdgst[:]
	}
	q.push(p)
}

func (q *QPair) push(p txPDU) {
	if q.txN == len(q.tx) {
		// The ring is sized for one PDU per slot plus a TermReq; more
		// would be a bookkeeping bug. Grow rather than lose a PDU.
		n := make([]txPDU, 2*len(q.tx))
		for i := 0; i < q.txN; i++ {
			n[i] = q.tx[(q.txHead+i)%len(q.tx)]
		}
		q.tx, q.txHead = n, 0
	}
	q.tx[(q.txHead+q.txN)%len(q.tx)] = p
	q.txN++
	if p.req != nil {
		p.req.txRefs++
	}
}

// flush writes as much of the tx queue as the socket takes. It reports
// whether anything was written.
func (q *QPair) flush() bool {
	busy := false
	for q.txN > 0 && q.c != nil {
		iov := q.txIov[:0]
		skip := q.txSent
		full := false
		for i := 0; i < q.txN && !full; i++ {
			p := &q.tx[(q.txHead+i)%len(q.tx)]
			iov, skip, full = appendPDU(iov, p, skip)
		}
		n, e := writev(q.c.fd, iov)
		q.stats.Writes++
		if q.r != nil {
			q.r.ClockStale()
		}
		switch {
		case e == unix.EINTR:
			continue
		case e == unix.EAGAIN:
			return busy
		case e != 0:
			q.fail(e)
			return true
		}
		busy = true
		q.txAdvance(n)
	}
	return busy
}

// appendPDU appends the iovecs of p, less its first skip bytes, to iov.
// It returns the bytes of skip left over (p was shorter) and whether iov
// is full.
func appendPDU(iov []unix.Iovec, p *txPDU, skip int) ([]unix.Iovec, int, bool) {
	if skip >= p.size() {
		return iov, skip - p.size(), false
	}
	if skip < len(p.hdr) {
		if len(iov) == cap(iov) {
			return iov, 0, true
		}
		iov = appendIov(iov, p.hdr[skip:])
		skip = 0
	} else {
		skip -= len(p.hdr)
	}
	if p.dataLen > 0 {
		if uint32(skip) < p.dataLen {
			var all bool
			iov, all = appendIovRange(iov, p.req.iovs, p.req.iovOff+uint64(p.dataOff)+uint64(skip), uint64(p.dataLen)-uint64(skip))
			if !all {
				return iov, 0, true
			}
			skip = 0
		} else {
			skip -= int(p.dataLen)
		}
	}
	if len(p.ddgst) > 0 {
		if len(iov) == cap(iov) {
			return iov, 0, true
		}
		iov = appendIov(iov, p.ddgst[skip:])
	}
	return iov, 0, false
}

// txAdvance retires n written bytes from the tx queue.
func (q *QPair) txAdvance(n int) {
	for n > 0 && q.txN > 0 {
		p := &q.tx[q.txHead]
		rem := p.size() - q.txSent
		if n < rem {
			q.txSent += n
			return
		}
		n -= rem
		done := *p
		*p = txPDU{}
		q.txHead = (q.txHead + 1) % len(q.tx)
		q.txN--
		q.txSent = 0
		q.sent(&done)
		if q.c == nil {
			return
		}
	}
}

// sent handles a PDU that left the tx queue completely.
func (q *QPair) sent(p *txPDU) {
	switch p.kind {
	case pduTerm:
		q.fail(ErrProtocol)
		return
	case pduH2C:
		req := p.req
		req.txRefs--
		req.h2cSent += p.dataLen
		if req.h2cSent < req.r2tEnd && !req.respDone {
			q.queueH2C(req)
		}
		q.tryComplete(req)
	case pduCapsule:
		p.req.txRefs--
		q.tryComplete(p.req)
	}
}

// poll is the reactor poller of the queue pair.
func (q *QPair) poll(reactor.Ticks) reactor.Status {
	q.r.AssertCurrent()
	if q.c == nil {
		return reactor.Idle
	}
	busy := q.flush()
	if q.c != nil && (q.active > 0 || q.rxMore) {
		if q.receive() {
			busy = true
		}
	}
	if q.c != nil && q.txN > 0 && q.flush() {
		busy = true
	}
	if busy {
		return reactor.Busy
	}
	return reactor.Idle
}

// arm vetoes the reactor's sleep while PDUs wait to be written or the
// socket was not drained; otherwise the watched socket wakes the reactor.
func (q *QPair) arm() bool {
	return q.c != nil && (q.txN > 0 || q.rxMore)
}

// receive reads and handles PDUs until the socket is drained or the budget
// is spent. It reports whether anything happened.
func (q *QPair) receive() bool {
	if !q.rxProcess() {
		return true
	}
	busy := false
	q.rxMore = false
	for i := 0; i < rxBudget; i++ {
		if q.c == nil {
			return true
		}
		iov, planned := q.rxPlan()
		n, e := readv(q.c.fd, iov)
		q.stats.Reads++
		if q.r != nil {
			q.r.ClockStale() // completions after a syscall are stamped anew
		}
		switch {
		case e == unix.EINTR:
			continue
		case e == unix.EAGAIN:
			return busy
		case e != 0:
			q.fail(e)
			return true
		case n == 0:
			q.fail(ErrConnClosed)
			return true
		}
		busy = true
		if q.spec {
			if !q.specApply(n) {
				return true
			}
		} else {
			q.rxApply(n)
		}
		if !q.rxProcess() {
			return true
		}
		if q.txN >= txEager {
			q.flush()
			if q.c == nil {
				return true
			}
		}
		if n < planned {
			// The socket had no more: a stream socket returns what it
			// holds. New data triggers a new epoll edge.
			return true
		}
	}
	q.rxMore = true
	return true
}

// rxPlan builds the iovecs of the next read: the rest of the current
// C2HData body (padding, data straight into the request's buffers, data
// digest) and then exactly one header; or, between PDUs, the header
// bytes still missing. Between PDUs, when no command can receive C2H data,
// it reads as many headers as fit in rxBuf: nothing but headers can be on
// the wire then.
func (q *QPair) rxPlan() ([]unix.Iovec, int) {
	iov := q.rxIov[:0]
	if !q.rxBody {
		if q.rxStart > 0 {
			q.rxEnd = copy(q.rxBuf[:], q.rxBuf[q.rxStart:q.rxEnd])
			q.rxStart = 0
		}
		if q.rxEnd == 0 {
			if iov, n, ok := q.specPlan(); ok {
				return iov, n
			}
		}
		end := q.rxWant
		if q.c2hActive == 0 || end <= q.rxEnd {
			end = len(q.rxBuf)
		}
		iov = appendIov(iov, q.rxBuf[q.rxEnd:end])
		return iov, end - q.rxEnd
	}
	planned := 0
	if q.rxPad > 0 {
		iov = appendIov(iov, q.rxScratch[:q.rxPad])
		planned += q.rxPad
	}
	if q.rxData > 0 {
		req := q.rxReq
		var all bool
		// Leave room for the digest and the next header.
		iov, all = appendIovRange(iov[:len(iov):iovMax-2], req.iovs, req.iovOff+uint64(q.rxDataOff), uint64(q.rxData))
		iov = q.rxIov[:len(iov)]
		if !all {
			return iov, iovBytes(iov)
		}
		planned += int(q.rxData)
	}
	if q.rxDigest > 0 {
		iov = appendIov(iov, q.rxDdgst[proto.DigestLen-q.rxDigest:])
		planned += q.rxDigest
	}
	// rxBuf is empty while in a body (rxProcess drained it first). The
	// next header comes in the same read, unless the next read is likely
	// to be a speculative one, which must start on a PDU boundary.
	if q.specLikely() {
		return iov, planned
	}
	iov = appendIov(iov, q.rxBuf[:q.c.hdrLen])
	return iov, planned + q.c.hdrLen
}

// pushOrder appends req to readOrder. When the ring is full (entries of
// completed commands stuck behind a long-running one) it drops the stale
// entries first: at most len(reqs) entries are live, and the ring has
// twice that.
func (q *QPair) pushOrder(req *request) {
	n := len(q.readOrder)
	if q.orderN == n {
		live := 0
		for i := 0; i < q.orderN; i++ {
			e := q.readOrder[(q.orderHead+i)%n]
			if q.orderLive(e) {
				q.readOrder[(q.orderHead+live)%n] = e
				live++
			}
		}
		q.orderN = live
	}
	q.readOrder[(q.orderHead+q.orderN)%n] = orderEntry{cid: req.cid, seq: req.seq}
	q.orderN++
}

// orderLive reports whether e still names an active read that has
// received nothing.
func (q *QPair) orderLive(e orderEntry) bool {
	r := &q.reqs[e.cid]
	return r.state == reqActive && r.seq == e.seq && r.xfer == proto.XferCtrlToHost && r.c2hGot == 0 && !r.respDone
}

// specPlan plans a speculative read between PDUs: the next PDUs are
// guessed to be the C2HData of the oldest reads that have received
// nothing yet, each with all of its data and nothing after it (SUCCESS
// set, as the controller did last time; or a single read), so one readv
// takes their headers, their data straight into the commands' buffers,
// their digests and the next header, instead of a readv per PDU.
// specApply checks each guess and, from the first wrong one on (a split
// C2HData, a CapsuleResp, another order), puts the bytes back in stream
// order in rxBuf (counted in QPairStats.Copied and SpecMisses).
func (q *QPair) specPlan() ([]unix.Iovec, int, bool) {
	h := q.c.hdrLen
	if q.c2hActive == 0 || q.active != q.c2hActive || h > specHdrMax {
		// Nothing to guess, or writes and other commands are outstanding
		// too: their R2Ts and CapsuleResps come in between.
		return nil, 0, false
	}
	if q.respDue {
		return nil, 0, false
	}
	if q.specOff > 0 {
		q.specOff--
		return nil, 0, false
	}
	for q.orderN > 0 && !q.orderLive(q.readOrder[q.orderHead]) {
		q.orderHead = (q.orderHead + 1) % len(q.readOrder)
		q.orderN--
	}
	k := q.specK
	if !q.succSeen {
		k = 1 // each C2HData is followed by a CapsuleResp
	}
	dg := 0
	if q.c.framing.Digests&proto.DigestData != 0 {
		dg = proto.DigestLen
	}
	iov := q.rxIov[:0]
	planned, data, n := 0, uint32(0), 0
	for i := 0; i < q.orderN && n < k; i++ {
		e := q.readOrder[(q.orderHead+i)%len(q.readOrder)]
		if !q.orderLive(e) {
			continue
		}
		r := &q.reqs[e.cid]
		if r.dataLen == 0 || data+r.dataLen > specMax ||
			(r.dataLen > q.c2hWhole && (q.active > 1 || r.dataLen >= q.c2hSplit)) {
			break
		}
		// Room for this PDU's header, data and digest, and the next
		// header.
		mark := len(iov)
		iov = appendIov(iov[:mark:iovMax-2], q.specHdr[n][:h])
		var all bool
		iov, all = appendIovRange(iov, r.iovs, r.iovOff, uint64(r.dataLen))
		iov = q.rxIov[:len(iov)]
		if !all {
			iov = iov[:mark]
			break
		}
		if dg > 0 {
			iov = appendIov(iov, q.specDig[n][:])
		}
		q.specReqs[n] = r
		n++
		data += r.dataLen
		planned += h + int(r.dataLen) + dg
	}
	if n == 0 {
		return nil, 0, false
	}
	q.spec, q.specN, q.specDg, q.specTailOn = true, n, dg, false
	if n == q.active {
		// Every outstanding command is in the guess: what may follow is
		// a CapsuleResp (without SUCCESS), so read the next header too;
		// most often there is none and the short read says the socket is
		// drained. Otherwise the read ends on a PDU boundary, so that the
		// next one can guess again.
		iov = appendIov(iov, q.specTail[:h])
		planned += h
		q.specTailOn = true
	}
	return iov, planned, true
}

// specApply accounts n bytes of a speculative read. It returns false when
// the connection was torn down.
func (q *QPair) specApply(n int) bool {
	q.spec = false
	h := q.c.hdrLen
	off := 0 // bytes of the read accounted so far
	for i := 0; i < q.specN; i++ {
		r := q.specReqs[i]
		avail := n - off
		if avail < h {
			// Only part of this header came: it is the stream's next bytes.
			q.specDone()
			q.rxStart, q.rxEnd = 0, copy(q.rxBuf[:], q.specHdr[i][:avail])
			return true
		}
		hd, err := q.c.parser.Parse(q.specHdr[i][:h], &q.hdr)
		if err != nil || hd != h || q.hdr.Type != proto.PDUC2HData || q.hdr.CCCID != r.cid || q.hdr.Offset != 0 ||
			uint32(q.hdr.DataLen) != r.dataLen || q.hdr.PadLen() != 0 || q.hdr.DataDigest != (q.specDg > 0) ||
			r.state != reqActive || r.c2hGot != 0 {
			q.specMiss(i, n-off)
			return true
		}
		// The guess held: the data is in place.
		q.stats.Speculated++
		if !q.handle(q.specHdr[i][:h]) {
			q.specDone()
			return false
		}
		avail -= h
		placed := min(avail, int(r.dataLen))
		dg := min(avail-placed, q.specDg)
		q.rxData -= uint32(placed)
		q.rxDataOff += uint32(placed)
		q.rxDigest -= dg
		copy(q.rxDdgst[:], q.specDig[i][:dg]) // later digest bytes go after these
		off += h + placed + dg
		if q.rxData > 0 || q.rxDigest > 0 {
			// The read ended inside this body.
			q.specDone()
			q.rxStart, q.rxEnd = 0, 0
			return true
		}
		q.rxBody = false
		if !q.c2hDone() {
			q.specDone()
			return false
		}
		if q.c == nil {
			q.specDone()
			return false
		}
	}
	q.rxStart, q.rxEnd = 0, 0
	if q.specTailOn {
		q.rxEnd = copy(q.rxBuf[:], q.specTail[:n-off])
	}
	q.specHit()
	return true
}

// specLikely reports whether the read after the current C2HData body is
// likely to be planned speculatively.
func (q *QPair) specLikely() bool {
	return q.succSeen && q.rxSuccess && q.active == q.c2hActive && q.active > 1 && q.specOff == 0 && q.c2hWhole > 0
}

// specMiss rebuilds the stream in rxBuf from PDU i of the speculative read
// on: its header, the bytes read into its command's buffer and digest
// slot, and so on for the later ones, then the next-header slot; rest is
// the number of bytes the read placed from PDU i's header on.
func (q *QPair) specMiss(i, rest int) {
	q.stats.SpecMisses++
	h := q.c.hdrLen
	w := 0
	take := func(b []byte) int {
		k := min(len(b), rest)
		w += copy(q.rxBuf[w:], b[:k])
		rest -= k
		return k
	}
	for j := i; j < q.specN && rest > 0; j++ {
		r := q.specReqs[j]
		take(q.specHdr[j][:h])
		if k := min(rest, int(r.dataLen)); k > 0 {
			gatherIovs(q.rxBuf[w:w+k], r.iovs, r.iovOff)
			w += k
			rest -= k
			q.stats.Copied += uint64(k)
		}
		take(q.specDig[j][:q.specDg])
	}
	if q.specTailOn {
		take(q.specTail[:h])
	}
	q.rxStart, q.rxEnd = 0, w
	q.specDone()
	if q.specK == 1 {
		// Even one guess failed: the controller answers in another order
		// (or splits its data); stop guessing for a while.
		q.specOff = specCooldown
	}
	q.specK = max(1, q.specK/2)
}

// specHit lets the next speculative read guess more PDUs.
func (q *QPair) specHit() {
	q.specDone()
	q.specK = min(specPDUs, 2*q.specK)
}

// specDone forgets the planned requests.
func (q *QPair) specDone() {
	q.specReqs = [specPDUs]*request{}
	q.specN = 0
}

// rxApply accounts n bytes that a read placed according to rxPlan.
func (q *QPair) rxApply(n int) {
	if !q.rxBody {
		q.rxEnd += n
		return
	}
	k := min(n, q.rxPad)
	q.rxPad -= k
	n -= k
	d := min(uint32(n), q.rxData)
	q.rxData -= d
	q.rxDataOff += d
	n -= int(d)
	k = min(n, q.rxDigest)
	q.rxDigest -= k
	n -= k
	q.rxStart, q.rxEnd = 0, n
}

// rxProcess handles what is buffered: it finishes a C2HData body and
// parses and handles whole headers. It returns false when the connection
// was torn down.
func (q *QPair) rxProcess() bool {
	for q.c != nil {
		if q.rxBody {
			if q.rxEnd > q.rxStart {
				q.rxTakeBuffered()
			}
			if q.rxPad > 0 || q.rxData > 0 || q.rxDigest > 0 {
				return true
			}
			q.rxBody = false
			if !q.c2hDone() {
				return false
			}
			continue
		}
		avail := q.rxEnd - q.rxStart
		if avail < q.rxWant {
			if avail == 0 {
				q.rxStart, q.rxEnd = 0, 0
			}
			return true
		}
		n, err := q.c.parser.Parse(q.rxBuf[q.rxStart:q.rxEnd], &q.hdr)
		if err != nil {
			q.protocolFail(err, q.rxBuf[q.rxStart:q.rxEnd])
			return false
		}
		if n > avail {
			q.rxWant = n
			if n > len(q.rxBuf) {
				q.protocolFail(proto.NewPDUError(q.hdr.Type, proto.FESInvalidHeaderField, 2, "HLEN", "header too long"), nil)
				return false
			}
			return true
		}
		hdr := q.rxBuf[q.rxStart : q.rxStart+n]
		q.rxStart += n
		q.rxWant = q.c.hdrLen
		if !q.handle(hdr) {
			return false
		}
	}
	return false
}

// rxTakeBuffered moves body bytes that arrived in rxBuf (a controller
// that sent C2H data we did not expect to be there) to where they belong.
func (q *QPair) rxTakeBuffered() {
	b := q.rxBuf[q.rxStart:q.rxEnd]
	k := min(len(b), q.rxPad)
	b = b[k:]
	q.rxPad -= k
	if q.rxPad == 0 && q.rxData > 0 && len(b) > 0 {
		d := min(uint32(len(b)), q.rxData)
		copyToIovs(q.rxReq.iovs, q.rxReq.iovOff+uint64(q.rxDataOff), b[:d])
		q.stats.Copied += uint64(d)
		b = b[d:]
		q.rxData -= d
		q.rxDataOff += d
	}
	if q.rxPad == 0 && q.rxData == 0 && q.rxDigest > 0 && len(b) > 0 {
		k := min(len(b), q.rxDigest)
		copy(q.rxDdgst[proto.DigestLen-q.rxDigest:], b[:k])
		b = b[k:]
		q.rxDigest -= k
	}
	q.rxStart = q.rxEnd - len(b)
}

// handle acts on a parsed controller PDU header. It returns false when
// the connection was torn down.
func (q *QPair) handle(hdr []byte) bool {
	h := &q.hdr
	switch h.Type {
	case proto.PDUCapsuleResp:
		req := q.activeReq(h.CQE.CID)
		if req == nil || req.respDone {
			// CapsuleResp PSH: the CQE starts at byte 8, its CID at 12.
			q.protocolFail(proto.NewPDUError(h.Type, proto.FESInvalidHeaderField, 8+12, "CID", "no outstanding command with this CID"), hdr)
			return false
		}
		req.cqe = h.CQE
		req.respDone = true
		q.respDue = false
		q.tryComplete(req)
	case proto.PDUC2HData:
		req := q.activeReq(h.CCCID)
		switch {
		case req == nil || req.xfer != proto.XferCtrlToHost || req.respDone:
			q.protocolFail(proto.NewPDUError(h.Type, proto.FESInvalidHeaderField, proto.DataPDUOffCCCID, "CCCID", "no outstanding read with this CID"), hdr)
			return false
		case h.Offset != req.c2hGot || uint64(h.Offset)+uint64(h.DataLen) > uint64(req.dataLen):
			// NVMe/TCP 1.0 §3.6.2.9: data comes in order and within the
			// command's buffer.
			q.protocolFail(proto.NewPDUError(h.Type, proto.FESDataOutOfRange, 0, "DATAO", "C2H data out of order or beyond the command"), hdr)
			return false
		case h.PadLen() > padMax:
			q.protocolFail(proto.NewPDUError(h.Type, proto.FESInvalidHeaderField, 3, "PDO", "padding too long"), hdr)
			return false
		}
		q.rxReq = req
		q.rxBody = true
		q.rxPad = h.PadLen()
		q.rxData = uint32(h.DataLen)
		q.rxDataOff = h.Offset
		q.rxPDUOff, q.rxPDULen = h.Offset, uint32(h.DataLen)
		q.rxDigest = 0
		if h.DataDigest {
			q.rxDigest = proto.DigestLen
		}
		q.rxLast, q.rxSuccess = h.Last(), h.Success()
		q.succSeen = h.Success()
		q.respDue = h.Last() && !h.Success()
		if h.Offset == 0 {
			if uint32(h.DataLen) == req.dataLen {
				q.c2hWhole = max(q.c2hWhole, req.dataLen)
			} else {
				q.c2hSplit = min(q.c2hSplit, req.dataLen)
			}
		}
	case proto.PDUR2T:
		req := q.activeReq(h.CCCID)
		switch {
		case req == nil || req.xfer != proto.XferHostToCtrl || req.inCapsule || req.respDone:
			q.protocolFail(proto.NewPDUError(h.Type, proto.FESInvalidHeaderField, proto.DataPDUOffCCCID, "CCCID", "no outstanding write with this CID"), hdr)
			return false
		case req.r2tEnd != req.h2cSent || req.txRefs > 0:
			// MAXR2T is 0 in our ICReq: one R2T at a time per command.
			q.protocolFail(proto.NewPDUError(h.Type, proto.FESR2TLimitExceeded, 0, "R2T", "R2T while another is being answered"), hdr)
			return false
		case h.Offset != req.h2cSent || h.Length == 0 || uint64(h.Offset)+uint64(h.Length) > uint64(req.dataLen):
			q.protocolFail(proto.NewPDUError(h.Type, proto.FESDataOutOfRange, 0, "R2TO", "R2T window out of order or beyond the command"), hdr)
			return false
		}
		req.ttag = h.TTag
		req.r2tEnd = h.Offset + h.Length
		q.queueH2C(req)
	case proto.PDUC2HTermReq:
		q.fail(&TermReqError{FES: h.FES, FEI: h.FEI})
		return false
	default:
		q.protocolFail(proto.NewPDUError(h.Type, proto.FESInvalidHeaderField, 0, "PDU-Type", "unexpected PDU"), hdr)
		return false
	}
	return true
}

// c2hDone finishes a C2HData body: data digest, progress, and the
// completion a SUCCESS flag implies (NVMe/TCP 1.0 §3.6.2.9).
func (q *QPair) c2hDone() bool {
	req := q.rxReq
	q.rxReq = nil
	if q.hdr.DataDigest {
		crc := crcIovs(req.iovs, req.iovOff+uint64(q.rxPDUOff), uint64(q.rxPDULen))
		if crc != proto.GetDigest(q.rxDdgst[:]) {
			// NVMe/TCP 1.0 §3.5.2: a data digest error fails the
			// command, not the connection.
			req.ddgstErr = true
			q.stats.DigestErrs++
		}
	}
	req.c2hGot += q.rxPDULen
	if q.rxSuccess {
		if req.c2hGot != req.dataLen {
			q.protocolFail(proto.NewPDUError(proto.PDUC2HData, proto.FESInvalidHeaderField, 1, "FLAGS", "SUCCESS before all data"), nil)
			return false
		}
		req.cqe = proto.CQE{CID: req.cid, SQID: q.qid}
		req.respDone = true
		q.tryComplete(req)
	}
	return true
}

func (q *QPair) activeReq(cid uint16) *request {
	if int(cid) >= len(q.reqs) {
		return nil
	}
	req := &q.reqs[cid]
	if req.state != reqActive {
		return nil
	}
	return req
}

// tryComplete completes req once its response is in and none of its PDUs
// waits in the tx queue.
func (q *QPair) tryComplete(req *request) {
	if !req.respDone || req.txRefs > 0 {
		return
	}
	st := req.cqe.Status
	if st.Success() {
		switch {
		case req.ddgstErr:
			st = proto.StatusTransientTransportError
		case req.xfer == proto.XferCtrlToHost && req.c2hGot != req.dataLen:
			st = proto.StatusDataTransferError
		}
	}
	q.deactivate(req)
	q.cpl = req.cqe
	q.cpl.Status = st
	q.finish(req)
}

func (q *QPair) deactivate(req *request) {
	if req.state != reqActive {
		return
	}
	q.active--
	if req.xfer == proto.XferCtrlToHost {
		q.c2hActive--
	}
}

// finishHost completes req with a status the host made up.
func (q *QPair) finishHost(req *request, st proto.Status) {
	q.cpl = proto.CQE{CID: req.cid, SQID: q.qid, Status: st}
	q.stats.Failed++
	q.finish(req)
}

// finish frees req and calls its DoneFunc with q.cpl.
func (q *QPair) finish(req *request) {
	done, ctx := req.done, req.ctx
	q.freeReq(req)
	q.stats.Completed++
	if done != nil {
		done(ctx, &q.cpl)
	}
}

// protocolFail answers a fatal PDU error with an H2CTermReq (best effort)
// and tears the connection down (NVMe/TCP 1.0 §3.5.1).
func (q *QPair) protocolFail(err error, hdr []byte) {
	if q.c == nil {
		return
	}
	var pe *proto.PDUError
	if errors.As(err, &pe) && !pe.NoReply && q.txSent == 0 {
		if n, e := proto.EncodeTermReq(q.termHdr[:], proto.PDUH2CTermReq, pe.FES, pe.FEI, hdr); e == nil {
			// Best effort, non-blocking; the connection closes anyway.
			unix.Write(q.c.fd, q.termHdr[:n])
		}
	}
	q.fail(protoErr{err})
}

// protoErr wraps a peer protocol violation so that errors.Is(err,
// ErrProtocol) holds.
type protoErr struct{ err error }

func (e protoErr) Error() string { return "nvmf/initiator: protocol error: " + e.err.Error() }
func (e protoErr) Unwrap() []error {
	return []error{ErrProtocol, e.err}
}

// fail tears the connection down: active commands are held for the next
// connection (I/O queue pairs in modeHold) or completed with a path error,
// and onLoss is told. Safe to call twice.
func (q *QPair) fail(err error) {
	if q.c == nil {
		return
	}
	q.teardown()
	q.lastErr = err
	hold := q.holdIO && q.mode == modeHold
	for i := range q.reqs {
		req := &q.reqs[i]
		if req.state != reqActive {
			continue
		}
		q.deactivate(req)
		if hold {
			q.dispatch(req) // no connection: goes to the held FIFO
			continue
		}
		q.finishHost(req, proto.StatusHostPathingError)
	}
	if q.onLoss != nil {
		q.onLoss(q, err)
	}
}

// teardown closes the connection and resets the tx and rx state.
func (q *QPair) teardown() {
	c := q.c
	q.c = nil
	if q.watch {
		q.r.UnwatchFd(c.fd)
	}
	c.close()
	for i := range q.tx {
		q.tx[i] = txPDU{}
	}
	q.txHead, q.txN, q.txSent = 0, 0, 0
	for i := range q.reqs {
		q.reqs[i].txRefs = 0
	}
	q.rxStart, q.rxEnd, q.rxBody, q.rxReq, q.rxMore = 0, 0, false, nil, false
	q.spec, q.specN, q.specOff = false, 0, 0
	q.respDue, q.succSeen, q.c2hWhole, q.c2hSplit = false, false, 0, math.MaxUint32
	q.specReqs = [specPDUs]*request{}
	q.orderHead, q.orderN = 0, 0
	q.rxPad, q.rxData, q.rxDigest = 0, 0, 0
}

// install makes c the queue pair's connection and starts the held
// commands on it, oldest first. Owner only.
func (q *QPair) install(c *conn, inCapsuleMax uint32) {
	if q.c != nil {
		q.teardown()
	}
	q.c = c
	q.mode = modeHold
	q.inCapsuleMax = inCapsuleMax
	q.rxWant = c.hdrLen
	if q.watch {
		q.r.WatchFd(c.fd)
	}
	for req := q.popHeld(); req != nil; req = q.popHeld() {
		q.stats.Resubmitted++
		q.start(req)
	}
}

// setMode changes what happens to commands while disconnected; leaving
// modeHold fails the held ones. Owner only.
func (q *QPair) setMode(m qpMode) {
	if q.mode == modeClosed {
		return
	}
	q.mode = m
	if m == modeHold {
		return
	}
	st := proto.StatusHostPathingError
	if m == modeClosed {
		st = proto.StatusAbortedByHost
		if q.c != nil {
			q.teardown()
			for i := range q.reqs {
				req := &q.reqs[i]
				if req.state == reqActive {
					q.deactivate(req)
					q.finishHost(req, st)
				}
			}
		}
	}
	for req := q.popHeld(); req != nil; req = q.popHeld() {
		q.finishHost(req, st)
	}
}

// attach registers the queue pair's poller on r and makes r its owner.
// Run on r. I/O queue pairs get an active poller and their socket watched;
// the admin queue pair a timed poller (admin commands are rare).
func (q *QPair) attach(r *reactor.Reactor, name string, periodUs uint64) {
	q.r = r
	q.poller = r.RegisterPollerOpts(name, q.poll, reactor.PollerOptions{PeriodUs: periodUs, Arm: q.arm})
	if periodUs == 0 {
		q.watch = true
		if q.c != nil {
			r.WatchFd(q.c.fd)
		}
	}
}

// detach unregisters the poller after the queue pair was closed. Run on
// its reactor.
func (q *QPair) detach() {
	if q.poller != nil {
		q.poller.Unregister()
		q.poller = nil
	}
	q.watch = false
}

// iovLen returns the total length of iovs.
func iovLen(iovs [][]byte) uint64 {
	var n uint64
	for _, b := range iovs {
		n += uint64(len(b))
	}
	return n
}

func iovBytes(iov []unix.Iovec) int {
	n := 0
	for i := range iov {
		n += int(iov[i].Len)
	}
	return n
}

// appendIov appends b (if not empty) to iov; the caller checked capacity.
func appendIov(iov []unix.Iovec, b []byte) []unix.Iovec {
	if len(b) == 0 {
		return iov
	}
	iov = append(iov, unix.Iovec{Base: &b[0]})
	iov[len(iov)-1].SetLen(len(b))
	return iov
}

// appendIovRange appends iovecs covering n bytes at byte offset off of
// bufs, as far as cap(iov) allows; it reports whether all n fit.
func appendIovRange(iov []unix.Iovec, bufs [][]byte, off, n uint64) ([]unix.Iovec, bool) {
	for _, b := range bufs {
		if n == 0 {
			break
		}
		l := uint64(len(b))
		if off >= l {
			off -= l
			continue
		}
		if len(iov) == cap(iov) {
			return iov, false
		}
		piece := b[off:]
		off = 0
		if uint64(len(piece)) > n {
			piece = piece[:n]
		}
		iov = appendIov(iov, piece)
		n -= uint64(len(piece))
	}
	return iov, n == 0
}

// crcIovs returns the CRC32C of n bytes at byte offset off of bufs.
func crcIovs(bufs [][]byte, off, n uint64) uint32 {
	var crc uint32
	for _, b := range bufs {
		if n == 0 {
			break
		}
		l := uint64(len(b))
		if off >= l {
			off -= l
			continue
		}
		piece := b[off:]
		off = 0
		if uint64(len(piece)) > n {
			piece = piece[:n]
		}
		crc = proto.CRC32CUpdate(crc, piece)
		n -= uint64(len(piece))
	}
	return crc
}

// gatherIovs fills dst from bufs starting at byte offset off.
func gatherIovs(dst []byte, bufs [][]byte, off uint64) {
	for _, b := range bufs {
		if len(dst) == 0 {
			return
		}
		l := uint64(len(b))
		if off >= l {
			off -= l
			continue
		}
		n := copy(dst, b[off:])
		dst = dst[n:]
		off = 0
	}
}

// copyToIovs copies src to bufs at byte offset off.
func copyToIovs(bufs [][]byte, off uint64, src []byte) {
	for _, b := range bufs {
		if len(src) == 0 {
			return
		}
		l := uint64(len(b))
		if off >= l {
			off -= l
			continue
		}
		n := copy(b[off:], src)
		src = src[n:]
		off = 0
	}
}
