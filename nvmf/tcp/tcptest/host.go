// Package tcptest is a small NVMe/TCP host for tests of the target: it
// dials a listener on loopback, exchanges ICReq/ICResp, and sends commands
// with in-capsule data, R2T/H2CData or C2HData transfers, with or without
// digests. It also writes raw bytes, for malformed-input tests.
//
// A Host is used by one goroutine. Once set up, submitting and reaping
// commands allocates nothing (the target's allocation tests rely on it):
// PDUs are encoded into a preallocated send buffer and parsed from a
// preallocated receive buffer.
package tcptest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"hyperpath/nvmf/proto"
)

// Options configure Dial.
type Options struct {
	HeaderDigest bool
	DataDigest   bool
	HPDA         uint8         // host PDU data alignment, 0..31
	Timeout      time.Duration // deadline for the whole life of the Host (default 30 s)
	// MaxInline is the most write data sent in capsule (default 4096; 0
	// after Dial means the default, negative disables in-capsule data).
	MaxInline int
}

// Host is one NVMe/TCP connection (one queue pair) to a target.
type Host struct {
	conn       net.Conn
	parser     *proto.Parser
	tx         proto.Framing // framing of what we send: digests and the controller's CPDA
	maxH2C     uint32
	maxInline  int
	rbuf       []byte
	r, w       int
	sbuf       []byte
	dig        [4]byte
	cmds       [4096]cmdState
	nextCID    uint16
	Digests    proto.Digest // negotiated
	MaxH2CData uint32       // from ICResp
}

type cmdState struct {
	busy  bool
	write []byte
	read  []byte
	got   uint32
}

// ErrTerminated is returned when the target sent a C2HTermReq.
var ErrTerminated = errors.New("tcptest: target sent C2HTermReq")

// TermReqError carries a C2HTermReq's FES and FEI.
type TermReqError struct {
	FES proto.FES
	FEI uint32
}

func (e *TermReqError) Error() string {
	return fmt.Sprintf("tcptest: C2HTermReq FES %v FEI %d", e.FES, e.FEI)
}

func (e *TermReqError) Unwrap() error { return ErrTerminated }

// DialRaw opens a TCP connection without the ICReq exchange.
func DialRaw(addr string, timeout time.Duration) (net.Conn, error) {
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(timeout))
	return c, nil
}

// Dial connects to addr and exchanges ICReq/ICResp.
func Dial(addr string, o Options) (*Host, error) {
	c, err := DialRaw(addr, o.Timeout)
	if err != nil {
		return nil, err
	}
	h, err := NewHost(c, o)
	if err != nil {
		c.Close()
		return nil, err
	}
	return h, nil
}

// NewHost runs the ICReq exchange on an open connection.
func NewHost(c net.Conn, o Options) (*Host, error) {
	var dg proto.Digest
	if o.HeaderDigest {
		dg |= proto.DigestHeader
	}
	if o.DataDigest {
		dg |= proto.DigestData
	}
	p, err := proto.NewParser(proto.ParserOptions{Role: proto.RoleHost, RequestedDigests: dg})
	if err != nil {
		return nil, err
	}
	h := &Host{conn: c, parser: p, rbuf: make([]byte, 1<<20), sbuf: make([]byte, 1<<20), nextCID: 1}
	h.maxInline = o.MaxInline
	if h.maxInline == 0 {
		h.maxInline = 4096
	}
	n, _ := proto.EncodeICReq(h.sbuf, &proto.ICReq{HPDA: o.HPDA, Digests: dg})
	if _, err := c.Write(h.sbuf[:n]); err != nil {
		return nil, err
	}
	var ph proto.PDUHeader
	if _, err := h.readPDU(&ph); err != nil {
		return nil, err
	}
	if ph.Type != proto.PDUICResp {
		return nil, fmt.Errorf("tcptest: got %v instead of ICResp", ph.Type)
	}
	if err := p.Negotiated(ph.Digests, o.HPDA); err != nil {
		return nil, err
	}
	h.Digests, h.MaxH2CData = ph.Digests, ph.MaxData
	h.maxH2C = ph.MaxData
	h.tx = proto.Framing{Digests: ph.Digests, PDA: ph.PDA}
	return h, nil
}

