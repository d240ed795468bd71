//go:build linux

package tcp

import (
	"encoding/binary"
	"errors"
	"time"

	"golang.org/x/sys/unix"

	"hyperpath/nvmf"
	"hyperpath/nvmf/proto"
	"hyperpath/reactor"
)

const (
	// rxBatch bounds the readv calls of one connection per poll.
	rxBatch = 32
	// rxPipeSize is the receive buffer that every readv fills after the
	// bytes of the current stage: the PDUs behind it are taken from there
	// without another syscall.
	rxPipeSize = 16 << 10
	// rxCmds bounds the commands one connection starts per poll, and
	// txEager is the number of queued responses that Complete writes at
	// once: both keep batches small, so that the host reads the first
	// responses while the target still works on the rest of a burst
	// instead of host and target taking turns.
	rxCmds  = 8
	txEager = 8
	// hbufSize holds a C2HData or R2T header, its digest and the padding
	// up to the host's largest PDA (128 bytes).
	hbufSize = 160
	// icTimeout closes a connection that sends no ICReq.
	icTimeout = 30 * time.Second
)

// connState is the life-cycle state of a connection.
type connState uint8

const (
	// connICReq: accepted; only an ICReq (or a TermReq) may arrive.
	connICReq connState = iota
	// connRunning: ICReq/ICResp exchanged; capsules and data flow.
	connRunning
	// connClosing: receiving stopped; queued PDUs are flushed while the
	// peer takes them, then the socket is closed; the connection lives on
	// until the target has completed every request it holds.
	connClosing
	// connClosed: released from its poll group.
	connClosed
)

// reqState is the state of one request slot.
type reqState uint8

const (
	// reqFree: in the free stack.
	reqFree reqState = iota
	// reqRxCapsule: its capsule (and in-capsule data) is being received.
	reqRxCapsule
	// reqRxH2C: an R2T went out; H2CData PDUs fill Data in order.
	reqRxH2C
	// reqExec: handed to the target; it comes back through Complete.
	reqExec
	// reqTx: its C2HData and/or CapsuleResp are queued for sending; it is
	// freed once they are written.
	reqTx
)

// rxState is the receive stage of a connection.
type rxState uint8

const (
	// rxCH: the 8-byte common header goes to hdr[:8].
	rxCH rxState = iota
	// rxHdr: the rest of the header (plus, for a CapsuleCmd, padding,
	// in-capsule data and data digest; for a TermReq its data).
	rxHdr
	// rxData: padding, data and data digest of an H2CData PDU.
	rxData
)

// txItem is one PDU (or a C2HData plus CapsuleResp pair) queued for
// writev. The segments point at header buffers in the request and at its
// data buffer: nothing is copied.
type txItem struct {
	next    *txItem
	segs    [4][]byte
	n       int
	req     *req // nil for the connection's own PDUs
	release bool // free req once written
}

// req is one request slot of a connection.
type req struct {
	nvmf.Request
	state    reqState
	buf      []byte // data buffer; grows to the largest transfer seen, then stays
	h2cOff   uint32 // next DATAO expected
	ddgstErr bool
	txQueued bool
	tx       txItem
	hbuf     [hbufSize]byte
	rbuf     [proto.CapsuleRespHLen + proto.DigestLen]byte
	dg       [proto.DigestLen]byte
}

func (r *req) grow(n int) {
	if cap(r.buf) < n {
		r.buf = make([]byte, (n+4095)&^4095)
	}
	r.buf = r.buf[:cap(r.buf)]
}

