package reactor

// Status is what a poller reports for one run.
type Status int8

const (
	// Idle means the poller found no work.
	Idle Status = iota
	// Busy means the poller did work; the reactor keeps spinning.
	Busy
)

// PollerFunc is a poller body. now is the tick count read at the start of
// the iteration.
type PollerFunc func(now Ticks) Status

// PollerState is the life-cycle state of a poller, named as SPDK's
// thread_get_pollers reports it.
type PollerState uint8

const (
	// PollerWaiting: registered and runnable, not running right now.
	PollerWaiting PollerState = iota
	// PollerRunning: its body is executing in this iteration.
	PollerRunning
	// PollerUnregistered: removed; it is dropped at the end of the iteration.
	PollerUnregistered
	// PollerPausing: Pause was called while it was running; it becomes
	// paused when the body returns.
	PollerPausing
	// PollerPaused: registered but skipped until Resume.
	PollerPaused
)

func (s PollerState) String() string {
	switch s {
	case PollerWaiting:
		return "waiting"
	case PollerRunning:
		return "running"
	case PollerUnregistered:
		return "unregistered"
	case PollerPausing:
		return "pausing"
	case PollerPaused:
		return "paused"
	}
	return "unknown"
}

// Poller is a function a reactor runs every iteration (active pollers,
// period 0) or every period (timed pollers). It belongs to one reactor and
// all its methods must be called on that reactor (or before it runs).
type Poller struct {
	name     string
	id       uint64
	fn       PollerFunc
	arm      func() bool
	period   Ticks
	periodUs uint64
	nextRun  Ticks
	state    PollerState
	r        *Reactor

	runCount  uint64
	busyCount uint64
}

// PollerOptions are optional settings for RegisterPollerOpts.
type PollerOptions struct {
	// PeriodUs makes the poller timed: it runs at most once per period.
	// Zero means an active poller that runs every iteration.
	PeriodUs uint64
	// Arm, when set, is called before the reactor goes to sleep in adaptive
	// mode. It re-enables whatever notification will wake the reactor (for
	// example clears VRING_USED_F_NO_NOTIFY) and returns true when work is
	// already pending, which vetoes the sleep.
	Arm func() bool
}

// Name returns the poller's name.
func (p *Poller) Name() string { return p.name }

// ID returns the poller's id, unique within its reactor.
func (p *Poller) ID() uint64 { return p.id }

// State returns the poller's current state.
func (p *Poller) State() PollerState { return p.state }

// Unregister removes the poller. Safe from inside any poller or message of
// the same reactor, the poller itself included; it never runs again.
func (p *Poller) Unregister() {
	if p.state == PollerUnregistered {
		return
	}
	p.state = PollerUnregistered
	p.r.pollersDirty = true
}

// Pause stops running the poller until Resume. Called from inside the
// poller's own body, the poller finishes this run and is then paused.
func (p *Poller) Pause() {
	switch p.state {
	case PollerWaiting:
		p.state = PollerPaused
	case PollerRunning:
		p.state = PollerPausing
	}
}

// Resume makes a paused poller runnable again. A timed poller's next run is
// one period after the current iteration.
func (p *Poller) Resume() {
	switch p.state {
	case PollerPaused, PollerPausing:
		if p.state == PollerPaused && p.period != 0 {
			p.nextRun = p.r.now + p.period
			p.r.timedDirty = true
		}
		p.state = PollerWaiting
	}
}