// Conn returns the underlying connection (for raw writes).
func (h *Host) Conn() net.Conn { return h.conn }

// Close closes the connection.
func (h *Host) Close() error { return h.conn.Close() }

// SetMaxInline changes the in-capsule limit used for writes.
func (h *Host) SetMaxInline(n int) { h.maxInline = n }

// fill makes at least n bytes available at rbuf[r:].
func (h *Host) fill(n int) error {
	if n > len(h.rbuf) {
		return fmt.Errorf("tcptest: PDU of %d bytes exceeds the receive buffer", n)
	}
	if h.w-h.r >= n {
		return nil
	}
	if h.r+n > len(h.rbuf) {
		copy(h.rbuf, h.rbuf[h.r:h.w])
		h.w -= h.r
		h.r = 0
	}
	for h.w-h.r < n {
		m, err := h.conn.Read(h.rbuf[h.w:])
		h.w += m
		if err != nil {
			if h.w-h.r >= n {
				return nil
			}
			return err
		}
	}
	return nil
}

// readPDU returns the next PDU's header and its whole bytes (valid until
// the next read).
func (h *Host) readPDU(ph *proto.PDUHeader) ([]byte, error) {
	need := proto.CommonHeaderLen
	for {
		if err := h.fill(need); err != nil {
			return nil, err
		}
		n, err := h.parser.Parse(h.rbuf[h.r:h.w], ph)
		if err != nil {
			return nil, err
		}
		if n <= h.w-h.r {
			break
		}
		need = n
	}
	plen := int(ph.PLen)
	if err := h.fill(plen); err != nil {
		return nil, err
	}
	pdu := h.rbuf[h.r : h.r+plen]
	h.r += plen
	if ph.Type == proto.PDUC2HTermReq {
		return pdu, &TermReqError{FES: ph.FES, FEI: ph.FEI}
	}
	if ph.DataDigest && ph.DataLen > 0 {
		data := pdu[ph.DataOffset : ph.DataOffset+ph.DataLen]
		if proto.CRC32C(data) != proto.GetDigest(pdu[ph.DataOffset+ph.DataLen:]) {
			return nil, errors.New("tcptest: data digest mismatch")
		}
	}
	return pdu, nil
}

// ReadPDU reads the next PDU (for tests that drive the protocol by hand).
func (h *Host) ReadPDU() (proto.PDUHeader, []byte, error) {
	var ph proto.PDUHeader
	pdu, err := h.readPDU(&ph)
	return ph, pdu, err
}

// WriteRaw sends b as is.
func (h *Host) WriteRaw(b []byte) error {
	_, err := h.conn.Write(b)
	return err
}

// AllocCID returns a free command ID.
func (h *Host) AllocCID() uint16 {
	for i := 0; i < len(h.cmds); i++ {
		cid := h.nextCID
		h.nextCID++
		if int(h.nextCID) >= len(h.cmds) {
			h.nextCID = 1
		}
		if !h.cmds[cid].busy {
			return cid
		}
	}
	return 0
}

// Submit sends sqe (its CID and SGL are set here): write data goes in
// capsule when it fits, else after the target's R2T; read data of
// len(read) bytes is collected from C2HData PDUs. It returns the CID.
func (h *Host) Submit(sqe *proto.SQE, write, read []byte) (uint16, error) {
	cid := h.AllocCID()
	sqe.CID = cid
	if sqe.PSDT() == proto.PSDTPRP {
		sqe.SetPSDT(proto.PSDTSGL)
	}
	ic := 0
	switch {
	case len(write) > 0 && len(write) <= h.maxInline:
		sqe.SetSGL(proto.InCapsuleSGL(0, uint32(len(write))))
		ic = len(write)
	case len(write) > 0:
		sqe.SetSGL(proto.TCPDataSGL(uint32(len(write))))
	case len(read) > 0:
		sqe.SetSGL(proto.TCPDataSGL(uint32(len(read))))
	default:
		sqe.SetSGL(proto.TCPDataSGL(0)) // the null SGL a Linux host sends
	}
	st := &h.cmds[cid]
	*st = cmdState{busy: true, write: write, read: read}
	n, err := proto.EncodeCapsuleCmd(h.sbuf, h.tx, sqe, ic)
	if err != nil {
		st.busy = false
		return 0, err
	}
	if ic > 0 {
		n += copy(h.sbuf[n:], write)
		if h.tx.Digests&proto.DigestData != 0 {
			proto.PutDigest(h.sbuf[n:], proto.CRC32C(write))
			n += proto.DigestLen
		}
	}
	if _, err := h.conn.Write(h.sbuf[:n]); err != nil {
		st.busy = false
		return 0, err
	}
	return cid, nil
}

