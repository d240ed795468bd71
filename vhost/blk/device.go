package blk

import (
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"sync/atomic"

	"hyperpath/bdev"
	"hyperpath/reactor"
)

// Options configure a Device.
type Options struct {
	// Desc is the open bdev. The device uses it to get channels on the
	// reactors its queues run on; the caller keeps ownership and closes it
	// (after Remove and every queue's DetachBdev on hot remove).
	Desc *bdev.Desc
	// ReadOnly offers VIRTIO_BLK_F_RO and fails every write, discard and
	// write-zeroes request with VIRTIO_BLK_S_IOERR.
	ReadOnly bool
	// NumQueues is the num_queues field of the config space (default 1).
	NumQueues uint16
	// Serial is the GET_ID string, at most IDBytes long (default: the bdev
	// name, cut to IDBytes).
	Serial string
	// Logger receives rare data-path errors (broken rings, malformed
	// requests; rate-limited per queue). nil means slog.Default().
	Logger *slog.Logger
}

// Coalescing defaults, as SPDK's (SPDK_VHOST_COALESCING_DELAY_BASE_US,
// SPDK_VHOST_VQ_IOPS_COALESCING_THRESHOLD).
const (
	DefaultCoalescingDelayUs = 0
	DefaultIOPSThreshold     = 60000
	// statsIntervalMs is how often a queue re-derives its interrupt delay
	// from its completion rate (SPDK_VHOST_STATS_CHECK_INTERVAL_MS).
	statsIntervalMs = 10
)

// ErrCoalescing is wrapped by SetCoalescing validation errors.
var ErrCoalescing = errors.New("invalid interrupt coalescing setting")

// Device is one virtio-blk device over a bdev: the immutable geometry,
// feature set and config space shared by every session and queue of a
// controller, plus two atomics (hot-remove flag, coalescing settings) that
// queues read without locks.
type Device struct {
	desc      *bdev.Desc
	name      string
	blockSize uint32
	numBlocks uint64
	// blockShift converts 512-byte sectors to blocks: a block holds
	// 1<<blockShift sectors.
	blockShift uint
	capacity   uint64 // 512-byte sectors
	readOnly   bool
	flush      bool // the bdev supports IOFlush
	discard    bool
	wzeroes    bool
	features   uint64
	serial     [IDBytes]byte
	config     [ConfigSize]byte
	log        *slog.Logger

	removed    atomic.Bool
	coalescing atomic.Uint64 // delay_base_us<<32 | iops_threshold
}

