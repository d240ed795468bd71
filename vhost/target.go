package vhost

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"hyperpath/bdev"
	"hyperpath/reactor"
	"hyperpath/vhost/blk"
)

// TransportVhostUserBlk is the only transport of a blk controller.
const TransportVhostUserBlk = "vhost_user_blk"

// MaxSocketPath is the longest socket path a Unix socket can bind
// (sun_path holds 108 bytes with the terminating NUL).
const MaxSocketPath = 107

// ErrPackedRing is returned for packed_ring=true: only split rings are
// implemented so far.
var ErrPackedRing = errors.New("packed ring not supported yet")

// Options configure a Target.
type Options struct {
	// Registry holds the bdevs controllers export.
	Registry *bdev.Registry
	// Reactors are the application's reactors (the core mask). A
	// controller's cpumask selects among them by core number (the core a
	// reactor is pinned to; its ID when unpinned).
	Reactors []*reactor.Reactor
	// SockDir is where controller sockets are created (-S; default the
	// current directory).
	SockDir string
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Target owns the vhost-user-blk controllers of a process. Its methods are
// control plane and safe for concurrent use.
type Target struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	ctrls  []*Controller // in creation order (vhost_get_controllers lists them so)
	closed bool

	nextVid atomic.Int64 // connection numbers ("vid"), process-wide
}

// NewTarget returns a target with no controllers.
func NewTarget(o Options) *Target {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.SockDir == "" {
		o.SockDir = "."
	}
	if abs, err := filepath.Abs(o.SockDir); err == nil {
		o.SockDir = abs
	}
	return &Target{opts: o, log: o.Logger}
}

// SockDir returns the directory controller sockets are created in.
func (t *Target) SockDir() string { return t.opts.SockDir }

// BlkControllerOptions describe a vhost-user-blk controller
// (vhost_create_blk_controller's params).
type BlkControllerOptions struct {
	// Name is the controller name; the socket is <SockDir>/<Name>.
	Name string
	// Bdev is the bdev to export.
	Bdev string
	// CPUMask selects the reactors that poll the controller's queues (an
	// SPDK core mask: "0x3", "3" or "[0,1]"); empty means all. Cores
	// outside the application's mask are ignored, as SPDK does; a mask
	// with none of them is an error.
	CPUMask string
	// ReadOnly exports the bdev read-only (VIRTIO_BLK_F_RO).
	ReadOnly bool
	// PackedRing asks for VIRTIO_F_RING_PACKED: rejected (ErrPackedRing).
	PackedRing bool
	// Transport must be empty or TransportVhostUserBlk.
	Transport string
}

// errnoErr wraps an errno with context; RPC handlers reply with the
// errno's strerror text, as SPDK does.
func errnoErr(e syscall.Errno, format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), e)
}

