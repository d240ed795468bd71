package target

import (
	"errors"
	"time"

	"hyperpath/nvmf"
	"hyperpath/nvmf/proto"
)

func msDuration(ms uint32) time.Duration { return time.Duration(ms) * time.Millisecond }

// complete answers req with status s.
func complete(req *nvmf.Request, s proto.Status) {
	req.Rsp.Status = s
	req.QPair.Complete(req)
}

// Exec implements nvmf.Handler: it dispatches a command by queue and
// opcode. It runs on the queue's reactor.
func (t *Target) Exec(req *nvmf.Request) {
	qs, _ := req.QPair.Ctx().(*qpair)
	if req.SQE.Opcode == proto.OpFabrics {
		t.fabrics(qs, req)
		return
	}
	if qs == nil {
		// NVMe Base 2.3 §6.3: nothing but Connect before Connect.
		complete(req, proto.StatusCommandSequenceError.WithDNR())
		return
	}
	if qs.qid == 0 {
		qs.ctrl.adminCmd(req)
		return
	}
	t.execIO(qs, req)
}

func (t *Target) fabrics(qs *qpair, req *nvmf.Request) {
	switch req.SQE.FCType() {
	case proto.FCTypeConnect:
		if qs != nil {
			complete(req, proto.StatusCommandSequenceError.WithDNR())
			return
		}
		t.connect(req)
	case proto.FCTypePropertyGet, proto.FCTypePropertySet:
		switch {
		case qs == nil:
			complete(req, proto.StatusCommandSequenceError.WithDNR())
		case qs.qid != 0:
			complete(req, proto.StatusInvalidQueueType.WithDNR())
		case req.SQE.FCType() == proto.FCTypePropertyGet:
			qs.ctrl.propertyGet(req)
		default:
			qs.ctrl.propertySet(req)
		}
	case proto.FCTypeDisconnect:
		switch {
		case qs == nil:
			complete(req, proto.StatusCommandSequenceError.WithDNR())
		case qs.qid == 0:
			// NVMe Base 2.3 §6.4: Disconnect deletes I/O queues only.
			complete(req, proto.StatusInvalidQueueType.WithDNR())
		case req.SQE.Disconnect().RecFmt != 0:
			complete(req, proto.StatusIncompatibleFormat.WithDNR())
		default:
			qp := req.QPair
			complete(req, proto.StatusSuccess)
			qp.Disconnect()
		}
	default:
		complete(req, proto.StatusInvalidOpcode.WithDNR())
	}
}

// connectInvalid answers a Connect with Connect Invalid Parameters naming
// the offending field (NVMe Base 2.3 §6.3, Figure 582).
func connectInvalid(req *nvmf.Request, inData bool, off uint16) {
	req.Rsp.DW0 = proto.ConnectInvalidParamDW0(inData, off)
	complete(req, proto.StatusConnectInvalidParameters.WithDNR())
}

// connect runs the Connect command (NVMe Base 2.3 §6.3).
func (t *Target) connect(req *nvmf.Request) {
	cmd := req.SQE.Connect()
	if cmd.RecFmt != 0 {
		complete(req, proto.StatusIncompatibleFormat.WithDNR())
		return
	}
	if len(req.Data) < proto.ConnectDataSize {
		complete(req, proto.StatusDataSGLLengthInvalid.WithDNR())
		return
	}
	var d proto.ConnectData
	if err := d.Decode(req.Data[:proto.ConnectDataSize]); err != nil {
		var fe *proto.FieldError
		if errors.As(err, &fe) {
			connectInvalid(req, true, uint16(fe.Offset))
		} else {
			complete(req, proto.StatusInvalidField.WithDNR())
		}
		return
	}
	if !proto.ValidNQN(d.HostNQN) {
		connectInvalid(req, true, proto.ConnectDataOffHostNQN)
		return
	}
	qp := req.QPair
	info := qp.Info()

	t.mu.Lock()
	s := t.byNQN[d.SubNQN]
	if s == nil || s.deleted || !s.listenerAllowedLocked(info.Listen) {
		t.mu.Unlock()
		t.log.Warn("nvmf: connect to unknown subsystem or through a listener it lacks",
			"subnqn", d.SubNQN, "listen", info.Listen.String())
		connectInvalid(req, true, proto.ConnectDataOffSubNQN)
		return
	}
	if !s.hostAllowedLocked(d.HostNQN) {
		t.mu.Unlock()
		t.log.Warn("nvmf: host not allowed", "subnqn", d.SubNQN, "hostnqn", d.HostNQN)
		complete(req, proto.StatusConnectInvalidHost.WithDNR())
		return
	}
	var opts nvmf.TransportOpts
	if tr := t.transportLocked(info.Listen.TrType); tr != nil {
		opts = tr.Opts()
	} else {
		opts = nvmf.DefaultTransportOpts()
	}
	t.mu.Unlock()

	// SQSIZE is 0's based and at least 1 (NVMe Base 2.3 §6.3).
	depth := uint32(cmd.SQSize) + 1
	if cmd.SQSize == 0 || (cmd.QID == 0 && depth > opts.MaxAQDepth) || (cmd.QID != 0 && depth > uint32(opts.MaxQueueDepth)) {
		connectInvalid(req, false, proto.ConnectOffSQSize)
		return
	}
	if cmd.QID == 0 {
		t.connectAdmin(req, s, &cmd, &d, opts)
		return
	}
	t.connectIO(req, s, &cmd, &d, opts)
}

