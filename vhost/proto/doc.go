// Package proto is the vhost-user message layer: the wire format of the
// messages a front-end (QEMU, or our own bdev/virtio client) and a back-end
// (our vhost-user-blk target) exchange over a Unix stream socket, their
// validation, and the passing of file descriptors in SCM_RIGHTS ancillary data.
//
// It knows nothing about rings, memory maps or devices: the session layer
// (package vhost) turns decoded messages into ring and memory state, and
// package virtq owns the rings. The split follows rust-vmm's vhost crate.
//
// # Wire format
//
// All numbers are in the host's native byte order (the peer is a process on
// the same host). A message is a 12-byte header and a payload of Size bytes:
//
//	0      4      8      12
//	+------+------+------+---------------------- - -
//	| req  | flags| size | payload (size bytes)
//	+------+------+------+---------------------- - -
//	flags: bits 0-1 version (must be 1), bit 2 REPLY, bit 3 NEED_REPLY,
//	       bits 4-31 reserved (must be 0)
//
// Payloads (offsets relative to the payload):
//
//	u64          0:u64
//	VringState   0:index u32  4:num u32
//	VringAddr    0:index u32  4:flags u32  8:desc u64  16:used u64  24:avail u64  32:log u64
//	VringFile    u64: bits 0-7 queue index, bit 8 NOFD, bits 9-63 reserved (0)
//	MemRegion    0:guest_phys_addr  8:memory_size  16:userspace_addr  24:mmap_offset (u64 each)
//	Memory       0:nregions u32  4:padding u32  8:MemRegion[nregions]  (size 8+32*nregions)
//	MemRegionMsg 0:padding u64  8:MemRegion                            (size 40)
//	Log          0:mmap_size u64  8:mmap_offset u64                    (size 16)
//	Config       0:offset u32  4:size u32  8:flags u32  12:bytes[size] (size <= 256)
//	Inflight     0:mmap_size u64  8:mmap_offset u64  16:num_queues u16  18:queue_size u16
//	             20:padding[4]                                         (size 24)
//
// # Validation
//
// ReadRequest and ReadReply check, before any payload byte is trusted: the
// version, the reserved flag bits, the REPLY bit matching the direction, the
// size against the largest payload that request can carry, then the exact
// payload size the request calls for, the fields that determine further sizes
// (nregions, config size) and the number of fds that request must carry.
// Decode errors are *FieldError values naming the request, the field and its
// byte offset from the start of the message (the header is at offset 0, the
// payload at offset 12); they wrap one of ErrBadHeader, ErrMalformed or
// ErrUnsupported, which tell the caller whether the stream is still usable.
// Nothing in this package panics on peer input.
//
// # File descriptors and ownership
//
// At most MaxFDs descriptors are accepted per message; a message that
// carries more, or a number its request does not allow, is rejected and every
// descriptor that came with it is closed. Descriptors received into a Msg are
// owned by that Msg until the caller takes them with TakeFD; CloseFDs (and the
// next ReadRequest/ReadReply into the same Msg) closes the rest. Descriptors
// passed to WriteMsg are only borrowed.
//
// # Threading
//
// This is the control path: a session reads and writes its socket from one
// goroutine (not a reactor). A Msg is not safe for concurrent use. The
// functions here allocate nothing per message except on error paths and when
// sending descriptors.
package proto
