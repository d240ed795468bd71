// Package testtarget is a small NVMe/TCP controller over RAM namespaces
// for testing nvmf/initiator and bdev/remote: ICReq/ICResp with digests and
// CPDA, Connect on admin and I/O queues, Property Get/Set with CC.EN/RDY and
// shutdown, Identify (controller, active namespace list, namespace,
// descriptors), Set Features Number of Queues, Keep Alive, the Discovery
// log page, and Read (split C2HData, optional SUCCESS flag), Write (in
// capsule or by R2T, optionally split), Compare, Flush, Write Zeroes and
// Dataset Management. It also injects faults: data digest corruption,
// dropped connections, refusing connections, a frozen controller.
//
// It is a test peer, not the product target (that is nvmf/target): each
// connection is served by a goroutine with blocking socket I/O, one
// command at a time. Its steady-state read and write path allocates
// nothing, so host-side allocation tests can run against it.
package testtarget

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"hyperpath/nvmf/proto"
)

// NS is one namespace of the target.
type NS struct {
	ID        uint32
	BlockSize uint32
	NumBlocks uint64
	UUID      [16]byte // reported in the descriptors when not zero
}

// Options configure a Target. Zero values get the defaults noted.
type Options struct {
	Addr       string // listen address, default 127.0.0.1:0
	SubNQN     string // default nqn.2016-06.io.hyperpath:testtarget
	Namespaces []NS   // default one 64 MiB namespace of 512-byte blocks
	// InCapsule is the in-capsule data size of I/O queues (IOCCSZ*16-64),
	// default 4096; a multiple of 16.
	InCapsule uint32
	// MaxH2CData is advertised in the ICResp (default 128 KiB).
	MaxH2CData uint32
	// MDTS in 4 KiB pages as a power of two (default 5: 128 KiB).
	MDTS uint8
	// MaxC2HData splits read data into PDUs of at most this size
	// (default 32 KiB).
	MaxC2HData uint32
	// R2TChunk splits the data solicited by R2T into several R2Ts of at
	// most this size (default: one R2T for everything).
	R2TChunk uint32
	// C2HSuccess sets SUCCESS on the last C2HData instead of sending a
	// CapsuleResp.
	C2HSuccess bool
	// CPDA is the controller's PDU data alignment (0..31).
	CPDA uint8
	// NoDigests makes the target refuse every digest.
	NoDigests bool
	// IOQueues is the number of I/O queues granted (default 64).
	IOQueues uint16
	// MQES is CAP.MQES, 0's based (default 127).
	MQES uint16
	// Referrals are extra discovery log entries.
	Referrals []proto.DiscoveryEntry
}

// Stats are what the target saw.
type Stats struct {
	Connects   atomic.Uint64
	KeepAlives atomic.Uint64
	Commands   atomic.Uint64
	Reads      atomic.Uint64
	Writes     atomic.Uint64
	R2Ts       atomic.Uint64
	InCapsule  atomic.Uint64
	Shutdowns  atomic.Uint64
}

// Target is a running test controller.
type Target struct {
	o     Options
	addr  string
	Stats Stats

	mu      sync.Mutex
	ln      net.Listener
	conns   map[net.Conn]struct{}
	ctrls   map[uint16]*ctrl
	nextID  uint16
	nss     map[uint32]*nsData
	nsIDs   []uint32
	frozen  chan struct{} // closed when not frozen
	stopped bool
	wg      sync.WaitGroup

	corruptC2H atomic.Int32 // data digests to corrupt on C2HData
	dropAfter  atomic.Int64 // commands left before all connections drop (<0: off)
}

type nsData struct {
	NS
	mu   sync.Mutex
	data []byte
}

// ctrl is one controller (admin queue association).
type ctrl struct {
	id      uint16
	cc      atomic.Uint32
	csts    atomic.Uint32
	hostNQN string
}

