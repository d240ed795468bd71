package target

import (
	"slices"
	"sync"
	"sync/atomic"

	"hyperpath/nvmf"
	"hyperpath/nvmf/proto"
	"hyperpath/reactor"
)

const (
	// aerl is the 0's based number of Asynchronous Event Requests a
	// controller holds (Identify AERL).
	aerl = 3
	// maxChangedNS is how many NSIDs the Changed Namespace List holds.
	maxChangedNS = 1024
)

// qpair is the target's state of one connected queue; owned by the
// queue's reactor.
type qpair struct {
	t      *Target
	ctrl   *Controller
	qp     nvmf.QPair
	qid    uint16
	sqsize uint16
}

// quiesce is what a controller waits for when its I/O queues go away.
type quiesce uint8

const (
	quiesceNone     quiesce = iota // nothing pending
	quiesceReset                   // CC.EN 1->0: then CSTS.RDY=0
	quiesceShutdown                // CC.SHN set: then CSTS.SHST=complete
)

// Controller is one host's controller of a subsystem. See the package doc
// for its threading rules.
type Controller struct {
	t       *Target
	s       *Subsystem
	cntlid  uint16
	hostnqn string
	hostid  [16]byte
	admin   nvmf.QPair
	r       *reactor.Reactor // the admin queue's reactor
	opts    nvmf.TransportOpts
	disc    bool

	cc   atomic.Uint32
	csts atomic.Uint32

	// Admin reactor only.
	katoMs      uint32
	lastKA      reactor.Ticks
	kaPoller    *reactor.Poller
	aec         uint32
	aers        []*nvmf.Request
	pendingAEN  []uint32
	nsMasked    bool // a namespace notice was sent and the log not read yet
	discMasked  bool
	changedNS   []uint32
	changedOver bool
	feat        [256]uint32
	dead        bool
	scratch     [proto.IdentifySize]byte

	mu      sync.Mutex // ioqps, quiesce, gone
	ioqps   map[uint16]*qpair
	waiting quiesce
	gone    bool
}

// CNTLID returns the controller ID.
func (c *Controller) CNTLID() uint16 { return c.cntlid }

// HostNQN returns the host's NQN.
func (c *Controller) HostNQN() string { return c.hostnqn }

// HostID returns the host identifier from Connect.
func (c *Controller) HostID() [16]byte { return c.hostid }

// NumIOQPairs returns the number of connected I/O queues.
func (c *Controller) NumIOQPairs() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ioqps)
}

// QPairInfo describes one queue of a controller for
// nvmf_subsystem_get_qpairs.
type QPairInfo struct {
	CNTLID  uint16
	QID     uint16
	Thread  string
	HostNQN string
	Addrs   nvmf.QPairInfo
}

// QPairs returns the controller's queues, admin first.
func (c *Controller) QPairs() []QPairInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []QPairInfo{{CNTLID: c.cntlid, QID: 0, Thread: c.r.Name(), HostNQN: c.hostnqn, Addrs: c.admin.Info()}}
	qids := make([]uint16, 0, len(c.ioqps))
	for q := range c.ioqps {
		qids = append(qids, q)
	}
	slices.Sort(qids)
	for _, q := range qids {
		qs := c.ioqps[q]
		out = append(out, QPairInfo{CNTLID: c.cntlid, QID: q, Thread: qs.qp.Reactor().Name(), HostNQN: c.hostnqn, Addrs: qs.qp.Info()})
	}
	return out
}

func (c *Controller) ready() bool {
	return proto.CSTS(c.csts.Load()).RDY() && proto.CC(c.cc.Load()).EN()
}

// disconnectQPairMsg runs on a queue's reactor.
func disconnectQPairMsg(arg any) { arg.(nvmf.QPair).Disconnect() }

// disconnect tears the controller down by closing its admin queue (from
// any goroutine).
func (c *Controller) disconnect() {
	if err := reactor.Send(c.r, disconnectQPairMsg, c.admin); err != nil {
		c.t.log.Warn("nvmf: disconnect controller", "cntlid", c.cntlid, "err", err)
	}
}

// disconnectListener closes the queues that came through a.
func (c *Controller) disconnectListener(a nvmf.ListenAddr) {
	if c.admin.Info().Listen == a {
		c.disconnect()
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, qs := range c.ioqps {
		if qs.qp.Info().Listen == a {
			reactor.Send(qs.qp.Reactor(), disconnectQPairMsg, qs.qp)
		}
	}
}

// destroy runs on the admin reactor when the admin queue goes away.
func (c *Controller) destroy() {
	if c.dead {
		return
	}
	c.dead = true
	if c.kaPoller != nil {
		c.kaPoller.Unregister()
		c.kaPoller = nil
	}
	for _, r := range c.aers {
		r.Rsp.Status = proto.StatusAbortedSQDeletion
		r.QPair.Complete(r)
	}
	c.aers = nil
	c.mu.Lock()
	c.gone = true
	qps := make([]*qpair, 0, len(c.ioqps))
	for _, qs := range c.ioqps {
		qps = append(qps, qs)
	}
	c.mu.Unlock()
	for _, qs := range qps {
		reactor.Send(qs.qp.Reactor(), disconnectQPairMsg, qs.qp)
	}
	c.s.removeController(c)
	c.t.log.Info("nvmf: controller destroyed", "subnqn", c.s.nqn, "cntlid", c.cntlid, "hostnqn", c.hostnqn)
}

// addIOQPair registers an I/O queue; it fails when qid is taken or the
// controller is going away.
func (c *Controller) addIOQPair(qs *qpair) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gone || c.waiting != quiesceNone || c.ioqps[qs.qid] != nil {
		return false
	}
	c.ioqps[qs.qid] = qs
	return true
}