// conn is one NVMe/TCP connection: one queue pair. It is owned by its poll
// group's reactor; only Transport.Accept touches it before addConnMsg.
type conn struct {
	t            *Transport
	g            *PollGroup
	fd           int
	slot         int
	id           uint64
	laddr, paddr nvmf.ListenAddr
	state        connState
	parser       *proto.Parser
	txf          proto.Framing
	born         reactor.Ticks

	qid, sqsize uint16
	connected   bool
	sqHead      uint16
	ctx         any

	rxReady, txReady bool
	rxEOF            bool // the peer shut down or errored: keep reading to the end
	rxBlocked        bool // a capsule waits for a free request slot
	rxStarted        int  // commands started by the current recv
	rxResume         bool // a slot was freed: process the waiting capsule
	notify           bool // Handler.QPairDisconnected is due

	// Receive side.
	rxs     rxState
	hdr     [proto.ICLen]byte
	pad     [256]byte
	ddgst   [proto.DigestLen]byte
	term    [proto.MaxTermReqData]byte
	rxh     proto.PDUHeader
	ptype   proto.PDUType
	hlen    int
	dataLen int
	dataOff int
	ddgstOn bool
	cur     *req
	curOff  uint32
	seg     [6][]byte
	nseg    int // segments of the current stage
	si, so  int // read position: segment and offset
	dataSeg int // index in seg of the payload (in-capsule or H2C data); -1 if none
	iov     [7]unix.Iovec

	// pipe holds bytes read past the current stage; pipe[pStart:pEnd]
	// are the next ones of the stream.
	pipe         [rxPipeSize]byte
	pStart, pEnd int
	stats        connStats

	// Transmit side.
	txHead, txTail *txItem
	txItems        int // items queued
	txSeg, txOff   int
	txIov          [64]unix.Iovec
	icItem         txItem
	termItem       txItem
	icBuf          [proto.ICLen]byte
	termBuf        [proto.MaxTermReqPLen]byte

	reqs        []req
	free        []int32
	outstanding int // requests held by the target
}

var _ nvmf.QPair = (*conn)(nil)

func newConn(t *Transport, g *PollGroup, fd int, laddr, paddr nvmf.ListenAddr) *conn {
	maxIC := max(uint32(proto.MaxAdminInCapsule), t.opts.InCapsuleDataSize)
	p, err := proto.NewParser(proto.ParserOptions{Role: proto.RoleController, MaxInCapsuleData: maxIC, MaxH2CData: MaxH2CData})
	if err != nil {
		panic(err) // constant options: a programming error
	}
	n := max(int(t.opts.MaxQueueDepth), int(t.opts.MaxAQDepth))
	c := &conn{t: t, g: g, fd: fd, slot: -1, id: t.nextID.Add(1), laddr: laddr, paddr: paddr,
		parser: p, rxReady: true, txReady: true, reqs: make([]req, n), free: make([]int32, 0, n),
		born: reactor.Now()}
	for i := n - 1; i >= 0; i-- {
		r := &c.reqs[i]
		r.Slot = i
		r.QPair = c
		c.free = append(c.free, int32(i))
	}
	c.setCH()
	return c
}

// --- nvmf.QPair ---

// Reactor implements nvmf.QPair.
func (c *conn) Reactor() *reactor.Reactor { return c.g.r }

// ID implements nvmf.QPair.
func (c *conn) ID() uint64 { return c.id }

// Info implements nvmf.QPair.
func (c *conn) Info() nvmf.QPairInfo { return nvmf.QPairInfo{Listen: c.laddr, Peer: c.paddr} }

// Ctx implements nvmf.QPair.
func (c *conn) Ctx() any { return c.ctx }

// SetCtx implements nvmf.QPair.
func (c *conn) SetCtx(v any) { c.ctx = v }

// Connected implements nvmf.QPair: an I/O queue accepts only the
// configured in-capsule data size from now on.
func (c *conn) Connected(qid, sqsize uint16) {
	c.qid, c.sqsize, c.connected = qid, sqsize, true
	if c.sqHead > sqsize {
		c.sqHead = 0
	}
	if qid != 0 {
		c.parser.SetMaxInCapsuleData(c.t.opts.InCapsuleDataSize)
	}
}

// Disconnect implements nvmf.QPair.
func (c *conn) Disconnect() { c.beginClose() }

