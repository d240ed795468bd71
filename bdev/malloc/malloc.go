// Package malloc is the RAM bdev module: each device is a region of the
// hugepage pool (internal/hugemem). The memcpy between an IO's buffers and
// that RAM is the device itself.
//
// Threading: the Disk's memory is shared by every reactor's channel without
// locks; as with a real disk, concurrent IOs to overlapping blocks have no
// defined order. Channels complete IO inline from Submit; the generic layer
// delivers the completion out of line on the same reactor.
package malloc

import (
	"fmt"

	"hyperpath/bdev"
	"hyperpath/internal/hugemem"
	"hyperpath/reactor"
)

// ModuleName is the module's name in bdev listings.
const ModuleName = "malloc"

// Module registers malloc bdevs.
type Module struct{}

// Name implements bdev.Module.
func (Module) Name() string { return ModuleName }

// Options configure a malloc bdev (bdev_malloc_create's params).
type Options struct {
	Name              string
	UUID              bdev.UUID
	BlockSize         uint32
	NumBlocks         uint64
	PhysicalBlockSize uint32
	OptimalIOBoundary uint32
	// Memory selects hugepages or small pages (default: prefer huge).
	Memory hugemem.Policy
}

// MaxSize bounds a malloc bdev (RAM is finite; a typo must not OOM us).
const MaxSize = 1 << 40

// Disk is a RAM block device.
type Disk struct {
	info bdev.Info
	opts Options
	mem  *hugemem.Region
	data []byte
}

var (
	_ bdev.Device       = (*Disk)(nil)
	_ bdev.ConfigWriter = (*Disk)(nil)
)

// New validates opts and allocates the RAM.
func New(o Options) (*Disk, error) {
	if o.Name == "" {
		return nil, fmt.Errorf("malloc bdev: name is required")
	}
	if o.BlockSize < 512 || o.BlockSize%512 != 0 {
		return nil, fmt.Errorf("malloc bdev %q: block_size %d must be a multiple of 512", o.Name, o.BlockSize)
	}
	if o.NumBlocks == 0 || o.NumBlocks > MaxSize/uint64(o.BlockSize) {
		return nil, fmt.Errorf("malloc bdev %q: num_blocks %d gives a size outside 1 block..1 TiB", o.Name, o.NumBlocks)
	}
	if o.UUID.IsZero() {
		o.UUID = bdev.NewUUID()
	}
	size := int(o.NumBlocks * uint64(o.BlockSize))
	mem, err := hugemem.Alloc("malloc-"+o.Name, size, o.Memory)
	if err != nil {
		return nil, fmt.Errorf("malloc bdev %q: %w", o.Name, err)
	}
	d := &Disk{opts: o, mem: mem, data: mem.Mem[:size]}
	d.info = bdev.Info{
		Name: o.Name, ProductName: "Malloc disk", UUID: o.UUID,
		BlockSize: o.BlockSize, NumBlocks: o.NumBlocks, Module: ModuleName,
		OptimalIOBoundary: uint64(o.OptimalIOBoundary), SplitOnBoundary: o.OptimalIOBoundary != 0,
	}
	return d, nil
}

// Info implements bdev.Device.
func (d *Disk) Info() *bdev.Info { return &d.info }

// Supports implements bdev.Device.
func (d *Disk) Supports(t bdev.IOType) bool {
	switch t {
	case bdev.IORead, bdev.IOWrite, bdev.IOFlush, bdev.IOUnmap, bdev.IOWriteZeroes, bdev.IOReset, bdev.IOCompare:
		return true
	}
	return false
}

// NewChannel implements bdev.Device.
func (d *Disk) NewChannel(*reactor.Reactor) (bdev.Channel, error) { return &channel{d: d}, nil }

// Destroy implements bdev.Device.
func (d *Disk) Destroy() error { return d.mem.Free() }

// Memory returns the RAM (for tests that inspect what was written).
func (d *Disk) Memory() []byte { return d.data }

// ConfigEntry implements bdev.ConfigWriter.
func (d *Disk) ConfigEntry() (string, any) {
	return "bdev_malloc_create", bdev.Obj(
		"name", d.info.Name, "num_blocks", d.info.NumBlocks, "block_size", d.info.BlockSize,
		"physical_block_size", d.opts.PhysicalBlockSize, "uuid", d.info.UUID.String(),
		"optimal_io_boundary", d.opts.OptimalIOBoundary, "md_size", 0, "dif_type", 0,
		"dif_is_head_of_md", false, "dif_pi_format", 0,
	)
}

type channel struct{ d *Disk }

// Submit implements bdev.Channel.
func (c *channel) Submit(io *bdev.IO) {
	bs := uint64(c.d.info.BlockSize)
	off := io.OffsetBlocks * bs
	n := io.NumBlocks * bs
	switch io.Type {
	case bdev.IORead:
		bdev.CopyToIovs(io.Iovs, 0, c.d.data[off:off+n])
	case bdev.IOWrite:
		bdev.CopyFromIovs(c.d.data[off:off+n], io.Iovs, 0)
	case bdev.IOUnmap, bdev.IOWriteZeroes:
		clear(c.d.data[off : off+n])
	case bdev.IOCompare:
		if !equalIovs(c.d.data[off:off+n], io.Iovs) {
			io.Complete(bdev.StatusMiscompare)
			return
		}
	case bdev.IOFlush, bdev.IOReset:
	}
	io.Complete(bdev.StatusSuccess)
}

func equalIovs(data []byte, iovs [][]byte) bool {
	for _, v := range iovs {
		if string(data[:len(v)]) != string(v) {
			return false
		}
		data = data[len(v):]
	}
	return true
}

// Close implements bdev.Channel.
func (c *channel) Close() {}
