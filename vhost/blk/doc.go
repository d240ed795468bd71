// Package blk is the virtio-blk device (VIRTIO v1.2, 5.2) on top of a bdev:
// the device layer of Hyperpath's vhost-user-blk target. Package vhost/proto
// speaks the vhost-user protocol, package vhost/virtq owns the split ring, and
// package vhost runs the sessions; this package turns descriptor chains into
// bdev IOs and completes them.
//
// # Objects and who owns them
//
//   - A Device is one virtio-blk device over an open bdev descriptor: its
//     features, its config space and its geometry are fixed at New. It is
//     shared by every session and queue of a controller; its only mutable
//     state is two atomics (the hot-remove flag and the interrupt coalescing
//     settings).
//   - A Queue runs one virtqueue on one reactor: a poller, a request pool
//     sized to the ring (allocated once, in NewQueue), the bdev channel of
//     that reactor, and the call eventfd. Everything in a Queue belongs to
//     its reactor; the control plane reaches it with reactor messages
//     (Start, Stop, Close, SetCallFD, SwitchMemory, DetachBdev).
//
// # Request layout (VIRTIO v1.2, 5.2.6)
//
//	device-readable:  type u32 | reserved u32 | sector u64 | data (OUT) or segments
//	device-writable:  data (IN) or device ID (GET_ID) ... | status u8
//
// With VIRTIO_F_VERSION_1 the framing is free (2.7.4.3): the header may share
// a buffer with data, and the status byte is simply the last device-writable
// byte. The queue copies the 16-byte header (and discard/write-zeroes
// segments) out of guest memory before it checks them, so a driver that
// rewrites them meanwhile changes nothing. Data is never copied: the bdev
// IO's iovecs are the chain's segments, pointing into guest memory.
//
// # Data path (per poll, on the queue's reactor)
//
//  1. Pop at most PollBatch heads (fewer if the pool is short), with
//     notifications disabled while the queue polls.
//  2. Walk each chain into a pooled request; a chain that cannot be walked
//     completes with used length 0 (its status byte is unknown); a request
//     that walks but is malformed (short header, data not a multiple of 512
//     or of the block size, range outside the device) completes with
//     VIRTIO_BLK_S_IOERR, an unknown type with VIRTIO_BLK_S_UNSUPP.
//  3. Submit one bdev IO per request (one per segment for discard and write
//     zeroes). If the channel's IO pool is empty the request is parked and
//     retried in order; no new heads are popped meanwhile.
//  4. The bdev completion writes the status byte and pushes the used element;
//     the poller publishes the batch once and writes the call eventfd when
//     the driver asked for it (NeedsNotify: event index or flags), possibly
//     deferred by interrupt coalescing.
//
// Before an adaptive reactor sleeps, the poller's Arm hook sends any deferred
// interrupt and re-enables kicks (EnableNotify); the reactor watches the kick
// eventfd, so a kick wakes it.
//
// # Lifecycle of a queue
//
// NewQueue (control plane) -> Start -> [SwitchMemory, SetCallFD, DetachBdev]*
// -> Stop (drained callback once every popped request completed) -> Close
// (returns the last available index for GET_VRING_BASE). A queue is never
// restarted; the session builds a new one.
//
// Nothing on the data path allocates, locks, or reads the clock: the
// poller's `now` drives coalescing. Tests assert zero allocations per
// request with testing.AllocsPerRun.
package blk