// Start listens and serves.
func Start(o Options) (*Target, error) {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.SubNQN == "" {
		o.SubNQN = "nqn.2016-06.io.hyperpath:testtarget"
	}
	if len(o.Namespaces) == 0 {
		o.Namespaces = []NS{{ID: 1, BlockSize: 512, NumBlocks: 131072}}
	}
	if o.InCapsule == 0 {
		o.InCapsule = 4096
	}
	if o.MaxH2CData == 0 {
		o.MaxH2CData = 128 << 10
	}
	if o.MDTS == 0 {
		o.MDTS = 5
	}
	if o.MaxC2HData == 0 {
		o.MaxC2HData = 32 << 10
	}
	if o.IOQueues == 0 {
		o.IOQueues = 64
	}
	if o.MQES == 0 {
		o.MQES = 127
	}
	t := &Target{o: o, conns: map[net.Conn]struct{}{}, ctrls: map[uint16]*ctrl{}, nss: map[uint32]*nsData{}, nextID: 1}
	t.dropAfter.Store(-1)
	t.frozen = make(chan struct{})
	close(t.frozen)
	for _, n := range o.Namespaces {
		t.nss[n.ID] = &nsData{NS: n, data: make([]byte, n.NumBlocks*uint64(n.BlockSize))}
		t.nsIDs = append(t.nsIDs, n.ID)
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, err
	}
	t.addr = ln.Addr().String()
	t.ln = ln
	t.wg.Add(1)
	go t.accept(ln)
	return t, nil
}

// Addr returns the host and port the target listens on.
func (t *Target) Addr() (host, port string) {
	h, p, _ := net.SplitHostPort(t.addr)
	return h, p
}

// SubNQN returns the subsystem NQN.
func (t *Target) SubNQN() string { return t.o.SubNQN }

// Data returns a copy of namespace nsid's contents.
func (t *Target) Data(nsid uint32) []byte {
	n := t.nss[nsid]
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]byte(nil), n.data...)
}

// CorruptC2HDigests corrupts the data digest of the next n C2HData PDUs.
func (t *Target) CorruptC2HDigests(n int) { t.corruptC2H.Store(int32(n)) }

// DropAfter closes every connection after n more commands.
func (t *Target) DropAfter(n int) { t.dropAfter.Store(int64(n)) }

// Freeze stops serving: connections stay open but nothing is read or
// answered (a hung controller) until Thaw.
func (t *Target) Freeze() {
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case <-t.frozen:
		t.frozen = make(chan struct{})
	default:
	}
}

// Thaw ends Freeze.
func (t *Target) Thaw() {
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case <-t.frozen:
	default:
		close(t.frozen)
	}
}

func (t *Target) waitThawed() {
	t.mu.Lock()
	ch := t.frozen
	t.mu.Unlock()
	<-ch
}

// DropConnections closes every connection (the listener stays).
func (t *Target) DropConnections() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for c := range t.conns {
		c.Close()
	}
}

// Stop closes the listener and every connection, as a target process that
// exits would; the namespaces keep their data for Restart.
func (t *Target) Stop() {
	t.mu.Lock()
	if t.ln != nil {
		t.ln.Close()
		t.ln = nil
	}
	for c := range t.conns {
		c.Close()
	}
	t.ctrls = map[uint16]*ctrl{}
	t.mu.Unlock()
	t.Thaw()
}

// Restart listens again on the same address after Stop.
func (t *Target) Restart() error {
	ln, err := net.Listen("tcp", t.addr)
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.ln = ln
	t.mu.Unlock()
	t.wg.Add(1)
	go t.accept(ln)
	return nil
}

// Close stops the target for good and waits for its goroutines.
func (t *Target) Close() {
	t.Stop()
	t.mu.Lock()
	t.stopped = true
	t.mu.Unlock()
	t.wg.Wait()
}

func (t *Target) accept(ln net.Listener) {
	defer t.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		t.mu.Lock()
		if t.stopped || t.ln != ln {
			t.mu.Unlock()
			c.Close()
			continue
		}
		t.conns[c] = struct{}{}
		t.mu.Unlock()
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			s := newSession(t, c)
			s.serve()
			c.Close()
			t.mu.Lock()
			delete(t.conns, c)
			t.mu.Unlock()
		}()
	}
}

// session is one connection (one queue).
type session struct {
	t      *Target
	c      net.Conn
	p      *proto.Parser
	toHost proto.Framing
	ddgst  bool
	qid    uint16
	ctrl   *ctrl
	maxIC  uint32

	hdr  [256]byte
	dgst [4]byte
	data []byte
	out  []byte
	h    proto.PDUHeader
	// pending holds CapsuleCmds that arrived while the session waited for
	// the H2CData of an earlier command (a host pipelines commands).
	pending []pendingCmd
}

type pendingCmd struct {
	h    proto.PDUHeader
	data []byte
}

