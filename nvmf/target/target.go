package target

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"hyperpath/bdev"
	"hyperpath/nvmf"
	"hyperpath/nvmf/proto"
	"hyperpath/nvmf/tcp"
	"hyperpath/reactor"
)

// Control-plane errors.
var (
	ErrExists         = errors.New("already exists")
	ErrNotFound       = errors.New("not found")
	ErrInvalid        = errors.New("invalid")
	ErrNotSupported   = errors.New("not supported")
	ErrClosed         = errors.New("nvmf target closed")
	ErrNoTransport    = errors.New("no such transport")
	ErrBadTransport   = errors.New("invalid transport type")
	ErrNamespaceLimit = errors.New("namespace limit reached")
)

// Options configure a Target.
type Options struct {
	// Registry holds the bdevs namespaces are made of.
	Registry *bdev.Registry
	// Reactors run the poll groups; the first one also runs the acceptor.
	// Default: Registry.Reactors().
	Reactors []*reactor.Reactor
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Target is an NVMe-oF target: transports, subsystems (the discovery
// subsystem first) and their controllers.
type Target struct {
	reg      *bdev.Registry
	reactors []*reactor.Reactor
	rstate   []reactorState // by reactor ID
	log      *slog.Logger

	mu         sync.Mutex
	subsystems []*Subsystem
	byNQN      map[string]*Subsystem
	transports []*transportState
	listenRefs map[nvmf.ListenAddr]int
	portIDs    map[nvmf.ListenAddr]uint16
	genctr     uint64 // discovery log generation counter
	closed     bool
}

var _ nvmf.Handler = (*Target)(nil)

// transportState is a transport with its poll groups and pollers.
type transportState struct {
	tr       nvmf.Transport
	groups   []nvmf.PollGroup // by index into Target.reactors
	pollers  []*reactor.Poller
	acceptor *reactor.Poller
}

// reactorState is the target's per-reactor state; touched only by its
// reactor.
type reactorState struct {
	waitHead, waitTail *nvmf.Request // I/O waiting for a free bdev IO
}

// New returns a target with the discovery subsystem and no transport.
func New(o Options) (*Target, error) {
	if o.Registry == nil {
		return nil, errors.New("nvmf/target: Options.Registry is required")
	}
	if len(o.Reactors) == 0 {
		o.Reactors = o.Registry.Reactors()
	}
	if len(o.Reactors) == 0 {
		return nil, errors.New("nvmf/target: no reactors")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	maxID := 0
	for _, r := range o.Reactors {
		maxID = max(maxID, r.ID())
	}
	t := &Target{reg: o.Registry, reactors: o.Reactors, rstate: make([]reactorState, maxID+1), log: o.Logger,
		byNQN: map[string]*Subsystem{}, listenRefs: map[nvmf.ListenAddr]int{}, portIDs: map[nvmf.ListenAddr]uint16{}}
	d := newSubsystem(t, SubsystemConfig{NQN: proto.DiscoveryNQN, AllowAnyHost: true, Serial: DefaultSerial, Model: DefaultModel})
	d.disc = true
	t.subsystems = append(t.subsystems, d)
	t.byNQN[d.nqn] = d
	return t, nil
}

// Registry returns the bdev registry.
func (t *Target) Registry() *bdev.Registry { return t.reg }

// Discovery returns the discovery subsystem.
func (t *Target) Discovery() *Subsystem { return t.subsystems[0] }

// CreateTransport creates and starts a transport of type trtype ("tcp";
// "rdma" is not supported yet): one poll group per reactor and the
// acceptor on the first reactor. Control plane; the reactors must be
// running.
func (t *Target) CreateTransport(trtype string, opts nvmf.TransportOpts) (nvmf.Transport, error) {
	up := strings.ToUpper(trtype)
	switch up {
	case "TCP":
	case "RDMA":
		return nil, fmt.Errorf("%w: RDMA transport is not supported yet", ErrNotSupported)
	default:
		return nil, fmt.Errorf("%w '%s'", ErrBadTransport, trtype)
	}
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, ErrClosed
	}
	for _, ts := range t.transports {
		if ts.tr.Type() == up {
			t.mu.Unlock()
			return nil, fmt.Errorf("%w: transport type '%s'", ErrExists, trtype)
		}
	}
	t.mu.Unlock()
	tr, err := tcp.New(tcp.Options{Opts: opts, Handler: t, Logger: t.log})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	ts := &transportState{tr: tr, groups: make([]nvmf.PollGroup, len(t.reactors)), pollers: make([]*reactor.Poller, len(t.reactors))}
	for i, r := range t.reactors {
		var gerr error
		if err := reactor.Call(r, func() {
			g, err := tr.NewPollGroup(r)
			if err != nil {
				gerr = err
				return
			}
			ts.groups[i] = g
			ts.pollers[i] = r.RegisterPollerOpts("nvmf_tcp_poll_group", g.Poll, reactor.PollerOptions{Arm: g.Arm})
		}); err != nil && gerr == nil {
			gerr = err
		}
		if gerr != nil {
			t.stopTransport(ts)
			return nil, gerr
		}
	}
	rate := uint64(opts.AcceptorPollRateUs)
	if rate == 0 {
		rate = 10000
	}
	main := t.reactors[0]
	reactor.Call(main, func() {
		ts.acceptor = main.RegisterPoller("nvmf_tcp_accept", func(reactor.Ticks) reactor.Status {
			if tr.Accept() > 0 {
				return reactor.Busy
			}
			return reactor.Idle
		}, rate)
	})
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		go t.stopTransport(ts)
		return nil, ErrClosed
	}
	t.transports = append(t.transports, ts)
	// Listeners configured before the transport existed start now.
	for _, s := range t.subsystems {
		for _, l := range s.listeners {
			if l.TrType == up && t.listenRefs[l] == 0 {
				if err := tr.Listen(l); err != nil {
					t.log.Warn("nvmf: listener", "addr", l.String(), "err", err)
					continue
				}
			}
			if l.TrType == up {
				t.listenRefs[l]++
			}
		}
	}
	return tr, nil
}

// stopTransport closes a transport's listeners, poll groups and pollers.
func (t *Target) stopTransport(ts *transportState) {
	ts.tr.Close()
	if ts.acceptor != nil {
		p := ts.acceptor
		reactor.Call(t.reactors[0], func() { p.Unregister() })
	}
	for i, r := range t.reactors {
		g, p := ts.groups[i], ts.pollers[i]
		if g == nil && p == nil {
			continue
		}
		reactor.Call(r, func() {
			if p != nil {
				p.Unregister()
			}
			if g != nil {
				g.Close()
			}
		})
	}
}

// Transports returns the transports in creation order.
func (t *Target) Transports() []nvmf.Transport {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]nvmf.Transport, len(t.transports))
	for i, ts := range t.transports {
		out[i] = ts.tr
	}
	return out
}

