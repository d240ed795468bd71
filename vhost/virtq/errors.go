package virtq

import "errors"

// Errors of queues and chains. They are sentinels, returned unwrapped on
// the data path so that failing a request allocates nothing; Chain records
// where a walk failed.
var (
	// ErrRing: ring addresses, size or alignment are invalid, or the ring
	// is not in guest memory (VIRTIO v1.2 2.7).
	ErrRing = errors.New("virtq: invalid ring")
	// ErrAvailIdx: the driver moved avail.idx more than Size past the
	// entries already consumed (2.7.6). The queue is broken.
	ErrAvailIdx = errors.New("virtq: avail idx ahead by more than the queue size")
	// ErrHead: an available ring entry names a descriptor >= Size.
	ErrHead = errors.New("virtq: head descriptor index out of range")
	// ErrNext: a descriptor's next field is outside its table.
	ErrNext = errors.New("virtq: next descriptor index out of range")
	// ErrChainTooLong: the walk exceeded its TTL: a loop, or a chain longer
	// than the queue size / indirect table (2.7.5.2, 2.7.5.3.1).
	ErrChainTooLong = errors.New("virtq: descriptor chain too long or looping")
	// ErrIndirectNotNegotiated: INDIRECT set without VIRTIO_F_INDIRECT_DESC.
	ErrIndirectNotNegotiated = errors.New("virtq: indirect descriptor without VIRTIO_F_INDIRECT_DESC")
	// ErrNestedIndirect: INDIRECT set inside an indirect table (2.7.5.3.1).
	ErrNestedIndirect = errors.New("virtq: nested indirect descriptor")
	// ErrIndirectNext: INDIRECT and NEXT set together (2.7.5.3.1).
	ErrIndirectNext = errors.New("virtq: indirect descriptor with NEXT")
	// ErrIndirectLen: an indirect table's length is zero, not a multiple
	// of 16, or holds more entries than the queue size.
	ErrIndirectLen = errors.New("virtq: bad indirect table length")
	// ErrIndirectAddr: an indirect table is not contiguous in guest memory.
	ErrIndirectAddr = errors.New("virtq: indirect table outside guest memory")
	// ErrReadAfterWrite: a device-readable descriptor follows a
	// device-writable one (2.7.4.2).
	ErrReadAfterWrite = errors.New("virtq: readable descriptor after writable one")
	// ErrNotOutstanding: Push with no popped request left to complete, or
	// a driver reaping an id it has not handed out.
	ErrNotOutstanding = errors.New("virtq: no such outstanding request")
	// ErrRingFull: the driver has too few free descriptors for a chain.
	ErrRingFull = errors.New("virtq: not enough free descriptors")
	// ErrUsedIdx: the device moved used.idx past the driver's requests.
	ErrUsedIdx = errors.New("virtq: used idx ahead of outstanding requests")
	// ErrInflight: the inflight region is inconsistent or too small.
	ErrInflight = errors.New("virtq: invalid inflight region")
)
