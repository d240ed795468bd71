package initiator

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"hyperpath/nvmf/proto"
	"hyperpath/reactor"
)

// State is a controller's state as bdev_nvme_get_controllers reports it.
type State uint8

const (
	// StateEnabled: connected; commands flow.
	StateEnabled State = iota
	// StateResetting: the connection was lost (or a reset was asked for)
	// and a reconnect is under way; I/O is held.
	StateResetting
	// StateReconnectDelayed: a reconnect failed; the next one starts
	// after ReconnectDelaySec. I/O is held until FastIOFailTimeoutSec.
	StateReconnectDelayed
	// StateFailed: the reconnect failed and no further attempt is
	// scheduled (no reconnect policy); I/O fails. Reset tries again.
	StateFailed
	// StateDeleting: being detached, or given up after
	// CtrlrLossTimeoutSec; I/O fails.
	StateDeleting
)

// String returns SPDK's name of the state.
func (s State) String() string {
	switch s {
	case StateEnabled:
		return "enabled"
	case StateResetting:
		return "resetting"
	case StateReconnectDelayed:
		return "reconnect_is_delayed"
	case StateFailed:
		return "failed"
	case StateDeleting:
		return "deleting"
	}
	return "unknown"
}

// adminPollUs is the period of the admin queue pair's poller: admin
// commands are rare (keep alive, control-plane requests) and must not cost
// the I/O path a syscall per reactor iteration.
const adminPollUs = 1000

// reactorWait bounds how long the control goroutine waits for a reactor to
// run one of its messages.
const reactorWait = 30 * time.Second

// Ctrlr is a host's association with one NVMe-oF controller over TCP: an
// admin queue pair with its keep-alive timer on Options.AdminReactor, and
// one I/O queue pair per reactor of Options.IOReactors (as many as the
// controller grants), owned and polled by that reactor.
//
// Threading: the exported methods are control plane (any goroutine,
// synchronized by a mutex) except where a method says it belongs to a
// reactor. A goroutine of the controller waits for connection losses and
// runs the reconnects; reactors only signal it, without blocking.
type Ctrlr struct {
	o      Options
	log    *slog.Logger
	adminR *reactor.Reactor
	admin  *QPair
	ioq    []*QPair // ioq[i] runs on o.IOReactors[i]
	byR    map[*reactor.Reactor]*QPair
	depth  int    // I/O queue size (SQSIZE+1)
	icMax  uint32 // in-capsule data limit of I/O queues

	// Keep alive, owned by the admin reactor.
	kaPoller  *reactor.Poller
	kaSQE     proto.SQE
	kaDoneFn  DoneFunc
	kaPending bool
	kaSentAt  reactor.Ticks
	kaLimit   reactor.Ticks

	lossCh  chan struct{}
	resetCh chan chan error
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	once    sync.Once
	started bool // run is running

	mu         sync.Mutex
	state      State
	data       *ctrlData
	lastErr    error
	resets     uint64
	resetStart time.Time
}

// Connect associates with the controller o describes: it sets up the
// admin queue and the I/O queues with blocking I/O on the calling
// goroutine, then hands each queue pair to its reactor. The reactors must
// be running (or be polled by the caller). Control plane.
func Connect(ctx context.Context, o Options) (*Ctrlr, error) {
	if err := o.normalize(true); err != nil {
		return nil, err
	}
	c := &Ctrlr{o: o, log: o.Logger.With("ctrlr", o.Name), adminR: o.AdminReactor,
		lossCh: make(chan struct{}, 1), resetCh: make(chan chan error), done: make(chan struct{}),
		byR: map[*reactor.Reactor]*QPair{}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.kaDoneFn = c.kaDone
	c.kaSQE = proto.SQE{Opcode: proto.AdminKeepAlive}
	c.kaLimit = reactor.TicksFromDuration(time.Duration(o.KATOMs) * time.Millisecond)

	adm, d, ios, err := c.connectAll(ctx)
	if err != nil {
		c.cancel()
		return nil, err
	}
	c.data = d
	c.depth = c.queueDepth(d)
	c.icMax = ioInCapsule(d)
	c.admin = newQPair(0, adminQueueSize-1, false)
	c.admin.onLoss = c.onLoss
	for i := range ios {
		q := newQPair(uint16(i+1), c.depth-1, true)
		q.onLoss = c.onLoss
		c.ioq = append(c.ioq, q)
		c.byR[o.IOReactors[i]] = q
	}
	name := o.Name
	if err := runOn(c.adminR, func() {
		c.admin.install(adm.c, proto.MaxAdminInCapsule)
		c.admin.attach(c.adminR, "nvme_adminq_"+name, adminPollUs)
		if !o.DisableKeepAlive {
			c.kaPoller = c.adminR.RegisterPoller("nvme_keep_alive_"+name, c.kaPoll, uint64(o.KATOMs)*1000/2)
		}
	}); err != nil {
		adm.closeSync()
		closeAll(ios)
		c.Close()
		return nil, err
	}
	for i, q := range c.ioq {
		q, sq := q, ios[i]
		if err := runOn(o.IOReactors[i], func() {
			q.install(sq.c, c.icMax)
			q.attach(o.IOReactors[i], fmt.Sprintf("nvme_ioq_%s_%d", name, q.qid), 0)
		}); err != nil {
			closeAll(ios[i:])
			c.Close()
			return nil, err
		}
	}
	for _, s := range d.skipped {
		c.log.Warn("nvme namespace not attached", "reason", s)
	}
	c.log.Info("nvme controller connected", "traddr", o.TRAddr, "trsvcid", o.TRSvcID, "subnqn", o.SubNQN,
		"cntlid", d.cntlid, "namespaces", len(d.nss), "io_queues", len(c.ioq), "queue_size", c.depth)
	c.started = true
	go c.run()
	return c, nil
}

// runOn runs fn on r and waits for it (control plane).
func runOn(r *reactor.Reactor, fn func()) error {
	done := make(chan struct{})
	if err := reactor.Send(r, func(any) { fn(); close(done) }, nil); err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-time.After(reactorWait):
		return fmt.Errorf("%w: %s", ErrReactor, r.Name())
	}
}