// transportLocked finds the transport of trtype. Caller holds t.mu.
func (t *Target) transportLocked(trtype string) nvmf.Transport {
	for _, ts := range t.transports {
		if ts.tr.Type() == trtype {
			return ts.tr
		}
	}
	return nil
}

// Close disconnects every host, stops the transports and closes every
// namespace. Control plane; the reactors must still be running.
func (t *Target) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	trs := t.transports
	t.transports = nil
	subs := append([]*Subsystem(nil), t.subsystems...)
	t.mu.Unlock()
	for _, ts := range trs {
		t.stopTransport(ts)
	}
	for _, s := range subs {
		s.disconnectAll()
		for _, ns := range s.detachAllNamespaces() {
			t.releaseNamespace(ns)
		}
	}
	return nil
}

// Subsystem returns the subsystem named nqn, or nil.
func (t *Target) Subsystem(nqn string) *Subsystem {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byNQN[nqn]
}

// Subsystems returns the subsystems, the discovery subsystem first.
func (t *Target) Subsystems() []*Subsystem {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]*Subsystem(nil), t.subsystems...)
}

// CreateSubsystem adds an NVM subsystem.
func (t *Target) CreateSubsystem(c SubsystemConfig) (*Subsystem, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	if t.byNQN[c.NQN] != nil {
		return nil, fmt.Errorf("subsystem %s: %w", c.NQN, ErrExists)
	}
	s := newSubsystem(t, c)
	t.subsystems = append(t.subsystems, s)
	t.byNQN[c.NQN] = s
	t.discoveryChangedLocked()
	return s, nil
}