// Complete implements nvmf.QPair: queue the C2HData (controller-to-host
// data, with SUCCESS when c2h_success allows) and the CapsuleResp.
func (c *conn) Complete(nr *nvmf.Request) {
	i := nr.Slot
	if i < 0 || i >= len(c.reqs) || &c.reqs[i].Request != nr || c.reqs[i].state != reqExec {
		c.t.log.Error("nvmf/tcp: Complete of a request not in execution", "slot", i)
		return
	}
	r := &c.reqs[i]
	c.outstanding--
	if c.state >= connClosing {
		c.freeReq(r)
		return
	}
	r.Rsp.CID = r.SQE.CID
	r.Rsp.SQHead = c.sqHead
	r.Rsp.SQID = 0
	r.Rsp.Phase = false
	it := &r.tx
	*it = txItem{req: r, release: true}
	if r.Xfer == proto.XferCtrlToHost && r.Rsp.Status.Success() && r.Length > 0 {
		l := min(r.Length, uint32(len(r.Data)))
		succ := c.t.opts.C2HSuccess
		d := proto.DataPDU{CCCID: r.SQE.CID, DataL: l, Last: true, Success: succ}
		pdo, err := proto.EncodeC2HData(r.hbuf[:], c.txf, &d)
		if err == nil {
			it.segs[0], it.segs[1], it.n = r.hbuf[:pdo], r.Data[:l], 2
			if c.txf.Digests&proto.DigestData != 0 {
				proto.PutDigest(r.dg[:], proto.CRC32C(r.Data[:l]))
				it.segs[2], it.n = r.dg[:], 3
			}
			if succ {
				r.state = reqTx
				c.enqueue(it)
				c.eagerFlush()
				return
			}
		} else {
			r.Rsp.Status = proto.StatusInternalError.WithDNR()
		}
	}
	n, err := proto.EncodeCapsuleResp(r.rbuf[:], c.txf, &r.Rsp)
	if err != nil {
		c.t.log.Error("nvmf/tcp: encode CapsuleResp", "err", err)
		c.freeReq(r)
		c.beginClose()
		return
	}
	it.segs[it.n] = r.rbuf[:n]
	it.n++
	r.state = reqTx
	c.enqueue(it)
	c.eagerFlush()
}

// eagerFlush writes the queued responses once txEager of them wait.
func (c *conn) eagerFlush() {
	if c.txItems >= txEager && c.txReady && c.fd >= 0 && c.state < connClosing {
		c.flush()
	}
}

// --- polling ---

// pending reports work the reactor would not be woken for.
func (c *conn) pending() bool {
	if c.rxResume || c.notify {
		return true
	}
	if c.state < connClosing && (c.rxReady || c.pStart < c.pEnd) && !c.rxBlocked {
		return true
	}
	if c.txHead != nil && c.txReady && c.fd >= 0 {
		return true
	}
	return c.state == connClosing && c.outstanding == 0
}

// poll does one round of work; it reports whether anything happened.
func (c *conn) poll() bool {
	busy := false
	if c.txHead != nil && c.txReady && c.fd >= 0 {
		c.flush()
		busy = true
	}
	if c.rxResume {
		c.rxResume = false
		c.process()
		busy = true
	}
	if c.state < connClosing && (c.rxReady || c.pStart < c.pEnd) && !c.rxBlocked {
		if c.recv() {
			busy = true
		}
	}
	if c.txHead != nil && c.txReady && c.fd >= 0 {
		c.flush()
		busy = true
	}
	// born may be later than this iteration's start (a connection adopted
	// by a message): Ticks are unsigned.
	if now := c.g.r.IterNow(); c.state == connICReq && now > c.born && (now-c.born).Duration() > icTimeout {
		c.t.log.Warn("nvmf/tcp: no ICReq, closing", "peer", c.paddr.String())
		c.abort()
	}
	if c.state >= connClosing && c.state != connClosed {
		c.finishClose()
		busy = true
	}
	return busy
}

// connStats counts a connection's receive work. It is written on the
// connection's reactor only.
type connStats struct {
	Reads        uint64 // readv calls that returned data
	PipeBytes    uint64 // bytes taken from the receive pipe instead of a readv
	CopiedBytes  uint64 // payload bytes (in-capsule or H2C data) copied out of the pipe
	PDUsReceived uint64
}

// recv fills the current stage, first from the pipe and then with readv
// calls (at most rxBatch of them), and processes what completed.
func (c *conn) recv() bool {
	did := false
	c.rxStarted = 0
	for reads := 0; reads < rxBatch && c.rxStarted < rxCmds; {
		if c.state >= connClosing || c.rxBlocked {
			break
		}
		if c.si < c.nseg {
			if c.pStart < c.pEnd {
				c.fromPipe()
				did = true
			} else {
				if !c.rxReady {
					break
				}
				reads++
				if !c.readStage() {
					return true
				}
				did = true
			}
		}
		c.process()
	}
	return did
}

