// Package bdev is Hyperpath's generic block device layer, on top of the
// reactor framework (SPDK's lib/bdev).
//
// # Objects and who owns them
//
//   - A Device is what a module (bdev/malloc, bdev/null, bdev/local, ...)
//     implements. It is shared by every reactor and must not keep per-IO
//     state outside its Channels.
//   - A Registry holds the Bdevs (a Device plus the generic layer's state).
//     Its methods are control plane: mutex-protected, never per IO.
//   - A Desc is an open descriptor. A stacked module Claims its base bdev
//     through its Desc; a claimed bdev cannot be unregistered. Unregister
//     sends EventRemove to every descriptor and destroys the device when the
//     last one closes.
//   - An IOChannel is the per-(bdev, reactor) state: the module's Channel,
//     a pool of IOs, stats, histograms and the NoMem/QoS queues. It is
//     created by Desc.GetChannel on its reactor and used only there.
//   - An IO comes from its channel's pool (Alloc), is submitted with
//     Submit(io, cb) and recycled after cb returns.
//
// # Data-path rules
//
// Submit validates the IO (range, iovec length, supported type), admits it
// through QoS, splits it on the device's maximum transfer size or optimal
// boundary, and hands it to the module. The module completes with
// io.Complete on the same reactor, inside Submit or later. A completion
// that happens inside Submit is deferred to the channel's poller, so a
// completion callback never runs inside its own Submit. StatusNoMem from
// the module parks the IO and the poller resubmits it once other IO has
// completed. Nothing on this path allocates, locks, or reads the wall
// clock (submit and completion times are Reactor.Clock: no clock read per
// IO).
//
// # Statistics
//
// Each channel counts SPDK's bdev_get_iostat fields; Bdev.Stats sums the
// channels by visiting each reactor with a message, and applies a reset
// mode. Latency histograms (bdev_enable_histogram) are kept per channel,
// both in SPDK's bucket format (bdev_get_histogram, scripts/histogram.py)
// and as HdrHistograms per IO type for percentile dumps.
package bdev
