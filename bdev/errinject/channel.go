package errinject

import (
	"hyperpath/bdev"
	"hyperpath/reactor"
)

// channel is the error bdev's state on one reactor; everything in it is
// touched only on that reactor.
type channel struct {
	d    *Disk
	r    *reactor.Reactor
	base *bdev.IOChannel
	// done is childDone as a func value, made once so that forwarding
	// allocates nothing.
	done bdev.CompletionFunc
	// inflight counts IOs forwarded to the base and not completed (the
	// queue depth injections compare against).
	inflight uint64
	// pending holds IOs hit by a pending injection, linked through
	// DriverLink; they are owned by this channel until resumed or aborted.
	pending bdev.IOQueue
	closed  bool
}

var _ bdev.Channel = (*channel)(nil)

// Submit implements bdev.Channel.
func (c *channel) Submit(io *bdev.IO) {
	if io.Type == bdev.IOReset {
		c.reset(io)
		return
	}
	et := ErrorNone
	vi := vecIndex(io.Type)
	if vi >= 0 {
		et = c.d.take(vi, c.inflight)
	}
	switch et {
	case ErrorFailure, ErrorNVMeFailure:
		io.Complete(bdev.StatusFailed)
	case ErrorNoMem:
		io.Complete(bdev.StatusNoMem)
	case ErrorPending:
		c.pending.Push(io)
	case ErrorCorruptData:
		if io.Type == bdev.IOWrite {
			c.corrupt(io, vi)
		}
		c.forward(io, et)
	default:
		c.forward(io, ErrorNone)
	}
}

// forward submits io to the base as a child IO that shares its buffers.
// et is remembered in the parent's DriverCtx for the completion.
func (c *channel) forward(io *bdev.IO, et ErrorType) {
	child := c.base.Alloc()
	if child == nil {
		io.Complete(bdev.StatusNoMem)
		return
	}
	child.Type, child.OffsetBlocks, child.NumBlocks, child.Iovs = io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs
	child.Ctx = io
	io.DriverCtx = uint64(et)
	c.inflight++
	c.base.Submit(child, c.done)
}

// childDone completes the parent of a forwarded IO with the child's
// status, corrupting a read's data first when the injection said so.
func (c *channel) childDone(child *bdev.IO) {
	parent := child.Ctx.(*bdev.IO)
	st := child.Status
	c.inflight--
	if parent.Type == bdev.IORead && st == bdev.StatusSuccess && ErrorType(parent.DriverCtx) == ErrorCorruptData {
		c.corrupt(parent, vecIndex(bdev.IORead))
	}
	parent.Complete(st)
}

// corrupt XORs the byte at the injection's offset in io's data with its
// value. An offset beyond the data changes nothing.
func (c *channel) corrupt(io *bdev.IO, vi int) {
	s := &c.d.vec[vi]
	off := s.corruptOffset.Load()
	val := byte(s.corruptValue.Load())
	for _, b := range io.Iovs {
		if off < uint64(len(b)) {
			b[off] ^= val
			return
		}
		off -= uint64(len(b))
	}
}

// abortPending completes every held IO with StatusAborted.
func (c *channel) abortPending() {
	for io := c.pending.Pop(); io != nil; io = c.pending.Pop() {
		io.Complete(bdev.StatusAborted)
	}
}

// resumePending resubmits every held IO; the pending injections were
// disabled first, so they go to the base (or meet another injection).
func (c *channel) resumePending() {
	for n := c.pending.Len(); n > 0; n-- {
		c.Submit(c.pending.Pop())
	}
}

// Messages from the control plane and from resets on other reactors. They
// are package-level funcs taking the channel as their argument, so sending
// one allocates nothing.
func resumeMsg(a any) { a.(*channel).resumePending() }
func abortMsg(a any)  { a.(*channel).abortPending() }

// reset aborts the held IOs (this channel's now, the other channels' by a
// message that may land after the reset completes), then resets the base.
func (c *channel) reset(io *bdev.IO) {
	c.abortPending()
	for _, o := range *c.d.chans.Load() {
		if o != c {
			reactor.Send(o.r, abortMsg, o)
		}
	}
	if !c.d.base.Device().Supports(bdev.IOReset) {
		io.Complete(bdev.StatusSuccess)
		return
	}
	c.forward(io, ErrorNone)
}

// Close implements bdev.Channel. No IO is held or in flight by then. It
// may run inside the base channel's completion callback (our last IO's
// child completing), so the base channel is put back by a message, after
// that callback has returned; a second call does nothing.
func (c *channel) Close() {
	if c.closed {
		return
	}
	c.closed = true
	c.d.dropChannel(c)
	if reactor.Send(c.r, putBaseMsg, c) != nil {
		c.base.PutChannel() // ring full: put it back now
	}
}

func putBaseMsg(a any) { a.(*channel).base.PutChannel() }