func newSession(t *Target, c net.Conn) *session {
	maxData := (uint32(4096) << t.o.MDTS) + 8192
	return &session{t: t, c: c, data: make([]byte, maxData), out: make([]byte, maxData+4096)}
}

var errClose = errors.New("close")

func (s *session) serve() {
	if err := s.setup(); err != nil {
		return
	}
	for {
		if err := s.next(); err != nil {
			return
		}
	}
}

// readPDU reads one PDU header into s.h and its data into s.data.
func (s *session) readPDU() error {
	have := 0
	for {
		n, err := s.p.Parse(s.hdr[:have], &s.h)
		if err != nil {
			s.term(err)
			return err
		}
		if n <= have {
			break
		}
		if n > len(s.hdr) {
			return errClose
		}
		if _, err := io.ReadFull(s.c, s.hdr[have:n]); err != nil {
			return err
		}
		have = n
	}
	body := int(s.h.PLen) - s.h.HeaderLen
	if s.h.Type == proto.PDUH2CTermReq {
		return errClose
	}
	if body > len(s.data)+256 {
		return errClose
	}
	if pad := s.h.PadLen(); pad > 0 {
		if _, err := io.ReadFull(s.c, s.out[:pad]); err != nil {
			return err
		}
	}
	if s.h.DataLen > 0 {
		if _, err := io.ReadFull(s.c, s.data[:s.h.DataLen]); err != nil {
			return err
		}
	}
	if s.h.DataDigest {
		d := s.dgst[:]
		if _, err := io.ReadFull(s.c, d); err != nil {
			return err
		}
		if proto.CRC32C(s.data[:s.h.DataLen]) != proto.GetDigest(d) {
			return errClose
		}
	}
	return nil
}

func (s *session) term(err error) {
	var pe *proto.PDUError
	if errors.As(err, &pe) && !pe.NoReply {
		n, e := proto.EncodeTermReq(s.out, proto.PDUC2HTermReq, pe.FES, pe.FEI, s.hdr[:8])
		if e == nil {
			s.c.Write(s.out[:n])
		}
	}
}

func (s *session) setup() error {
	var err error
	s.p, err = proto.NewParser(proto.ParserOptions{Role: proto.RoleController,
		MaxInCapsuleData: proto.MaxAdminInCapsule, MaxH2CData: s.t.o.MaxH2CData})
	if err != nil {
		return err
	}
	s.t.waitThawed()
	if err := s.readPDU(); err != nil {
		return err
	}
	if s.h.Type != proto.PDUICReq {
		return errClose
	}
	dg := s.h.Digests
	if s.t.o.NoDigests {
		dg = 0
	}
	n, err := proto.EncodeICResp(s.out, &proto.ICResp{PFV: 0, CPDA: s.t.o.CPDA, Digests: dg, MaxH2CData: s.t.o.MaxH2CData})
	if err != nil {
		return err
	}
	if _, err := s.c.Write(s.out[:n]); err != nil {
		return err
	}
	s.toHost = proto.Framing{Digests: dg, PDA: s.h.PDA}
	s.ddgst = dg&proto.DigestData != 0
	return s.p.Negotiated(dg, s.t.o.CPDA)
}

// next serves one command.
func (s *session) next() error {
	if len(s.pending) > 0 {
		p := s.pending[0]
		s.pending = s.pending[1:]
		s.h = p.h
		copy(s.data, p.data)
	} else if err := s.readPDU(); err != nil {
		return err
	}
	s.t.waitThawed()
	if s.h.Type != proto.PDUCapsuleCmd {
		return errClose
	}
	if left := s.t.dropAfter.Load(); left >= 0 {
		if left == 0 {
			s.t.dropAfter.Store(-1)
			s.t.DropConnections()
			return errClose
		}
		s.t.dropAfter.Add(-1)
	}
	s.t.Stats.Commands.Add(1)
	sqe := s.h.SQE
	var inCap []byte
	if s.h.DataLen > 0 {
		inCap = s.data[:s.h.DataLen]
		s.t.Stats.InCapsule.Add(1)
	}
	if sqe.Opcode == proto.OpFabrics {
		return s.fabrics(&sqe, inCap)
	}
	if s.ctrl == nil {
		return s.resp(&sqe, proto.StatusCommandSequenceError, 0, 0)
	}
	if s.qid == 0 {
		return s.admin(&sqe, inCap)
	}
	return s.io(&sqe, inCap)
}