// readStage issues one readv: the rest of the current stage straight into
// place, then the pipe. It returns false when the connection was aborted.
func (c *conn) readStage() bool {
	cnt, stage := 0, 0
	for s := c.si; s < c.nseg; s++ {
		b := c.seg[s]
		if s == c.si {
			b = b[c.so:]
		}
		setIov(&c.iov[cnt], b)
		cnt++
		stage += len(b)
	}
	setIov(&c.iov[cnt], c.pipe[:])
	cnt++
	n, e := readv(c.fd, c.iov[:cnt])
	c.g.r.ClockStale() // commands after a syscall are stamped anew
	if e != 0 {
		switch e {
		case unix.EAGAIN:
			c.rxReady = false
		case unix.EINTR:
		default:
			c.abort()
			return false
		}
		return true
	}
	if n == 0 {
		c.abort() // the peer closed the connection
		return false
	}
	c.stats.Reads++
	if n > stage {
		c.advance(stage)
		c.pStart, c.pEnd = 0, n-stage
	} else {
		c.advance(n)
	}
	if n < stage+len(c.pipe) && !c.rxEOF {
		// A short read drained the socket; the next byte arriving raises
		// a new edge. (A pending EOF raises none, hence rxEOF.)
		c.rxReady = false
	}
	return true
}

// fromPipe copies buffered bytes into the current stage.
func (c *conn) fromPipe() {
	for c.si < c.nseg && c.pStart < c.pEnd {
		k := copy(c.seg[c.si][c.so:], c.pipe[c.pStart:c.pEnd])
		if c.si == c.dataSeg {
			c.stats.CopiedBytes += uint64(k)
		}
		c.stats.PipeBytes += uint64(k)
		c.pStart += k
		c.advance(k)
	}
	if c.pStart == c.pEnd {
		c.pStart, c.pEnd = 0, 0
	}
}

func (c *conn) advance(n int) {
	for n > 0 && c.si < c.nseg {
		rem := len(c.seg[c.si]) - c.so
		if n < rem {
			c.so += n
			return
		}
		n -= rem
		c.si++
		c.so = 0
	}
}

func (c *conn) addSeg(b []byte) {
	if len(b) > 0 {
		c.seg[c.nseg] = b
		c.nseg++
	}
}

// newStage empties the segment list.
func (c *conn) newStage() {
	c.nseg, c.si, c.so, c.dataSeg = 0, 0, 0, -1
}

// addData adds the payload segment.
func (c *conn) addData(b []byte) {
	if len(b) > 0 {
		c.dataSeg = c.nseg
		c.addSeg(b)
	}
}

// setCH starts a new PDU.
func (c *conn) setCH() {
	c.rxs = rxCH
	c.newStage()
	c.addSeg(c.hdr[:proto.CommonHeaderLen])
}

// process runs the handlers of every completed stage.
func (c *conn) process() {
	for c.state < connClosing && !c.rxBlocked && c.si >= c.nseg {
		switch c.rxs {
		case rxCH:
			c.onCH()
		case rxHdr:
			c.onHdr()
		case rxData:
			c.onData()
		}
	}
}

