package initiator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"hyperpath/nvmf/proto"
)

// This file is the control-plane side of a queue pair: connection setup
// and admin commands executed synchronously on the control goroutine,
// which owns the QPair until it is handed to a reactor.

// syncResult receives the completion of a synchronous command.
type syncResult struct {
	done bool
	cqe  proto.CQE
}

func syncDone(ctx any, cpl *proto.CQE) {
	r := ctx.(*syncResult)
	r.done, r.cqe = true, *cpl
}

// exec runs one command on a queue pair in sync mode: it submits it, then
// writes, reads and waits on the socket with poll(2) until the command
// completes or the deadline passes (which tears the connection down).
// A completion with an error status is returned as a *StatusError.
func (q *QPair) exec(ctx context.Context, name string, sqe *proto.SQE, xfer proto.Xfer, buf []byte, deadline time.Time) (proto.CQE, error) {
	var res syncResult
	var iovs [][]byte
	if len(buf) > 0 {
		iovs = [][]byte{buf}
	}
	if err := q.submitRaw(sqe, xfer, iovs, uint32(len(buf)), syncDone, &res); err != nil {
		return proto.CQE{}, fmt.Errorf("%s: %w", name, err)
	}
	for !res.done && q.c != nil {
		q.flush()
		if q.c != nil && !res.done {
			q.receive()
		}
		if res.done || q.c == nil {
			break
		}
		ev := int16(unix.POLLIN)
		if q.txN > 0 {
			ev |= unix.POLLOUT
		}
		if err := waitFd(ctx, q.c.fd, ev, deadline); err != nil {
			q.fail(err)
			return proto.CQE{}, fmt.Errorf("%s: %w", name, err)
		}
	}
	if !res.done {
		return proto.CQE{}, fmt.Errorf("%s: %w", name, q.lostErr())
	}
	if res.cqe.Status.Code() == proto.StatusHostPathingError && q.c == nil {
		return proto.CQE{}, fmt.Errorf("%s: %w", name, q.lostErr())
	}
	if !res.cqe.Status.Success() {
		return res.cqe, &StatusError{Cmd: name, Status: res.cqe.Status, DW0: res.cqe.DW0}
	}
	return res.cqe, nil
}

func (q *QPair) lostErr() error {
	if q.lastErr != nil {
		return q.lastErr
	}
	return ErrConnClosed
}

// closeSync tears down a queue pair still in sync mode.
func (q *QPair) closeSync() {
	q.setMode(modeClosed)
}

// openQueue connects one queue: TCP, ICReq/ICResp, then the Fabrics
// Connect (NVMe Base 2.3 §6.3) with the host's identity. It returns the
// queue pair in sync mode and the controller ID the controller assigned
// (admin queue) or confirmed (I/O queue).
func openQueue(ctx context.Context, o *Options, qid uint16, qsize int, cntlid uint16, kato uint32, inCapsuleMax uint32) (*QPair, uint16, error) {
	deadline := time.Now().Add(o.ConnectTimeout)
	c, err := dialConn(ctx, o, deadline)
	if err != nil {
		return nil, 0, err
	}
	q := newQPair(qid, 4, false)
	q.install(c, inCapsuleMax)
	data := make([]byte, proto.ConnectDataSize)
	cd := proto.ConnectData{HostID: o.HostID, CNTLID: cntlid, SubNQN: o.SubNQN, HostNQN: o.HostNQN}
	if err := cd.Encode(data); err != nil {
		q.closeSync()
		return nil, 0, fmt.Errorf("connect data: %w", err)
	}
	var cattr uint8
	if qid > 0 && o.DisableSQFlowControl {
		cattr = proto.CAttrDisableSQFlow
	}
	var sqe proto.SQE
	if err := sqe.PutConnect(&proto.ConnectCmd{QID: qid, SQSize: uint16(qsize - 1), CAttr: cattr, KATO: kato}); err != nil {
		q.closeSync()
		return nil, 0, err
	}
	cqe, err := q.exec(ctx, fmt.Sprintf("Connect (qid %d)", qid), &sqe, proto.XferHostToCtrl, data, deadline)
	if err != nil {
		q.closeSync()
		return nil, 0, err
	}
	id, authreq := proto.ConnectResp(cqe.DW0)
	if authreq != 0 {
		q.closeSync()
		return nil, 0, fmt.Errorf("Connect (qid %d): controller requires in-band authentication (AUTHREQ %#x), which is not supported: %w", qid, authreq, ErrInvalidOptions)
	}
	return q, id, nil
}

