// Package delay is SPDK's delay bdev: a device stacked on a base bdev
// (claimed through a bdev.Desc) that adds latency to reads and writes, to
// emulate a slower drive or to drive an initiator into its timeouts.
//
// # Latencies
//
// Four latencies in microseconds: average read, p99 read, average write,
// p99 write. One read or write in a hundred (drawn per channel with a
// xorshift generator, as SPDK's rand_r() % 100) takes the p99 latency, the
// others the average. The delay is added after the base completes: the
// IO's completion is held until base-completion time + latency. Flush,
// unmap, write_zeroes and reset complete as soon as the base does.
// bdev_delay_update_latency changes a latency for IOs that complete at the
// base from then on; IOs already held keep theirs, and since each latency
// class is a FIFO a lowered latency waits behind the IOs held with the old
// one (SPDK's "dam", which is what timeout tests want).
//
// # Threading
//
// Disk and its channel embed bdev/passthru's Device and Channel, which open
// and claim the base, forward, fan resets out and follow hot removal; this
// package adds the latencies and the held FIFOs. Each reactor's channel
// holds the base's IOChannel on that reactor and
// forwards every IO as a child allocated from the base channel's pool
// (sharing the parent's iovecs; no copy). In the child's callback the
// parent is put on one of four intrusive FIFOs (avg/p99 × read/write)
// with its deadline and status packed into DriverCtx: the deadline in the
// reactor's Ticks, rounded up to a multiple of 256 ticks, and the status in
// the low byte. The deadline starts from the reactor's iteration time
// (Reactor.IterNow), never a clock read per IO. The channel's poller
// releases the IOs whose deadline has passed, using the `now` the reactor
// hands it. Nothing on the path allocates (testing.AllocsPerRun).
//
// So that an adaptive reactor may sleep while IOs are held, the channel
// also has a timed poller (every millisecond) that runs only while
// something is held, and the active poller's Arm hook vetoes sleep when the
// earliest deadline is less than two milliseconds away: long delays cost
// wake-ups, not a spinning core, and short ones stay precise.
//
// A reset aborts every held IO (this channel's at once, other reactors' by
// a message that may land after the reset completes) and is then forwarded
// to the base.
//
// # Lifecycle
//
// Module.Create (bdev_delay_create) records the association name -> base;
// the bdev is created at once if the base exists, else when it is
// registered (Module.Examine), as in SPDK. Unregistering the delay bdev
// (bdev_delay_delete) destroys it when its last descriptor closes, closes
// the base descriptor (releasing the claim) and forgets the association.
package delay
