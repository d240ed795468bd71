package reactor

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"hyperpath/internal/invariants"
)

// Mode selects what a reactor does when it has no work.
type Mode uint8

const (
	// ModeAdaptive spins for Options.SpinTime after the last busy
	// iteration, then sleeps until a message, a watched fd or a timed poller
	// needs it. The default: it keeps latency low under load and costs
	// almost nothing when idle.
	ModeAdaptive Mode = iota
	// ModePoll never sleeps: the core spins at 100% (SPDK's default).
	ModePoll
)

// Errors returned by the package.
var (
	// ErrRingFull is returned by Send when the target's message ring is
	// full; the caller retries later (SPDK returns -ENOMEM here).
	ErrRingFull = errors.New("reactor: message ring full")
	// ErrCoreUnavailable is wrapped when a core of the mask is not in the
	// process's CPU affinity set.
	ErrCoreUnavailable = errors.New("core not available")
)

// Options configure a reactor. The zero value is usable.
type Options struct {
	// Name of the reactor's thread as thread_get_stats reports it
	// (default "reactor_<core>").
	Name string
	// Core to pin to; -1 leaves the thread unpinned (tests).
	Core int
	// Mode is the idle behaviour (default ModeAdaptive).
	Mode Mode
	// SpinTime is how long an adaptive reactor keeps polling after its last
	// busy iteration before it sleeps (default 1ms).
	SpinTime time.Duration
	// RingSize is the message ring capacity, rounded up to a power of two
	// (default 16384).
	RingSize int
	// MsgBatch caps the messages run per iteration (default 64).
	MsgBatch int
}

// Reactor is one pinned event loop. See the package doc for the threading
// rules: apart from Send, ID, Core and Name, methods must be called on the
// reactor itself or before it starts running.
type Reactor struct {
	id   int
	name string
	core int
	mode Mode

	ring     *msgRing
	msgBatch int

	// Owned by the reactor.
	now          Ticks
	clk          Ticks // see Clock
	clkStale     bool  // work was done since clk was read: Clock reads the TSC again
	liveClock    bool  // Run is driving Poll: clk follows the real clock
	active       []*Poller
	timed        []*Poller // sorted by nextRun
	paused       int
	pollersDirty bool
	timedDirty   bool
	nextPollerID uint64
	spinTicks    Ticks
	lastBusy     Ticks
	stats        Stats
	inPoll       bool

	// Shared with other goroutines.
	sleeping atomic.Bool
	stopping atomic.Bool
	tid      atomic.Int32
	waker    *waker
}

// Stats are a reactor's counters, in Ticks.
type Stats struct {
	BusyTicks  uint64
	IdleTicks  uint64
	Iterations uint64
	Msgs       uint64
	Sleeps     uint64
}

// New creates a reactor with id (dense, 0-based within its Group).
func New(id int, opts Options) (*Reactor, error) {
	if opts.Name == "" {
		if opts.Core >= 0 {
			opts.Name = fmt.Sprintf("reactor_%d", opts.Core)
		} else {
			opts.Name = fmt.Sprintf("reactor_%d", id)
		}
	}
	if opts.SpinTime == 0 {
		opts.SpinTime = time.Millisecond
	}
	if opts.RingSize <= 0 {
		opts.RingSize = 16384
	}
	if opts.MsgBatch <= 0 {
		opts.MsgBatch = 64
	}
	w, err := newWaker()
	if err != nil {
		return nil, fmt.Errorf("reactor %s: %w", opts.Name, err)
	}
	return &Reactor{
		id:        id,
		name:      opts.Name,
		core:      opts.Core,
		mode:      opts.Mode,
		ring:      newMsgRing(opts.RingSize),
		msgBatch:  opts.MsgBatch,
		spinTicks: TicksFromDuration(opts.SpinTime),
		waker:     w,
	}, nil
}

// ID returns the reactor's dense index within its group.
func (r *Reactor) ID() int { return r.id }

