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
//     chunks, scratch descriptors and counters' writes — is touched only on
//     its channel's reactor, with no lock. It changes hands only between
//     channels, under Disk.mu, while no IO is outstanding.
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
// When the connection ends (the back end died or closed it) or the back
// end corrupts a ring (a used entry naming no outstanding request), the
// Disk is marked failed: every channel fails the IO still in its ring with
// bdev.StatusFailed on its own reactor (woken by a message), and later IO
// fails at once. Data the back end wrote into a failed read's buffers is
// undefined. With Options.ReconnectDelay the monitor redials at that
// interval; once every queue has reset its ring and a back end of the same
// geometry completed the handshake, IO resumes. Without it the bdev stays
// failed until bdev_virtio_detach_controller.
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