func (s *session) resp(sqe *proto.SQE, st proto.Status, dw0, dw1 uint32) error {
	cqe := proto.CQE{CID: sqe.CID, Status: st, DW0: dw0, DW1: dw1, SQID: s.qid}
	n, err := proto.EncodeCapsuleResp(s.out, s.toHost, &cqe)
	if err != nil {
		return err
	}
	_, err = s.c.Write(s.out[:n])
	return err
}

// hostData gets the command's host-to-controller data: in capsule, or by
// R2T/H2CData.
func (s *session) hostData(sqe *proto.SQE, inCap []byte, n uint32) ([]byte, error) {
	sgl := sqe.SGL()
	if sgl.Type == proto.SGLTypeDataBlock {
		if uint32(len(inCap)) != n {
			return nil, errClose
		}
		return inCap, nil
	}
	if n > uint32(len(s.data)) {
		return nil, errClose
	}
	chunk := s.t.o.R2TChunk
	if chunk == 0 {
		chunk = n
	}
	buf := s.data[:n]
	// The in-capsule buffer and s.data are the same; nothing came in
	// capsule here.
	for off := uint32(0); off < n; {
		l := min(chunk, n-off)
		s.t.Stats.R2Ts.Add(1)
		h, err := proto.EncodeR2T(s.out, s.toHost, &proto.R2T{CCCID: sqe.CID, TTag: 7, R2TO: off, R2TL: l})
		if err != nil {
			return nil, err
		}
		if _, err := s.c.Write(s.out[:h]); err != nil {
			return nil, err
		}
		for got := uint32(0); got < l; {
			if err := s.readH2C(sqe.CID, off+got, buf); err != nil {
				return nil, err
			}
			got += uint32(s.h.DataLen)
		}
		off += l
	}
	return buf, nil
}

// readH2C reads one H2CData PDU into buf at its DATAO; CapsuleCmds that
// come first are queued for later.
func (s *session) readH2C(cid uint16, want uint32, buf []byte) error {
	have := 0
	for {
		if have >= 8 && proto.PDUType(s.hdr[0]) == proto.PDUCapsuleCmd {
			if err := s.stashCapsule(have); err != nil {
				return err
			}
			have = 0
			continue
		}
		n, err := s.p.Parse(s.hdr[:have], &s.h)
		if err != nil {
			s.term(err)
			return err
		}
		if n <= have {
			break
		}
		if _, err := io.ReadFull(s.c, s.hdr[have:n]); err != nil {
			return err
		}
		have = n
	}
	if s.h.Type != proto.PDUH2CData || s.h.CCCID != cid || s.h.Offset != want || int(s.h.Offset)+s.h.DataLen > len(buf) {
		return errClose
	}
	if pad := s.h.PadLen(); pad > 0 {
		if _, err := io.ReadFull(s.c, s.out[:pad]); err != nil {
			return err
		}
	}
	dst := buf[s.h.Offset : int(s.h.Offset)+s.h.DataLen]
	if _, err := io.ReadFull(s.c, dst); err != nil {
		return err
	}
	if s.h.DataDigest {
		d := s.dgst[:]
		if _, err := io.ReadFull(s.c, d); err != nil {
			return err
		}
		if proto.CRC32C(dst) != proto.GetDigest(d) {
			return errClose
		}
	}
	return nil
}

// stashCapsule reads the rest of a CapsuleCmd whose first have header
// bytes are in s.hdr, and queues it.
func (s *session) stashCapsule(have int) error {
	var h proto.PDUHeader
	for {
		n, err := s.p.Parse(s.hdr[:have], &h)
		if err != nil {
			s.term(err)
			return err
		}
		if n <= have {
			break
		}
		if _, err := io.ReadFull(s.c, s.hdr[have:n]); err != nil {
			return err
		}
		have = n
	}
	body := make([]byte, int(h.PLen)-h.HeaderLen)
	if _, err := io.ReadFull(s.c, body); err != nil {
		return err
	}
	data := body[h.PadLen() : h.PadLen()+h.DataLen]
	s.pending = append(s.pending, pendingCmd{h: h, data: data})
	return nil
}

