package remote

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"hyperpath/bdev"
	"hyperpath/nvmf/initiator"
	"hyperpath/nvmf/proto"
	"hyperpath/reactor"
)

// Names the module reports.
const (
	ModuleName  = "nvme"
	ProductName = "NVMe disk"
)

// Errors of the control plane.
var (
	// ErrExists: a controller with that name, or to that path, exists.
	ErrExists = errors.New("nvme controller already exists")
	// ErrNotFound: no controller with that name.
	ErrNotFound = errors.New("no such nvme controller")
	// ErrUnsupported: an option this module does not implement (RDMA, TLS
	// PSK, DH-HMAC-CHAP, metadata).
	ErrUnsupported = errors.New("not supported")
	// ErrTooManyBdevs: more namespaces than max_bdevs (the bdevs are
	// created anyway, as SPDK does).
	ErrTooManyBdevs = errors.New("more namespaces than max_bdevs")
)

// Defaults are the module-wide settings of bdev_nvme_set_options that
// attach uses when its own params leave them out.
type Defaults struct {
	KeepAliveTimeoutMs   uint32
	CtrlrLossTimeoutSec  int32
	ReconnectDelaySec    uint32
	FastIOFailTimeoutSec uint32
	IOQueueSize          uint32 // io_queue_requests: commands per I/O queue pair (+1 = queue size)
	ConnectTimeout       time.Duration
}

// AttachConfig is what bdev_nvme_attach_controller asks for, normalized.
type AttachConfig struct {
	Name      string
	AdrFam    initiator.AdrFam
	TRAddr    string
	TRSvcID   string
	SubNQN    string
	HostNQN   string
	HostAddr  string
	HostSvcID string

	HeaderDigest, DataDigest bool
	PrchkReftag, PrchkGuard  bool // accepted and saved; namespaces with metadata are not attached

	CtrlrLossTimeoutSec  int32
	ReconnectDelaySec    uint32
	FastIOFailTimeoutSec uint32
	KeepAliveTimeoutMs   uint32
	NumIOQueues          uint32
	IOQueueSize          uint32
	ConnectTimeout       time.Duration
	Multipath            string // "disable", "failover", "multipath": saved; one path only
	DisableSQFlowControl bool
}

// Module is the NVMe-oF bdev module: its attached controllers.
type Module struct {
	reg      *bdev.Registry
	reactors []*reactor.Reactor
	log      *slog.Logger

	mu       sync.Mutex
	ctrlrs   []*Controller
	defaults Defaults
}

var _ bdev.Module = (*Module)(nil)

// New returns the module for reg; controllers get their admin queue on
// reactors[0] and one I/O queue pair per reactor.
func New(reg *bdev.Registry, reactors []*reactor.Reactor, log *slog.Logger) *Module {
	if log == nil {
		log = slog.Default()
	}
	return &Module{reg: reg, reactors: reactors, log: log, defaults: Defaults{KeepAliveTimeoutMs: initiator.DefaultKATOMs}}
}

// Name implements bdev.Module.
func (m *Module) Name() string { return ModuleName }

// SetDefaults replaces the module defaults (bdev_nvme_set_options).
func (m *Module) SetDefaults(d Defaults) error {
	if err := initiator.ValidateReconnect(d.CtrlrLossTimeoutSec, d.ReconnectDelaySec, d.FastIOFailTimeoutSec); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.defaults = d
	return nil
}

// Defaults returns the module defaults.
func (m *Module) Defaults() Defaults {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.defaults
}

// Controller is one attached NVMe-oF controller and its bdevs.
type Controller struct {
	m     *Module
	cfg   AttachConfig
	c     *initiator.Ctrlr
	disks []*Disk

	mu        sync.Mutex
	live      int  // disks not destroyed yet
	detaching bool // Detach or loss handling owns the teardown
	closed    chan struct{}
	closeOnce sync.Once
}

// Name returns the controller name.
func (c *Controller) Name() string { return c.cfg.Name }

// Config returns the attach configuration.
func (c *Controller) Config() AttachConfig { return c.cfg }

// Ctrlr returns the initiator controller.
func (c *Controller) Ctrlr() *initiator.Ctrlr { return c.c }

// BdevNames returns the names of the controller's bdevs, by NSID.
func (c *Controller) BdevNames() []string {
	names := make([]string, len(c.disks))
	for i, d := range c.disks {
		names[i] = d.info.Name
	}
	return names
}

// Controllers returns the attached controllers in attach order.
func (m *Module) Controllers() []*Controller {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Controller, 0, len(m.ctrlrs))
	for _, c := range m.ctrlrs {
		if c.c != nil {
			out = append(out, c)
		}
	}
	return out
}