// Core returns the CPU core the reactor is pinned to, or -1.
func (r *Reactor) Core() int { return r.core }

// Name returns the reactor's thread name.
func (r *Reactor) Name() string { return r.name }

// Mode returns the idle mode.
func (r *Reactor) Mode() Mode { return r.mode }

// IterNow returns the tick count read at the start of the current (or
// last) iteration. Reactor only.
func (r *Reactor) IterNow() Ticks { return r.now }

// Clock is the reactor's cheap clock for per-IO timestamps (the bdev
// layer's submit and completion ticks): the start of the current
// iteration, read again (once) the first time Clock is called after a
// message batch or a poller run that did work. On a running reactor it is
// never later than the real time, at most one poller run behind it, and
// never goes backwards; most calls cost a load where reading the TSC costs
// 20-40 ns on the VMs Hyperpath runs on. When a test steps Poll itself it
// is the now given to Poll. Reactor only.
func (r *Reactor) Clock() Ticks {
	if r.clkStale {
		r.clk = Now()
		r.clkStale = false
	}
	return r.clk
}

// Sleeping reports whether the reactor is asleep in adaptive mode right now.
func (r *Reactor) Sleeping() bool { return r.sleeping.Load() }

// Send queues fn(arg) to run on r. Safe from any goroutine, reactors
// included; it allocates nothing (pass a pointer as arg: boxing a pointer in
// an interface does not allocate). Messages from one sender run in the order
// sent. Returns ErrRingFull when r's ring is full.
func Send(r *Reactor, fn func(any), arg any) error {
	if !r.ring.push(fn, arg) {
		return ErrRingFull
	}
	// Dekker-style hand-shake with sleep(): the reactor stores sleeping=true
	// and then checks the ring; we store into the ring and then check
	// sleeping. Sequentially consistent atomics guarantee one side sees the
	// other.
	if r.sleeping.Load() {
		r.waker.wake()
	}
	return nil
}

// Call runs fn on r and waits for it to return. Control plane only: it
// allocates and blocks, and it must not be called from a reactor.
func Call(r *Reactor, fn func()) error {
	done := make(chan struct{})
	err := Send(r, func(any) { fn(); close(done) }, nil)
	if err != nil {
		return err
	}
	<-done
	return nil
}

// AssertCurrent panics, in invariants builds, when called from a thread
// other than the one running r. A no-op otherwise and before Run.
func (r *Reactor) AssertCurrent() {
	if !invariants.Enabled {
		return
	}
	if tid := r.tid.Load(); tid != 0 && int(tid) != unix.Gettid() {
		panic(fmt.Sprintf("reactor %s: called from thread %d, owner is %d", r.name, unix.Gettid(), tid))
	}
}

// RegisterPoller adds an active poller (periodUs 0) or a timed poller.
// Call it before Run or on the reactor; the poller first runs in the next
// iteration.
func (r *Reactor) RegisterPoller(name string, fn PollerFunc, periodUs uint64) *Poller {
	return r.RegisterPollerOpts(name, fn, PollerOptions{PeriodUs: periodUs})
}

// RegisterPollerOpts is RegisterPoller with options.
func (r *Reactor) RegisterPollerOpts(name string, fn PollerFunc, o PollerOptions) *Poller {
	r.AssertCurrent()
	r.nextPollerID++
	p := &Poller{name: name, id: r.nextPollerID, fn: fn, arm: o.Arm, periodUs: o.PeriodUs, r: r}
	if o.PeriodUs == 0 {
		r.active = append(r.active, p)
		return p
	}
	p.period = TicksFromDuration(time.Duration(o.PeriodUs) * time.Microsecond)
	if p.period == 0 {
		p.period = 1
	}
	p.nextRun = r.now + p.period
	r.timed = append(r.timed, p)
	r.timedDirty = true
	return p
}

