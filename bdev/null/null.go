// Package null is the null bdev module: a device that keeps no data.
// Writes are dropped and reads return the buffers untouched (SPDK's
// bdev_null). It measures the cost of the layers above a device.
//
// Threading: a Disk is shared by all reactors and holds no mutable state;
// each reactor's channel completes IO inline from Submit, which the generic
// layer turns into an out-of-line completion on the same reactor.
package null

import (
	"fmt"

	"hyperpath/bdev"
	"hyperpath/reactor"
)

// ModuleName is the module's name in bdev listings.
const ModuleName = "null"

// Module registers null bdevs.
type Module struct{}

// Name implements bdev.Module.
func (Module) Name() string { return ModuleName }

// Options configure a null bdev (bdev_null_create's params).
type Options struct {
	Name              string
	UUID              bdev.UUID
	BlockSize         uint32
	NumBlocks         uint64
	PhysicalBlockSize uint32
}

// Disk is a null block device.
type Disk struct {
	info bdev.Info
	opts Options
}

var (
	_ bdev.Device       = (*Disk)(nil)
	_ bdev.ConfigWriter = (*Disk)(nil)
)

// New validates opts and returns the device (not yet registered).
func New(o Options) (*Disk, error) {
	if o.Name == "" {
		return nil, fmt.Errorf("null bdev: name is required")
	}
	if o.BlockSize < 512 || o.BlockSize%512 != 0 {
		return nil, fmt.Errorf("null bdev %q: block_size %d must be a multiple of 512", o.Name, o.BlockSize)
	}
	if o.NumBlocks == 0 {
		return nil, fmt.Errorf("null bdev %q: num_blocks must be positive", o.Name)
	}
	if o.UUID.IsZero() {
		o.UUID = bdev.NewUUID()
	}
	return &Disk{opts: o, info: bdev.Info{
		Name: o.Name, ProductName: "Null disk", UUID: o.UUID,
		BlockSize: o.BlockSize, NumBlocks: o.NumBlocks, Module: ModuleName,
	}}, nil
}

// Info implements bdev.Device.
func (d *Disk) Info() *bdev.Info { return &d.info }

// Supports implements bdev.Device.
func (d *Disk) Supports(t bdev.IOType) bool {
	switch t {
	case bdev.IORead, bdev.IOWrite, bdev.IOFlush, bdev.IOUnmap, bdev.IOWriteZeroes, bdev.IOReset:
		return true
	}
	return false
}

// NewChannel implements bdev.Device.
func (d *Disk) NewChannel(*reactor.Reactor) (bdev.Channel, error) { return channel{}, nil }

// Destroy implements bdev.Device.
func (d *Disk) Destroy() error { return nil }

// ConfigEntry implements bdev.ConfigWriter.
func (d *Disk) ConfigEntry() (string, any) {
	return "bdev_null_create", bdev.Obj(
		"name", d.info.Name, "uuid", d.info.UUID.String(),
		"num_blocks", d.info.NumBlocks, "block_size", d.info.BlockSize,
		"physical_block_size", d.opts.PhysicalBlockSize,
		"md_size", 0, "dif_type", 0, "dif_is_head_of_md", false, "dif_pi_format", 0,
	)
}

type channel struct{}

// Submit implements bdev.Channel.
func (channel) Submit(io *bdev.IO) { io.Complete(bdev.StatusSuccess) }

// Close implements bdev.Channel.
func (channel) Close() {}
