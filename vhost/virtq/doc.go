// Package virtq holds guest memory and split virtqueues (VIRTIO v1.2,
// 2.7) for the vhost-user-blk target and for our own virtio front-end:
//
//   - GuestMemory: an immutable table of mapped regions that translates
//     guest (and front-end user) addresses to host slices, bounds-checked.
//   - Queue: the device side of a ring: Pop available heads, Walk a
//     descriptor chain into segments that point into guest memory, Push
//     used elements, Publish the used index, decide NeedsNotify.
//   - Driver: the driver side of a ring on memory we own: Add a request,
//     Publish, NeedsKick, Reap completions.
//   - Inflight / InflightQueue: the vhost-user inflight tracking area, so
//     that a restarted back-end resubmits what was in flight.
//
// It does not know vhost-user messages (package vhost/proto) or virtio-blk
// (package vhost/blk); the session (package vhost) maps regions, builds
// Config values from SET_VRING_* messages and starts queues.
//
// # Threading and ownership
//
// A *GuestMemory is immutable and may be shared by every reactor without
// locks. A table change builds a new *GuestMemory; each Queue switches to it
// with SetMemory, run on the queue's reactor (a reactor message). The old
// table's mappings must stay mapped until every queue has switched and
// every request walked under the old table has completed; then
// old.UnmapExcept(new) releases what was replaced. This package does not
// track that: the session does.
//
// A Queue, a Driver and an InflightQueue each belong to one reactor, the
// one polling that ring: their methods are not safe for concurrent use and
// take no locks. The peer is another process writing the same memory;
// ring indices are read and written with atomic operations (see
// ring_unsafe.go for how 16-bit fields are reached with 32-bit atomics and
// which barriers that gives).
//
// # Lifecycle of a device queue
//
//  1. The session collects SET_VRING_NUM / ADDR / BASE into a Config and a
//     base index; on the kick (or SET_VRING_KICK), NewQueue(mem, cfg, base).
//  2. With inflight tracking: AttachInflight, then RecoverInflight and
//     resubmit the heads it returns.
//  3. Each poll: Pop up to a batch of heads; for each, Walk into a Chain and
//     hand the segments to the device; on completion Push(head, written);
//     then Publish once per batch and, if NeedsNotify, signal the call
//     eventfd. An adaptive poller calls EnableNotify before sleeping and
//     keeps polling if it returns true.
//  4. GET_VRING_BASE: stop polling, let requests complete, report
//     LastAvail.
//
// # Bounds
//
// Every guest-controlled value is checked before use: ring addresses and
// alignment at NewQueue, avail.idx against the queue size in Pop, head and
// next indices against their table, every buffer against guest memory, and
// each chain walk against a TTL. Errors are sentinels (no allocation); a
// bad chain fails one request, a bad index breaks the queue.
//
// The data path (Pop, Walk, Push, Publish, NeedsNotify, Driver.Add,
// Publish, Reap) does not allocate; tests assert it with AllocsPerRun.
package virtq