// Reap processes PDUs until a command completes and returns its CQE
// (R2Ts are answered with H2CData, C2HData land in the read buffers).
func (h *Host) Reap() (proto.CQE, error) {
	var ph proto.PDUHeader
	for {
		pdu, err := h.readPDU(&ph)
		if err != nil {
			return proto.CQE{}, err
		}
		switch ph.Type {
		case proto.PDUCapsuleResp:
			cqe := ph.CQE
			if int(cqe.CID) < len(h.cmds) {
				h.cmds[cqe.CID].busy = false
			}
			return cqe, nil
		case proto.PDUC2HData:
			if int(ph.CCCID) >= len(h.cmds) || !h.cmds[ph.CCCID].busy {
				return proto.CQE{}, fmt.Errorf("tcptest: C2HData for unknown CID %d", ph.CCCID)
			}
			st := &h.cmds[ph.CCCID]
			end := uint64(ph.Offset) + uint64(ph.Length)
			if end > uint64(len(st.read)) {
				return proto.CQE{}, fmt.Errorf("tcptest: C2HData [%d,%d) beyond the %d-byte buffer", ph.Offset, end, len(st.read))
			}
			copy(st.read[ph.Offset:end], pdu[ph.DataOffset:ph.DataOffset+ph.DataLen])
			st.got += ph.Length
			if ph.Success() {
				st.busy = false
				return proto.CQE{CID: ph.CCCID}, nil
			}
		case proto.PDUR2T:
			if err := h.answerR2T(&ph); err != nil {
				return proto.CQE{}, err
			}
		default:
			return proto.CQE{}, fmt.Errorf("tcptest: unexpected %v", ph.Type)
		}
	}
}

func (h *Host) answerR2T(ph *proto.PDUHeader) error {
	if int(ph.CCCID) >= len(h.cmds) || !h.cmds[ph.CCCID].busy {
		return fmt.Errorf("tcptest: R2T for unknown CID %d", ph.CCCID)
	}
	st := &h.cmds[ph.CCCID]
	off, left := ph.Offset, ph.Length
	if uint64(off)+uint64(left) > uint64(len(st.write)) {
		return fmt.Errorf("tcptest: R2T [%d,+%d) beyond the %d-byte write", off, left, len(st.write))
	}
	chunk := h.maxH2C
	if chunk == 0 || chunk > uint32(len(h.sbuf)/2) {
		chunk = uint32(len(h.sbuf) / 2)
	}
	for left > 0 {
		l := min(left, chunk)
		d := proto.DataPDU{CCCID: ph.CCCID, TTag: ph.TTag, DataO: off, DataL: l, Last: l == left}
		n, err := proto.EncodeH2CData(h.sbuf, h.tx, &d)
		if err != nil {
			return err
		}
		n += copy(h.sbuf[n:], st.write[off:off+l])
		if h.tx.Digests&proto.DigestData != 0 {
			proto.PutDigest(h.sbuf[n:], proto.CRC32C(st.write[off:off+l]))
			n += proto.DigestLen
		}
		if _, err := h.conn.Write(h.sbuf[:n]); err != nil {
			return err
		}
		off += l
		left -= l
	}
	return nil
}

// Exec submits one command and waits for its completion.
func (h *Host) Exec(sqe *proto.SQE, write, read []byte) (proto.CQE, error) {
	if _, err := h.Submit(sqe, write, read); err != nil {
		return proto.CQE{}, err
	}
	return h.Reap()
}

