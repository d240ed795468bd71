package bdev

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"hyperpath/reactor"
)

// Control-plane errors. Wrap them with the bdev name.
var (
	ErrNotFound  = errors.New("no such bdev")
	ErrExists    = errors.New("bdev already exists")
	ErrClaimed   = errors.New("bdev is claimed by another module")
	ErrRemoving  = errors.New("bdev is being removed")
	ErrNoReactor = errors.New("reactor is not part of the registry")
)

// Module is a bdev module as the registry knows it: a name and an optional
// hook for the examine step (stacked modules look at new bdevs there).
type Module interface {
	Name() string
}

// Examiner is implemented by modules that want to see every new bdev
// (SPDK's examine_config).
type Examiner interface {
	Examine(b *Bdev)
}

// EventType is what a descriptor's event callback is told.
type EventType uint8

const (
	// EventRemove: the bdev is being unregistered; close the descriptor.
	EventRemove EventType = iota
	// EventResize: the block count changed.
	EventResize
)

// Options configure a Registry.
type Options struct {
	// Reactors are the reactors channels may be created on; IDs index them.
	Reactors []*reactor.Reactor
	// IOPoolSize is the number of IOs per channel (default 1024, SPDK's
	// bdev_io_pool_size / threads ballpark).
	IOPoolSize int
}

// Registry holds the bdevs of a process. Its methods are control plane:
// they take a mutex and may be called from any goroutine, never per IO.
type Registry struct {
	opts     Options
	poolSize atomic.Int64
	mu       sync.Mutex
	bdevs    map[string]*Bdev
	aliases  map[string]*Bdev
	order    []*Bdev
	modules  []Module
}

// NewRegistry returns an empty registry.
func NewRegistry(o Options) *Registry {
	if o.IOPoolSize <= 0 {
		o.IOPoolSize = 1024
	}
	g := &Registry{opts: o, bdevs: map[string]*Bdev{}, aliases: map[string]*Bdev{}}
	g.poolSize.Store(int64(o.IOPoolSize))
	return g
}

// SetIOPoolSize sets the number of IOs in channels created from now on.
func (g *Registry) SetIOPoolSize(n int) { g.poolSize.Store(int64(n)) }

// Reactors returns the reactors of the registry.
func (g *Registry) Reactors() []*reactor.Reactor { return g.opts.Reactors }

// RegisterModule adds a module (explicit registration; no init() magic).
func (g *Registry) RegisterModule(m Module) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.modules = append(g.modules, m)
}

// Modules returns the registered modules.
func (g *Registry) Modules() []Module {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Module(nil), g.modules...)
}

// Bdev is a registered device plus the generic layer's state for it.
type Bdev struct {
	reg  *Registry
	dev  Device
	info Info

	// supported caches dev.Supports per IO type (checked per IO).
	supported [NumIOTypes]bool

	removing atomic.Bool
	histCfg  atomic.Pointer[HistogramSettings]
	qosState atomic.Pointer[qosState]

	// Guarded by mu (control plane).
	mu          sync.Mutex
	descs       []*Desc
	claimedBy   string
	closedStats IOStat
	closedHist  *chanHist // histograms of closed channels, for the current settings
	onRemoved   []func()

	// chans[i] belongs to reactor i: created, used and closed there only.
	chans []*IOChannel
}

// Register adds dev under its Info().Name, runs the modules' examine
// hooks, and returns the generic handle.
func (g *Registry) Register(dev Device) (*Bdev, error) {
	info := *dev.Info()
	if info.Name == "" {
		return nil, fmt.Errorf("bdev: empty name: %w", ErrNotFound)
	}
	if info.BlockSize == 0 || info.BlockSize%512 != 0 && info.BlockSize < 512 {
		return nil, fmt.Errorf("bdev %q: block size %d: must be a non-zero multiple of 512", info.Name, info.BlockSize)
	}
	if info.UUID.IsZero() {
		info.UUID = NewUUID()
	}
	b := &Bdev{reg: g, dev: dev, info: info, chans: make([]*IOChannel, len(g.opts.Reactors))}
	for t := range b.supported {
		b.supported[t] = dev.Supports(IOType(t))
	}
	g.mu.Lock()
	if _, dup := g.lookupLocked(info.Name); dup {
		g.mu.Unlock()
		return nil, fmt.Errorf("bdev %q: %w", info.Name, ErrExists)
	}
	for _, a := range info.Aliases {
		if _, dup := g.lookupLocked(a); dup {
			g.mu.Unlock()
			return nil, fmt.Errorf("bdev alias %q: %w", a, ErrExists)
		}
	}
	g.bdevs[info.Name] = b
	for _, a := range info.Aliases {
		g.aliases[a] = b
	}
	g.order = append(g.order, b)
	mods := append([]Module(nil), g.modules...)
	g.mu.Unlock()
	for _, m := range mods {
		if ex, ok := m.(Examiner); ok {
			ex.Examine(b)
		}
	}
	return b, nil
}