// DeleteSubsystem removes an NVM subsystem: its hosts are disconnected,
// its listeners released and its namespaces closed.
func (t *Target) DeleteSubsystem(nqn string) error {
	t.mu.Lock()
	s := t.byNQN[nqn]
	if s == nil || s.disc {
		t.mu.Unlock()
		if s != nil {
			return fmt.Errorf("subsystem %s: cannot delete the discovery subsystem: %w", nqn, ErrInvalid)
		}
		return fmt.Errorf("subsystem %s: %w", nqn, ErrNotFound)
	}
	delete(t.byNQN, nqn)
	for i, x := range t.subsystems {
		if x == s {
			t.subsystems = append(t.subsystems[:i], t.subsystems[i+1:]...)
			break
		}
	}
	for _, l := range s.listeners {
		t.releaseListenerLocked(l)
	}
	s.listeners = nil
	s.deleted = true
	t.discoveryChangedLocked()
	t.mu.Unlock()
	s.disconnectAll()
	for _, ns := range s.detachAllNamespaces() {
		t.releaseNamespace(ns)
	}
	return nil
}

// acquireListenerLocked starts listening on a when no subsystem did yet.
func (t *Target) acquireListenerLocked(a nvmf.ListenAddr) error {
	tr := t.transportLocked(a.TrType)
	if tr == nil {
		return fmt.Errorf("%w: %s", ErrNoTransport, a.TrType)
	}
	if t.listenRefs[a] == 0 {
		if err := tr.Listen(a); err != nil {
			return err
		}
	}
	t.listenRefs[a]++
	if _, ok := t.portIDs[a]; !ok {
		t.portIDs[a] = uint16(len(t.portIDs))
	}
	return nil
}

func (t *Target) releaseListenerLocked(a nvmf.ListenAddr) {
	n := t.listenRefs[a]
	if n <= 1 {
		delete(t.listenRefs, a)
		if tr := t.transportLocked(a.TrType); tr != nil && n == 1 {
			if err := tr.StopListen(a); err != nil {
				t.log.Warn("nvmf: stop listener", "addr", a.String(), "err", err)
			}
		}
		return
	}
	t.listenRefs[a] = n - 1
}

// discoveryChangedLocked bumps the discovery log generation and tells the
// discovery controllers (Discovery Log Page Change notice).
func (t *Target) discoveryChangedLocked() {
	t.genctr++
	d := t.subsystems[0]
	for _, c := range d.controllers() {
		reactor.Send(c.r, discoveryChangedMsg, c)
	}
}

// reactorState returns r's state.
func (t *Target) reactorState(r *reactor.Reactor) *reactorState { return &t.rstate[r.ID()] }

// QPairDisconnected implements nvmf.Handler.
func (t *Target) QPairDisconnected(qp nvmf.QPair) {
	qs, _ := qp.Ctx().(*qpair)
	if qs == nil {
		return
	}
	qp.SetCtx(nil)
	rs := t.reactorState(qp.Reactor())
	// Fail what waits for a bdev IO on this queue.
	var keepH, keepT *nvmf.Request
	for r := rs.waitHead; r != nil; {
		nx := r.Next
		r.Next = nil
		if r.QPair == qp {
			r.Rsp.Status = proto.StatusAbortedSQDeletion
			qp.Complete(r)
		} else {
			if keepT == nil {
				keepH = r
			} else {
				keepT.Next = r
			}
			keepT = r
		}
		r = nx
	}
	rs.waitHead, rs.waitTail = keepH, keepT
	if qs.qid == 0 {
		qs.ctrl.destroy()
	} else {
		qs.ctrl.removeIOQPair(qs)
	}
}
