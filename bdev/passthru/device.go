package passthru

import (
	"fmt"
	"sync"
	"sync/atomic"

	"hyperpath/bdev"
	"hyperpath/reactor"
)

// Device is the forwarding base of a stacked bdev: it holds the base
// bdev's descriptor and its claim, answers Info and Supports, unregisters
// the stacked bdev when the base is removed, and keeps the list of live
// channels so that a reset or a control-plane request can reach every
// reactor. A module embeds it in its device type and adds NewChannel (and
// whatever else is its own); Info, Supports, Base and Destroy are promoted.
//
// The fields are written by Open before the device is registered and only
// read afterwards, except the channel list, which is copy-on-write under
// mu (NewChannel/Close, never per IO).
type Device struct {
	info bdev.Info
	reg  *bdev.Registry
	desc *bdev.Desc
	base *bdev.Bdev

	mu        sync.Mutex
	chans     atomic.Pointer[[]*Channel]
	destroyed bool
	onDestroy func()
}

// Open opens baseName on reg for writing and claims it for module (the
// name that also goes into info.Module). info names the stacked bdev; Open
// copies the base's geometry into it (block size and count, write cache,
// optimal IO boundary). On failure nothing stays open and the error of
// Registry.Open (bdev.ErrNotFound, bdev.ErrRemoving) or of Desc.Claim
// (bdev.ErrClaimed) is returned unwrapped, for the module to name.
func (d *Device) Open(reg *bdev.Registry, baseName, module string, info bdev.Info) error {
	desc, err := reg.Open(baseName, true, d.BaseEvent)
	if err != nil {
		return err
	}
	if err := desc.Claim(module); err != nil {
		desc.Close()
		return err
	}
	d.reg, d.desc, d.base = reg, desc, desc.Bdev()
	bi := d.base.Info()
	info.BlockSize, info.NumBlocks = bi.BlockSize, bi.NumBlocks
	info.WriteCache, info.OptimalIOBoundary = bi.WriteCache, bi.OptimalIOBoundary
	info.Module = module
	d.info = info
	empty := []*Channel{}
	d.chans.Store(&empty)
	return nil
}

// BaseEvent is the base descriptor's event callback: it unregisters the
// stacked bdev when its base goes away (hot remove), and the stacked
// bdev's own descriptors see EventRemove in turn. Control plane.
func (d *Device) BaseEvent(ev bdev.EventType, _ *bdev.Bdev) {
	if ev == bdev.EventRemove {
		d.reg.Unregister(d.info.Name, nil)
	}
}

// Info implements bdev.Device.
func (d *Device) Info() *bdev.Info { return &d.info }

// Supports implements bdev.Device: what the base supports.
func (d *Device) Supports(t bdev.IOType) bool { return d.base.Device().Supports(t) }

// Base returns the base bdev.
func (d *Device) Base() *bdev.Bdev { return d.base }

// Registry returns the registry the base was opened on.
func (d *Device) Registry() *bdev.Registry { return d.reg }

// Destroy implements bdev.Device: it closes the base descriptor, which
// releases the claim, then runs the callback given to Register. A second
// call does nothing.
func (d *Device) Destroy() error {
	d.mu.Lock()
	if d.destroyed {
		d.mu.Unlock()
		return nil
	}
	d.destroyed = true
	cb := d.onDestroy
	d.mu.Unlock()
	d.desc.Close()
	if cb != nil {
		cb()
	}
	return nil
}

// Register registers outer, the device that embeds d, in d's registry.
// onDestroy runs once outer is destroyed (a module forgets its record of
// the bdev there). If registration fails, outer is destroyed at once
// without onDestroy and the error is returned.
func (d *Device) Register(outer bdev.Device, onDestroy func()) error {
	d.mu.Lock()
	d.onDestroy = onDestroy
	d.mu.Unlock()
	if _, err := d.reg.Register(outer); err != nil {
		d.mu.Lock()
		d.onDestroy = nil
		d.mu.Unlock()
		outer.Destroy()
		return err
	}
	return nil
}

// NewChannel makes c a forwarding channel of d on r: it gets the base's
// IOChannel on r and adds c to d's channel list. owner is the module's
// channel that embeds c (nil when c is used as is): its ChildDone receives
// the completions and it is the argument of the messages Broadcast sends.
// Runs on r.
func (d *Device) NewChannel(c *Channel, r *reactor.Reactor, owner Owner) error {
	base, err := d.desc.GetChannel(r)
	if err != nil {
		return err
	}
	c.dev, c.r, c.base, c.owner = d, r, base, owner
	c.done = c.childDone
	d.mu.Lock()
	old := *d.chans.Load()
	next := append(append(make([]*Channel, 0, len(old)+1), old...), c)
	d.chans.Store(&next)
	d.mu.Unlock()
	return nil
}

func (d *Device) dropChannel(c *Channel) {
	d.mu.Lock()
	old := *d.chans.Load()
	next := make([]*Channel, 0, len(old))
	for _, o := range old {
		if o != c {
			next = append(next, o)
		}
	}
	d.chans.Store(&next)
	d.mu.Unlock()
}

// Broadcast sends fn to the reactor of every channel but except (nil for
// all), with that channel's owner as the argument. It allocates nothing
// when fn is a package-level func. A message may land after the caller
// has moved on, and one to a channel closing meanwhile still runs (the
// owner stays valid; its queues are empty by then). Safe from any
// goroutine. It returns the first reactor.Send error (a full ring: that
// channel misses the message).
func (d *Device) Broadcast(except *Channel, fn func(any)) error {
	var first error
	for _, o := range *d.chans.Load() {
		if o == except {
			continue
		}
		if err := reactor.Send(o.r, fn, o.arg()); err != nil && first == nil {
			first = fmt.Errorf("bdev %q: channel on %s: %w", d.info.Name, o.r.Name(), err)
		}
	}
	return first
}