// onCH: the common header is in; the Parser checks it and says how long
// the header is. For a CapsuleCmd a request slot is taken now so that the
// header, the in-capsule data and the next common header arrive in one
// readv, straight into place.
func (c *conn) onCH() {
	n, err := c.parser.Parse(c.hdr[:proto.CommonHeaderLen], &c.rxh)
	if err != nil {
		c.fatal(err, c.hdr[:proto.CommonHeaderLen])
		return
	}
	t := proto.PDUType(c.hdr[0])
	flags := proto.PDUFlags(c.hdr[1])
	pdo := int(c.hdr[3])
	plen := int(binary.LittleEndian.Uint32(c.hdr[4:]))
	c.ptype, c.hlen = t, n
	c.dataLen, c.dataOff, c.ddgstOn = 0, 0, false
	switch t {
	case proto.PDUH2CTermReq:
		c.dataLen = plen - proto.TermReqHLen
	case proto.PDUCapsuleCmd, proto.PDUH2CData:
		if plen > n {
			c.dataOff = pdo
			c.ddgstOn = flags&proto.FlagDDGST != 0
			c.dataLen = plen - pdo
			if c.ddgstOn {
				c.dataLen -= proto.DigestLen
			}
		}
	}
	if t == proto.PDUCapsuleCmd {
		r := c.allocReq()
		if r == nil && !c.slotWillFree() {
			// Every slot waits for H2CData that can only come after this
			// capsule: the host sent more commands than its queue holds.
			c.fatal(proto.NewPDUError(t, proto.FESSequenceError, 0, "CapsuleCmd", "command beyond the queue depth while every command waits for its data"), c.hdr[:proto.CommonHeaderLen])
			return
		}
		if r == nil {
			// Wait for a slot; the stage stays complete so process()
			// comes back here.
			c.rxBlocked = true
			c.newStage()
			return
		}
		r.state = reqRxCapsule
		c.cur = r
	}
	c.newStage()
	c.addSeg(c.hdr[proto.CommonHeaderLen:n])
	switch t {
	case proto.PDUCapsuleCmd:
		if c.dataLen > 0 {
			r := c.cur
			r.grow(c.dataLen)
			c.addSeg(c.pad[:c.dataOff-n])
			c.addData(r.buf[:c.dataLen])
			if c.ddgstOn {
				c.addSeg(c.ddgst[:])
			}
		}
	case proto.PDUH2CTermReq:
		c.addSeg(c.term[:c.dataLen])
	}
	c.rxs = rxHdr
}

// onHdr: the whole header (and a capsule's data) is in.
func (c *conn) onHdr() {
	if _, err := c.parser.Parse(c.hdr[:c.hlen], &c.rxh); err != nil {
		if c.cur != nil {
			c.freeReq(c.cur)
			c.cur = nil
		}
		c.fatal(err, c.hdr[:c.hlen])
		return
	}
	switch c.ptype {
	case proto.PDUICReq:
		c.onICReq()
	case proto.PDUH2CTermReq:
		c.t.log.Warn("nvmf/tcp: host terminated the connection", "peer", c.paddr.String(),
			"fes", c.rxh.FES.String(), "fei", c.rxh.FEI)
		c.abort()
	case proto.PDUCapsuleCmd:
		r := c.cur
		c.cur = nil
		if c.dataLen > 0 && c.ddgstOn && proto.CRC32C(r.buf[:c.dataLen]) != proto.GetDigest(c.ddgst[:]) {
			r.ddgstErr = true
		}
		icLen := c.dataLen
		c.stats.PDUsReceived++
		c.setCH()
		c.startCommand(r, icLen)
	case proto.PDUH2CData:
		c.onH2CHeader()
	default:
		c.fatal(proto.NewPDUError(c.ptype, proto.FESInvalidHeaderField, 0, "PDU-Type", "unexpected PDU type"), c.hdr[:c.hlen])
	}
}

// onICReq answers the ICReq (NVMe/TCP 1.0 §3.6.2.2-3): every digest the
// host asks for is granted, CPDA 0, MAXH2CDATA 128 KiB.
func (c *conn) onICReq() {
	h := &c.rxh
	dg := h.Digests & (proto.DigestHeader | proto.DigestData)
	resp := proto.ICResp{PFV: proto.PFV10, CPDA: 0, Digests: dg, MaxH2CData: MaxH2CData}
	if _, err := proto.EncodeICResp(c.icBuf[:], &resp); err != nil {
		c.abort()
		return
	}
	if err := c.parser.Negotiated(dg, 0); err != nil {
		c.abort()
		return
	}
	c.txf = proto.Framing{Digests: dg, PDA: h.PDA}
	c.state = connRunning
	c.icItem = txItem{n: 1}
	c.icItem.segs[0] = c.icBuf[:]
	c.enqueue(&c.icItem)
	c.setCH()
}