// sendData sends data to the host in C2HData PDUs, then the completion.
func (s *session) sendData(sqe *proto.SQE, data []byte) error {
	n := uint32(len(data))
	for off := uint32(0); off < n; {
		l := min(s.t.o.MaxC2HData, n-off)
		last := off+l == n
		d := proto.DataPDU{CCCID: sqe.CID, DataO: off, DataL: l, Last: last, Success: last && s.t.o.C2HSuccess}
		h, err := proto.EncodeC2HData(s.out, s.toHost, &d)
		if err != nil {
			return err
		}
		w := copy(s.out[h:], data[off:off+l]) + h
		if s.ddgst {
			crc := proto.CRC32C(data[off : off+l])
			if s.t.corruptC2H.Load() > 0 {
				s.t.corruptC2H.Add(-1)
				crc ^= 1
			}
			proto.PutDigest(s.out[w:], crc)
			w += 4
		}
		if _, err := s.c.Write(s.out[:w]); err != nil {
			return err
		}
		off += l
	}
	if s.t.o.C2HSuccess && n > 0 {
		return nil
	}
	return s.resp(sqe, proto.StatusSuccess, 0, 0)
}

func (s *session) fabrics(sqe *proto.SQE, data []byte) error {
	switch sqe.FCType() {
	case proto.FCTypeConnect:
		return s.connect(sqe, data)
	case proto.FCTypePropertyGet, proto.FCTypePropertySet:
		if s.ctrl == nil || s.qid != 0 {
			return s.resp(sqe, proto.StatusCommandSequenceError, 0, 0)
		}
		pc := sqe.Property()
		c := s.ctrl
		if sqe.FCType() == proto.FCTypePropertySet {
			if pc.Offset == proto.PropCC {
				cc := proto.CC(pc.Value)
				c.cc.Store(uint32(cc))
				csts := proto.MakeCSTS(cc.EN(), false, proto.ShutdownStatusNormal)
				if cc.SHN() != proto.ShutdownNone {
					csts = proto.MakeCSTS(cc.EN(), false, proto.ShutdownStatusComplete)
					s.t.Stats.Shutdowns.Add(1)
				}
				c.csts.Store(uint32(csts))
			}
			return s.resp(sqe, proto.StatusSuccess, 0, 0)
		}
		var v uint64
		switch pc.Offset {
		case proto.PropCAP:
			v = uint64(proto.CAPFields{MQES: s.t.o.MQES, CQR: true, TO: 2, CSS: proto.CAPCSSNVM}.CAP())
		case proto.PropVS:
			v = uint64(proto.MakeVS(1, 3, 0))
		case proto.PropCC:
			v = uint64(c.cc.Load())
		case proto.PropCSTS:
			v = uint64(c.csts.Load())
		default:
			return s.resp(sqe, proto.StatusInvalidField, 0, 0)
		}
		var cqe proto.CQE
		proto.PutPropertyGetValue(&cqe, v)
		return s.resp(sqe, proto.StatusSuccess, cqe.DW0, cqe.DW1)
	}
	return s.resp(sqe, proto.StatusInvalidOpcode, 0, 0)
}

func (s *session) connect(sqe *proto.SQE, inCap []byte) error {
	cc := sqe.Connect()
	data, err := s.hostData(sqe, inCap, proto.ConnectDataSize)
	if err != nil {
		return err
	}
	var cd proto.ConnectData
	if err := cd.Decode(data); err != nil {
		return s.resp(sqe, proto.StatusConnectInvalidParameters, proto.ConnectInvalidParamDW0(true, proto.ConnectDataOffSubNQN), 0)
	}
	if cd.SubNQN != s.t.o.SubNQN && cd.SubNQN != proto.DiscoveryNQN {
		return s.resp(sqe, proto.StatusConnectInvalidParameters, proto.ConnectInvalidParamDW0(true, proto.ConnectDataOffSubNQN), 0)
	}
	s.t.Stats.Connects.Add(1)
	s.qid = cc.QID
	t := s.t
	if cc.QID == 0 {
		t.mu.Lock()
		c := &ctrl{id: t.nextID, hostNQN: cd.HostNQN}
		t.nextID++
		t.ctrls[c.id] = c
		t.mu.Unlock()
		s.ctrl = c
		return s.resp(sqe, proto.StatusSuccess, proto.ConnectRespDW0(c.id, 0), 0)
	}
	t.mu.Lock()
	c := t.ctrls[cd.CNTLID]
	t.mu.Unlock()
	if c == nil || !proto.CC(c.cc.Load()).EN() || c.hostNQN != cd.HostNQN {
		return s.resp(sqe, proto.StatusConnectInvalidParameters, proto.ConnectInvalidParamDW0(true, proto.ConnectDataOffCNTLID), 0)
	}
	if cc.QID > t.o.IOQueues {
		return s.resp(sqe, proto.StatusConnectInvalidParameters, proto.ConnectInvalidParamDW0(false, proto.ConnectOffQID), 0)
	}
	s.ctrl = c
	s.p.SetMaxInCapsuleData(t.o.InCapsule)
	return s.resp(sqe, proto.StatusSuccess, proto.ConnectRespDW0(c.id, 0), 0)
}