// Namespace is an active namespace of the controller.
type Namespace struct {
	ID        uint32
	Identify  proto.IdentifyNamespace
	Desc      proto.NSDescriptors // zero when the controller does not report them
	BlockSize uint32
	NumBlocks uint64
}

// UUID returns the namespace UUID from its identification descriptors,
// and whether there was one.
func (n *Namespace) UUID() ([16]byte, bool) { return n.Desc.UUID, n.Desc.HasUUID }

// ctrlData is what admin setup learns about the controller.
type ctrlData struct {
	cntlid   uint16
	cap      proto.CAP
	vs       proto.VS
	id       proto.IdentifyController
	nss      []Namespace
	skipped  []string // namespaces left out, with the reason
	ioQueues int      // I/O queues granted (Set Features Number of Queues)
}

// adminSession is the admin queue during setup, owned by the control
// goroutine.
type adminSession struct {
	ctx context.Context
	o   *Options
	q   *QPair
}

func (s *adminSession) deadline() time.Time { return time.Now().Add(s.o.ConnectTimeout) }

func (s *adminSession) exec(name string, sqe *proto.SQE, xfer proto.Xfer, buf []byte) (proto.CQE, error) {
	return s.q.exec(s.ctx, name, sqe, xfer, buf, s.deadline())
}

func (s *adminSession) propGet(name string, off uint32, size uint8) (uint64, error) {
	var sqe proto.SQE
	sqe.PutPropertyGet(&proto.PropertyCmd{Attrib: size, Offset: off})
	cqe, err := s.exec("Property Get "+name, &sqe, proto.XferNone, nil)
	if err != nil {
		return 0, err
	}
	return proto.PropertyGetValue(&cqe), nil
}

func (s *adminSession) propSet(name string, off uint32, v uint64) error {
	var sqe proto.SQE
	sqe.PutPropertySet(&proto.PropertyCmd{Attrib: proto.PropSize4, Offset: off, Value: v})
	_, err := s.exec("Property Set "+name, &sqe, proto.XferNone, nil)
	return err
}

func (s *adminSession) identify(name string, cns uint8, nsid uint32, buf []byte) error {
	var sqe proto.SQE
	if err := sqe.PutIdentify(&proto.IdentifyCmd{NSID: nsid, CNS: cns}); err != nil {
		return err
	}
	_, err := s.exec(name, &sqe, proto.XferCtrlToHost, buf)
	return err
}

// setupAdmin connects the admin queue and brings the controller up:
// Connect, Property Get CAP and VS, Property Set CC.EN, wait for CSTS.RDY
// (NVMe Base 2.3 §3.5.1), Identify Controller; for I/O controllers also the
// active namespace list, Identify Namespace and the namespace descriptors
// of each, and Set Features Number of Queues for wantIOQ queues.
func setupAdmin(ctx context.Context, o *Options, kato uint32, wantIOQ int, discovery bool) (*QPair, *ctrlData, error) {
	q, cntlid, err := openQueue(ctx, o, 0, adminQueueSize, proto.CNTLIDDynamic, kato, proto.MaxAdminInCapsule)
	if err != nil {
		return nil, nil, err
	}
	s := &adminSession{ctx: ctx, o: o, q: q}
	d, err := s.bringUp(cntlid, wantIOQ, discovery)
	if err != nil {
		q.closeSync()
		return nil, nil, err
	}
	return q, d, nil
}

func (s *adminSession) bringUp(cntlid uint16, wantIOQ int, discovery bool) (*ctrlData, error) {
	d := &ctrlData{cntlid: cntlid}
	v, err := s.propGet("CAP", proto.PropCAP, proto.PropSize8)
	if err != nil {
		return nil, err
	}
	d.cap = proto.CAP(v)
	if v, err = s.propGet("VS", proto.PropVS, proto.PropSize4); err != nil {
		return nil, err
	}
	d.vs = proto.VS(v)
	if err := s.enable(d.cap); err != nil {
		return nil, err
	}
	buf := make([]byte, proto.IdentifySize)
	if err := s.identify("Identify Controller", proto.CNSController, 0, buf); err != nil {
		return nil, err
	}
	if err := d.id.Decode(buf); err != nil {
		return nil, fmt.Errorf("Identify Controller: %w: %w", ErrProtocol, err)
	}
	if discovery {
		return d, nil
	}
	if err := s.namespaces(d, buf); err != nil {
		return nil, err
	}
	n := wantIOQ
	var sqe proto.SQE
	if err := sqe.PutSetFeatures(&proto.FeaturesCmd{FID: proto.FeatNumberOfQueues, CDW11: proto.NumQueues(uint16(n-1), uint16(n-1))}); err != nil {
		return nil, err
	}
	cqe, err := s.exec("Set Features (Number of Queues)", &sqe, proto.XferNone, nil)
	if err != nil {
		return nil, err
	}
	nsq, ncq := proto.ParseNumQueues(cqe.DW0)
	d.ioQueues = min(n, int(nsq)+1, int(ncq)+1)
	return d, nil
}

