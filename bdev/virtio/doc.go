// Package virtio is the bdev module for a virtio-blk device behind a
// vhost-user back end (SPDK's virtio-user transport): it connects to a
// vhost-user-blk socket — qemu-storage-daemon's export, SPDK's vhost, or our
// own target in package vhost — and exposes the remote device as a local
// bdev, so that bdevperf in one process drives a target in another with
// no payload copy. It serves SPDK's bdev_virtio_attach_controller (trtype
// "user", dev_type "blk") and bdev_virtio_detach_controller.
//
// # Shared region
//
// A Disk allocates one region from internal/hugemem (a memfd, on 2 MiB
// hugepages when the kernel has them) and sends it with SET_MEM_TABLE as
// the only memory region: guest address = offset in the region,
// userspace_addr = our mapping's address. Everything the back end touches
// lies in it:
//
//	0                      unused page (nothing lives at guest address 0)
//	per queue i:           split ring (virtq.Layout) | QueueSize request
//	                       slots of 64 bytes | BounceChunks chunks of 16 KiB
//	bufOff..size           buffer area handed out by AllocBuffer
//
// A request slot holds the virtio_blk_outhdr, the discard/write-zeroes
// segment and the status byte (see slotSize in blk.go).
//
// # Zero copy
//
// The bdev layer hands the module io.Iovs owned by the submitter. When every
// iovec lies in the buffer area (the submitter took it from AllocBuffer,
// see BufferAllocator) the data descriptors point at those bytes, split at
// size_max: the back end reads and writes the submitter's memory and
// nothing is copied. Otherwise — heap buffers, or more segments than
// seg_max — the payload goes through chunks of the queue's bounce pool
// (copied in before a write, out after a read), counted in
// Stats.BouncedIOs/BouncedBytes. Info.MaxTransferBlocks (at most 1 MiB,
// lowered by seg_max × min(size_max, 16 KiB) and the pool) makes the
// generic layer split larger reads and writes, so a bounced request always
// fits seg_max. Discard and write-zeroes ranges larger than the device's
// max_discard_sectors / max_write_zeroes_sectors are cut into several
// one-segment requests here, issued as ring space allows.
//
// # Threading and ownership
//
//   - Control plane (New, Destroy, NewChannel's queue choice, AllocBuffer,
//     the RPCs) takes Disk.mu. The vhost-user connection is used by New's
//     goroutine for the handshake, then by one monitor goroutine per Disk,
//     which blocks in read: a back end never speaks unasked, so a read that
//     returns means the connection ended.
//   - Each reactor that opens the bdev gets a channel holding one queue of
//     its own (the queue reactorID mod vq_count, or the next free one);
//     NewChannel fails with a clear error when every queue is held by
//     another reactor's channel. A queue — its Driver, request slots, bounce
//     chunks, scratch descriptors and counters — and the channel's held
//     IO are touched only on the channel's reactor, with no lock (see
//     Counters for how Stats reads). A queue changes hands only between
//     channels, under Disk.mu, while no IO is outstanding.
//   - The monitor goroutine also runs the reconnect (see Failure); it
//     changes the Disk's state under Disk.mu and wakes each channel with a
//     message, and the channels do the data-path work of each change on
//     their own reactors.
//   - Submit puts the request in the ring (virtq.Driver Add + Publish) and
//     writes the kick eventfd only when the back end asks for it
//     (NeedsKick, EVENT_IDX). Requests submitted from completion callbacks
//     inside the poller share one kick at the end of the poll. The poller
//     reaps up to 32 used entries per iteration and completes the IOs.
//     Nothing on this path allocates, locks or makes a syscall besides the
//     kick (checked by testing.AllocsPerRun).
//   - Completions are polled. The poller's Arm hook turns used-buffer
//     notifications on (Driver.EnableInterrupts) before an adaptive reactor
//     sleeps and vetoes the sleep if completions are already there; the
//     call eventfd is registered with the reactor (WatchFd), so the back
//     end's call wakes it. The next poll turns notifications off again.
//
// # Failure
//
// The connection ends (the back end died or closed it), or the back end
// corrupts a ring (a used entry naming no outstanding request; the front
// end then closes the connection). What follows depends on three options,
// named after SPDK's bdev_nvme ones and taken by the attach RPC as
// ctrlr_loss_timeout_sec, reconnect_delay_sec and fast_io_fail_timeout_sec
// (with SPDK's rules on their combination):
//
//   - CtrlrLossTimeout 0 (the default): no reconnect. The Disk moves to
//     StateFailed; every channel fails the IO still in its ring with
//     bdev.StatusFailed on its own reactor (woken by a message), and later
//     IO fails at once, until bdev_virtio_detach_controller.
//   - Otherwise the Disk moves to StateReconnecting and IO is held, not
//     failed. Each channel's poller takes every request back from its
//     ring: the slot and its bounce chunks are freed, and the IO joins the
//     channel's held list, linked through its own DriverLink (no
//     allocation; its length is bounded by the generic layer's IO pool),
//     with the IO submitted during the outage. A discard or write-zeroes
//     split into several requests comes back whole once all its requests
//     are back, and is reissued from its start. Every IO type is safe to
//     send again: reads and writes of whole blocks are idempotent, flush
//     is resent, discard and write-zeroes repeat. (An IO that the back end
//     had already failed in part fails.) The monitor redials at once and
//     then every ReconnectDelay. Before each attempt every queue resets
//     its ring on its reactor, once no request is in it, so the new back
//     end sees fresh rings (SET_VRING_BASE 0, empty avail and used
//     rings): no request crosses from the old ring to the new one, so none
//     is completed twice and no slot leaks. A back end of the same
//     geometry that completes the handshake brings the Disk back to
//     StateConnected, and a message to each channel makes its poller
//     resubmit the held IO, oldest first, as request slots allow (the
//     rest waits for the next poll; a full descriptor ring gives NoMem,
//     which the generic layer retries).
//   - FastIOFailTimeout after the loss, if the Disk has not reconnected,
//     it moves to StateFailingIO: held IO and new IO fail with
//     StatusFailed, and the reconnect attempts go on; a reconnect returns
//     to StateConnected.
//   - CtrlrLossTimeout after the loss (unless it is Forever) the Disk gives
//     up: StateFailed, held and new IO fail, and a Disk registered by
//     Attach (every RPC attach) is unregistered, as SPDK deletes a lost
//     NVMe controller; the bdev's users get bdev.EventRemove and the Disk
//     is destroyed when the last descriptor closes. A Disk registered
//     otherwise stays failed until it is unregistered.
//   - A reconnecting Disk whose bdev is being unregistered (detach) stops
//     reconnecting and fails its held IO within removalPoll, so that the
//     descriptors can close.
//
// The data path reads the state once per IO (Submit) and once per poll.
// Data the old back end wrote into a read's buffers before it died is
// overwritten by the resubmitted read; a read failed at fast_io_fail or
// at the loss timeout leaves its buffers undefined.
//
// # Counters
//
// Each queue's counters (Stats) are plain fields written only on its
// channel's reactor: no atomic operation per IO. Stats reads them with a
// message to that reactor when it runs on another thread, and directly
// under Disk.mu when no channel holds the queue (the last owner released
// it under the same mutex) or when the caller runs or drives that reactor.
//
// # Lifecycle
//
// New (connect, GET_FEATURES, GET/SET_PROTOCOL_FEATURES, GET_QUEUE_NUM,
// SET_OWNER, GET_CONFIG, SET_FEATURES, SET_MEM_TABLE, per queue
// SET_VRING_NUM/BASE/ADDR/KICK/CALL, SET_VRING_ENABLE) -> Registry.Register
// -> Desc.GetChannel on each reactor (NewChannel takes a queue) -> IO ->
// PutChannel (Close on the reactor gives the queue back) -> Unregister ->
// Destroy (closes the connection, waits for the monitor, frees the region;
// buffers from AllocBuffer become invalid).
//
// The package is Linux-only, as are hugemem and the reactor it builds on.
package virtio
