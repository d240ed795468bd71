package passthru

import (
	"hyperpath/bdev"
	"hyperpath/reactor"
)

// Owner is the module channel that embeds a Channel. The Channel hands it
// every forwarded IO's completion and passes it to the messages
// Device.Broadcast sends.
type Owner interface {
	// ChildDone runs on the channel's reactor when the base has completed
	// the child of parent with status st (the child is recycled once
	// ChildDone returns). It must complete parent, now or later.
	ChildDone(parent *bdev.IO, st bdev.Status)
}

// Channel is the forwarding base of a stacked bdev's per-reactor state.
// It holds the base's IOChannel on the same reactor and forwards an IO as
// a child allocated from that channel's pool: the child shares the
// parent's iovecs (no copy) and points back to it through Ctx, and the
// parent completes in the child's callback, through the Owner's ChildDone
// when there is one. Everything in a Channel is touched only on its
// reactor; nothing on the forwarding path allocates or locks.
//
// The parent's DriverCtx and DriverLink are left to the Owner.
type Channel struct {
	dev   *Device
	r     *reactor.Reactor
	base  *bdev.IOChannel
	owner Owner
	// done is childDone as a func value, made once in NewChannel so that
	// forwarding allocates nothing.
	done bdev.CompletionFunc
	// inflight counts IOs forwarded to the base and not yet completed.
	inflight uint64
	closed   bool
}

var _ bdev.Channel = (*Channel)(nil)

// Reactor returns the reactor the channel belongs to.
func (c *Channel) Reactor() *reactor.Reactor { return c.r }

// BaseChannel returns the base bdev's IOChannel on the same reactor.
func (c *Channel) BaseChannel() *bdev.IOChannel { return c.base }

// Inflight returns how many forwarded IOs the base has not completed yet.
// Reactor only.
func (c *Channel) Inflight() uint64 { return c.inflight }

// Submit implements bdev.Channel: every IO goes to the base unchanged, and
// a reset is forwarded (or succeeds when the base has none).
func (c *Channel) Submit(io *bdev.IO) {
	if io.Type == bdev.IOReset {
		c.Reset(io, nil)
		return
	}
	c.Forward(io)
}

// Forward submits io to the base as a child that shares its buffers. A
// base pool that is empty bounces io with StatusNoMem, which the generic
// layer retries. Reactor only.
func (c *Channel) Forward(io *bdev.IO) {
	child := c.base.Alloc()
	if child == nil {
		io.Complete(bdev.StatusNoMem)
		return
	}
	child.Type, child.OffsetBlocks, child.NumBlocks, child.Iovs = io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs
	child.Ctx = io
	c.inflight++
	c.base.Submit(child, c.done)
}

// childDone is the base's completion of a forwarded child.
func (c *Channel) childDone(child *bdev.IO) {
	parent := child.Ctx.(*bdev.IO)
	st := child.Status
	c.inflight--
	if c.owner == nil {
		parent.Complete(st)
		return
	}
	c.owner.ChildDone(parent, st)
}

// Reset handles a reset IO: abort, when non-nil, runs with this channel's
// owner as its argument at once (the module drops what it holds here) and
// is sent to every other channel of the device by a message that may land
// after the reset completes; then the reset goes to the base, or succeeds
// at once when the base does not support resets. Reactor only.
func (c *Channel) Reset(io *bdev.IO, abort func(any)) {
	if abort != nil {
		abort(c.arg())
		c.dev.Broadcast(c, abort)
	}
	if !c.dev.base.Device().Supports(bdev.IOReset) {
		io.Complete(bdev.StatusSuccess)
		return
	}
	c.Forward(io)
}

// arg is what messages to this channel carry: the owner, or the channel
// itself when it has none.
func (c *Channel) arg() any {
	if c.owner != nil {
		return c.owner
	}
	return c
}

// Close implements bdev.Channel. No IO is held or in flight by then (an
// owner that has pollers unregisters them first, then calls Close). It
// may run inside the base channel's completion callback (the last IO's
// child completing), so the base channel is put back by a message, after
// that callback has returned. A second call does nothing.
func (c *Channel) Close() {
	if c.closed {
		return
	}
	c.closed = true
	c.dev.dropChannel(c)
	if reactor.Send(c.r, putBaseMsg, c) != nil {
		c.base.PutChannel() // ring full: put it back now
	}
}

func putBaseMsg(a any) { a.(*Channel).base.PutChannel() }