// onH2CHeader checks an H2CData header against the R2T it answers and
// points the data stage at the right place of the request's buffer.
func (c *conn) onH2CHeader() {
	h := &c.rxh
	if int(h.TTag) >= len(c.reqs) {
		c.fatal(proto.NewPDUError(proto.PDUH2CData, proto.FESInvalidHeaderField, proto.DataPDUOffTTAG, "TTAG", "unknown transfer tag"), c.hdr[:c.hlen])
		return
	}
	r := &c.reqs[h.TTag]
	if r.state != reqRxH2C || r.txQueued {
		c.fatal(proto.NewPDUError(proto.PDUH2CData, proto.FESInvalidHeaderField, proto.DataPDUOffTTAG, "TTAG", "no R2T outstanding for this tag"), c.hdr[:c.hlen])
		return
	}
	if h.CCCID != r.SQE.CID {
		c.fatal(proto.NewPDUError(proto.PDUH2CData, proto.FESInvalidHeaderField, proto.DataPDUOffCCCID, "CCCID", "command ID does not match the R2T"), c.hdr[:c.hlen])
		return
	}
	if c.dataLen == 0 || int(h.Length) != c.dataLen {
		c.fatal(proto.NewPDUError(proto.PDUH2CData, proto.FESInvalidHeaderField, proto.DataPDUOffDATAL, "DATAL", "data length differs from the PDU's data"), c.hdr[:c.hlen])
		return
	}
	if h.Offset != r.h2cOff || uint64(h.Offset)+uint64(h.Length) > uint64(len(r.Data)) {
		c.fatal(proto.NewPDUError(proto.PDUH2CData, proto.FESDataOutOfRange, 0, "DATAO", "data outside the R2T window"), c.hdr[:c.hlen])
		return
	}
	c.cur, c.curOff = r, h.Offset
	c.newStage()
	c.addSeg(c.pad[:c.dataOff-c.hlen])
	c.addData(r.Data[h.Offset : h.Offset+h.Length])
	if c.ddgstOn {
		c.addSeg(c.ddgst[:])
	}
	c.rxs = rxData
}

// onData: an H2CData PDU's data is in place.
func (c *conn) onData() {
	r := c.cur
	c.cur = nil
	end := c.curOff + uint32(c.dataLen)
	if c.ddgstOn && proto.CRC32C(r.Data[c.curOff:end]) != proto.GetDigest(c.ddgst[:]) {
		r.ddgstErr = true
	}
	r.h2cOff = end
	c.stats.PDUsReceived++
	c.setCH()
	if int(r.h2cOff) == len(r.Data) {
		if r.ddgstErr {
			// NVMe/TCP 1.0 §3.5.2: a data digest error fails the command.
			c.fail(r, proto.StatusTransientTransportError)
			return
		}
		c.exec(r)
	}
}

// startCommand checks a received command's SGL (NVMe/TCP 1.0 §3.3.2) and
// either executes it, starts its R2T, or fails it.
func (c *conn) startCommand(r *req, icLen int) {
	r.SQE = c.rxh.SQE
	r.Rsp = proto.CQE{}
	r.Data, r.Length, r.Next, r.Ctx, r.Aux, r.Aux2 = nil, 0, nil, nil, 0, 0
	r.Iov[0] = nil
	r.h2cOff = 0
	c.sqHead++
	if c.connected && c.sqHead > c.sqsize {
		c.sqHead = 0
	}
	r.Xfer = r.SQE.Dir()
	c.rxStarted++
	if r.ddgstErr {
		c.fail(r, proto.StatusTransientTransportError)
		return
	}
	switch r.Xfer {
	case proto.XferNone:
		if icLen > 0 {
			c.fail(r, proto.StatusInvalidField.WithDNR())
			return
		}
		c.exec(r)
		return
	case proto.XferBidirectional:
		c.fail(r, proto.StatusInvalidField.WithDNR())
		return
	}
	if r.SQE.PSDT() == proto.PSDTPRP {
		c.fail(r, proto.StatusInvalidField.WithDNR())
		return
	}
	sgl := r.SQE.SGL()
	if sgl.Len == 0 && icLen == 0 && sgl.Type != proto.SGLTypeKeyedDataBlock {
		// No data after all (Set Features without a data structure: the
		// Linux host sends a null Transport SGL).
		c.exec(r)
		return
	}
	switch {
	case sgl.Type == proto.SGLTypeDataBlock && sgl.Subtype == proto.SGLSubOffset:
		switch {
		case r.Xfer != proto.XferHostToCtrl:
			c.fail(r, proto.StatusSGLTypeInvalid.WithDNR())
		case sgl.Addr != 0:
			c.fail(r, proto.StatusSGLOffsetInvalid.WithDNR())
		case int(sgl.Len) != icLen:
			c.fail(r, proto.StatusDataSGLLengthInvalid.WithDNR())
		default:
			r.Data = r.buf[:icLen]
			c.exec(r)
		}
	case sgl.Type == proto.SGLTypeTransportDataBlock && (sgl.Subtype == proto.SGLSubTransport || sgl.Subtype == proto.SGLSubAddress):
		switch {
		case icLen != 0:
			c.fail(r, proto.StatusInvalidField.WithDNR())
		case sgl.Len > c.t.opts.MaxIOSize:
			c.fail(r, proto.StatusDataSGLLengthInvalid.WithDNR())
		case sgl.Len == 0:
			c.exec(r)
		default:
			r.grow(int(sgl.Len))
			r.Data = r.buf[:sgl.Len]
			if r.Xfer == proto.XferHostToCtrl {
				r.state = reqRxH2C
				c.sendR2T(r)
				return
			}
			c.exec(r)
		}
	default:
		c.fail(r, proto.StatusSGLTypeInvalid.WithDNR())
	}
}