// removeIOQPair runs on the queue's reactor when it goes away.
func (c *Controller) removeIOQPair(qs *qpair) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ioqps[qs.qid] == qs {
		delete(c.ioqps, qs.qid)
	}
	if len(c.ioqps) == 0 && c.waiting != quiesceNone && !c.gone {
		reactor.Send(c.r, quiescedMsg, c)
	}
}

// quiesceIO disconnects every I/O queue; when none is left, quiescedMsg
// finishes the reset or shutdown on the admin reactor.
func (c *Controller) quiesceIO(why quiesce) {
	c.mu.Lock()
	c.waiting = why
	qps := make([]*qpair, 0, len(c.ioqps))
	for _, qs := range c.ioqps {
		qps = append(qps, qs)
	}
	c.mu.Unlock()
	if len(qps) == 0 {
		c.quiesced()
		return
	}
	for _, qs := range qps {
		reactor.Send(qs.qp.Reactor(), disconnectQPairMsg, qs.qp)
	}
}

func quiescedMsg(arg any) { arg.(*Controller).quiesced() }

// quiesced runs on the admin reactor once no I/O queue is left.
func (c *Controller) quiesced() {
	c.mu.Lock()
	why := c.waiting
	c.waiting = quiesceNone
	c.mu.Unlock()
	cs := proto.CSTS(c.csts.Load())
	switch why {
	case quiesceReset:
		c.csts.Store(uint32(proto.MakeCSTS(false, cs.CFS(), proto.ShutdownStatusNormal)))
	case quiesceShutdown:
		c.csts.Store(uint32(proto.MakeCSTS(cs.RDY(), cs.CFS(), proto.ShutdownStatusComplete)))
	}
}

// startKeepAlive (re)arms the keep-alive poller for c.katoMs. Admin reactor.
func (c *Controller) startKeepAlive() {
	if c.kaPoller != nil {
		c.kaPoller.Unregister()
		c.kaPoller = nil
	}
	c.lastKA = c.r.IterNow()
	if c.katoMs == 0 {
		return
	}
	period := uint64(c.katoMs) * 1000 / 4
	period = max(period, 1000)
	c.kaPoller = c.r.RegisterPoller("nvmf_ctrlr_keep_alive", c.kaPoll, period)
}

// kaPoll tears the controller down when no Keep Alive came within KATO
// (NVMe Base 2.3 §3.9).
func (c *Controller) kaPoll(now reactor.Ticks) reactor.Status {
	if c.dead || c.katoMs == 0 {
		return reactor.Idle
	}
	limit := reactor.TicksFromDuration(msDuration(c.katoMs))
	if now > c.lastKA && now-c.lastKA > limit {
		c.t.log.Warn("nvmf: keep alive timeout, disconnecting", "subnqn", c.s.nqn, "cntlid", c.cntlid, "kato_ms", c.katoMs)
		if c.kaPoller != nil {
			c.kaPoller.Unregister()
			c.kaPoller = nil
		}
		c.admin.Disconnect()
		return reactor.Busy
	}
	return reactor.Idle
}

// roundKATO applies min_kato and rounds up to the KAS granularity.
func (c *Controller) roundKATO(ms uint32) uint32 {
	if ms == 0 {
		return 0
	}
	ms = max(ms, c.opts.MinKATOMs)
	g := uint32(c.opts.KAS) * 100
	if g > 0 {
		ms = (ms + g - 1) / g * g
	}
	return ms
}

// --- Asynchronous events (admin reactor) ---

func nsChangedMsg(arg any) {
	ev := arg.(*nsEvent)
	ev.c.nsChanged(ev.nsid)
}

func discoveryChangedMsg(arg any) { arg.(*Controller).discoveryChanged() }

// nsChanged records nsid in the Changed Namespace List and raises a
// Namespace Attribute Changed notice if enabled and not masked.
func (c *Controller) nsChanged(nsid uint32) {
	if c.dead || c.disc {
		return
	}
	if !c.changedOver && !slices.Contains(c.changedNS, nsid) {
		if len(c.changedNS) >= maxChangedNS {
			c.changedOver = true
			c.changedNS = nil
		} else {
			c.changedNS = append(c.changedNS, nsid)
		}
	}
	if c.aec&proto.AECNamespaceAttr == 0 || c.nsMasked {
		return
	}
	c.nsMasked = true
	c.raise(proto.AsyncEvent{Type: proto.AETypeNotice, Info: proto.AENNamespaceAttrChanged, LID: proto.LIDChangedNSList}.DW0())
}

func (c *Controller) discoveryChanged() {
	if c.dead || !c.disc || c.aec&proto.AECDiscoveryChange == 0 || c.discMasked {
		return
	}
	c.discMasked = true
	c.raise(proto.AsyncEvent{Type: proto.AETypeNotice, Info: proto.AENDiscoveryLogChange, LID: proto.LIDDiscovery}.DW0())
}

// raise completes a held AER with dw0, or keeps the event for the next.
func (c *Controller) raise(dw0 uint32) {
	if len(c.aers) == 0 {
		c.pendingAEN = append(c.pendingAEN, dw0)
		return
	}
	r := c.aers[0]
	c.aers = c.aers[1:]
	r.Rsp.DW0 = dw0
	r.QPair.Complete(r)
}