func (s *session) admin(sqe *proto.SQE, inCap []byte) error {
	t := s.t
	switch sqe.Opcode {
	case proto.AdminKeepAlive:
		t.Stats.KeepAlives.Add(1)
		return s.resp(sqe, proto.StatusSuccess, 0, 0)
	case proto.AdminSetFeatures:
		f := sqe.Features()
		if f.FID == proto.FeatNumberOfQueues {
			return s.resp(sqe, proto.StatusSuccess, proto.NumQueues(t.o.IOQueues-1, t.o.IOQueues-1), 0)
		}
		return s.resp(sqe, proto.StatusInvalidField, 0, 0)
	case proto.AdminIdentify:
		id := sqe.Identify()
		buf := s.data[:proto.IdentifySize]
		clear(buf)
		switch id.CNS {
		case proto.CNSController:
			ic := proto.IdentifyController{VID: 0x1b36, SN: "TT0001", MN: "Hyperpath test target", FR: "1.0",
				MDTS: t.o.MDTS, CNTLID: s.ctrl.id, VER: proto.MakeVS(1, 3, 0), SQES: 0x66, CQES: 0x44,
				MAXCMD: t.o.MQES + 1, NN: uint32(len(t.nsIDs)), KAS: 1,
				ONCS: proto.ONCSCompare | proto.ONCSDatasetManagement | proto.ONCSWriteZeroes,
				VWC:  proto.VWCPresent, SGLS: proto.SGLSSupported | proto.SGLSAddressAsOffset,
				SubNQN: t.o.SubNQN, IOCCSZ: (t.o.InCapsule + 64) / 16, IORCSZ: 1, MSDBD: 1,
				CNTRLTYPE: proto.CtrlTypeIO}
			if err := ic.Encode(buf); err != nil {
				return err
			}
		case proto.CNSActiveNSList:
			var ids []uint32
			for _, n := range t.nsIDs {
				if n > id.NSID {
					ids = append(ids, n)
				}
			}
			if err := proto.EncodeNSList(buf, ids); err != nil {
				return err
			}
		case proto.CNSNamespace:
			n := t.nss[id.NSID]
			if n == nil {
				return s.resp(sqe, proto.StatusInvalidNamespace, 0, 0)
			}
			lbads := uint8(0)
			for bs := n.BlockSize; bs > 1; bs >>= 1 {
				lbads++
			}
			ns := proto.IdentifyNamespace{NSZE: n.NumBlocks, NCAP: n.NumBlocks, NUSE: n.NumBlocks}
			ns.LBAF[0] = proto.LBAFormat{LBADS: lbads}
			if err := ns.Encode(buf); err != nil {
				return err
			}
		case proto.CNSNSDescriptorList:
			n := t.nss[id.NSID]
			if n == nil {
				return s.resp(sqe, proto.StatusInvalidNamespace, 0, 0)
			}
			d := proto.NSDescriptors{CSI: proto.CSINVM, HasCSI: true}
			if n.UUID != ([16]byte{}) {
				d.UUID, d.HasUUID = n.UUID, true
			}
			if err := d.Encode(buf); err != nil {
				return err
			}
		default:
			return s.resp(sqe, proto.StatusInvalidField, 0, 0)
		}
		return s.sendData(sqe, buf)
	case proto.AdminGetLogPage:
		lp := sqe.GetLogPage()
		if lp.LID != proto.LIDDiscovery {
			return s.resp(sqe, proto.StatusInvalidLogPage, 0, 0)
		}
		n := lp.LenBytes()
		if n > uint64(len(s.data)) {
			return s.resp(sqe, proto.StatusInvalidField, 0, 0)
		}
		h, p := t.Addr()
		entries := append([]proto.DiscoveryEntry{{TRType: proto.TRTypeTCP, AdrFam: proto.AdrFamIPv4,
			SubType: proto.SubTypeNVM, TReq: proto.TReqSecureChannelNotRequired, PortID: 1, CNTLID: proto.CNTLIDDynamic,
			ASQSZ: 32, TRSvcID: p, SubNQN: t.o.SubNQN, TRAddr: h, TSAS: proto.TSASTCP(proto.SecTypeNone)}}, t.o.Referrals...)
		if err := proto.EncodeDiscoveryLog(s.data[:n], lp.Offset, 1, entries); err != nil {
			return s.resp(sqe, proto.StatusInvalidField, 0, 0)
		}
		return s.sendData(sqe, s.data[:n])
	}
	return s.resp(sqe, proto.StatusInvalidOpcode, 0, 0)
}

