// Package vhost is Hyperpath's vhost-user-blk target: the controllers
// (vhost_create_blk_controller), their listening sockets, and one session per
// front-end connection that turns vhost-user messages (package vhost/proto)
// into memory tables and rings (package vhost/virtq) served by the
// virtio-blk device (package vhost/blk) on the application's reactors.
//
// # Objects and who owns them
//
//   - Target owns the controllers; its methods are control plane (mutex,
//     any goroutine). RegisterRPC wires SPDK's vhost_* RPCs and returns the
//     "vhost_blk" save_config writer.
//   - Controller owns a socket <SockDir>/<name>, an open bdev descriptor,
//     the blk.Device over it, and its sessions. Its queues run on the
//     reactors of its cpumask.
//   - session is one connection, served by its own goroutine (not a
//     reactor): it reads a message, applies it, answers, and reads the
//     next. It owns the memory table, the inflight area, the eventfds and
//     the vring setup; each started vring is a blk.Queue owned by one
//     reactor (queue i of a session runs on the controller's reactor
//     (base+i) mod n, base differing per session). The session reaches a
//     queue only with reactor.Call.
//
// # Lifecycle
//
// NewTarget(Options{Registry, Reactors, SockDir, Logger}) -> RegisterRPC on
// the RPC server (and the "vhost_blk" subsystem with its writer, depending
// on "bdev") -> controllers come and go by RPC or CreateBlkController /
// DeleteController -> Close, which ends every session (draining its queues)
// and removes the sockets. Close must run while the reactors still run:
// queues are stopped by messages to them.
//
// # Ring lifecycle
//
// A vring starts once it has a memory table, SET_VRING_NUM, SET_VRING_ADDR and
// SET_VRING_KICK and is enabled (rings start disabled once
// VHOST_USER_F_PROTOCOL_FEATURES is negotiated; SET_VRING_ENABLE 1 enables
// them). With an inflight area (GET/SET_INFLIGHT_FD) the ring is attached to
// its region first and the heads a previous back-end left in flight are
// resubmitted, so QEMU's reconnect=N loses no request. GET_VRING_BASE,
// SET_VRING_ENABLE 0, RESET_DEVICE, RESET_OWNER and the end of the connection
// stop a ring: no new requests, wait for the outstanding ones, then the last
// available index is the base.
//
// # Memory table changes
//
// SET_MEM_TABLE, ADD_MEM_REG and REM_MEM_REG build a new immutable table; each
// running queue switches to it on its reactor (blk.Queue.SwitchMemory), and
// the mappings the new table no longer holds are unmapped only when every
// request walked under the old table has completed.
//
// # Errors
//
// A message that is malformed (proto.ErrMalformed, ErrBadHeader), or that
// breaks the protocol (a queue index out of range, a ring outside guest
// memory, features not offered) closes that session with a logged reason; the
// target and other sessions go on. Requests the back-end does not support get
// a non-zero REPLY_ACK ack and the session continues. Hot removal of the bdev
// makes every request fail with VIRTIO_BLK_S_IOERR and closes the descriptor
// once outstanding IO has completed; the controller stays.
package vhost
