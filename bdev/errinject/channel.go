package errinject

import (
	"hyperpath/bdev"
	"hyperpath/bdev/passthru"
)

// channel is the error bdev's state on one reactor; everything in it is
// touched only on that reactor. The embedded passthru.Channel forwards to
// the base and counts the IOs in flight there (the queue depth injections
// compare against); channel decides which IOs are forwarded at all.
type channel struct {
	passthru.Channel
	d *Disk
	// pending holds IOs hit by a pending injection, linked through
	// DriverLink; they are owned by this channel until resumed or aborted.
	pending bdev.IOQueue
}

var (
	_ bdev.Channel   = (*channel)(nil)
	_ passthru.Owner = (*channel)(nil)
)

// Submit implements bdev.Channel.
func (c *channel) Submit(io *bdev.IO) {
	if io.Type == bdev.IOReset {
		// Held IOs are aborted here and on the other reactors, then the
		// reset goes to the base.
		io.DriverCtx = uint64(ErrorNone)
		c.Reset(io, abortMsg)
		return
	}
	et := ErrorNone
	vi := vecIndex(io.Type)
	if vi >= 0 {
		et = c.d.take(vi, c.Inflight())
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
		io.DriverCtx = uint64(et)
		c.Forward(io)
	default:
		io.DriverCtx = uint64(ErrorNone)
		c.Forward(io)
	}
}

// ChildDone implements passthru.Owner: the parent completes with the
// child's status, its data corrupted first when it is a read that a
// corrupt_data injection hit (remembered in DriverCtx).
func (c *channel) ChildDone(parent *bdev.IO, st bdev.Status) {
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