func (s *session) io(sqe *proto.SQE, inCap []byte) error {
	ns := s.t.nss[sqe.NSID]
	if ns == nil && sqe.Opcode != proto.IOFlush {
		return s.resp(sqe, proto.StatusInvalidNamespace, 0, 0)
	}
	switch sqe.Opcode {
	case proto.IOFlush:
		return s.resp(sqe, proto.StatusSuccess, 0, 0)
	case proto.IORead, proto.IOWrite, proto.IOCompare, proto.IOWriteZeroes:
		rw := sqe.RW()
		bs := uint64(ns.BlockSize)
		if rw.SLBA+uint64(rw.NLB) > ns.NumBlocks {
			return s.resp(sqe, proto.StatusLBAOutOfRange, 0, 0)
		}
		off, n := rw.SLBA*bs, uint64(rw.NLB)*bs
		switch sqe.Opcode {
		case proto.IORead:
			s.t.Stats.Reads.Add(1)
			if n > uint64(len(s.data)) {
				return s.resp(sqe, proto.StatusInvalidField, 0, 0)
			}
			ns.mu.Lock()
			copy(s.data[:n], ns.data[off:off+n])
			ns.mu.Unlock()
			return s.sendData(sqe, s.data[:n])
		case proto.IOWriteZeroes:
			ns.mu.Lock()
			clear(ns.data[off : off+n])
			ns.mu.Unlock()
			return s.resp(sqe, proto.StatusSuccess, 0, 0)
		}
		data, err := s.hostData(sqe, inCap, uint32(n))
		if err != nil {
			return err
		}
		ns.mu.Lock()
		defer ns.mu.Unlock()
		if sqe.Opcode == proto.IOCompare {
			for i := range data {
				if data[i] != ns.data[off+uint64(i)] {
					return s.resp(sqe, proto.StatusCompareFailure, 0, 0)
				}
			}
			return s.resp(sqe, proto.StatusSuccess, 0, 0)
		}
		s.t.Stats.Writes.Add(1)
		copy(ns.data[off:off+n], data)
		return s.resp(sqe, proto.StatusSuccess, 0, 0)
	case proto.IODatasetManagement:
		d := sqe.DSM()
		data, err := s.hostData(sqe, inCap, uint32(d.Ranges*proto.DSMRangeSize))
		if err != nil {
			return err
		}
		for i := 0; i < d.Ranges; i++ {
			var r proto.DSMRange
			r.Decode(data[i*proto.DSMRangeSize:])
			if r.SLBA+uint64(r.NLB) > ns.NumBlocks {
				return s.resp(sqe, proto.StatusLBAOutOfRange, 0, 0)
			}
			bs := uint64(ns.BlockSize)
			ns.mu.Lock()
			clear(ns.data[r.SLBA*bs : (r.SLBA+uint64(r.NLB))*bs])
			ns.mu.Unlock()
		}
		return s.resp(sqe, proto.StatusSuccess, 0, 0)
	}
	return s.resp(sqe, proto.StatusInvalidOpcode, 0, 0)
}

// String describes the target for logs.
func (t *Target) String() string {
	h, p := t.Addr()
	return fmt.Sprintf("testtarget %s at %s", t.o.SubNQN, net.JoinHostPort(h, p))
}

// Port returns the listening port as a number.
func (t *Target) Port() int {
	_, p := t.Addr()
	n, _ := strconv.Atoi(p)
	return n
}