// Pollers calls fn for each registered poller (active first, then timed).
// Reactor only.
func (r *Reactor) Pollers(fn func(p *Poller, timed bool)) {
	for _, p := range r.active {
		if p.state != PollerUnregistered {
			fn(p, false)
		}
	}
	for _, p := range r.timed {
		if p.state != PollerUnregistered {
			fn(p, true)
		}
	}
}

// PollerInfo is a snapshot of one poller for thread_get_pollers.
type PollerInfo struct {
	Name        string
	ID          uint64
	State       PollerState
	RunCount    uint64
	BusyCount   uint64
	PeriodTicks uint64
	Timed       bool
}

// Snapshot returns the reactor's counters and its pollers. Reactor only
// (use Call from elsewhere).
func (r *Reactor) Snapshot() (Stats, []PollerInfo) {
	var ps []PollerInfo
	r.Pollers(func(p *Poller, timed bool) {
		ps = append(ps, PollerInfo{Name: p.name, ID: p.id, State: p.state, RunCount: p.runCount,
			BusyCount: p.busyCount, PeriodTicks: uint64(p.period), Timed: timed})
	})
	return r.stats, ps
}

// Poll runs exactly one iteration at time now and reports whether it did
// any work. Reactor only; tests call it directly to step reactors
// deterministically.
func (r *Reactor) Poll(now Ticks) Status {
	if r.inPoll {
		panic("reactor: Poll re-entered from a poller or message")
	}
	r.inPoll = true
	r.now = now
	r.clk, r.clkStale = now, false
	busy := Idle

	// 1. Messages.
	for i := 0; i < r.msgBatch; i++ {
		fn, arg, ok := r.ring.pop()
		if !ok {
			break
		}
		fn(arg)
		r.stats.Msgs++
		busy = Busy
	}
	if busy == Busy {
		r.tick()
	}

	// 2. Active pollers. Pollers registered meanwhile run next time.
	n := len(r.active)
	for i := 0; i < n; i++ {
		p := r.active[i]
		if p.state != PollerWaiting {
			continue
		}
		if r.runPoller(p, now) == Busy {
			busy = Busy
			r.tick()
		}
	}

	// 3. Due timed pollers, earliest first.
	if r.timedDirty {
		sortTimed(r.timed)
		r.timedDirty = false
	}
	for i := 0; i < len(r.timed); i++ {
		p := r.timed[i]
		if p.nextRun > now {
			break
		}
		if p.state != PollerWaiting {
			continue
		}
		if r.runPoller(p, now) == Busy {
			busy = Busy
			r.tick()
		}
		p.nextRun = now + p.period
		r.timedDirty = true
	}

	if r.pollersDirty {
		r.active = compact(r.active)
		r.timed = compact(r.timed)
		r.pollersDirty = false
	}
	if busy == Busy {
		r.lastBusy = now
	}
	r.stats.Iterations++
	r.inPoll = false
	return busy
}

// tick marks Clock stale after work was done: its next call reads the
// real time.
func (r *Reactor) tick() {
	if r.liveClock {
		r.clkStale = true
	}
}

// ClockStale tells Clock that time has passed inside the current poller:
// its next call reads the TSC again. Pollers that loop over syscalls and
// complete IO between them (the NVMe/TCP initiator's receive loop) call it
// after each syscall, so that the bdev layer's stamps of later completions
// and resubmissions are not held at the first one's time. Reactor only.
func (r *Reactor) ClockStale() { r.tick() }

func (r *Reactor) charge(s Status, d Ticks) {
	if s == Busy {
		r.stats.BusyTicks += uint64(d)
	} else {
		r.stats.IdleTicks += uint64(d)
	}
}

func (r *Reactor) runPoller(p *Poller, now Ticks) Status {
	p.state = PollerRunning
	s := p.fn(now)
	p.runCount++
	if s == Busy {
		p.busyCount++
	}
	switch p.state {
	case PollerRunning:
		p.state = PollerWaiting
	case PollerPausing:
		p.state = PollerPaused
	}
	return s
}

