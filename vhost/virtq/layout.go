package virtq

import "fmt"

// Split virtqueue constants (VIRTIO v1.2, 2.7).
const (
	// MaxQueueSize is the largest split queue (2.7: "Queue Size ... maximum
	// 32768"). Sizes are powers of two.
	MaxQueueSize = 32768

	DescSize   = 16 // one descriptor: addr u64, len u32, flags u16, next u16
	DescAlign  = 16 // 2.7 table: descriptor table alignment
	AvailAlign = 2  // available ring alignment
	UsedAlign  = 4  // used ring alignment

	// Descriptor flags (2.7.5).
	DescFNext     = 1 // the buffer continues in the descriptor named by next
	DescFWrite    = 2 // the device writes this buffer (else it reads it)
	DescFIndirect = 4 // the buffer is a table of descriptors (2.7.5.3)

	// AvailFNoInterrupt: the driver asks for no used buffer notifications
	// (2.7.7); ignored by the device when EVENT_IDX is negotiated.
	AvailFNoInterrupt = 1
	// UsedFNoNotify: the device asks for no available buffer notifications
	// (2.7.10); ignored by the driver when EVENT_IDX is negotiated.
	UsedFNoNotify = 1
)

// Feature bits that concern the ring (VIRTIO v1.2, 6).
const (
	FeatureIndirectDesc uint64 = 1 << 28 // VIRTIO_F_INDIRECT_DESC
	FeatureEventIdx     uint64 = 1 << 29 // VIRTIO_F_EVENT_IDX
	FeatureVersion1     uint64 = 1 << 32 // VIRTIO_F_VERSION_1
	FeatureRingPacked   uint64 = 1 << 34 // VIRTIO_F_RING_PACKED (not supported here)
)

// Layout of the three parts of a split ring (2.7):
//
//	descriptor table, 16*N bytes, 16-aligned:
//	  0:addr u64  8:len u32  12:flags u16  14:next u16      (per descriptor)
//	available ring, 6+2*N bytes, 2-aligned (written by the driver):
//	  0:flags u16  2:idx u16  4:ring[N] u16  4+2N:used_event u16
//	used ring, 6+8*N bytes, 4-aligned (written by the device):
//	  0:flags u16  2:idx u16  4:ring[N]{id u32, len u32}  4+8N:avail_event u16
//
// All ring fields are little-endian. idx fields are free-running 16-bit
// counters; entry i lives in slot i mod N. used_event and avail_event exist
// (and are read) only with VIRTIO_F_EVENT_IDX.

// DescTableSize is the size of the descriptor table of an n-entry queue.
func DescTableSize(n uint16) uint64 { return DescSize * uint64(n) }

// AvailRingSize is the size of the available ring of an n-entry queue.
func AvailRingSize(n uint16) uint64 { return 6 + 2*uint64(n) }

// UsedRingSize is the size of the used ring of an n-entry queue.
func UsedRingSize(n uint16) uint64 { return 6 + 8*uint64(n) }

// ValidSize reports whether n is a valid split queue size: a power of two
// from 1 to MaxQueueSize.
func ValidSize(n uint32) bool { return n != 0 && n <= MaxQueueSize && n&(n-1) == 0 }

// Layout places the three parts of a ring in one contiguous block, for a
// driver that allocates its own rings.
type Layout struct {
	Size     uint16 // queue size N
	DescOff  uint64 // offset of the descriptor table (0)
	AvailOff uint64 // offset of the available ring
	UsedOff  uint64 // offset of the used ring
	Len      uint64 // bytes the block needs
}

// NewLayout lays out an n-entry ring: the descriptor table at 0, the
// available ring right after it, and the used ring at the next multiple of
// usedAlign (4 at least; 4096 gives the legacy layout).
func NewLayout(n uint16, usedAlign uint64) (Layout, error) {
	if !ValidSize(uint32(n)) {
		return Layout{}, fmt.Errorf("virtq: queue size %d is not a power of two in [1, %d]", n, MaxQueueSize)
	}
	if usedAlign < UsedAlign || usedAlign&(usedAlign-1) != 0 {
		return Layout{}, fmt.Errorf("virtq: used ring alignment %d is not a power of two >= %d", usedAlign, UsedAlign)
	}
	l := Layout{Size: n, AvailOff: DescTableSize(n)}
	l.UsedOff = (l.AvailOff + AvailRingSize(n) + usedAlign - 1) &^ (usedAlign - 1)
	l.Len = l.UsedOff + UsedRingSize(n)
	return l, nil
}

// NeedEvent is the event index rule of VIRTIO v1.2 2.7.7.2 / 2.7.10.2: after
// moving an index from old to new, the other side asked to be notified iff
// its event index lies in [old, new) (all mod 2^16).
func NeedEvent(event, new, old uint16) bool {
	return new-event-1 < new-old
}