// Connect sends a Connect command (qid 0 creates a controller; cntlid
// 0xffff asks for a dynamic one) and returns the CQE.
func (h *Host) Connect(qid, sqsize uint16, katoMs uint32, cntlid uint16, subnqn, hostnqn string, hostid [16]byte) (proto.CQE, error) {
	var sqe proto.SQE
	if err := sqe.PutConnect(&proto.ConnectCmd{QID: qid, SQSize: sqsize, KATO: katoMs}); err != nil {
		return proto.CQE{}, err
	}
	data := make([]byte, proto.ConnectDataSize)
	d := proto.ConnectData{HostID: hostid, CNTLID: cntlid, SubNQN: subnqn, HostNQN: hostnqn}
	if err := d.Encode(data); err != nil {
		return proto.CQE{}, err
	}
	return h.Exec(&sqe, data, nil)
}

// PropGet reads a property.
func (h *Host) PropGet(off uint32) (uint64, proto.CQE, error) {
	var sqe proto.SQE
	attr := proto.PropSize4
	if proto.PropertySize(off) == 8 {
		attr = proto.PropSize8
	}
	sqe.PutPropertyGet(&proto.PropertyCmd{Attrib: attr, Offset: off})
	cqe, err := h.Exec(&sqe, nil, nil)
	return proto.PropertyGetValue(&cqe), cqe, err
}

// PropSet writes a property.
func (h *Host) PropSet(off uint32, v uint64) (proto.CQE, error) {
	var sqe proto.SQE
	attr := proto.PropSize4
	if proto.PropertySize(off) == 8 {
		attr = proto.PropSize8
	}
	sqe.PutPropertySet(&proto.PropertyCmd{Attrib: attr, Offset: off, Value: v})
	return h.Exec(&sqe, nil, nil)
}

// Enable sets CC.EN and waits for CSTS.RDY.
func (h *Host) Enable() error {
	cc := proto.CCFields{EN: true, IOSQES: 6, IOCQES: 4}.CC()
	cqe, err := h.PropSet(proto.PropCC, uint64(cc))
	if err != nil {
		return err
	}
	if !cqe.Status.Success() {
		return fmt.Errorf("tcptest: Property Set CC: %v", cqe.Status)
	}
	for i := 0; i < 1000; i++ {
		v, cqe, err := h.PropGet(proto.PropCSTS)
		if err != nil {
			return err
		}
		if !cqe.Status.Success() {
			return fmt.Errorf("tcptest: Property Get CSTS: %v", cqe.Status)
		}
		if proto.CSTS(v).RDY() {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return errors.New("tcptest: CSTS.RDY never set")
}

// Identify runs Identify with cns for nsid into a 4096-byte buffer.
func (h *Host) Identify(cns uint8, nsid uint32, buf []byte) (proto.CQE, error) {
	var sqe proto.SQE
	if err := sqe.PutIdentify(&proto.IdentifyCmd{CNS: cns, NSID: nsid}); err != nil {
		return proto.CQE{}, err
	}
	return h.Exec(&sqe, nil, buf)
}

// GetLogPage reads len(buf) bytes of log lid from offset.
func (h *Host) GetLogPage(lid uint8, nsid uint32, offset uint64, buf []byte) (proto.CQE, error) {
	var sqe proto.SQE
	c := proto.GetLogPageCmd{LID: lid, NSID: nsid, NUMD: proto.NUMDForBytes(uint32(len(buf))), Offset: offset}
	if err := sqe.PutGetLogPage(&c); err != nil {
		return proto.CQE{}, err
	}
	return h.Exec(&sqe, nil, buf)
}

// RW builds a read/write-class command.
func RW(op uint8, nsid uint32, slba uint64, nlb uint32) proto.SQE {
	var sqe proto.SQE
	sqe.PutRW(&proto.RWCmd{Opcode: op, NSID: nsid, SLBA: slba, NLB: nlb, SGL: proto.TCPDataSGL(0)})
	return sqe
}

// ReadAll reads until EOF or an error, returning the bytes (for tests
// that expect a TermReq then a closed connection).
func ReadAll(c net.Conn) ([]byte, error) {
	b, err := io.ReadAll(c)
	return b, err
}

// PutCapsuleHeader is a helper for raw tests: it encodes a CapsuleCmd
// header for sqe with dataLen bytes of data into b.
func PutCapsuleHeader(b []byte, f proto.Framing, sqe *proto.SQE, dataLen int) int {
	n, _ := proto.EncodeCapsuleCmd(b, f, sqe, dataLen)
	return n
}

// LE32 reads a little-endian uint32 (raw test helper).
func LE32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }
