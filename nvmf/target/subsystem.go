package target

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"hyperpath/bdev"
	"hyperpath/nvmf"
	"hyperpath/nvmf/proto"
	"hyperpath/reactor"
)

// Defaults of nvmf_create_subsystem (SPDK).
const (
	DefaultSerial        = "00000000000000000000"
	DefaultModel         = "SPDK bdev Controller"
	DefaultMaxNamespaces = 32
	DefaultMinCntlid     = 1
	DefaultMaxCntlid     = proto.CNTLIDMax
	// firmwareRevision is what Identify Controller reports in FR.
	firmwareRevision = "26.09"
	// maxNSID is the largest NSID accepted when max_namespaces is 0.
	maxNSID = 1024
)

// SubsystemConfig are the settings of nvmf_create_subsystem.
type SubsystemConfig struct {
	NQN           string
	Serial        string // default 20 zeroes
	Model         string // default "SPDK bdev Controller"
	MaxNamespaces uint32 // 0 means the default (32)
	AllowAnyHost  bool
	MinCntlid     uint16 // default 1
	MaxCntlid     uint16 // default 0xffef
	ANAReporting  bool
}

func (c *SubsystemConfig) validate() error {
	if !ValidSubsystemNQN(c.NQN) || c.NQN == proto.DiscoveryNQN {
		return fmt.Errorf("%w: NQN %q", ErrInvalid, c.NQN)
	}
	if c.Serial == "" {
		c.Serial = DefaultSerial
	}
	if c.Model == "" {
		c.Model = DefaultModel
	}
	if !validASCII(c.Serial, 20) {
		return fmt.Errorf("%w: SN %s", ErrInvalid, c.Serial)
	}
	if !validASCII(c.Model, 40) {
		return fmt.Errorf("%w: MN %s", ErrInvalid, c.Model)
	}
	if c.MaxNamespaces == 0 {
		c.MaxNamespaces = DefaultMaxNamespaces
	}
	if c.MinCntlid == 0 {
		c.MinCntlid = DefaultMinCntlid
	}
	if c.MaxCntlid == 0 {
		c.MaxCntlid = DefaultMaxCntlid
	}
	if c.MinCntlid > c.MaxCntlid || c.MaxCntlid > proto.CNTLIDMax {
		return fmt.Errorf("%w: cntlid range [%d-%d]", ErrInvalid, c.MinCntlid, c.MaxCntlid)
	}
	return nil
}

// Subsystem is an NVM subsystem (or the discovery subsystem).
type Subsystem struct {
	t    *Target
	nqn  string
	disc bool

	// Configuration, guarded by t.mu.
	cfg       SubsystemConfig
	hosts     []string
	listeners []nvmf.ListenAddr
	nsList    []*Namespace // by NSID
	deleted   bool

	// table is what the data path reads: an immutable snapshot.
	table atomic.Pointer[nsTable]

	mu         sync.Mutex // ctrls, nextCntlid
	ctrls      map[uint16]*Controller
	nextCntlid uint16
}

// nsTable maps NSID-1 to a namespace.
type nsTable struct {
	byID []*Namespace
}

func newSubsystem(t *Target, c SubsystemConfig) *Subsystem {
	s := &Subsystem{t: t, nqn: c.NQN, cfg: c, ctrls: map[uint16]*Controller{}, nextCntlid: c.MinCntlid}
	s.table.Store(&nsTable{})
	return s
}

// NQN returns the subsystem's NQN.
func (s *Subsystem) NQN() string { return s.nqn }

// IsDiscovery reports whether s is the discovery subsystem.
func (s *Subsystem) IsDiscovery() bool { return s.disc }

// Config returns the subsystem's settings.
func (s *Subsystem) Config() SubsystemConfig {
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	return s.cfg
}

// ns returns the namespace with nsid, or nil. Lock free: the I/O path.
func (s *Subsystem) ns(nsid uint32) *Namespace {
	tb := s.table.Load()
	if nsid == 0 || uint64(nsid) > uint64(len(tb.byID)) {
		return nil
	}
	return tb.byID[nsid-1]
}

// publishLocked rebuilds the data-path table. Caller holds t.mu.
func (s *Subsystem) publishLocked() {
	n := 0
	for _, ns := range s.nsList {
		n = max(n, int(ns.nsid))
	}
	tb := &nsTable{byID: make([]*Namespace, n)}
	for _, ns := range s.nsList {
		tb.byID[ns.nsid-1] = ns
	}
	s.table.Store(tb)
}

// nnLocked is the NN that Identify reports: max_namespaces.
func (s *Subsystem) nn() uint32 {
	if s.cfg.MaxNamespaces != 0 {
		return s.cfg.MaxNamespaces
	}
	return maxNSID
}

// AllowAnyHost reports the allow_any_host setting.
func (s *Subsystem) AllowAnyHost() bool {
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	return s.cfg.AllowAnyHost
}

// SetAllowAnyHost changes allow_any_host.
func (s *Subsystem) SetAllowAnyHost(v bool) {
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	s.cfg.AllowAnyHost = v
	s.t.discoveryChangedLocked()
}

// Hosts returns the allowed host NQNs.
func (s *Subsystem) Hosts() []string {
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	return append([]string(nil), s.hosts...)
}

// AddHost allows hostnqn to connect.
func (s *Subsystem) AddHost(hostnqn string) error {
	if !ValidSubsystemNQN(hostnqn) {
		return fmt.Errorf("%w: host NQN %q", ErrInvalid, hostnqn)
	}
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	if s.disc {
		return fmt.Errorf("%w: the discovery subsystem allows any host", ErrInvalid)
	}
	if slices.Contains(s.hosts, hostnqn) {
		return fmt.Errorf("host %s: %w", hostnqn, ErrExists)
	}
	s.hosts = append(s.hosts, hostnqn)
	s.t.discoveryChangedLocked()
	return nil
}

// RemoveHost takes hostnqn off the allow-list and disconnects its
// controllers (SPDK does the same).
func (s *Subsystem) RemoveHost(hostnqn string) error {
	s.t.mu.Lock()
	i := slices.Index(s.hosts, hostnqn)
	if i < 0 {
		s.t.mu.Unlock()
		return fmt.Errorf("host %s: %w", hostnqn, ErrNotFound)
	}
	s.hosts = slices.Delete(s.hosts, i, i+1)
	s.t.discoveryChangedLocked()
	s.t.mu.Unlock()
	for _, c := range s.controllers() {
		if c.hostnqn == hostnqn {
			c.disconnect()
		}
	}
	return nil
}

// hostAllowedLocked reports whether hostnqn may connect. Caller holds t.mu.
func (s *Subsystem) hostAllowedLocked(hostnqn string) bool {
	return s.disc || s.cfg.AllowAnyHost || slices.Contains(s.hosts, hostnqn)
}

// listenerAllowedLocked reports whether a connection through a may reach
// s: a listener of s, or any listener for the discovery subsystem.
func (s *Subsystem) listenerAllowedLocked(a nvmf.ListenAddr) bool {
	return s.disc || slices.Contains(s.listeners, a)
}

// Listeners returns the subsystem's listen addresses.
func (s *Subsystem) Listeners() []nvmf.ListenAddr {
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	return append([]nvmf.ListenAddr(nil), s.listeners...)
}

// AddListener makes s reachable through a (and listed in the discovery
// log); the transport starts listening when a is new.
func (s *Subsystem) AddListener(a nvmf.ListenAddr) error {
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	if s.deleted {
		return fmt.Errorf("subsystem %s: %w", s.nqn, ErrNotFound)
	}
	if slices.Contains(s.listeners, a) {
		return fmt.Errorf("listener %s: %w", a, ErrExists)
	}
	if err := s.t.acquireListenerLocked(a); err != nil {
		return err
	}
	s.listeners = append(s.listeners, a)
	s.t.discoveryChangedLocked()
	return nil
}

// RemoveListener removes a from s and disconnects the queues of s that
// came through it.
func (s *Subsystem) RemoveListener(a nvmf.ListenAddr) error {
	s.t.mu.Lock()
	i := slices.Index(s.listeners, a)
	if i < 0 {
		s.t.mu.Unlock()
		return fmt.Errorf("listener %s: %w", a, ErrNotFound)
	}
	s.listeners = slices.Delete(s.listeners, i, i+1)
	s.t.releaseListenerLocked(a)
	s.t.discoveryChangedLocked()
	s.t.mu.Unlock()
	for _, c := range s.controllers() {
		c.disconnectListener(a)
	}
	return nil
}

// controllers returns a snapshot of the live controllers.
func (s *Subsystem) controllers() []*Controller {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Controller, 0, len(s.ctrls))
	for _, c := range s.ctrls {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *Controller) int { return int(a.cntlid) - int(b.cntlid) })
	return out
}

// Controllers returns the live controllers, by controller ID.
func (s *Subsystem) Controllers() []*Controller { return s.controllers() }

// allocCntlid reserves a free controller ID in [min_cntlid, max_cntlid].
func (s *Subsystem) addController(c *Controller) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	lo, hi := s.cfg.MinCntlid, s.cfg.MaxCntlid
	if s.disc {
		lo, hi = DefaultMinCntlid, DefaultMaxCntlid
	}
	if s.nextCntlid < lo || s.nextCntlid > hi {
		s.nextCntlid = lo
	}
	n := int(hi-lo) + 1
	for i := 0; i < n; i++ {
		id := s.nextCntlid
		s.nextCntlid++
		if s.nextCntlid > hi || s.nextCntlid < lo {
			s.nextCntlid = lo
		}
		if _, used := s.ctrls[id]; !used {
			c.cntlid = id
			s.ctrls[id] = c
			return true
		}
	}
	return false
}

func (s *Subsystem) removeController(c *Controller) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctrls[c.cntlid] == c {
		delete(s.ctrls, c.cntlid)
	}
}

func (s *Subsystem) controller(cntlid uint16) *Controller {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ctrls[cntlid]
}

// disconnectAll tears down every controller.
func (s *Subsystem) disconnectAll() {
	for _, c := range s.controllers() {
		c.disconnect()
	}
}

// NamespaceConfig are the settings of nvmf_subsystem_add_ns.
type NamespaceConfig struct {
	BdevName string
	NSID     uint32 // 0: the lowest free
	NGUID    string // 32 hex digits (dashes allowed); default: the UUID
	EUI64    string // 16 hex digits (dashes allowed)
	UUID     string // default: the bdev's UUID
	ANAGrpID uint32
}

// Namespace is one namespace of a subsystem, backed by an open bdev.
type Namespace struct {
	s        *Subsystem
	nsid     uint32
	bdevName string
	desc     *bdev.Desc
	info     *bdev.Info
	shift    uint // log2 of the block size
	blocks   uint64
	nguid    [16]byte
	eui64    [8]byte
	uuid     bdev.UUID
	hasNGUID bool
	hasEUI64 bool
	anagrpid uint32

	canFlush, canUnmap, canWZ, canCompare bool

	chans   []*bdev.IOChannel // by reactor ID; slot i touched only by reactor i
	removed atomic.Bool
}

// NSID returns the namespace ID.
func (ns *Namespace) NSID() uint32 { return ns.nsid }

// BdevName returns the backing bdev's name.
func (ns *Namespace) BdevName() string { return ns.bdevName }

// channel returns the namespace's channel on r, creating it on first use.
// Reactor r only.
func (ns *Namespace) channel(r *reactor.Reactor) (*bdev.IOChannel, error) {
	id := r.ID()
	if ch := ns.chans[id]; ch != nil {
		return ch, nil
	}
	ch, err := ns.desc.GetChannel(r)
	if err != nil {
		return nil, err
	}
	ns.chans[id] = ch
	return ch, nil
}

func parseHexID(s string, n int) ([]byte, error) {
	s = strings.ReplaceAll(s, "-", "")
	if len(s) != 2*n {
		return nil, fmt.Errorf("%w: want %d hex digits", ErrInvalid, 2*n)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return b, nil
}

// AddNamespace opens the bdev and adds it as a namespace; it returns the
// NSID.
func (s *Subsystem) AddNamespace(c NamespaceConfig) (uint32, error) {
	if s.disc {
		return 0, fmt.Errorf("%w: the discovery subsystem has no namespaces", ErrInvalid)
	}
	if c.NSID == proto.NSIDBroadcast || c.NSID == proto.NSIDBroadcast-1 {
		return 0, fmt.Errorf("%w: nsid %d", ErrInvalid, c.NSID)
	}
	ns := &Namespace{s: s, bdevName: c.BdevName, anagrpid: c.ANAGrpID}
	if c.NGUID != "" {
		b, err := parseHexID(c.NGUID, 16)
		if err != nil {
			return 0, fmt.Errorf("nguid: %w", err)
		}
		copy(ns.nguid[:], b)
		ns.hasNGUID = true
	}
	if c.EUI64 != "" {
		b, err := parseHexID(c.EUI64, 8)
		if err != nil {
			return 0, fmt.Errorf("eui64: %w", err)
		}
		copy(ns.eui64[:], b)
		ns.hasEUI64 = true
	}
	if c.UUID != "" {
		u, err := bdev.ParseUUID(c.UUID)
		if err != nil {
			return 0, fmt.Errorf("%w: uuid: %v", ErrInvalid, err)
		}
		ns.uuid = u
	}
	t := s.t
	desc, err := t.reg.Open(c.BdevName, true, func(ev bdev.EventType, _ *bdev.Bdev) {
		if ev == bdev.EventRemove {
			go t.bdevRemoved(ns)
		}
	})
	if err != nil {
		return 0, fmt.Errorf("%w: bdev %s: %v", ErrInvalid, c.BdevName, err)
	}
	ns.desc = desc
	ns.info = desc.Bdev().Info()
	bs := ns.info.BlockSize
	if bs < 512 || bs&(bs-1) != 0 {
		desc.Close()
		return 0, fmt.Errorf("%w: bdev %s block size %d is not a power of two >= 512", ErrInvalid, c.BdevName, bs)
	}
	for ns.shift = 0; 1<<ns.shift != bs; ns.shift++ {
	}
	ns.blocks = ns.info.NumBlocks
	if ns.uuid.IsZero() {
		ns.uuid = ns.info.UUID
	}
	if !ns.hasNGUID && !ns.uuid.IsZero() {
		ns.nguid, ns.hasNGUID = ns.uuid, true
	}
	dev := desc.Bdev().Device()
	ns.canFlush = dev.Supports(bdev.IOFlush)
	ns.canUnmap = dev.Supports(bdev.IOUnmap)
	ns.canWZ = dev.Supports(bdev.IOWriteZeroes)
	ns.canCompare = dev.Supports(bdev.IOCompare)
	ns.chans = make([]*bdev.IOChannel, len(t.rstate))

	t.mu.Lock()
	if s.deleted || t.closed {
		t.mu.Unlock()
		desc.Close()
		return 0, fmt.Errorf("subsystem %s: %w", s.nqn, ErrNotFound)
	}
	limit := s.nn()
	if c.NSID == 0 {
		for id := uint32(1); id <= limit; id++ {
			if !s.hasNSIDLocked(id) {
				c.NSID = id
				break
			}
		}
		if c.NSID == 0 {
			t.mu.Unlock()
			desc.Close()
			return 0, fmt.Errorf("subsystem %s: %w", s.nqn, ErrNamespaceLimit)
		}
	}
	if c.NSID > limit || s.hasNSIDLocked(c.NSID) {
		t.mu.Unlock()
		desc.Close()
		return 0, fmt.Errorf("%w: nsid %d in use or above max_namespaces %d", ErrInvalid, c.NSID, limit)
	}
	ns.nsid = c.NSID
	s.nsList = append(s.nsList, ns)
	slices.SortFunc(s.nsList, func(a, b *Namespace) int { return int(a.nsid) - int(b.nsid) })
	s.publishLocked()
	t.mu.Unlock()
	s.notifyNSChange(ns.nsid)
	return ns.nsid, nil
}

func (s *Subsystem) hasNSIDLocked(id uint32) bool {
	for _, ns := range s.nsList {
		if ns.nsid == id {
			return true
		}
	}
	return false
}

// Namespaces returns the namespaces by NSID.
func (s *Subsystem) Namespaces() []*Namespace {
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	return append([]*Namespace(nil), s.nsList...)
}

// RemoveNamespace removes namespace nsid and closes its bdev.
func (s *Subsystem) RemoveNamespace(nsid uint32) error {
	s.t.mu.Lock()
	var ns *Namespace
	for i, x := range s.nsList {
		if x.nsid == nsid {
			ns = x
			s.nsList = slices.Delete(s.nsList, i, i+1)
			break
		}
	}
	if ns == nil {
		s.t.mu.Unlock()
		return fmt.Errorf("nsid %d: %w", nsid, ErrNotFound)
	}
	s.publishLocked()
	s.t.mu.Unlock()
	s.notifyNSChange(nsid)
	s.t.releaseNamespace(ns)
	return nil
}

// detachAllNamespaces empties the table and returns what it held.
func (s *Subsystem) detachAllNamespaces() []*Namespace {
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	out := s.nsList
	s.nsList = nil
	s.publishLocked()
	return out
}

// bdevRemoved runs when the bdev under ns is being unregistered.
func (t *Target) bdevRemoved(ns *Namespace) {
	if ns.removed.Load() {
		return
	}
	if err := ns.s.RemoveNamespace(ns.nsid); err != nil {
		// Already detached (subsystem deleted meanwhile).
		t.releaseNamespace(ns)
	}
}

// releaseNamespace puts back every reactor's channel on its reactor and
// closes the descriptor. The table no longer holds ns, so no new I/O
// reaches it; I/O in flight completes on the channels, which close after
// it.
func (t *Target) releaseNamespace(ns *Namespace) {
	if ns.removed.Swap(true) {
		return
	}
	for _, r := range t.reactors {
		id := r.ID()
		err := reactor.Call(r, func() {
			if ch := ns.chans[id]; ch != nil {
				ns.chans[id] = nil
				ch.PutChannel()
			}
		})
		if err != nil {
			t.log.Warn("nvmf: put channel", "bdev", ns.bdevName, "err", err)
		}
	}
	ns.desc.Close()
}

// notifyNSChange tells every controller of s that nsid changed.
func (s *Subsystem) notifyNSChange(nsid uint32) {
	for _, c := range s.controllers() {
		ev := &nsEvent{c: c, nsid: nsid}
		reactor.Send(c.r, nsChangedMsg, ev)
	}
}

type nsEvent struct {
	c    *Controller
	nsid uint32
}