// CreateBlkController creates a controller and starts listening on its
// socket.
func (t *Target) CreateBlkController(o BlkControllerOptions) (*Controller, error) {
	if o.PackedRing {
		return nil, ErrPackedRing
	}
	if o.Transport != "" && o.Transport != TransportVhostUserBlk {
		return nil, errnoErr(syscall.EINVAL, "vhost controller %q: unknown transport %q", o.Name, o.Transport)
	}
	if o.Name == "" || o.Name == "." || o.Name == ".." || strings.ContainsAny(o.Name, "/\x00") {
		return nil, errnoErr(syscall.EINVAL, "vhost controller name %q", o.Name)
	}
	path := filepath.Join(t.opts.SockDir, o.Name)
	if len(path) > MaxSocketPath {
		return nil, errnoErr(syscall.EINVAL, "vhost controller %q: socket path %s is longer than %d bytes", o.Name, path, MaxSocketPath)
	}
	reactors, cores, err := t.selectReactors(o.CPUMask)
	if err != nil {
		return nil, fmt.Errorf("vhost controller %q: %w", o.Name, err)
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, errnoErr(syscall.ESHUTDOWN, "vhost target closed")
	}
	if t.find(o.Name) != nil {
		return nil, errnoErr(syscall.EEXIST, "vhost controller %q already exists", o.Name)
	}
	c := &Controller{
		t: t, name: o.Name, bdevName: o.Bdev, sock: path, readOnly: o.ReadOnly,
		reactors: reactors, cores: cores, sessions: map[*session]struct{}{},
		log: t.log.With("ctrlr", o.Name),
	}
	// c.mu covers Open..New so that a hot remove racing with creation sees
	// either no device yet (and fails the creation) or the whole device.
	c.mu.Lock()
	desc, err := t.opts.Registry.Open(o.Bdev, !o.ReadOnly, func(ev bdev.EventType, _ *bdev.Bdev) {
		if ev == bdev.EventRemove {
			c.hotRemove()
		}
	})
	if err != nil {
		c.mu.Unlock()
		return nil, errnoErr(syscall.ENODEV, "vhost controller %q: bdev %q: %v", o.Name, o.Bdev, err)
	}
	c.bdevName = desc.Bdev().Name()
	c.desc = desc
	c.dev, err = blk.New(blk.Options{Desc: desc, ReadOnly: o.ReadOnly, NumQueues: MaxQueues, Logger: c.log})
	early := c.removedEarly
	c.mu.Unlock()
	if err != nil {
		desc.Close()
		return nil, errnoErr(syscall.EINVAL, "vhost controller %q: %v", o.Name, err)
	}
	if early {
		desc.Close()
		return nil, errnoErr(syscall.ENODEV, "vhost controller %q: bdev %q removed during creation", o.Name, o.Bdev)
	}
	if err := c.listen(); err != nil {
		desc.Close()
		return nil, err
	}
	t.ctrls = append(t.ctrls, c)
	c.wg.Add(1)
	go c.acceptLoop()
	c.log.Info("vhost-user-blk controller created", "bdev", c.bdevName, "socket", path,
		"cpumask", reactor.FormatCoreMask(cores), "readonly", o.ReadOnly)
	return c, nil
}

// selectReactors maps a core mask onto the target's reactors.
func (t *Target) selectReactors(mask string) ([]*reactor.Reactor, []int, error) {
	all := t.opts.Reactors
	if len(all) == 0 {
		return nil, nil, errnoErr(syscall.EINVAL, "no reactors")
	}
	var want []int
	if mask != "" {
		var err error
		if want, err = reactor.ParseCoreMask(mask); err != nil {
			return nil, nil, errnoErr(syscall.EINVAL, "cpumask %q: %v", mask, err)
		}
	}
	var rs []*reactor.Reactor
	var cores []int
	for _, r := range all {
		c := coreOf(r)
		if mask == "" || slices.Contains(want, c) {
			rs = append(rs, r)
			cores = append(cores, c)
		}
	}
	if len(rs) == 0 {
		return nil, nil, errnoErr(syscall.EINVAL, "cpumask %s selects none of the application's cores (%s)",
			mask, reactor.FormatCoreMask(t.allCores()))
	}
	return rs, cores, nil
}

func (t *Target) allCores() []int {
	var cs []int
	for _, r := range t.opts.Reactors {
		cs = append(cs, coreOf(r))
	}
	return cs
}

// coreOf is the core number a cpumask bit names for r.
func coreOf(r *reactor.Reactor) int {
	if c := r.Core(); c >= 0 {
		return c
	}
	return r.ID()
}

func (t *Target) find(name string) *Controller {
	for _, c := range t.ctrls {
		if c.name == name {
			return c
		}
	}
	return nil
}

// Controller returns the named controller.
func (t *Target) Controller(name string) (*Controller, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c := t.find(name); c != nil {
		return c, nil
	}
	return nil, errnoErr(syscall.ENODEV, "vhost controller %q", name)
}

// Controllers returns the controllers in creation order.
func (t *Target) Controllers() []*Controller {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.ctrls)
}

// DeleteController removes a controller and its socket. As in SPDK it
// refuses (EBUSY) while a front-end is connected.
func (t *Target) DeleteController(name string) error {
	t.mu.Lock()
	c := t.find(name)
	if c == nil {
		t.mu.Unlock()
		return errnoErr(syscall.ENODEV, "vhost controller %q", name)
	}
	c.mu.Lock()
	if len(c.sessions) > 0 {
		n := len(c.sessions)
		c.mu.Unlock()
		t.mu.Unlock()
		return errnoErr(syscall.EBUSY, "vhost controller %q has %d connected front-end(s)", name, n)
	}
	c.closing = true
	c.mu.Unlock()
	t.ctrls = slices.DeleteFunc(t.ctrls, func(o *Controller) bool { return o == c })
	t.mu.Unlock()
	c.shutdown()
	c.log.Info("vhost-user-blk controller deleted")
	return nil
}

// SetCoalescing sets a controller's interrupt coalescing
// (vhost_controller_set_coalescing).
func (t *Target) SetCoalescing(name string, delayBaseUs, iopsThreshold uint32) error {
	c, err := t.Controller(name)
	if err != nil {
		return err
	}
	if err := c.dev.SetCoalescing(delayBaseUs, iopsThreshold); err != nil {
		return errnoErr(syscall.EINVAL, "vhost controller %q: %v", name, err)
	}
	return nil
}

// Close stops every controller: connections are closed (their queues
// drained first), sockets removed, descriptors closed. Call it before the
// reactors stop. It is idempotent.
func (t *Target) Close() {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.closed = true
	ctrls := t.ctrls
	t.ctrls = nil
	t.mu.Unlock()
	for _, c := range ctrls {
		c.mu.Lock()
		c.closing = true
		c.mu.Unlock()
		c.shutdown()
	}
}

// Controller is one vhost-user-blk controller: a listening socket, the
// virtio-blk device over its bdev, and the sessions (connections) on it.
type Controller struct {
	t        *Target
	name     string
	bdevName string
	sock     string
	readOnly bool
	reactors []*reactor.Reactor
	cores    []int
	dev      *blk.Device
	log      *slog.Logger
	ln       *net.UnixListener
	wg       sync.WaitGroup // accept loop, sessions, hot-remove handler

	mu          sync.Mutex
	desc        *bdev.Desc // nil once the bdev was hot-removed or the controller shut down
	sessions    map[*session]struct{}
	nextSession int
	closing     bool
	// removedEarly: the bdev went away before the device was built.
	removedEarly bool
}

// Name returns the controller's name.
func (c *Controller) Name() string { return c.name }

// Socket returns the socket path.
func (c *Controller) Socket() string { return c.sock }

// Device returns the virtio-blk device.
func (c *Controller) Device() *blk.Device { return c.dev }

func (c *Controller) listen() error {
	if fi, err := os.Lstat(c.sock); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return errnoErr(syscall.EEXIST, "vhost controller %q: %s exists and is not a socket", c.name, c.sock)
		}
		os.Remove(c.sock) // a stale socket of an earlier run
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: c.sock, Net: "unix"})
	if err != nil {
		var errno syscall.Errno
		if !errors.As(err, &errno) {
			errno = syscall.EIO
		}
		return errnoErr(errno, "vhost controller %q: listen on %s: %v", c.name, c.sock, err)
	}
	c.ln = ln
	return nil
}

func (c *Controller) acceptLoop() {
	defer c.wg.Done()
	for {
		conn, err := c.ln.AcceptUnix()
		if err != nil {
			c.mu.Lock()
			closing := c.closing
			c.mu.Unlock()
			if closing || errors.Is(err, net.ErrClosed) {
				return
			}
			c.log.Warn("vhost: accept", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		c.mu.Lock()
		if c.closing {
			c.mu.Unlock()
			conn.Close()
			continue
		}
		s := newSession(c, conn, c.nextSession, int(c.t.nextVid.Add(1)-1))
		c.nextSession++
		c.sessions[s] = struct{}{}
		c.wg.Add(1)
		c.mu.Unlock()
		go s.run()
	}
}

// shutdown closes the listener and every session and waits for them.
// Precondition: c.closing is set.
func (c *Controller) shutdown() {
	c.ln.Close()
	c.mu.Lock()
	for s := range c.sessions {
		s.conn.Close()
	}
	c.mu.Unlock()
	c.wg.Wait()
	c.mu.Lock()
	desc := c.desc
	c.desc = nil
	c.mu.Unlock()
	if desc != nil {
		desc.Close()
	}
	os.Remove(c.sock)
}

func (c *Controller) removeSession(s *session) {
	c.mu.Lock()
	delete(c.sessions, s)
	c.mu.Unlock()
}

// hotRemove runs when the bdev is unregistered: new IO fails, every running
// queue puts its channel back, and the descriptor is closed once their
// outstanding IO completed. The controller stays, with no bdev.
func (c *Controller) hotRemove() {
	c.mu.Lock()
	if c.dev == nil {
		c.removedEarly = true
		c.mu.Unlock()
		return
	}
	c.dev.Remove()
	if c.closing {
		c.mu.Unlock()
		return // shutdown closes the descriptor
	}
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		c.mu.Lock()
		var ss []*session
		for s := range c.sessions {
			ss = append(ss, s)
		}
		c.mu.Unlock()
		var waits []chan struct{}
		for _, s := range ss {
			waits = append(waits, s.detachBdev()...)
		}
		for _, ch := range waits {
			waitLogged(c.log, ch, "outstanding IO of a hot-removed bdev")
		}
		c.mu.Lock()
		desc := c.desc
		c.desc = nil
		c.mu.Unlock()
		if desc != nil {
			desc.Close()
		}
		c.log.Warn("vhost: bdev hot-removed; requests now fail with IOERR", "bdev", c.bdevName)
	}()
}

// waitLogged waits for ch, warning every 5 s while it waits.
func waitLogged(log *slog.Logger, ch <-chan struct{}, what string) {
	start := time.Now()
	for {
		select {
		case <-ch:
			return
		case <-time.After(5 * time.Second):
			log.Warn("vhost: still waiting", "for", what, "since", time.Since(start).Round(time.Second))
		}
	}
}

// callOn runs fn on r and waits, retrying while r's message ring is full.
// Control plane only.
func callOn(r *reactor.Reactor, fn func()) {
	for {
		err := reactor.Call(r, fn)
		if err == nil {
			return
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// SessionInfo describes one connection (vhost_get_controllers).
type SessionInfo struct {
	Vid       int
	ID        int
	Name      string
	Started   bool
	MaxQueues int
	Inflight  int
}

// ControllerInfo describes a controller (vhost_get_controllers).
type ControllerInfo struct {
	Name          string
	CPUMask       string // hex, no 0x
	DelayBaseUs   uint32
	IOPSThreshold uint32
	Socket        string
	Sessions      []SessionInfo
	ReadOnly      bool
	Bdev          string // "" once hot-removed
	Transport     string
}

// Info returns the controller's description. It visits the reactors of
// running queues for their in-flight counts.
func (c *Controller) Info() ControllerInfo {
	d, iops := c.dev.Coalescing()
	info := ControllerInfo{
		Name: c.name, CPUMask: reactor.FormatCoreMask(c.cores), DelayBaseUs: d, IOPSThreshold: iops,
		Socket: c.sock, ReadOnly: c.readOnly, Transport: TransportVhostUserBlk,
	}
	c.mu.Lock()
	if c.desc != nil {
		info.Bdev = c.bdevName
	}
	ss := make([]*session, 0, len(c.sessions))
	for s := range c.sessions {
		ss = append(ss, s)
	}
	c.mu.Unlock()
	slices.SortFunc(ss, func(a, b *session) int { return a.id - b.id })
	for _, s := range ss {
		info.Sessions = append(info.Sessions, s.info())
	}
	return info
}

// cpumask is the controller's core mask in hex without 0x.
func (c *Controller) cpumask() string { return reactor.FormatCoreMask(c.cores) }