func (g *Registry) lookupLocked(name string) (*Bdev, bool) {
	if b, ok := g.bdevs[name]; ok {
		return b, true
	}
	b, ok := g.aliases[name]
	return b, ok
}

// Get returns the bdev named name (or with that alias or UUID).
func (g *Registry) Get(name string) (*Bdev, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if b, ok := g.lookupLocked(name); ok {
		return b, nil
	}
	for _, b := range g.order {
		if b.info.UUID.String() == name {
			return b, nil
		}
	}
	return nil, fmt.Errorf("bdev %q: %w", name, ErrNotFound)
}

// List returns the bdevs in registration order.
func (g *Registry) List() []*Bdev {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*Bdev(nil), g.order...)
}

// Names returns the sorted bdev names.
func (g *Registry) Names() []string {
	var ns []string
	for _, b := range g.List() {
		ns = append(ns, b.info.Name)
	}
	sort.Strings(ns)
	return ns
}

// Unregister removes the bdev: it refuses a claimed bdev (ErrClaimed),
// sends EventRemove to every open descriptor, and destroys the device once
// the last descriptor is closed; done (may be nil) runs then.
func (g *Registry) Unregister(name string, done func(error)) error {
	b, err := g.Get(name)
	if err != nil {
		return err
	}
	b.mu.Lock()
	if b.claimedBy != "" {
		by := b.claimedBy
		b.mu.Unlock()
		return fmt.Errorf("bdev %q claimed by %s: %w", name, by, ErrClaimed)
	}
	if b.removing.Swap(true) {
		b.mu.Unlock()
		return fmt.Errorf("bdev %q: %w", name, ErrRemoving)
	}
	descs := append([]*Desc(nil), b.descs...)
	if done != nil {
		b.onRemoved = append(b.onRemoved, func() { done(nil) })
	}
	last := len(b.descs) == 0
	b.mu.Unlock()

	g.mu.Lock()
	delete(g.bdevs, b.info.Name)
	for _, a := range b.info.Aliases {
		delete(g.aliases, a)
	}
	for i, o := range g.order {
		if o == b {
			g.order = append(g.order[:i], g.order[i+1:]...)
			break
		}
	}
	g.mu.Unlock()

	for _, d := range descs {
		if d.onEvent != nil {
			d.onEvent(EventRemove, b)
		}
	}
	if last {
		b.destroy()
	}
	return nil
}

func (b *Bdev) destroy() {
	err := b.dev.Destroy()
	b.mu.Lock()
	cbs := b.onRemoved
	b.onRemoved = nil
	b.mu.Unlock()
	_ = err
	for _, f := range cbs {
		f()
	}
}

// Info returns the device description.
func (b *Bdev) Info() *Info { return &b.info }

// Name returns the bdev's name.
func (b *Bdev) Name() string { return b.info.Name }

// Device returns the module's device.
func (b *Bdev) Device() Device { return b.dev }

// Claimed returns the module holding a claim, or "".
func (b *Bdev) Claimed() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.claimedBy
}

// Removing reports whether Unregister has started.
func (b *Bdev) Removing() bool { return b.removing.Load() }

// Desc is an open descriptor of a bdev.
type Desc struct {
	b       *Bdev
	write   bool
	onEvent func(EventType, *Bdev)
	claim   string
	closed  bool
}

// Open opens name for reading (and writing when write is set). onEvent,
// if not nil, is called on the control plane with EventRemove when the
// bdev is unregistered; the holder must then Close the descriptor.
func (g *Registry) Open(name string, write bool, onEvent func(EventType, *Bdev)) (*Desc, error) {
	b, err := g.Get(name)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.removing.Load() {
		return nil, fmt.Errorf("bdev %q: %w", name, ErrRemoving)
	}
	d := &Desc{b: b, write: write, onEvent: onEvent}
	b.descs = append(b.descs, d)
	return d, nil
}

// Bdev returns the descriptor's bdev.
func (d *Desc) Bdev() *Bdev { return d.b }

// Writable reports whether the descriptor was opened for writing.
func (d *Desc) Writable() bool { return d.write }

// Claim marks the bdev as owned by module (a stacked module claims its
// base). A claimed bdev cannot be unregistered or claimed again.
func (d *Desc) Claim(module string) error {
	b := d.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.claimedBy != "" {
		return fmt.Errorf("bdev %q already claimed by %s: %w", b.info.Name, b.claimedBy, ErrClaimed)
	}
	b.claimedBy = module
	d.claim = module
	return nil
}