func (c *conn) exec(r *req) {
	r.state = reqExec
	r.Length = uint32(len(r.Data))
	c.outstanding++
	c.t.h.Exec(&r.Request)
}

// fail completes r with s without executing it.
func (c *conn) fail(r *req, s proto.Status) {
	r.state = reqExec
	r.Rsp.Status = s
	r.Length = 0
	c.outstanding++
	c.Complete(&r.Request)
}

// sendR2T asks for the whole transfer at once (MAXR2T 1 is enough): the
// host splits it into H2CData PDUs of at most MAXH2CDATA.
func (c *conn) sendR2T(r *req) {
	r2t := proto.R2T{CCCID: r.SQE.CID, TTag: uint16(r.Slot), R2TO: 0, R2TL: uint32(len(r.Data))}
	n, err := proto.EncodeR2T(r.hbuf[:], c.txf, &r2t)
	if err != nil {
		c.fail(r, proto.StatusInternalError.WithDNR())
		return
	}
	r.tx = txItem{req: r, n: 1}
	r.tx.segs[0] = r.hbuf[:n]
	c.enqueue(&r.tx)
}

// --- transmit ---

func (c *conn) enqueue(it *txItem) {
	it.next = nil
	if c.txTail != nil {
		c.txTail.next = it
	} else {
		c.txHead = it
	}
	c.txTail = it
	c.txItems++
	if it.req != nil {
		it.req.txQueued = true
	}
}

// flush writes queued PDUs with writev until the socket is full.
func (c *conn) flush() {
	for c.txHead != nil && c.txReady && c.fd >= 0 {
		cnt, total := 0, 0
		for it := c.txHead; it != nil; it = it.next {
			if cnt+it.n > len(c.txIov) {
				break
			}
			for s := 0; s < it.n; s++ {
				b := it.segs[s]
				if it == c.txHead {
					if s < c.txSeg {
						continue
					}
					if s == c.txSeg {
						b = b[c.txOff:]
					}
				}
				if len(b) == 0 {
					continue
				}
				setIov(&c.txIov[cnt], b)
				cnt++
				total += len(b)
			}
		}
		if cnt == 0 {
			c.txAdvance(0)
			continue
		}
		n, e := writev(c.fd, c.txIov[:cnt])
		c.g.r.ClockStale()
		if e != 0 {
			if e == unix.EAGAIN {
				c.txReady = false
				return
			}
			if e == unix.EINTR {
				continue
			}
			c.abort()
			return
		}
		c.txAdvance(n)
		if n < total {
			c.txReady = false
			return
		}
	}
}

// txAdvance consumes n written bytes from the head of the queue.
func (c *conn) txAdvance(n int) {
	for c.txHead != nil {
		it := c.txHead
		for c.txSeg < it.n {
			rem := len(it.segs[c.txSeg]) - c.txOff
			if n < rem {
				c.txOff += n
				return
			}
			n -= rem
			c.txSeg++
			c.txOff = 0
		}
		c.txHead = it.next
		if c.txHead == nil {
			c.txTail = nil
		}
		c.txSeg, c.txOff = 0, 0
		c.sent(it)
		if n == 0 {
			return
		}
	}
}