// enable sets CC.EN and waits for CSTS.RDY within CAP.TO.
func (s *adminSession) enable(c proto.CAP) error {
	css := proto.CCCSSNVM
	switch {
	case c.CSS()&proto.CAPCSSNVM != 0:
	case c.CSS()&proto.CAPCSSIOCS != 0:
		css = proto.CCCSSIOCS
	case c.CSS()&proto.CAPCSSNoIO != 0:
		css = proto.CCCSSNoIO
	}
	cc := proto.CCFields{EN: true, CSS: css, MPS: c.MPSMIN(), IOSQES: 6, IOCQES: 4}.CC()
	if err := s.propSet("CC", proto.PropCC, uint64(cc)); err != nil {
		return err
	}
	limit := time.Duration(c.TO()) * 500 * time.Millisecond
	if limit < time.Second {
		limit = time.Second
	}
	deadline := time.Now().Add(limit)
	for {
		v, err := s.propGet("CSTS", proto.PropCSTS, proto.PropSize4)
		if err != nil {
			return err
		}
		csts := proto.CSTS(v)
		if csts.CFS() {
			return fmt.Errorf("controller fatal status (CSTS %#x) while enabling: %w", v, ErrProtocol)
		}
		if csts.RDY() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("CSTS.RDY not set %v after CC.EN: %w", limit, ErrTimeout)
		}
		select {
		case <-s.ctx.Done():
			return s.ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// maxNSListPages bounds the Identify CNS 02h pages read (1024 NSIDs each).
const maxNSListPages = 16

// namespaces reads the active namespace list and identifies each active
// namespace (NVMe Base 2.3 §5.2.13.2.2, §5.2.13.2.3).
func (s *adminSession) namespaces(d *ctrlData, buf []byte) error {
	var ids []uint32
	start := uint32(0)
	for page := 0; page < maxNSListPages; page++ {
		if err := s.identify("Identify Active Namespace List", proto.CNSActiveNSList, start, buf); err != nil {
			return err
		}
		got, err := proto.DecodeNSList(buf, nil)
		if err != nil {
			return fmt.Errorf("Identify Active Namespace List: %w: %w", ErrProtocol, err)
		}
		for _, id := range got {
			if id > start {
				ids = append(ids, id)
			}
		}
		if len(got) < 1024 {
			break
		}
		start = got[len(got)-1]
	}
	for _, id := range ids {
		var ns Namespace
		ns.ID = id
		if err := s.identify(fmt.Sprintf("Identify Namespace %d", id), proto.CNSNamespace, id, buf); err != nil {
			return err
		}
		if err := ns.Identify.Decode(buf); err != nil {
			return fmt.Errorf("Identify Namespace %d: %w: %w", id, ErrProtocol, err)
		}
		if ns.Identify.NSZE == 0 {
			continue // inactive after all
		}
		// Namespace descriptors are mandatory from NVMe 1.3 on; older
		// controllers may reject CNS 03h, which costs us only the UUID.
		if err := s.identify(fmt.Sprintf("Identify NS Descriptors %d", id), proto.CNSNSDescriptorList, id, buf); err == nil {
			if err := ns.Desc.Decode(buf); err != nil {
				return fmt.Errorf("Identify NS Descriptors %d: %w: %w", id, ErrProtocol, err)
			}
		} else if s.q.c == nil {
			return err
		}
		if ns.Desc.HasCSI && ns.Desc.CSI != proto.CSINVM {
			d.skipped = append(d.skipped, fmt.Sprintf("namespace %d: command set %d is not the NVM command set", id, ns.Desc.CSI))
			continue
		}
		f := ns.Identify.LBAF[ns.Identify.FormatIndex()]
		if f.MS != 0 {
			d.skipped = append(d.skipped, fmt.Sprintf("namespace %d: %d bytes of metadata per block are not supported", id, f.MS))
			continue
		}
		ns.BlockSize = ns.Identify.BlockSize()
		ns.NumBlocks = ns.Identify.NSZE
		d.nss = append(d.nss, ns)
	}
	return nil
}

// shutdown asks the controller for a normal shutdown (CC.SHN, NVMe Base
// 2.3 §3.6.1) and waits a little for CSTS.SHST; errors are ignored, the
// connection closes next anyway.
func (s *adminSession) shutdown(wait time.Duration) {
	v, err := s.propGet("CC", proto.PropCC, proto.PropSize4)
	if err != nil {
		return
	}
	cc := proto.CC(v)
	f := proto.CCFields{EN: cc.EN(), CSS: cc.CSS(), MPS: cc.MPS(), AMS: cc.AMS(), SHN: proto.ShutdownNormal,
		IOSQES: cc.IOSQES(), IOCQES: cc.IOCQES(), CRIME: cc.CRIME()}
	if s.propSet("CC", proto.PropCC, uint64(f.CC())) != nil {
		return
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		v, err := s.propGet("CSTS", proto.PropCSTS, proto.PropSize4)
		if err != nil || proto.CSTS(v).SHST() == proto.ShutdownStatusComplete {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// DiscoveryLog is a Discovery log page (NVMe Base 2.3 §5.2.12.3.3).
type DiscoveryLog struct {
	Header  proto.DiscoveryLogHeader
	Entries []proto.DiscoveryEntry
}

// maxDiscoveryRecords bounds the records a discovery controller may make
// us read.
const maxDiscoveryRecords = 1024

// Discover connects to the discovery controller at o's address (SubNQN
// defaults to the discovery NQN), reads the whole Discovery log page with
// Get Log Page (LID 70h) and disconnects. It retries when the generation
// counter changes while reading. Control plane: it blocks.
func Discover(ctx context.Context, o Options) (*DiscoveryLog, error) {
	if err := o.normalize(false); err != nil {
		return nil, err
	}
	q, _, err := setupAdmin(ctx, &o, 0, 0, true)
	if err != nil {
		return nil, err
	}
	defer q.closeSync()
	s := &adminSession{ctx: ctx, o: &o, q: q}
	defer s.shutdown(time.Second)
	for attempt := 0; attempt < 3; attempt++ {
		hdr := make([]byte, proto.DiscoveryLogHeaderSize)
		if err := s.getLogPage(proto.LIDDiscovery, 0, hdr); err != nil {
			return nil, err
		}
		var h proto.DiscoveryLogHeader
		if err := h.Decode(hdr); err != nil {
			return nil, fmt.Errorf("Discovery log header: %w: %w", ErrProtocol, err)
		}
		if h.NumRec > maxDiscoveryRecords {
			return nil, fmt.Errorf("Discovery log has %d records (at most %d read): %w", h.NumRec, maxDiscoveryRecords, ErrProtocol)
		}
		page := make([]byte, proto.DiscoveryLogSize(int(h.NumRec)))
		copy(page, hdr)
		for off := proto.DiscoveryLogHeaderSize; off < len(page); off += 4096 {
			end := min(off+4096, len(page))
			if err := s.getLogPage(proto.LIDDiscovery, uint64(off), page[off:end]); err != nil {
				return nil, err
			}
		}
		// Read the header again: a changed GENCTR means the entries may
		// mix two generations (§5.2.12.3.3).
		if err := s.getLogPage(proto.LIDDiscovery, 0, hdr); err != nil {
			return nil, err
		}
		var h2 proto.DiscoveryLogHeader
		if err := h2.Decode(hdr); err != nil {
			return nil, fmt.Errorf("Discovery log header: %w: %w", ErrProtocol, err)
		}
		if h2.GenCtr != h.GenCtr {
			continue
		}
		lh, entries, err := proto.DecodeDiscoveryLog(page)
		if err != nil {
			return nil, fmt.Errorf("Discovery log: %w: %w", ErrProtocol, err)
		}
		return &DiscoveryLog{Header: lh, Entries: entries}, nil
	}
	return nil, errors.New("nvmf/initiator: discovery log kept changing while being read")
}

func (s *adminSession) getLogPage(lid uint8, off uint64, buf []byte) error {
	var sqe proto.SQE
	if err := sqe.PutGetLogPage(&proto.GetLogPageCmd{NSID: 0, LID: lid, NUMD: proto.NUMDForBytes(uint32(len(buf))), Offset: off}); err != nil {
		return err
	}
	_, err := s.exec(fmt.Sprintf("Get Log Page %#x", lid), &sqe, proto.XferCtrlToHost, buf)
	return err
}