// Close releases the descriptor (and its claim). Channels obtained through
// it must have been put back first.
func (d *Desc) Close() {
	b := d.b
	b.mu.Lock()
	if d.closed {
		b.mu.Unlock()
		return
	}
	d.closed = true
	if d.claim != "" && b.claimedBy == d.claim {
		b.claimedBy = ""
	}
	for i, o := range b.descs {
		if o == d {
			b.descs = append(b.descs[:i], b.descs[i+1:]...)
			break
		}
	}
	last := len(b.descs) == 0 && b.removing.Load()
	b.mu.Unlock()
	if last {
		b.destroy()
	}
}

// GetChannel returns the bdev's channel on r, creating it on first use.
// Must run on r. Pair every GetChannel with PutChannel.
func (d *Desc) GetChannel(r *reactor.Reactor) (*IOChannel, error) {
	b := d.b
	id := r.ID()
	if id < 0 || id >= len(b.chans) || b.reg.opts.Reactors[id] != r {
		return nil, fmt.Errorf("bdev %q: reactor %s: %w", b.info.Name, r.Name(), ErrNoReactor)
	}
	if c := b.chans[id]; c != nil && !c.closing {
		c.refs++
		return c, nil
	}
	mod, err := b.dev.NewChannel(r)
	if err != nil {
		return nil, fmt.Errorf("bdev %q: channel on %s: %w", b.info.Name, r.Name(), err)
	}
	c := newIOChannel(b, r, mod, int(b.reg.poolSize.Load()))
	c.refs = 1
	b.chans[id] = c
	return c, nil
}

// PutChannel drops a reference taken by GetChannel. The last one closes
// the channel once its outstanding IO has completed. Must run on the
// channel's reactor.
func (c *IOChannel) PutChannel() {
	c.refs--
	if c.refs > 0 {
		return
	}
	c.closing = true
	if c.outstanding == 0 {
		c.destroy()
	}
}

// channelClosed folds a closing channel's stats and histograms into the
// bdev. Runs on the channel's reactor; the lock is per channel close, not
// per IO.
func (b *Bdev) channelClosed(c *IOChannel) {
	b.mu.Lock()
	b.closedStats.Add(&c.stats)
	if h := c.hist; h != nil && h.s == b.histCfg.Load() {
		if b.closedHist == nil || b.closedHist.s != h.s {
			b.closedHist = newChanHist(h.s)
		}
		b.closedHist.merge(h)
	}
	b.mu.Unlock()
	if b.chans[c.r.ID()] == c {
		b.chans[c.r.ID()] = nil
	}
}

// forEachChannel runs fn on each reactor that has a channel of b, on that
// reactor, and waits. Control plane only.
func (b *Bdev) forEachChannel(fn func(c *IOChannel)) {
	for id, r := range b.reg.opts.Reactors {
		id := id
		reactor.Call(r, func() {
			if c := b.chans[id]; c != nil {
				fn(c)
			}
		})
	}
}

// ChannelStat is one channel's stats with its reactor.
type ChannelStat struct {
	Reactor *reactor.Reactor
	Stat    IOStat
}

// Stats returns the bdev's stats (all channels plus closed ones), then
// applies reset to every channel. Control plane only: it visits each
// reactor with a message.
func (b *Bdev) Stats(reset ResetMode) (IOStat, []ChannelStat) {
	total := NewIOStat()
	var per []ChannelStat
	b.mu.Lock()
	total.Add(&b.closedStats)
	b.closedStats.reset(reset)
	b.mu.Unlock()
	var mu sync.Mutex
	b.forEachChannel(func(c *IOChannel) {
		mu.Lock()
		total.Add(&c.stats)
		per = append(per, ChannelStat{Reactor: c.r, Stat: c.stats})
		mu.Unlock()
		c.stats.reset(reset)
	})
	return total, per
}

// EnableHistogram turns latency histograms on (s != nil) or off.
func (b *Bdev) EnableHistogram(s *HistogramSettings) { b.histCfg.Store(s) }

// HistogramSettings returns the current settings or nil.
func (b *Bdev) HistogramSettings() *HistogramSettings { return b.histCfg.Load() }

// Histogram merges the histograms of every channel, closed ones included,
// since the current settings were enabled. It returns nil when histograms
// are off.
func (b *Bdev) Histogram() *HistogramData {
	s := b.histCfg.Load()
	if s == nil {
		return nil
	}
	d := &HistogramData{Settings: s, spdk: newSPDKHist(s)}
	b.mu.Lock()
	if h := b.closedHist; h != nil && h.s == s {
		d.add(h)
	}
	b.mu.Unlock()
	var mu sync.Mutex
	b.forEachChannel(func(c *IOChannel) {
		if c.hist == nil || c.hist.s != s {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		d.add(c.hist)
	})
	return d
}
