// Package reactor runs Hyperpath's pinned, run-to-completion event loops.
//
// # Model
//
// A Reactor is one event loop. In production each reactor is a goroutine
// locked to its OS thread and pinned to one CPU core of the core mask
// (runtime.LockOSThread + sched_setaffinity); a Group creates one reactor per
// core and starts them. Everything a reactor owns (its pollers, the channels
// that bdev modules create on it, per-IO state) is touched only by that
// reactor. Other goroutines and other reactors reach it only through
// messages: Send(r, fn, arg) puts (fn, arg) on r's bounded lock-free
// multi-producer single-consumer ring, and r runs fn(arg) on its own thread.
// There are no locks on the data path.
//
// # One iteration
//
// Poll(now) runs exactly one iteration, in this order:
//
//  1. up to Options.MsgBatch messages from the ring, oldest first;
//  2. every active poller (period 0), in registration order;
//  3. every timed poller whose deadline has passed, earliest first.
//
// Each poller returns Busy or Idle. The iteration is busy when any message
// ran or any poller said Busy, and the reactor charges the ticks of the
// iteration to its busy or idle counter accordingly. Run only locks and pins
// the thread and calls Poll in a loop, reading the clock once per iteration;
// tests call Poll directly with a clock of their own so that stepping several
// reactors is deterministic (SPDK's spdk_thread_poll, raft's RawNode).
//
// # Time
//
// Times are Ticks: the CPU's time-stamp counter where cpuid reports an
// invariant TSC, else monotonic nanoseconds. TickRate gives ticks per second.
// Pollers receive the iteration's `now` and must use it rather than reading
// the clock per IO. Reactor.Clock is the finer time for per-IO timestamps:
// `now`, read again on the first call after a poller or message batch did
// work (at most one TSC read per busy poller instead of two per IO).
//
// # Idle behaviour
//
// In ModeAdaptive (the default) a reactor that has been idle for
// Options.SpinTime sleeps in epoll_wait on an eventfd. Send wakes it, as does
// any fd registered with WatchFd (vhost kick eventfds, io_uring eventfds,
// sockets), and the earliest timed poller bounds the sleep. Before sleeping,
// pollers registered with an Arm hook re-enable their notifications and may
// veto the sleep when work arrived meanwhile. A reactor woken only by a timer
// goes back to sleep right after the due timed pollers ran idle, so an idle
// daemon costs next to no CPU. ModePoll keeps the core spinning.
//
// # Lifecycle
//
// New -> RegisterPoller/WatchFd (before Run, or later from the reactor
// itself) -> Run (or Poll from a test) -> Stop -> Run returns -> Close.
// A poller may register, unregister, pause and resume pollers, its own
// included, while the reactor is iterating; changes to the active list take
// effect from the next iteration.
package reactor