func closeAll(qs []*QPair) {
	for _, q := range qs {
		if q != nil {
			q.closeSync()
		}
	}
}

// queueDepth is the I/O queue size: the requested one, capped by CAP.MQES
// (0's based) and by MAXCMD when the controller reports it.
func (c *Ctrlr) queueDepth(d *ctrlData) int {
	n := int(c.o.IOQueueSize)
	if m := int(d.cap.MQES()) + 1; n > m {
		n = m
	}
	if d.id.MAXCMD != 0 && n > int(d.id.MAXCMD)+1 {
		n = int(d.id.MAXCMD) + 1
	}
	if n < 2 {
		n = 2
	}
	return n
}

// ioInCapsule is the in-capsule data limit of I/O queues: IOCCSZ*16 bytes
// of capsule less the 64-byte SQE (NVMe Base 2.3 Figure 328, IOCCSZ).
func ioInCapsule(d *ctrlData) uint32 {
	if d.id.IOCCSZ <= 4 {
		return 0
	}
	return d.id.IOCCSZ*16 - proto.SQESize
}

// connectAll sets up the admin queue and then every I/O queue, in sync
// mode on the calling goroutine.
func (c *Ctrlr) connectAll(ctx context.Context) (*QPair, *ctrlData, []*QPair, error) {
	kato := c.o.KATOMs
	if c.o.DisableKeepAlive {
		kato = 0
	}
	want := min(int(c.o.NumIOQueues), len(c.o.IOReactors))
	adm, d, err := setupAdmin(ctx, &c.o, kato, want, false)
	if err != nil {
		return nil, nil, nil, err
	}
	if d.ioQueues < 1 {
		adm.closeSync()
		return nil, nil, nil, fmt.Errorf("controller granted no I/O queue: %w", ErrProtocol)
	}
	if c.ioq != nil && d.ioQueues < len(c.ioq) {
		adm.closeSync()
		return nil, nil, nil, fmt.Errorf("controller now grants %d I/O queues, %d are in use: %w", d.ioQueues, len(c.ioq), ErrProtocol)
	}
	n := d.ioQueues
	if c.ioq != nil {
		n = len(c.ioq)
	}
	depth := c.queueDepth(d)
	if c.ioq != nil {
		depth = c.depth
	}
	ios := make([]*QPair, 0, n)
	for i := 0; i < n; i++ {
		q, id, err := openQueue(ctx, &c.o, uint16(i+1), depth, d.cntlid, 0, ioInCapsule(d))
		if err == nil && id != d.cntlid {
			q.closeSync()
			err = fmt.Errorf("I/O queue %d connected to controller %d, not %d: %w", i+1, id, d.cntlid, ErrProtocol)
		}
		if err != nil {
			closeAll(ios)
			adm.closeSync()
			return nil, nil, nil, err
		}
		ios = append(ios, q)
	}
	return adm, d, ios, nil
}

// IOQPair returns the I/O queue pair owned by r, or nil when r has none
// (more reactors than granted queues).
func (c *Ctrlr) IOQPair(r *reactor.Reactor) *QPair { return c.byR[r] }