func (t *Target) connectAdmin(req *nvmf.Request, s *Subsystem, cmd *proto.ConnectCmd, d *proto.ConnectData, opts nvmf.TransportOpts) {
	if d.CNTLID != proto.CNTLIDDynamic {
		// Dynamic controller model: the host must ask for any controller.
		connectInvalid(req, true, proto.ConnectDataOffCNTLID)
		return
	}
	qp := req.QPair
	c := &Controller{t: t, s: s, hostnqn: d.HostNQN, hostid: d.HostID, admin: qp, r: qp.Reactor(),
		opts: opts, disc: s.disc, ioqps: map[uint16]*qpair{}}
	if !s.addController(c) {
		complete(req, proto.StatusControllerBusy)
		return
	}
	c.katoMs = c.roundKATO(cmd.KATO)
	c.feat[proto.FeatNumberOfQueues] = proto.NumQueues(opts.MaxIOQPairsPerCtrlr-1, opts.MaxIOQPairsPerCtrlr-1)
	c.startKeepAlive()
	qs := &qpair{t: t, ctrl: c, qp: qp, qid: 0, sqsize: cmd.SQSize}
	qp.SetCtx(qs)
	qp.Connected(0, cmd.SQSize)
	t.log.Info("nvmf: controller created", "subnqn", s.nqn, "cntlid", c.cntlid, "hostnqn", c.hostnqn,
		"kato_ms", c.katoMs, "peer", qp.Info().Peer.String())
	req.Rsp.DW0 = proto.ConnectRespDW0(c.cntlid, 0)
	complete(req, proto.StatusSuccess)
}

func (t *Target) connectIO(req *nvmf.Request, s *Subsystem, cmd *proto.ConnectCmd, d *proto.ConnectData, opts nvmf.TransportOpts) {
	c := s.controller(d.CNTLID)
	if c == nil || c.disc {
		connectInvalid(req, true, proto.ConnectDataOffCNTLID)
		return
	}
	if c.hostnqn != d.HostNQN {
		connectInvalid(req, true, proto.ConnectDataOffHostNQN)
		return
	}
	if c.hostid != d.HostID {
		connectInvalid(req, true, proto.ConnectDataOffHostID)
		return
	}
	if cmd.QID > opts.MaxIOQPairsPerCtrlr {
		connectInvalid(req, false, proto.ConnectOffQID)
		return
	}
	if !c.ready() {
		complete(req, proto.StatusCommandSequenceError.WithDNR())
		return
	}
	qp := req.QPair
	qs := &qpair{t: t, ctrl: c, qp: qp, qid: cmd.QID, sqsize: cmd.SQSize}
	if !c.addIOQPair(qs) {
		connectInvalid(req, false, proto.ConnectOffQID)
		return
	}
	qp.SetCtx(qs)
	qp.Connected(cmd.QID, cmd.SQSize)
	req.Rsp.DW0 = proto.ConnectRespDW0(c.cntlid, 0)
	complete(req, proto.StatusSuccess)
}

// --- properties (NVMe Base 2.3 §3.1.4, §6.5, §6.6) ---

func (c *Controller) capValue() proto.CAP {
	css := proto.CAPCSSNVM
	if c.disc {
		css = proto.CAPCSSNoIO | proto.CAPCSSNVM
	}
	mqes := c.opts.MaxQueueDepth - 1
	return proto.CAPFields{MQES: mqes, CQR: true, TO: 15, CSS: css}.CAP()
}

func (c *Controller) propertyGet(req *nvmf.Request) {
	p := req.SQE.Property()
	size := proto.PropertySize(p.Offset)
	if size == 0 || p.Size() != size {
		complete(req, proto.StatusInvalidField.WithDNR())
		return
	}
	var v uint64
	switch p.Offset {
	case proto.PropCAP:
		v = uint64(c.capValue())
	case proto.PropVS:
		v = uint64(proto.MakeVS(1, 3, 0))
	case proto.PropCC:
		v = uint64(c.cc.Load())
	case proto.PropCSTS:
		v = uint64(c.csts.Load())
	default:
		complete(req, proto.StatusInvalidField.WithDNR())
		return
	}
	proto.PutPropertyGetValue(&req.Rsp, v)
	complete(req, proto.StatusSuccess)
}

func (c *Controller) propertySet(req *nvmf.Request) {
	p := req.SQE.Property()
	size := proto.PropertySize(p.Offset)
	if size == 0 || p.Size() != size || p.Offset != proto.PropCC {
		// CAP, VS and CSTS are read-only; NSSR is not supported.
		complete(req, proto.StatusInvalidField.WithDNR())
		return
	}
	old := proto.CC(c.cc.Load())
	nw := proto.CC(uint32(p.Value))
	c.cc.Store(uint32(nw))
	cs := proto.CSTS(c.csts.Load())
	switch {
	case nw.EN() && !old.EN():
		if !c.disc && (nw.IOSQES() != 6 || nw.IOCQES() != 4) {
			c.t.log.Warn("nvmf: CC.EN with unexpected IOSQES/IOCQES", "cc", uint32(nw))
		}
		c.csts.Store(uint32(proto.MakeCSTS(true, false, proto.ShutdownStatusNormal)))
	case !nw.EN() && old.EN():
		// Controller reset: I/O queues go, then RDY drops.
		c.quiesceIO(quiesceReset)
	}
	if nw.SHN() != proto.ShutdownNone && old.SHN() == proto.ShutdownNone {
		cs = proto.CSTS(c.csts.Load())
		c.csts.Store(uint32(proto.MakeCSTS(cs.RDY(), cs.CFS(), proto.ShutdownStatusOccurring)))
		c.quiesceIO(quiesceShutdown)
	} else if nw.SHN() == proto.ShutdownNone && old.SHN() != proto.ShutdownNone {
		cs = proto.CSTS(c.csts.Load())
		c.csts.Store(uint32(proto.MakeCSTS(cs.RDY(), cs.CFS(), proto.ShutdownStatusNormal)))
	}
	complete(req, proto.StatusSuccess)
}
