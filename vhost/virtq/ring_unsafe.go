package virtq

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"
)

// This file and memory_unsafe.go hold the only unsafe code of the
// package: 32-bit atomic access to ring fields in shared memory, and
// address arithmetic on slices.
//
// Ring indices are 16-bit fields written by another process. Go has no
// 16-bit atomics, so a 16-bit field is read with an atomic load of the
// aligned 32-bit word holding it, and written either with an atomic store
// of a whole word this side owns entirely (used.flags+used.idx on the
// device, avail.flags+avail.idx on the driver) or with a compare-and-swap
// that leaves the other half as it finds it (avail_event, used_event).
// Go's atomics are sequentially consistent, which gives the barriers of
// VIRTIO v1.2 2.7.13: descriptor and ring entries written before an index
// store are visible to a reader that sees the index, and an index store is
// ordered before the following load of the other side's event index or
// flags.
//
// Preconditions, established when a ring is set up (ringWindow): every
// word offset passed here is 4-aligned in host memory and lies inside the
// slice.

func word(b []byte, off int) *uint32 {
	_ = b[off+3]
	return (*uint32)(unsafe.Pointer(&b[off]))
}

// load16 atomically loads the little-endian 16-bit field at b[off]
// (off even) through the word holding it.
func load16(b []byte, off int) uint16 {
	var t [4]byte
	binary.NativeEndian.PutUint32(t[:], atomic.LoadUint32(word(b, off&^3)))
	return binary.LittleEndian.Uint16(t[off&2:])
}

// store16x2 atomically stores lo at b[off] and hi at b[off+2]
// (off 4-aligned): one word this side owns entirely.
func store16x2(b []byte, off int, lo, hi uint16) {
	var t [4]byte
	binary.LittleEndian.PutUint16(t[0:], lo)
	binary.LittleEndian.PutUint16(t[2:], hi)
	atomic.StoreUint32(word(b, off), binary.NativeEndian.Uint32(t[:]))
}

// casTries bounds store16's retries: the other half of the word belongs to
// the peer, which can only make us retry by writing it continuously.
const casTries = 64

// store16 atomically stores v at b[off] (off even) without disturbing the
// other half of the word. It reports false if the peer kept changing that
// half and the store did not happen.
func store16(b []byte, off int, v uint16) bool {
	p := word(b, off&^3)
	for range casTries {
		old := atomic.LoadUint32(p)
		var t [4]byte
		binary.NativeEndian.PutUint32(t[:], old)
		binary.LittleEndian.PutUint16(t[off&2:], v)
		if atomic.CompareAndSwapUint32(p, old, binary.NativeEndian.Uint32(t[:])) {
			return true
		}
	}
	return false
}