// IOQPairs returns the I/O queue pairs, in the order of IOReactors.
func (c *Ctrlr) IOQPairs() []*QPair { return c.ioq }

// Options returns the options the controller was connected with (defaults
// filled in).
func (c *Ctrlr) Options() Options { return c.o }

// State returns the controller's state.
func (c *Ctrlr) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// LastError returns the last connection error, or nil.
func (c *Ctrlr) LastError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// Resets counts the connection losses and resets handled so far.
func (c *Ctrlr) Resets() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resets
}

// CNTLID returns the controller ID of the current association.
func (c *Ctrlr) CNTLID() uint16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.data.cntlid
}

// IdentifyController returns the Identify Controller data.
func (c *Ctrlr) IdentifyController() proto.IdentifyController {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.data.id
}

// CAP returns the Controller Capabilities property.
func (c *Ctrlr) CAP() proto.CAP {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.data.cap
}

// VS returns the Version property.
func (c *Ctrlr) VS() proto.VS {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.data.vs
}

// Namespaces returns the active namespaces found at connect time (those
// with the NVM command set and no metadata).
func (c *Ctrlr) Namespaces() []Namespace {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Namespace(nil), c.data.nss...)
}

// MaxTransferBytes is the largest data transfer of one command (MDTS in
// units of CAP.MPSMIN pages), or 0 for no limit.
func (c *Ctrlr) MaxTransferBytes() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.data.id.MDTS == 0 {
		return 0
	}
	page := uint64(1) << (12 + c.data.cap.MPSMIN())
	return page << c.data.id.MDTS
}

// QueueDepth is the I/O queue size negotiated (SQSIZE+1); a queue pair
// holds QueueDepth-1 commands.
func (c *Ctrlr) QueueDepth() int { return c.depth }

func (c *Ctrlr) setState(s State, err error) {
	c.mu.Lock()
	c.state = s
	if err != nil {
		c.lastErr = err
	}
	c.mu.Unlock()
}

// onLoss is every queue pair's loss hook; it runs on the queue pair's
// owner (a reactor) and must not block.
func (c *Ctrlr) onLoss(q *QPair, err error) {
	if q.r == nil {
		return // a queue pair in setup: its caller sees the error
	}
	select {
	case c.lossCh <- struct{}{}:
	default:
	}
}

// kaPoll sends a Keep Alive every KATO/2 and declares the association
// lost when one is not answered within KATO (NVMe Base 2.3 §3.9). Admin
// reactor only.
func (c *Ctrlr) kaPoll(now reactor.Ticks) reactor.Status {
	if !c.admin.Connected() {
		c.kaPending = false
		return reactor.Idle
	}
	if c.kaPending {
		if now-c.kaSentAt > c.kaLimit {
			c.kaPending = false
			c.admin.fail(fmt.Errorf("no answer within %d ms: %w", c.o.KATOMs, ErrKeepAlive))
		}
		return reactor.Idle
	}
	if c.admin.submitRaw(&c.kaSQE, proto.XferNone, nil, 0, c.kaDoneFn, nil) == nil {
		c.kaPending = true
		c.kaSentAt = now
	}
	return reactor.Busy
}

func (c *Ctrlr) kaDone(_ any, cpl *proto.CQE) {
	c.kaPending = false
	if !cpl.Status.Success() && c.admin.Connected() {
		c.admin.fail(fmt.Errorf("Keep Alive: %v: %w", cpl.Status, ErrKeepAlive))
	}
}

// Reset drops every connection and reconnects, as bdev_nvme_reset_controller
// does. Held I/O is started again on the new connections. It returns the
// result of the first reconnect attempt. Control plane.
func (c *Ctrlr) Reset(ctx context.Context) error {
	ch := make(chan error, 1)
	select {
	case c.resetCh <- ch:
	case <-c.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run is the controller's goroutine: it waits for losses and resets.
func (c *Ctrlr) run() {
	defer close(c.done)
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.lossCh:
			c.recover(nil)
		case ch := <-c.resetCh:
			c.recover(ch)
		}
	}
}

