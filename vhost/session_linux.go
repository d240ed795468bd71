package vhost

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"

	"golang.org/x/sys/unix"

	"hyperpath/reactor"
	"hyperpath/vhost/blk"
	"hyperpath/vhost/proto"
	"hyperpath/vhost/virtq"
)

const (
	// MaxQueues is the number of virtqueues a session accepts
	// (GET_QUEUE_NUM, and num_queues in the config space).
	MaxQueues = 64
	// MaxMemSlots is what GET_MAX_MEM_SLOTS answers.
	MaxMemSlots = 509
)

// Features the target offers (GET_FEATURES): the virtio-blk bits of the
// device plus these ring and transport bits.
const transportFeatures = virtq.FeatureVersion1 | virtq.FeatureIndirectDesc | virtq.FeatureEventIdx |
	proto.FeatureProtocolFeatures

// ProtocolFeatures are the vhost-user protocol features the target offers.
const ProtocolFeatures = proto.ProtocolMQ | proto.ProtocolReplyAck | proto.ProtocolConfig |
	proto.ProtocolInflightSHMFD | proto.ProtocolConfigureMemSlots | proto.ProtocolResetDevice |
	proto.ProtocolStatus

// softError is a request the session refuses without closing: it answers a
// non-zero ack when the front-end asked for one and reads on.
type softError struct{ error }

func soft(format string, args ...any) error { return softError{fmt.Errorf(format, args...)} }

// sessionConn is the connection of a session: *net.UnixConn, or a stand-in
// in tests.
type sessionConn interface {
	proto.Conn
	Close() error
}

// vring is the session's view of one virtqueue: what SET_VRING_* said, and
// the running queue if it is started. Only the session goroutine changes
// it; q and r are also read under session.mu (RPC, hot remove).
type vring struct {
	num     uint32 // SET_VRING_NUM; 0 until set
	addr    proto.VringAddr
	addrSet bool
	base    uint16 // SET_VRING_BASE, or where the queue stopped
	kickFD  int    // -1: none
	kickSet bool   // SET_VRING_KICK received (with an fd or NOFD)
	callFD  int
	errFD   int
	enabled bool // SET_VRING_ENABLE

	q *blk.Queue
	r *reactor.Reactor
}

// inflightArea is the mapped GET/SET_INFLIGHT_FD area.
type inflightArea struct {
	mp        *virtq.Mapping
	area      *virtq.Inflight
	numQueues uint16
	queueSize uint16
}

// session is one front-end connection to a controller. Its goroutine reads
// vhost-user messages and applies them (the control plane of the
// connection); the queues it starts run on reactors.
type session struct {
	c    *Controller
	id   int
	vid  int
	name string
	base int // first reactor index for queue 0 (queues go round-robin from here)
	conn sessionConn
	log  *slog.Logger

	msg proto.Msg // the request being handled
	out proto.Msg // the reply being sent

	features uint64
	protocol uint64
	status   uint64
	owner    bool
	mem      *virtq.GuestMemory
	inflight *inflightArea
	vrings   [MaxQueues]vring

	mu sync.Mutex // guards vrings[i].q and .r for readers outside the session goroutine
}

func newSession(c *Controller, conn sessionConn, id, vid int) *session {
	s := &session{c: c, id: id, vid: vid, conn: conn, base: id % len(c.reactors)}
	s.name = fmt.Sprintf("%ss%d", c.name, id)
	s.log = c.log.With("session", s.name)
	for i := range s.vrings {
		v := &s.vrings[i]
		v.kickFD, v.callFD, v.errFD = -1, -1, -1
	}
	return s
}

// run reads and handles messages until the connection ends or a message
// is malformed; then it stops every queue and releases everything.
func (s *session) run() {
	defer s.c.wg.Done()
	defer s.teardown()
	s.log.Info("vhost-user front-end connected", "vid", s.vid)
	for {
		err := proto.ReadRequest(s.conn, &s.msg)
		if err != nil {
			if !s.readFailed(err) {
				return
			}
			continue
		}
		if !s.serve() {
			return
		}
	}
}

// readFailed handles a ReadRequest error and reports whether the session
// goes on.
func (s *session) readFailed(err error) bool {
	switch {
	case errors.Is(err, io.EOF):
		s.log.Info("vhost-user front-end disconnected")
		return false
	case errors.Is(err, proto.ErrUnsupported) && !proto.HasReply(s.msg.Hdr.Request):
		// A request we do not know (and did not offer) but that needs no
		// answer of its own: refuse it and read on.
		s.log.Warn("vhost-user: unsupported request refused", "err", err)
		if s.msg.Hdr.NeedsReply() {
			return s.ack(1) == nil
		}
		return true
	case errors.Is(err, proto.ErrUnsupported), errors.Is(err, proto.ErrMalformed), errors.Is(err, proto.ErrBadHeader):
		s.log.Error("vhost-user: malformed message; closing the connection", "err", err)
		return false
	default:
		s.c.mu.Lock()
		closing := s.c.closing
		s.c.mu.Unlock()
		if closing || errors.Is(err, net.ErrClosed) {
			s.log.Info("vhost-user connection closed by the target")
		} else {
			s.log.Error("vhost-user: connection failed", "err", err)
		}
		return false
	}
}

// serve handles s.msg and sends the ack REPLY_ACK asks for. It reports
// whether the session goes on.
func (s *session) serve() bool {
	req := s.msg.Hdr.Request
	err := s.dispatch()
	var se softError
	if err != nil && !errors.As(err, &se) {
		s.log.Error("vhost-user: request failed; closing the connection", "request", req.String(), "err", err)
		if s.msg.Hdr.NeedsReply() && !proto.HasReply(req) {
			s.ack(1)
		}
		return false
	}
	if err != nil {
		s.log.Warn("vhost-user: request refused", "request", req.String(), "err", err)
	}
	if s.msg.Hdr.NeedsReply() && !proto.HasReply(req) {
		var v uint64
		if err != nil {
			v = 1
		}
		if werr := s.ack(v); werr != nil {
			s.log.Error("vhost-user: sending ack", "err", werr)
			return false
		}
	}
	return true
}

func (s *session) ack(v uint64) error {
	s.out.SetReply(s.msg.Hdr.Request)
	s.out.PutU64(v)
	return proto.WriteMsg(s.conn, &s.out, nil)
}

// reply sends s.out (already filled) with fds.
func (s *session) reply(fds ...int) error {
	if err := proto.WriteMsg(s.conn, &s.out, fds); err != nil {
		return fmt.Errorf("sending reply: %w", err)
	}
	return nil
}

func (s *session) replyU64(v uint64) error {
	s.out.SetReply(s.msg.Hdr.Request)
	s.out.PutU64(v)
	return s.reply()
}

func (s *session) offered() uint64 { return transportFeatures | s.c.dev.Features() }

func (s *session) protocolNegotiated() bool {
	return s.features&proto.FeatureProtocolFeatures != 0
}

// vringIndex checks a queue index from a message.
func vringIndex(i uint32) (int, error) {
	if i >= MaxQueues {
		return 0, fmt.Errorf("queue index %d (at most %d queues)", i, MaxQueues)
	}
	return int(i), nil
}

// dispatch applies one request.
func (s *session) dispatch() error {
	m := &s.msg
	switch m.Hdr.Request {
	case proto.GetFeatures:
		return s.replyU64(s.offered())
	case proto.SetFeatures:
		v, err := m.U64()
		if err != nil {
			return err
		}
		if extra := v &^ s.offered(); extra != 0 {
			return fmt.Errorf("features %#x include %#x that were not offered", v, extra)
		}
		s.features = v
		return nil
	case proto.GetProtocolFeatures:
		return s.replyU64(ProtocolFeatures)
	case proto.SetProtocolFeatures:
		v, err := m.U64()
		if err != nil {
			return err
		}
		if extra := v &^ ProtocolFeatures; extra != 0 {
			return fmt.Errorf("protocol features %#x include %#x that were not offered", v, extra)
		}
		s.protocol = v
		return nil
	case proto.SetOwner:
		s.owner = true
		return nil
	case proto.ResetOwner:
		// Deprecated; the spec recommends disabling all rings.
		s.stopAll()
		return nil
	case proto.SetMemTable:
		return s.setMemTable()
	case proto.AddMemReg:
		return s.addMemReg()
	case proto.RemMemReg:
		return s.remMemReg()
	case proto.GetMaxMemSlots:
		return s.replyU64(MaxMemSlots)
	case proto.SetVringNum:
		st, i, err := s.vringState()
		if err != nil {
			return err
		}
		if !virtq.ValidSize(st.Num) || st.Num > blk.MaxQueueSize {
			return fmt.Errorf("vring %d: size %d (a power of two up to %d)", i, st.Num, blk.MaxQueueSize)
		}
		if s.vrings[i].q != nil {
			return fmt.Errorf("vring %d: SET_VRING_NUM while the ring runs", i)
		}
		s.vrings[i].num = st.Num
		return nil
	case proto.SetVringAddr:
		a, err := m.VringAddr()
		if err != nil {
			return err
		}
		i, err := vringIndex(a.Index)
		if err != nil {
			return err
		}
		if a.Flags&^proto.VringFlagLog != 0 {
			return fmt.Errorf("vring %d: unknown address flags %#x", i, a.Flags)
		}
		v := &s.vrings[i]
		if v.q != nil {
			return fmt.Errorf("vring %d: SET_VRING_ADDR while the ring runs", i)
		}
		v.addr, v.addrSet = a, true
		return nil
	case proto.SetVringBase:
		st, i, err := s.vringState()
		if err != nil {
			return err
		}
		if st.Num > 0xffff {
			return fmt.Errorf("vring %d: base %d does not fit a split ring index", i, st.Num)
		}
		if s.vrings[i].q != nil {
			return fmt.Errorf("vring %d: SET_VRING_BASE while the ring runs", i)
		}
		s.vrings[i].base = uint16(st.Num)
		return nil
	case proto.GetVringBase:
		_, i, err := s.vringState()
		if err != nil {
			return err
		}
		v := &s.vrings[i]
		s.stopQueue(i)
		// The ring is stopped; a restart brings new eventfds.
		closeFD(&v.kickFD)
		closeFD(&v.callFD)
		v.kickSet = false
		s.out.SetReply(proto.GetVringBase)
		s.out.PutVringState(proto.VringState{Index: uint32(i), Num: uint32(v.base)})
		return s.reply()
	case proto.SetVringKick:
		return s.setVringFD(func(v *vring) *int { return &v.kickFD }, true)
	case proto.SetVringCall:
		return s.setVringFD(func(v *vring) *int { return &v.callFD }, false)
	case proto.SetVringErr:
		return s.setVringFD(func(v *vring) *int { return &v.errFD }, false)
	case proto.GetQueueNum:
		return s.replyU64(MaxQueues)
	case proto.SetVringEnable:
		st, i, err := s.vringState()
		if err != nil {
			return err
		}
		if st.Num > 1 {
			return fmt.Errorf("vring %d: SET_VRING_ENABLE %d", i, st.Num)
		}
		s.vrings[i].enabled = st.Num == 1
		if st.Num == 0 {
			s.stopQueue(i)
			return nil
		}
		return s.maybeStart(i)
	case proto.GetConfig:
		var c proto.Config
		if err := m.Config(&c); err != nil {
			return err
		}
		s.out.SetReply(proto.GetConfig)
		if err := s.c.dev.ReadConfig(c.Data[:c.Size], c.Offset); err != nil {
			// 0-byte payload: the failure answer of GET_CONFIG.
			s.log.Warn("vhost-user: GET_CONFIG refused", "err", err)
			s.out.PutEmpty()
			return s.reply()
		}
		s.out.PutConfig(&c)
		return s.reply()
	case proto.SetConfig:
		var c proto.Config
		if err := m.Config(&c); err != nil {
			return err
		}
		if c.Flags == proto.ConfigFlagMigration {
			return nil // restoring what we present anyway
		}
		return soft("SET_CONFIG of %d bytes at %d: the virtio-blk config space has no writable field here", c.Size, c.Offset)
	case proto.GetInflightFD:
		return s.getInflightFD()
	case proto.SetInflightFD:
		return s.setInflightFD()
	case proto.ResetDevice:
		s.resetDevice()
		return nil
	case proto.SetStatus:
		v, err := m.U64()
		if err != nil {
			return err
		}
		if v > 0xff {
			return fmt.Errorf("SET_STATUS %#x: device status is 8 bits", v)
		}
		s.status = v
		return nil
	case proto.GetStatus:
		return s.replyU64(s.status)
	default:
		return soft("%s is not supported by this back-end", m.Hdr.Request)
	}
}

// vringState decodes the current message's vring state and checks its
// index.
func (s *session) vringState() (proto.VringState, int, error) {
	st, err := s.msg.VringState()
	if err != nil {
		return st, 0, err
	}
	i, err := vringIndex(st.Index)
	return st, i, err
}

func closeFD(fd *int) {
	if *fd >= 0 {
		unix.Close(*fd)
		*fd = -1
	}
}

// setVringFD handles SET_VRING_KICK/CALL/ERR.
func (s *session) setVringFD(field func(*vring) *int, kick bool) error {
	f, err := s.msg.VringFile()
	if err != nil {
		return err
	}
	i, err := vringIndex(f.Index())
	if err != nil {
		return err
	}
	v := &s.vrings[i]
	fd := -1
	if !f.NoFD() {
		if fd = s.msg.TakeFD(0); fd < 0 {
			return fmt.Errorf("vring %d: no file descriptor with %s", i, s.msg.Hdr.Request)
		}
	}
	switch {
	case kick:
		// A new kick fd for a running ring: restart it around the change.
		s.stopQueue(i)
		closeFD(&v.kickFD)
		v.kickFD, v.kickSet = fd, true
		return s.maybeStart(i)
	case field(v) == &v.callFD && v.q != nil:
		old := v.callFD
		q := v.q
		callOn(v.r, func() { q.SetCallFD(fd) })
		v.callFD = fd
		if old >= 0 {
			unix.Close(old)
		}
		return nil
	default:
		p := field(v)
		closeFD(p)
		*p = fd
		return nil
	}
}

// maybeStart starts vring i if it is fully configured: memory table, size,
// addresses, kick, and enabled (rings start disabled once
// VHOST_USER_F_PROTOCOL_FEATURES is negotiated).
func (s *session) maybeStart(i int) error {
	v := &s.vrings[i]
	if v.q != nil || !v.kickSet || s.mem == nil || !v.addrSet || v.num == 0 {
		return nil
	}
	if !v.enabled && s.protocolNegotiated() {
		return nil
	}
	cfg := virtq.Config{
		Size: uint16(v.num), Desc: v.addr.Desc, Avail: v.addr.Avail, Used: v.addr.Used,
		Addrs:    virtq.UserAddrs,
		EventIdx: s.features&virtq.FeatureEventIdx != 0,
		Indirect: s.features&virtq.FeatureIndirectDesc != 0,
	}
	vq, err := virtq.NewQueue(s.mem, cfg, v.base)
	if err != nil {
		return fmt.Errorf("vring %d: %w", i, err)
	}
	var recovered []uint16
	if f := s.inflight; f != nil && i < int(f.numQueues) {
		iq, err := f.area.Queue(uint16(i))
		if err != nil {
			return fmt.Errorf("vring %d: %w", i, err)
		}
		if err := vq.AttachInflight(iq); err != nil {
			return fmt.Errorf("vring %d: inflight region: %w", i, err)
		}
		if recovered, err = vq.RecoverInflight(nil); err != nil {
			return fmt.Errorf("vring %d: inflight recovery: %w", i, err)
		}
		if len(recovered) > 0 {
			s.log.Info("vhost-user: resubmitting requests found in flight", "vring", i, "count", len(recovered))
		}
	}
	r := s.c.reactors[(s.base+i)%len(s.c.reactors)]
	q, err := s.c.dev.NewQueue(blk.QueueOptions{
		VQ: vq, Reactor: r, KickFD: v.kickFD, CallFD: v.callFD, Recovered: recovered,
		Name: fmt.Sprintf("vhost_blk_%s_q%d", s.name, i),
	})
	if err != nil {
		return fmt.Errorf("vring %d: %w", i, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	callOn(r, func() { err = q.Start() })
	if err != nil {
		return fmt.Errorf("vring %d: %w", i, err)
	}
	v.q, v.r = q, r
	return nil
}

// stopQueue stops vring i if it runs: no new requests, wait for the
// outstanding ones, close the queue and keep where it stopped as the base.
func (s *session) stopQueue(i int) {
	v := &s.vrings[i]
	q, r := v.q, v.r
	if q == nil {
		return
	}
	done := make(chan struct{})
	callOn(r, func() { q.Stop(func() { close(done) }) })
	waitLogged(s.log, done, fmt.Sprintf("in-flight requests of vring %d", i))
	var last uint16
	var err error
	callOn(r, func() { last, err = q.Close() })
	if err != nil {
		s.log.Error("vhost-user: closing vring", "vring", i, "err", err)
	}
	s.mu.Lock()
	v.q, v.r = nil, nil
	s.mu.Unlock()
	v.base = last
}

func (s *session) stopAll() {
	for i := range s.vrings {
		s.stopQueue(i)
	}
}

// resetDevice (RESET_DEVICE) stops every ring and forgets its setup and
// the negotiated virtio features; the memory table stays until replaced.
func (s *session) resetDevice() {
	s.stopAll()
	s.mu.Lock() // the whole vring is rewritten, q and r included
	for i := range s.vrings {
		v := &s.vrings[i]
		closeFD(&v.kickFD)
		closeFD(&v.callFD)
		closeFD(&v.errFD)
		*v = vring{kickFD: -1, callFD: -1, errFD: -1}
	}
	s.mu.Unlock()
	s.features = 0
	s.status = 0
	s.dropInflight()
}

// teardown runs when the session ends.
func (s *session) teardown() {
	s.stopAll()
	for i := range s.vrings {
		v := &s.vrings[i]
		closeFD(&v.kickFD)
		closeFD(&v.callFD)
		closeFD(&v.errFD)
	}
	if s.mem != nil {
		if err := s.mem.Unmap(); err != nil {
			s.log.Warn("vhost-user: unmapping guest memory", "err", err)
		}
		s.mem = nil
	}
	s.dropInflight()
	s.msg.CloseFDs()
	s.conn.Close()
	s.c.removeSession(s)
}

func (s *session) dropInflight() {
	if s.inflight != nil {
		s.inflight.mp.Unmap()
		s.inflight = nil
	}
}

func (s *session) running() bool {
	for i := range s.vrings {
		if s.vrings[i].q != nil {
			return true
		}
	}
	return false
}

// mapRegion maps one region from descriptor i of the message.
func (s *session) mapRegion(i int, r proto.MemRegion) (virtq.Region, error) {
	fd := s.msg.TakeFD(i)
	if fd < 0 {
		return virtq.Region{}, fmt.Errorf("memory region %d: no file descriptor", i)
	}
	defer unix.Close(fd)
	reg, err := virtq.MapRegion(fd, virtq.RegionDesc{
		GuestAddr: r.GuestPhysAddr, Size: r.MemorySize, UserAddr: r.UserspaceAddr, MmapOffset: r.MmapOffset,
	})
	if err != nil {
		return virtq.Region{}, fmt.Errorf("memory region %d (guest 0x%x size 0x%x): %w", i, r.GuestPhysAddr, r.MemorySize, err)
	}
	return reg, nil
}

// unmapRegions releases regions that never made it into a table.
func unmapRegions(regions []virtq.Region) {
	for _, r := range regions {
		if m, err := virtq.NewGuestMemory(r); err == nil {
			m.Unmap()
		}
	}
}

func (s *session) setMemTable() error {
	var tbl proto.Memory
	if err := s.msg.Memory(&tbl); err != nil {
		return err
	}
	var regions []virtq.Region
	for i, r := range tbl.Used() {
		reg, err := s.mapRegion(i, r)
		if err != nil {
			unmapRegions(regions)
			return err
		}
		regions = append(regions, reg)
	}
	mem, err := virtq.NewGuestMemory(regions...)
	if err != nil {
		unmapRegions(regions)
		return fmt.Errorf("SET_MEM_TABLE: %w", err)
	}
	s.switchMemory(mem)
	return s.startReady()
}

// startReady starts every ring that became startable (a memory table that
// arrives after the kick).
func (s *session) startReady() error {
	for i := range s.vrings {
		if err := s.maybeStart(i); err != nil {
			return err
		}
	}
	return nil
}

func (s *session) addMemReg() error {
	r, err := s.msg.MemRegion()
	if err != nil {
		return err
	}
	reg, err := s.mapRegion(0, r)
	if err != nil {
		return err
	}
	var mem *virtq.GuestMemory
	if s.mem == nil {
		mem, err = virtq.NewGuestMemory(reg)
	} else {
		mem, err = s.mem.With(reg)
	}
	if err != nil {
		unmapRegions([]virtq.Region{reg})
		return fmt.Errorf("ADD_MEM_REG guest 0x%x size 0x%x: %w", r.GuestPhysAddr, r.MemorySize, err)
	}
	s.switchMemory(mem)
	return s.startReady()
}

func (s *session) remMemReg() error {
	r, err := s.msg.MemRegion()
	if err != nil {
		return err
	}
	if s.mem == nil {
		return fmt.Errorf("REM_MEM_REG guest 0x%x: no memory table", r.GuestPhysAddr)
	}
	if len(s.mem.Regions()) == 1 {
		// The table would be empty: only possible once no ring uses it.
		if s.running() {
			return fmt.Errorf("REM_MEM_REG of the last region while rings run")
		}
		if _, _, err := s.mem.Without(r.GuestPhysAddr, r.MemorySize, r.UserspaceAddr); err != nil {
			return fmt.Errorf("REM_MEM_REG guest 0x%x size 0x%x: %w", r.GuestPhysAddr, r.MemorySize, err)
		}
		s.mem.Unmap()
		s.mem = nil
		return nil
	}
	mem, _, err := s.mem.Without(r.GuestPhysAddr, r.MemorySize, r.UserspaceAddr)
	if err != nil {
		return fmt.Errorf("REM_MEM_REG guest 0x%x size 0x%x: %w", r.GuestPhysAddr, r.MemorySize, err)
	}
	s.switchMemory(mem)
	return nil
}

// switchMemory installs a new table: every running queue switches on its
// reactor, and what the old table held that the new one does not is
// unmapped once the requests walked under the old table have completed
// (virtq's protocol for table changes).
func (s *session) switchMemory(mem *virtq.GuestMemory) {
	old := s.mem
	s.mem = mem
	var waits []chan struct{}
	for i := range s.vrings {
		v := &s.vrings[i]
		if v.q == nil {
			continue
		}
		q := v.q
		done := make(chan struct{})
		var err error
		callOn(v.r, func() { err = q.SwitchMemory(mem, func() { close(done) }) })
		if err != nil {
			s.log.Error("vhost-user: ring not in the new memory table; vring stopped", "vring", i, "err", err)
		}
		waits = append(waits, done)
	}
	for _, ch := range waits {
		waitLogged(s.log, ch, "requests under the previous memory table")
	}
	if old != nil {
		if err := old.UnmapExcept(mem); err != nil {
			s.log.Warn("vhost-user: unmapping replaced memory", "err", err)
		}
	}
}

func (s *session) getInflightFD() error {
	f, err := s.msg.Inflight()
	if err != nil {
		return err
	}
	if f.NumQueues == 0 || f.NumQueues > MaxQueues || !virtq.ValidSize(uint32(f.QueueSize)) || f.QueueSize > blk.MaxQueueSize {
		return fmt.Errorf("GET_INFLIGHT_FD for %d queues of %d entries (at most %d of %d)", f.NumQueues, f.QueueSize, MaxQueues, blk.MaxQueueSize)
	}
	if s.running() {
		return fmt.Errorf("GET_INFLIGHT_FD while rings run")
	}
	fd, mp, err := virtq.NewInflightFD(f.NumQueues, f.QueueSize)
	if err != nil {
		return fmt.Errorf("GET_INFLIGHT_FD: %w", err)
	}
	defer unix.Close(fd)
	area, err := virtq.NewInflight(mp.Bytes(), f.NumQueues, f.QueueSize)
	if err != nil {
		mp.Unmap()
		return fmt.Errorf("GET_INFLIGHT_FD: %w", err)
	}
	s.dropInflight()
	s.inflight = &inflightArea{mp: mp, area: area, numQueues: f.NumQueues, queueSize: f.QueueSize}
	s.out.SetReply(proto.GetInflightFD)
	s.out.PutInflight(proto.Inflight{MmapSize: uint64(len(mp.Bytes())), NumQueues: f.NumQueues, QueueSize: f.QueueSize})
	return s.reply(fd)
}

func (s *session) setInflightFD() error {
	f, err := s.msg.Inflight()
	if err != nil {
		return err
	}
	fd := s.msg.TakeFD(0)
	if fd < 0 {
		return fmt.Errorf("SET_INFLIGHT_FD without a file descriptor")
	}
	defer unix.Close(fd)
	if f.NumQueues == 0 || f.NumQueues > MaxQueues || f.QueueSize == 0 || f.QueueSize > blk.MaxQueueSize {
		return fmt.Errorf("SET_INFLIGHT_FD for %d queues of %d entries (at most %d of %d)", f.NumQueues, f.QueueSize, MaxQueues, blk.MaxQueueSize)
	}
	if need := virtq.InflightSize(f.NumQueues, f.QueueSize); f.MmapSize < need {
		return fmt.Errorf("SET_INFLIGHT_FD: area of %d bytes, %d queues of %d need %d", f.MmapSize, f.NumQueues, f.QueueSize, need)
	}
	if s.running() {
		return fmt.Errorf("SET_INFLIGHT_FD while rings run")
	}
	mp, err := virtq.MapFD(fd, f.MmapOffset, f.MmapSize)
	if err != nil {
		return fmt.Errorf("SET_INFLIGHT_FD: %w", err)
	}
	area, err := virtq.NewInflight(mp.Bytes(), f.NumQueues, f.QueueSize)
	if err != nil {
		mp.Unmap()
		return fmt.Errorf("SET_INFLIGHT_FD: %w", err)
	}
	s.dropInflight()
	s.inflight = &inflightArea{mp: mp, area: area, numQueues: f.NumQueues, queueSize: f.QueueSize}
	return nil
}

// detachBdev runs DetachBdev on every running queue (hot remove) and
// returns channels closed when each has no bdev IO left.
func (s *session) detachBdev() []chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	var waits []chan struct{}
	for i := range s.vrings {
		v := &s.vrings[i]
		if v.q == nil {
			continue
		}
		q := v.q
		done := make(chan struct{})
		callOn(v.r, func() { q.DetachBdev(func() { close(done) }) })
		waits = append(waits, done)
	}
	return waits
}

// info describes the session for vhost_get_controllers.
func (s *session) info() SessionInfo {
	si := SessionInfo{Vid: s.vid, ID: s.id, Name: s.name}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.vrings {
		v := &s.vrings[i]
		if v.q == nil {
			continue
		}
		si.Started = true
		si.MaxQueues = max(si.MaxQueues, i+1)
		q := v.q
		callOn(v.r, func() { si.Inflight += q.Stats().Inflight })
	}
	return si
}