// Controller returns the controller named name.
func (m *Module) Controller(name string) (*Controller, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.ctrlrs {
		if c.cfg.Name == name && c.c != nil {
			return c, nil
		}
	}
	return nil, fmt.Errorf("controller %q: %w", name, ErrNotFound)
}

func samePath(a, b *AttachConfig) bool {
	return a.TRAddr == b.TRAddr && a.TRSvcID == b.TRSvcID && a.SubNQN == b.SubNQN && a.HostAddr == b.HostAddr && a.HostSvcID == b.HostSvcID
}

// Attach connects to the controller cfg describes and registers a bdev
// per active namespace. It blocks while connecting (control plane). When
// maxBdevs is not negative and the controller has more namespaces, the
// bdevs are created but the error wraps ErrTooManyBdevs.
func (m *Module) Attach(ctx context.Context, cfg AttachConfig, maxBdevs int) (*Controller, error) {
	if cfg.Name == "" {
		return nil, fmt.Errorf("controller name is required: %w", initiator.ErrInvalidOptions)
	}
	if cfg.SubNQN == proto.DiscoveryNQN {
		return nil, fmt.Errorf("subnqn is the discovery NQN: %w", initiator.ErrInvalidOptions)
	}
	ctrl := &Controller{m: m, cfg: cfg, closed: make(chan struct{})}
	m.mu.Lock()
	for _, o := range m.ctrlrs {
		if o.cfg.Name == cfg.Name {
			m.mu.Unlock()
			return nil, fmt.Errorf("a controller named %s already exists: %w", cfg.Name, ErrExists)
		}
		if samePath(&o.cfg, &cfg) {
			m.mu.Unlock()
			return nil, fmt.Errorf("controller %s already uses this path: %w", o.cfg.Name, ErrExists)
		}
	}
	// Reserve the name while connecting (c.c stays nil until done).
	m.ctrlrs = append(m.ctrlrs, ctrl)
	m.mu.Unlock()
	fail := func(err error) (*Controller, error) {
		m.remove(ctrl)
		return nil, err
	}
	if len(m.reactors) == 0 {
		return fail(fmt.Errorf("no reactors: %w", initiator.ErrInvalidOptions))
	}
	o := initiator.Options{
		Name: cfg.Name, TRAddr: cfg.TRAddr, TRSvcID: cfg.TRSvcID, AdrFam: cfg.AdrFam,
		HostAddr: cfg.HostAddr, HostSvcID: cfg.HostSvcID, SubNQN: cfg.SubNQN, HostNQN: cfg.HostNQN,
		HeaderDigest: cfg.HeaderDigest, DataDigest: cfg.DataDigest,
		KATOMs: cfg.KeepAliveTimeoutMs, NumIOQueues: cfg.NumIOQueues, IOQueueSize: cfg.IOQueueSize,
		DisableSQFlowControl: cfg.DisableSQFlowControl, ConnectTimeout: cfg.ConnectTimeout,
		CtrlrLossTimeoutSec: cfg.CtrlrLossTimeoutSec, ReconnectDelaySec: cfg.ReconnectDelaySec,
		FastIOFailTimeoutSec: cfg.FastIOFailTimeoutSec,
		AdminReactor:         m.reactors[0], IOReactors: m.reactors, Logger: m.log,
		OnLost: func(*initiator.Ctrlr) { m.lost(ctrl) },
	}
	c, err := initiator.Connect(ctx, o)
	if err != nil {
		return fail(err)
	}
	eff := c.Options()
	ctrl.cfg.HostNQN, ctrl.cfg.TRSvcID = eff.HostNQN, eff.TRSvcID
	ctrl.cfg.AdrFam = eff.AdrFam
	id := c.IdentifyController()
	maxBytes := c.MaxTransferBytes()
	for _, ns := range c.Namespaces() {
		ctrl.disks = append(ctrl.disks, newDisk(ctrl, ns, &id, maxBytes))
	}
	ctrl.live = len(ctrl.disks)
	if len(ctrl.disks) > 0 {
		ctrl.disks[0].writesConfig = true
	}
	for i, d := range ctrl.disks {
		if _, err := m.reg.Register(d); err != nil {
			ctrl.mu.Lock()
			ctrl.detaching = true
			ctrl.live -= len(ctrl.disks) - i
			ctrl.mu.Unlock()
			for _, r := range ctrl.disks[:i] {
				waitUnregister(m.reg, r.info.Name)
			}
			c.Close()
			return fail(fmt.Errorf("registering %s: %w", d.info.Name, err))
		}
	}
	m.mu.Lock()
	ctrl.c = c
	m.mu.Unlock()
	if maxBdevs >= 0 && len(ctrl.disks) > maxBdevs {
		return ctrl, fmt.Errorf("controller %s has %d namespaces: %w (%d)", cfg.Name, len(ctrl.disks), ErrTooManyBdevs, maxBdevs)
	}
	return ctrl, nil
}