// recover runs SPDK's reset sequence: disconnect every queue pair (I/O
// queue pairs hold their commands), reconnect at once, then every
// ReconnectDelaySec; fail held I/O at FastIOFailTimeoutSec; give the
// controller up at CtrlrLossTimeoutSec.
func (c *Ctrlr) recover(reply chan error) {
	start := time.Now()
	c.mu.Lock()
	c.resets++
	c.resetStart = start
	c.state = StateResetting
	c.mu.Unlock()
	c.disconnectAll()
	// Losses signalled by the disconnects themselves are this one.
	select {
	case <-c.lossCh:
	default:
	}
	answer := func(err error) {
		if reply != nil {
			reply <- err
			reply = nil
		}
	}
	var fastFail, loss <-chan time.Time
	if c.o.FastIOFailTimeoutSec > 0 {
		t := time.NewTimer(time.Duration(c.o.FastIOFailTimeoutSec) * time.Second)
		defer t.Stop()
		fastFail = t.C
	}
	if c.o.CtrlrLossTimeoutSec > 0 {
		t := time.NewTimer(time.Duration(c.o.CtrlrLossTimeoutSec) * time.Second)
		defer t.Stop()
		loss = t.C
	}
	for {
		err := c.reconnect()
		if err == nil {
			c.setState(StateEnabled, nil)
			c.log.Info("nvme controller reconnected", "after", time.Since(start).Round(time.Millisecond))
			answer(nil)
			return
		}
		if c.ctx.Err() != nil {
			answer(ErrClosed)
			return
		}
		c.log.Warn("nvme controller reconnect failed", "err", err)
		if c.o.ReconnectDelaySec == 0 {
			c.setState(StateFailed, err)
			c.setModeAll(modeFailFast)
			answer(err)
			return
		}
		answer(err)
		c.setState(StateReconnectDelayed, err)
		delay := time.NewTimer(time.Duration(c.o.ReconnectDelaySec) * time.Second)
	wait:
		for {
			select {
			case <-delay.C:
				break wait
			case <-fastFail:
				fastFail = nil
				c.log.Warn("nvme controller fast_io_fail_timeout_sec passed: failing I/O")
				c.setModeAll(modeFailFast)
			case <-loss:
				delay.Stop()
				c.giveUp(err)
				return
			case ch := <-c.resetCh:
				delay.Stop()
				reply = ch
				break wait
			case <-c.ctx.Done():
				delay.Stop()
				return
			}
		}
		c.setState(StateResetting, nil)
	}
}

// giveUp ends a controller after CtrlrLossTimeoutSec: I/O fails for good
// and OnLost is told.
func (c *Ctrlr) giveUp(err error) {
	c.log.Error("nvme controller lost: ctrlr_loss_timeout_sec passed", "err", err)
	c.setState(StateDeleting, err)
	c.setModeAll(modeClosed)
	if c.o.OnLost != nil {
		go c.o.OnLost(c)
	}
}

// disconnectAll tears down every queue pair's connection on its reactor.
func (c *Ctrlr) disconnectAll() {
	runOn(c.adminR, func() {
		c.kaPending = false
		c.admin.fail(ErrReset)
	})
	for i, q := range c.ioq {
		q := q
		runOn(c.o.IOReactors[i], func() { q.fail(ErrReset) })
	}
}

// setModeAll changes what every I/O queue pair does with commands while
// disconnected.
func (c *Ctrlr) setModeAll(m qpMode) {
	for i, q := range c.ioq {
		q := q
		runOn(c.o.IOReactors[i], func() { q.setMode(m) })
	}
	runOn(c.adminR, func() { c.admin.setMode(m) })
}

// reconnect sets every queue up again and installs the new connections;
// held commands restart on them.
func (c *Ctrlr) reconnect() error {
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	adm, d, ios, err := c.connectAll(ctx)
	if err != nil {
		return err
	}
	if ioInCapsule(d) != c.icMax {
		c.log.Info("nvme controller changed its in-capsule data size", "bytes", ioInCapsule(d))
	}
	c.mu.Lock()
	old := c.data
	d.nss = mergeNamespaces(old.nss, d.nss, c.log)
	c.data = d
	c.mu.Unlock()
	icMax := ioInCapsule(d)
	if err := runOn(c.adminR, func() {
		c.kaPending = false
		c.admin.install(adm.c, proto.MaxAdminInCapsule)
	}); err != nil {
		adm.closeSync()
		closeAll(ios)
		return err
	}
	for i, q := range c.ioq {
		q, sq := q, ios[i]
		if err := runOn(c.o.IOReactors[i], func() { q.install(sq.c, icMax) }); err != nil {
			closeAll(ios[i:])
			return err
		}
	}
	c.icMax = icMax
	return nil
}