func (c *conn) sent(it *txItem) {
	it.next = nil
	c.txItems--
	r := it.req
	if r == nil {
		return
	}
	r.txQueued = false
	if it.release || (c.state >= connClosing && r.state != reqExec) {
		c.freeReq(r)
	}
}

// dropTx forgets every queued PDU (the connection is going away).
func (c *conn) dropTx() {
	for it := c.txHead; it != nil; {
		nx := it.next
		if r := it.req; r != nil {
			r.txQueued = false
			if r.state != reqExec && r.state != reqFree {
				c.freeReq(r)
			}
		}
		it.next = nil
		it = nx
	}
	c.txHead, c.txTail, c.txItems = nil, nil, 0
	c.txSeg, c.txOff = 0, 0
}

// --- request slots ---

// slotWillFree reports whether a held request slot will come back without
// more input: one the target executes or whose response is queued.
func (c *conn) slotWillFree() bool {
	if c.outstanding > 0 {
		return true
	}
	for i := range c.reqs {
		if st := c.reqs[i].state; st == reqExec || st == reqTx {
			return true
		}
	}
	return false
}

func (c *conn) allocReq() *req {
	n := len(c.free)
	if n == 0 {
		return nil
	}
	i := c.free[n-1]
	c.free = c.free[:n-1]
	return &c.reqs[i]
}

func (c *conn) freeReq(r *req) {
	if r.state == reqFree {
		return
	}
	r.state = reqFree
	r.Data, r.Ctx, r.Next = nil, nil, nil
	r.Iov[0] = nil
	r.ddgstErr, r.txQueued = false, false
	c.free = append(c.free, int32(r.Slot))
	if c.rxBlocked {
		c.rxBlocked = false
		c.rxResume = true
	}
}

// --- closing ---

// fatal answers a fatal transport error with a C2HTermReq (unless the
// error says not to) and closes the connection (NVMe/TCP 1.0 §3.5.1).
func (c *conn) fatal(err error, hdr []byte) {
	var pe *proto.PDUError
	if errors.As(err, &pe) && !pe.NoReply {
		if n, e := proto.EncodeTermReq(c.termBuf[:], proto.PDUC2HTermReq, pe.FES, pe.FEI, hdr); e == nil {
			c.termItem = txItem{n: 1}
			c.termItem.segs[0] = c.termBuf[:n]
			c.enqueue(&c.termItem)
		}
	}
	c.t.log.Warn("nvmf/tcp: fatal transport error, closing", "peer", c.paddr.String(), "err", err)
	c.beginClose()
}

// beginClose stops receiving. Requests that were still receiving are
// freed; the target is told on the next poll.
func (c *conn) beginClose() {
	if c.state >= connClosing {
		return
	}
	c.state = connClosing
	c.notify = true
	c.rxBlocked, c.rxResume = false, false
	if c.cur != nil {
		c.freeReq(c.cur)
		c.cur = nil
	}
	for i := range c.reqs {
		r := &c.reqs[i]
		if (r.state == reqRxCapsule || r.state == reqRxH2C) && !r.txQueued {
			c.freeReq(r)
		}
	}
}

// abort closes at once, dropping whatever is queued.
func (c *conn) abort() {
	c.beginClose()
	c.dropTx()
	c.closeFD()
}

// closeFD drains what the peer already sent (a bounded number of reads),
// so that close sends FIN rather than RST and the peer can still read a
// TermReq written just before, then closes the socket.
func (c *conn) closeFD() {
	if c.fd < 0 {
		return
	}
	for i := 0; i < 64; i++ {
		setIov(&c.iov[0], c.pad[:])
		n, e := readv(c.fd, c.iov[:1])
		if e != 0 || n <= 0 {
			break
		}
	}
	unix.Close(c.fd)
	c.fd = -1
}

// finishClose runs while closing: tell the target, flush or drop, close
// the socket, and release the connection once the target has completed
// every request it held.
func (c *conn) finishClose() {
	if c.notify {
		c.notify = false
		c.t.h.QPairDisconnected(c)
	}
	if c.txHead != nil && (!c.txReady || c.fd < 0) {
		c.dropTx()
	}
	if c.txHead == nil {
		c.closeFD()
	}
	if c.fd < 0 && c.outstanding == 0 {
		c.state = connClosed
		c.g.release(c)
	}
}