// compact drops unregistered pollers in place.
func compact(ps []*Poller) []*Poller {
	out := ps[:0]
	for _, p := range ps {
		if p.state != PollerUnregistered {
			out = append(out, p)
		}
	}
	for i := len(out); i < len(ps); i++ {
		ps[i] = nil
	}
	return out
}

// sortTimed is an insertion sort by nextRun: the slice is short and nearly
// sorted (only the pollers that just ran moved).
func sortTimed(ps []*Poller) {
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && ps[j].nextRun < ps[j-1].nextRun; j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
}

// nextDeadline returns the earliest timed poller deadline and whether any
// waiting timed poller exists.
func (r *Reactor) nextDeadline() (Ticks, bool) {
	if r.timedDirty {
		sortTimed(r.timed)
		r.timedDirty = false
	}
	for _, p := range r.timed {
		if p.state == PollerWaiting {
			return p.nextRun, true
		}
	}
	return 0, false
}

// Stop asks Run to return after its current iteration. Safe from any
// goroutine.
func (r *Reactor) Stop() {
	r.stopping.Store(true)
	r.waker.wake()
}

// Run pins the calling goroutine's thread to the reactor's core and polls
// until Stop. It returns an error if the core cannot be used.
func (r *Reactor) Run() error {
	// The thread is never unlocked: when Run returns the goroutine exits
	// still locked and the runtime discards the pinned thread instead of
	// handing it, with our affinity, to other goroutines.
	runtime.LockOSThread()
	if r.core >= 0 {
		if err := pinToCore(r.core); err != nil {
			return fmt.Errorf("reactor %s: %w", r.name, err)
		}
	}
	r.tid.Store(int32(unix.Gettid()))
	defer r.tid.Store(0)

	// The clock is read once per iteration: an iteration lasts from its
	// start to the next one's, and is charged to busy or idle when that
	// next start is read.
	prev := Now()
	r.lastBusy = prev
	last := Idle
	r.liveClock = true
	defer func() { r.liveClock = false }()
	for !r.stopping.Load() {
		now := Now()
		r.charge(last, now-prev)
		prev = now
		last = r.Poll(now)
		if last == Idle && r.mode == ModeAdaptive && now-r.lastBusy >= r.spinTicks {
			r.sleep(now)
		}
	}
	r.charge(last, Now()-prev)
	return nil
}

// sleep blocks until a message, a watched fd, Stop, or the next timed
// poller deadline.
func (r *Reactor) sleep(now Ticks) {
	for _, p := range r.active {
		if p.arm != nil && p.state == PollerWaiting && p.arm() {
			return
		}
	}
	for _, p := range r.timed {
		if p.arm != nil && p.state == PollerWaiting && p.arm() {
			return
		}
	}
	timeout := -1
	if deadline, ok := r.nextDeadline(); ok {
		if deadline <= now {
			return
		}
		ms := (deadline - now).Duration().Milliseconds()
		timeout = int(ms) + 1 // epoll's granularity is 1 ms: never wake early
	}
	r.sleeping.Store(true)
	if !r.ring.empty() || r.stopping.Load() {
		r.sleeping.Store(false)
		return
	}
	r.stats.Sleeps++
	r.waker.wait(timeout)
	r.sleeping.Store(false)
}

// WatchFd makes readiness of fd (EPOLLIN) wake the reactor from adaptive
// sleep. The reactor does not read fd: its pollers do. Edge-triggered, so an
// eventfd need not be drained for the next signal to wake the reactor.
// Safe from any goroutine.
func (r *Reactor) WatchFd(fd int) error { return r.waker.watch(fd) }

// UnwatchFd undoes WatchFd.
func (r *Reactor) UnwatchFd(fd int) error { return r.waker.unwatch(fd) }

// Close releases the reactor's eventfd and epoll instance. Call after Run
// has returned.
func (r *Reactor) Close() error { return r.waker.close() }

// Tid returns the OS thread id running the reactor, or 0 when it is not
// running.
func (r *Reactor) Tid() int { return int(r.tid.Load()) }