// mergeNamespaces keeps the namespaces known before a reconnect (their
// devices exist) and logs what changed; a namespace that shrank or went
// away fails its I/O at the controller.
func mergeNamespaces(old, cur []Namespace, log *slog.Logger) []Namespace {
	byID := map[uint32]Namespace{}
	for _, n := range cur {
		byID[n.ID] = n
	}
	for _, n := range old {
		m, ok := byID[n.ID]
		switch {
		case !ok:
			log.Warn("nvme namespace gone after reconnect", "nsid", n.ID)
		case m.NumBlocks != n.NumBlocks || m.BlockSize != n.BlockSize:
			log.Warn("nvme namespace changed after reconnect", "nsid", n.ID, "blocks", m.NumBlocks, "block_size", m.BlockSize)
		}
	}
	return old
}

// Close detaches from the controller: it stops reconnecting, asks the
// controller for a normal shutdown, closes every connection and fails the
// commands still held or outstanding with proto.StatusAbortedByHost.
// Safe to call more than once. Control plane.
func (c *Ctrlr) Close() error {
	c.once.Do(func() {
		c.cancel()
		if c.started {
			select {
			case <-c.done:
			case <-time.After(reactorWait):
			}
		}
		c.setState(StateDeleting, nil)
		c.shutdown()
		for i, q := range c.ioq {
			q := q
			runOn(c.o.IOReactors[i], func() {
				q.setMode(modeClosed)
				q.detach()
			})
		}
		runOn(c.adminR, func() {
			if c.kaPoller != nil {
				c.kaPoller.Unregister()
				c.kaPoller = nil
			}
			c.admin.setMode(modeClosed)
			c.admin.detach()
		})
	})
	return nil
}

// shutdown sets CC.SHN through the admin queue pair on its reactor and
// waits up to a second for the shutdown to complete.
func (c *Ctrlr) shutdown() {
	if c.admin == nil {
		return
	}
	cc, err := c.AdminPropertyGet(proto.PropCC, proto.PropSize4)
	if err != nil {
		return
	}
	v := proto.CC(cc)
	f := proto.CCFields{EN: v.EN(), CSS: v.CSS(), MPS: v.MPS(), AMS: v.AMS(), SHN: proto.ShutdownNormal,
		IOSQES: v.IOSQES(), IOCQES: v.IOCQES(), CRIME: v.CRIME()}
	var sqe proto.SQE
	sqe.PutPropertySet(&proto.PropertyCmd{Attrib: proto.PropSize4, Offset: proto.PropCC, Value: uint64(f.CC())})
	if _, err := c.AdminCommand(context.Background(), &sqe, proto.XferNone, nil); err != nil {
		return
	}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		v, err := c.AdminPropertyGet(proto.PropCSTS, proto.PropSize4)
		if err != nil || proto.CSTS(v).SHST() == proto.ShutdownStatusComplete {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// AdminPropertyGet reads a controller property through the admin queue.
// Control plane.
func (c *Ctrlr) AdminPropertyGet(off uint32, size uint8) (uint64, error) {
	var sqe proto.SQE
	sqe.PutPropertyGet(&proto.PropertyCmd{Attrib: size, Offset: off})
	cqe, err := c.AdminCommand(context.Background(), &sqe, proto.XferNone, nil)
	if err != nil {
		return 0, err
	}
	return proto.PropertyGetValue(&cqe), nil
}

// AdminCommand runs an admin command whose SQE the caller built (CID and
// SGL are filled in) on the admin queue pair, moving buf in the direction
// xfer, and waits for its completion, at most ConnectTimeout. Control
// plane.
func (c *Ctrlr) AdminCommand(ctx context.Context, sqe *proto.SQE, xfer proto.Xfer, buf []byte) (proto.CQE, error) {
	type result struct {
		cqe proto.CQE
		err error
	}
	ch := make(chan result, 1)
	var iovs [][]byte
	if len(buf) > 0 {
		iovs = [][]byte{buf}
	}
	s := *sqe
	done := func(_ any, cpl *proto.CQE) { ch <- result{cqe: *cpl} }
	if err := runOn(c.adminR, func() {
		if err := c.admin.submitRaw(&s, xfer, iovs, uint32(len(buf)), done, nil); err != nil {
			ch <- result{err: err}
		}
	}); err != nil {
		return proto.CQE{}, err
	}
	t := time.NewTimer(c.o.ConnectTimeout)
	defer t.Stop()
	select {
	case r := <-ch:
		if r.err != nil {
			return proto.CQE{}, r.err
		}
		if !r.cqe.Status.Success() {
			return r.cqe, &StatusError{Cmd: fmt.Sprintf("admin opcode %#x", sqe.Opcode), Status: r.cqe.Status, DW0: r.cqe.DW0}
		}
		return r.cqe, nil
	case <-t.C:
		return proto.CQE{}, ErrTimeout
	case <-ctx.Done():
		return proto.CQE{}, ctx.Err()
	}
}
