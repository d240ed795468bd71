package virtio

import (
	"hyperpath/bdev"
)

// ModuleName is the module name virtio-blk bdevs carry (bdev.Info.Module),
// as SPDK's bdev_get_bdevs reports it.
const ModuleName = "virtio_blk"

// ProductName is SPDK's product_name for virtio-blk bdevs.
const ProductName = "VirtioBlk Disk"

// Module is the virtio bdev module as the registry knows it.
type Module struct{}

var _ bdev.Module = Module{}

// Name implements bdev.Module.
func (Module) Name() string { return ModuleName }

// BufferAllocator is implemented by devices that can hand out IO buffers
// living in memory the device shares with its back end, so that IO on
// them moves no payload byte in this process. A *Disk implements it.
//
// A bdev user (bdevperf, a stacked module) discovers it by type assertion
// on bdev.Device and falls back to its own buffers when it is absent or
// AllocBuffer returns nil:
//
//	type bufferAllocator interface {
//		AllocBuffer(size int) []byte
//		FreeBuffer(b []byte)
//	}
//	if ba, ok := b.Device().(bufferAllocator); ok { buf = ba.AllocBuffer(n) }
//
// AllocBuffer returns a zeroed, page-aligned slice of exactly size bytes
// (capacity == length), or nil when the device's buffer area has no room
// (or the device is being destroyed). FreeBuffer gives a buffer back; it
// ignores slices that AllocBuffer did not return. Both are control plane
// (they take a mutex): call them when setting up a job, not per IO. A
// buffer stays valid until the device is destroyed, which happens only
// after the last descriptor of the bdev is closed: keep the descriptor
// open while the buffers are in use. Any reactor may submit IO on them.
type BufferAllocator interface {
	AllocBuffer(size int) []byte
	FreeBuffer(b []byte)
}