// New checks the bdev's geometry and builds the device.
func New(o Options) (*Device, error) {
	if o.Desc == nil {
		return nil, fmt.Errorf("virtio-blk: no bdev descriptor")
	}
	b := o.Desc.Bdev()
	info := b.Info()
	bs := info.BlockSize
	if bs < SectorSize || bs&(bs-1) != 0 {
		return nil, fmt.Errorf("virtio-blk over %q: block size %d is not a power of two >= 512", info.Name, bs)
	}
	if !o.ReadOnly && !o.Desc.Writable() {
		return nil, fmt.Errorf("virtio-blk over %q: writable device on a read-only descriptor", info.Name)
	}
	shift := uint(bits.TrailingZeros32(bs / SectorSize))
	if info.NumBlocks == 0 || info.NumBlocks > (^uint64(0))>>shift {
		return nil, fmt.Errorf("virtio-blk over %q: %d blocks cannot be expressed in sectors", info.Name, info.NumBlocks)
	}
	if o.NumQueues == 0 {
		o.NumQueues = 1
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	dev := b.Device()
	d := &Device{
		desc: o.Desc, name: info.Name, blockSize: bs, numBlocks: info.NumBlocks,
		blockShift: shift, capacity: info.NumBlocks << shift, readOnly: o.ReadOnly,
		flush:   dev.Supports(bdev.IOFlush),
		discard: !o.ReadOnly && dev.Supports(bdev.IOUnmap),
		wzeroes: !o.ReadOnly && dev.Supports(bdev.IOWriteZeroes),
		log:     o.Logger,
	}
	serial := o.Serial
	if serial == "" {
		serial = info.Name
	}
	copy(d.serial[:], serial)

	d.features = FeatureSizeMax | FeatureSegMax | FeatureBlkSize | FeatureTopology | FeatureMQ
	if d.readOnly {
		d.features |= FeatureRO
	}
	if d.flush {
		d.features |= FeatureFlush
	}
	if d.discard {
		d.features |= FeatureDiscard
	}
	if d.wzeroes {
		d.features |= FeatureWriteZeroes
	}
	align := uint32(1) << shift // sectors per block
	cfg := Config{
		Capacity: d.capacity, SizeMax: SizeMax, SegMax: MaxDataSegs, BlkSize: bs,
		MinIOSize: 1, NumQueues: o.NumQueues,
	}
	if info.OptimalIOBoundary != 0 && info.OptimalIOBoundary <= 1<<31 {
		cfg.OptIOSize = uint32(info.OptimalIOBoundary)
	}
	if d.discard {
		cfg.MaxDiscardSectors = MaxRangeSectors
		cfg.MaxDiscardSeg = MaxRangeSegs
		cfg.DiscardSectorAlignment = align
	}
	if d.wzeroes {
		cfg.MaxWriteZeroesSectors = MaxRangeSectors
		cfg.MaxWriteZeroesSeg = MaxRangeSegs
		if d.discard {
			cfg.WriteZeroesMayUnmap = 1
		}
	}
	cfg.Encode(d.config[:])
	d.coalescing.Store(uint64(DefaultCoalescingDelayUs)<<32 | DefaultIOPSThreshold)
	return d, nil
}

// Name returns the bdev's name.
func (d *Device) Name() string { return d.name }

// Features returns the device-specific feature bits it offers (the session
// adds the ring and transport bits).
func (d *Device) Features() uint64 { return d.features }

// ReadOnly reports whether the device refuses writes.
func (d *Device) ReadOnly() bool { return d.readOnly }

// CapacitySectors is the size in 512-byte sectors.
func (d *Device) CapacitySectors() uint64 { return d.capacity }

// Config returns the config space as the device presents it.
func (d *Device) Config() Config {
	c, _ := DecodeConfig(d.config[:])
	return c
}

// ReadConfig copies size bytes of the config space from offset into dst
// (VHOST_USER_GET_CONFIG). Bytes past the structure read as zero; an access
// beyond 256 bytes is an error.
func (d *Device) ReadConfig(dst []byte, offset uint32) error {
	end := uint64(offset) + uint64(len(dst))
	if end > 256 {
		return fmt.Errorf("virtio-blk config read of %d bytes at %d: beyond the 256-byte config space", len(dst), offset)
	}
	clear(dst)
	if offset < ConfigSize {
		copy(dst, d.config[offset:])
	}
	return nil
}

// SetCoalescing sets interrupt coalescing (vhost_controller_set_coalescing):
// a queue whose completion rate exceeds iopsThreshold delays its used-buffer
// notifications by delayBaseUs*(rate-threshold)/threshold microseconds,
// measured over 10 ms windows; delayBaseUs 0 turns coalescing off. Queues
// pick the new values up at their next window.
func (d *Device) SetCoalescing(delayBaseUs, iopsThreshold uint32) error {
	// As SPDK: the delay in clock ticks must fit 32 bits.
	if uint64(delayBaseUs)*reactor.TickRate()/1_000_000 >= 1<<32 {
		return fmt.Errorf("delay_base_us %d overflows 32 bits of clock ticks: %w", delayBaseUs, ErrCoalescing)
	}
	if uint64(iopsThreshold)*statsIntervalMs/1000 == 0 {
		return fmt.Errorf("iops_threshold %d is below the minimum of %d: %w", iopsThreshold, 1000/statsIntervalMs, ErrCoalescing)
	}
	d.coalescing.Store(uint64(delayBaseUs)<<32 | uint64(iopsThreshold))
	return nil
}

// Coalescing returns the current settings.
func (d *Device) Coalescing() (delayBaseUs, iopsThreshold uint32) {
	v := d.coalescing.Load()
	return uint32(v >> 32), uint32(v)
}

// Remove marks the bdev as gone (hot remove): from now on queues fail new
// requests with VIRTIO_BLK_S_IOERR and queues started later get no channel.
// The caller then runs DetachBdev on every running queue and closes the
// descriptor once they report drained.
func (d *Device) Remove() { d.removed.Store(true) }

// Removed reports whether Remove was called.
func (d *Device) Removed() bool { return d.removed.Load() }