func (m *Module) remove(ctrl *Controller) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, o := range m.ctrlrs {
		if o == ctrl {
			m.ctrlrs = append(m.ctrlrs[:i], m.ctrlrs[i+1:]...)
			return
		}
	}
}

// waitUnregister unregisters a bdev and waits for its last descriptor.
func waitUnregister(reg *bdev.Registry, name string) error {
	done := make(chan struct{})
	if err := reg.Unregister(name, func(error) { close(done) }); err != nil {
		if errors.Is(err, bdev.ErrNotFound) {
			return nil
		}
		return err
	}
	select {
	case <-done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("bdev %s still open", name)
	}
}

// Detach unregisters the controller's bdevs, waits for their last
// descriptors, and closes the controller. Control plane.
func (m *Module) Detach(name string) error {
	ctrl, err := m.Controller(name)
	if err != nil {
		return err
	}
	ctrl.mu.Lock()
	if ctrl.detaching {
		ctrl.mu.Unlock()
		<-ctrl.closed
		return nil
	}
	ctrl.detaching = true
	ctrl.mu.Unlock()
	return ctrl.teardown()
}

// teardown removes the bdevs and closes the controller.
func (ctrl *Controller) teardown() error {
	// A controller that is not connected holds its IO; fail it first so
	// that bdev users can drain their channels and close.
	if ctrl.c != nil && ctrl.c.State() != initiator.StateEnabled {
		ctrl.c.Close()
	}
	var errs []error
	for _, d := range ctrl.disks {
		if err := waitUnregister(ctrl.m.reg, d.info.Name); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		// A claimed bdev cannot go; the controller stays usable.
		ctrl.mu.Lock()
		ctrl.detaching = false
		ctrl.mu.Unlock()
		return errors.Join(errs...)
	}
	ctrl.close()
	return nil
}

func (ctrl *Controller) close() {
	ctrl.closeOnce.Do(func() {
		if ctrl.c != nil {
			ctrl.c.Close()
		}
		ctrl.m.remove(ctrl)
		close(ctrl.closed)
	})
}

// lost handles a controller given up after ctrlr_loss_timeout_sec: its
// bdevs are removed, as SPDK deletes the controller.
func (m *Module) lost(ctrl *Controller) {
	ctrl.mu.Lock()
	if ctrl.detaching {
		ctrl.mu.Unlock()
		return
	}
	ctrl.detaching = true
	ctrl.mu.Unlock()
	m.log.Warn("nvme controller lost, removing its bdevs", "ctrlr", ctrl.cfg.Name)
	if err := ctrl.teardown(); err != nil {
		m.log.Error("nvme controller lost but bdevs stay", "ctrlr", ctrl.cfg.Name, "err", err)
	}
}

// diskDestroyed runs when a disk's bdev is destroyed; the controller goes
// with its last disk unless a teardown is already under way.
func (ctrl *Controller) diskDestroyed() {
	ctrl.mu.Lock()
	ctrl.live--
	last := ctrl.live == 0 && !ctrl.detaching
	if last {
		ctrl.detaching = true
	}
	ctrl.mu.Unlock()
	if last {
		// Destroy may run on any goroutine; Close waits for reactors.
		go ctrl.close()
	}
}

// Close detaches every controller. Call it before the reactors stop.
func (m *Module) Close() {
	for _, c := range m.Controllers() {
		if err := m.Detach(c.cfg.Name); err != nil {
			m.log.Warn("nvme controller detach at shutdown", "ctrlr", c.cfg.Name, "err", err)
			c.close()
		}
	}
	m.mu.Lock()
	pending := append([]*Controller(nil), m.ctrlrs...)
	m.mu.Unlock()
	for _, c := range pending {
		select {
		case <-c.closed:
		case <-time.After(30 * time.Second):
		}
	}
}

// namespaceUUID derives a stable UUID (RFC 4122 name-based, SHA-1) for a
// namespace that reports none.
func namespaceUUID(subnqn, serial string, nsid uint32) bdev.UUID {
	h := sha1.Sum([]byte(fmt.Sprintf("%s/%s/%d", subnqn, strings.TrimSpace(serial), nsid)))
	var u bdev.UUID
	copy(u[:], h[:16])
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return u
}
