// Package errinject is the error-injection bdev (SPDK's bdev_error): a
// device "EE_<base>" stacked on a base bdev that it claims through a
// bdev.Desc. It forwards every IO to the base unchanged until an injection
// (bdev_error_inject_error) makes some of them fail, hang, run out of
// resources, or carry corrupted data, so that the layers above (replica,
// vhost, a guest's checksums) can be tested against real failure modes.
//
// # Injections
//
// An injection applies to one IO type (read, write, flush, unmap) or all
// four, and to its next Num IOs of that type (each one that is hit
// decrements Num; Num 0 disables it). With QueueDepth set, only IOs
// submitted while at least that many IOs of the channel are in flight at
// the base are hit. What a hit does:
//
//   - failure, nvme_failure: the IO completes with StatusFailed (bdev.Status
//     has no NVMe status, so nvme_failure carries no SCT/SC here);
//   - nomem: the IO completes with StatusNoMem, which the generic layer
//     queues and retries (so it costs time, not a failure);
//   - pending: the IO is held until bdev_error_resume_pending (resubmitted
//     then) or a reset (aborted);
//   - corrupt_data: the byte at CorruptOffset of the IO's data is XORed
//     with CorruptValue: a write's payload before it goes to the base (in
//     the caller's buffer, as SPDK does), a read's after the base has
//     filled it. Other IO types pass unchanged.
//
// The injection table is per Disk and updated from the control plane while
// reactors read it, with atomics only (Num is taken with a compare-and-swap,
// so concurrent channels never hit more than Num IOs in total).
//
// # Forwarding and threading
//
// The forwarding itself (open and claim, child IOs, in-flight count, reset
// fan-out, channel list, hot remove) is bdev/passthru's Device and
// Channel, which Disk and its channel embed; this package adds the
// injection table, the choice of what to do with each IO and the held
// queue. Each reactor's channel holds the base's IOChannel on the same reactor
// (Desc.GetChannel in NewChannel; PutChannel by a message sent from Close,
// which may run inside the base channel's own completion callback). A forwarded IO is a
// child allocated from the base channel's pool: it shares the parent's
// iovecs (no copy), points back to the parent through Ctx, and the parent
// completes in the child's callback with the child's status. A base pool
// that is empty bounces the parent with StatusNoMem. Nothing on that path
// allocates (testing.AllocsPerRun). Held IOs sit on the channel's intrusive
// queue (bdev.IOQueue). A reset aborts the held IOs of its own channel at
// once and those of the other reactors' channels by a message, then is
// forwarded to the base (or succeeds when the base has no reset).
//
// # Lifecycle
//
// Module.Create (bdev_error_create) records the base name; if the base
// exists the Disk is created at once (New: open + claim the base), else
// when a bdev of that name is registered (Module.Examine), as in SPDK.
// Unregistering the Disk (bdev_error_delete) destroys it once its last
// descriptor closes: Destroy closes the base descriptor, which releases the
// claim, and forgets the recorded base. If the base is removed underneath,
// the Disk unregisters itself.
package errinject
