package delay

import (
	"time"

	"hyperpath/bdev"
	"hyperpath/bdev/passthru"
	"hyperpath/reactor"
)

const (
	// noDelay in a parent's DriverCtx while its child is at the base: the
	// IO type gets no latency.
	noDelay = 0xff
	// deadlineGrain: deadlines are rounded up to a multiple of it, and the
	// low byte of DriverCtx carries the status.
	deadlineGrain = 256
	// timerPeriodUs is how often the timed poller runs while IOs are held.
	timerPeriodUs = 1000
	// spinWindow: Arm vetoes sleep when a deadline is closer than this,
	// since epoll's millisecond timeouts could not meet it.
	spinWindow = 2 * time.Millisecond
)

// fifo is an intrusive FIFO of IOs linked through DriverLink, with a peek
// at its head (bdev.IOQueue has none).
type fifo struct {
	head, tail *bdev.IO
}

func (q *fifo) push(io *bdev.IO) {
	io.DriverLink = nil
	if q.tail == nil {
		q.head = io
	} else {
		q.tail.DriverLink = io
	}
	q.tail = io
}

func (q *fifo) pop() *bdev.IO {
	io := q.head
	if io != nil {
		q.head = io.DriverLink
		if q.head == nil {
			q.tail = nil
		}
		io.DriverLink = nil
	}
	return io
}

// deadline of a held IO (see the package doc for the packing).
func deadline(io *bdev.IO) reactor.Ticks { return reactor.Ticks(io.DriverCtx &^ (deadlineGrain - 1)) }

// channel is the delay bdev's state on one reactor; everything in it is
// touched only there. The embedded passthru.Channel forwards every IO to
// the base; channel holds the parents after the base completes them.
type channel struct {
	passthru.Channel
	d *Disk
	// held are the IOs completed at the base and waiting for their
	// deadline, one FIFO per latency.
	held   [numLatencies]fifo
	nheld  int
	rng    uint64
	active *reactor.Poller
	timer  *reactor.Poller
	spin   reactor.Ticks
}

var (
	_ bdev.Channel   = (*channel)(nil)
	_ passthru.Owner = (*channel)(nil)
)

// init sets up the latency state and the pollers; it runs on the
// channel's reactor, in NewChannel.
func (c *channel) init() {
	r, name := c.Reactor(), c.d.Info().Name
	c.spin = reactor.TicksFromDuration(spinWindow)
	c.rng = uint64(reactor.Now()) | 1
	c.active = r.RegisterPollerOpts("delay_"+name, c.poll, reactor.PollerOptions{Arm: c.arm})
	c.timer = r.RegisterPollerOpts("delay_timer_"+name, c.poll, reactor.PollerOptions{PeriodUs: timerPeriodUs})
	c.timer.Pause()
}

// p99 reports whether this IO takes the p99 latency: one in a hundred.
func (c *channel) p99() bool {
	c.rng ^= c.rng << 13
	c.rng ^= c.rng >> 7
	c.rng ^= c.rng << 17
	return c.rng%100 == 0
}

// Submit implements bdev.Channel.
func (c *channel) Submit(io *bdev.IO) {
	kind := uint64(noDelay)
	switch io.Type {
	case bdev.IOReset:
		io.DriverCtx = noDelay
		c.Reset(io, abortMsg) // held IOs are aborted everywhere first
		return
	case bdev.IORead:
		kind = uint64(AvgRead)
		if c.p99() {
			kind = uint64(P99Read)
		}
	case bdev.IOWrite:
		kind = uint64(AvgWrite)
		if c.p99() {
			kind = uint64(P99Write)
		}
	}
	io.DriverCtx = kind
	c.Forward(io)
}

// ChildDone implements passthru.Owner: it holds the parent until base
// completion + its latency (or completes it at once when its type has
// none).
func (c *channel) ChildDone(parent *bdev.IO, st bdev.Status) {
	kind := parent.DriverCtx
	if kind >= uint64(numLatencies) {
		parent.Complete(st)
		return
	}
	dl := uint64(c.Reactor().IterNow()) + c.d.ticks[kind].Load()
	dl = (dl + deadlineGrain - 1) &^ (deadlineGrain - 1)
	parent.DriverCtx = dl | uint64(st)
	c.held[kind].push(parent)
	c.nheld++
	if c.nheld == 1 {
		c.timer.Resume()
	}
}

// poll releases the held IOs whose deadline has passed. It is both the
// active poller and the timed one.
func (c *channel) poll(now reactor.Ticks) reactor.Status {
	if c.nheld == 0 {
		return reactor.Idle
	}
	busy := reactor.Idle
	for k := range c.held {
		q := &c.held[k]
		for io := q.head; io != nil && deadline(io) <= now; io = q.head {
			q.pop()
			c.nheld--
			busy = reactor.Busy
			io.Complete(bdev.Status(io.DriverCtx & (deadlineGrain - 1)))
		}
	}
	if c.nheld == 0 {
		c.timer.Pause()
	}
	return busy
}

// arm vetoes the reactor's sleep when a held IO is due within spinWindow;
// further deadlines are met by the timed poller, which bounds the sleep.
func (c *channel) arm() bool {
	if c.nheld == 0 {
		return false
	}
	limit := c.Reactor().IterNow() + c.spin
	for k := range c.held {
		if io := c.held[k].head; io != nil && deadline(io) <= limit {
			return true
		}
	}
	return false
}

// abortHeld completes every held IO with StatusAborted.
func (c *channel) abortHeld() {
	for k := range c.held {
		for io := c.held[k].pop(); io != nil; io = c.held[k].pop() {
			c.nheld--
			io.Complete(bdev.StatusAborted)
		}
	}
	c.timer.Pause()
}

// abortMsg is sent to the other channels by a reset; a package-level func
// with the channel as argument, so sending allocates nothing.
func abortMsg(a any) { a.(*channel).abortHeld() }

// Close implements bdev.Channel; nothing is held or in flight by then. The
// pollers go first, then the forwarding base puts the base channel back.
func (c *channel) Close() {
	if c.active != nil {
		c.active.Unregister()
		c.timer.Unregister()
		c.active, c.timer = nil, nil
	}
	c.Channel.Close()
}
