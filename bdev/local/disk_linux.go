package local

import (
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"hyperpath/bdev"
	"hyperpath/reactor"
)

// Disk is a file or block device served through io_uring.
type Disk struct {
	info bdev.Info
	opts Options

	// fd is the primary descriptor: O_DIRECT when direct. bufFd is a
	// buffered twin for misaligned IO when direct, else -1. They are
	// registered with every channel's ring as fixed files 0 and 1.
	fd, bufFd int
	direct    bool
	blockDev  bool
	// memAlign is the O_DIRECT alignment of buffer addresses and lengths.
	memAlign uint64
	// detectedBS is the block size the file imposes (0: none).
	detectedBS uint32
	bsOverride bool
	sizeBytes  uint64

	// zeroMode is how write_zeroes is done now (zeroRange, zeroPunch,
	// zeroWrite); it only moves forward, when the file system refuses one.
	zeroMode atomic.Int32
	zeroBuf  []byte // read-only zeroes, shared by all channels

	// resetsPending counts parked resets on all channels; while it is
	// non-zero every channel publishes its low-water mark each poll.
	resetsPending atomic.Int32
	// submitErrors counts io_uring_enter failures other than EAGAIN/EBUSY.
	submitErrors atomic.Uint64

	log *slog.Logger

	// chans is the current set of channels (copy on write under mu), read
	// by resets on any reactor.
	mu     sync.Mutex
	chans  atomic.Pointer[[]*channel]
	closed bool
}

var (
	_ bdev.Device         = (*Disk)(nil)
	_ bdev.ConfigWriter   = (*Disk)(nil)
	_ bdev.DriverSpecific = (*Disk)(nil)
)

const (
	zeroRange int32 = iota
	zeroPunch
	zeroWrite
)

// New validates o, opens and probes the file and returns the Disk (not yet
// registered). Errors wrap the syscall.Errno SPDK would report (ENOENT for
// a missing file, EISDIR for a directory, EINVAL for a bad block size or a
// file smaller than one block, ENOTSUP for NoWait on a file).
func New(o Options) (*Disk, error) {
	if o.Name == "" {
		return nil, fmt.Errorf("local bdev: name is required: %w", unix.EINVAL)
	}
	if o.Filename == "" {
		return nil, fmt.Errorf("local bdev %q: filename is required: %w", o.Name, unix.EINVAL)
	}
	if o.BlockSize != 0 && (o.BlockSize < 512 || bits.OnesCount32(o.BlockSize) != 1) {
		return nil, fmt.Errorf("local bdev %q: block_size %d must be a power of two of at least 512: %w",
			o.Name, o.BlockSize, unix.EINVAL)
	}
	if o.QueueDepth == 0 {
		o.QueueDepth = DefaultQueueDepth
	}
	if o.QueueDepth > MaxQueueDepth {
		return nil, fmt.Errorf("local bdev %q: queue depth %d above %d: %w", o.Name, o.QueueDepth, MaxQueueDepth, unix.EINVAL)
	}
	if o.UUID.IsZero() {
		o.UUID = bdev.NewUUID()
	}
	d := &Disk{opts: o, fd: -1, bufFd: -1, log: o.Logger}
	if d.log == nil {
		d.log = slog.Default()
	}
	if err := d.open(); err != nil {
		d.closeFiles()
		return nil, err
	}
	bs := d.opts.BlockSize
	d.info = bdev.Info{
		Name: o.Name, ProductName: o.Flavor.ProductName(), UUID: o.UUID,
		BlockSize: bs, NumBlocks: d.sizeBytes / uint64(bs),
		WriteCache: true, Module: o.Flavor.BdevModule(),
	}
	empty := []*channel{}
	d.chans.Store(&empty)
	return d, nil
}

func (d *Disk) errorf(err error, format string, args ...any) error {
	return fmt.Errorf("local bdev %q (%s): %s: %w", d.opts.Name, d.opts.Filename, fmt.Sprintf(format, args...), err)
}

// open opens the file(s), probes size and alignment and settles the block
// size into d.opts.BlockSize.
func (d *Disk) open() error {
	o := &d.opts
	flags := unix.O_CLOEXEC | unix.O_RDWR
	if o.ReadOnly {
		flags = unix.O_CLOEXEC | unix.O_RDONLY
	}
	var err error
	if !o.Buffered {
		d.fd, err = unix.Open(o.Filename, flags|unix.O_DIRECT, 0)
		d.direct = err == nil
	}
	refused := errors.Is(err, unix.EINVAL)
	if !d.direct {
		d.fd, err = unix.Open(o.Filename, flags, 0)
		if err != nil {
			d.fd = -1
			return d.errorf(err, "open")
		}
	}

	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil {
		return d.errorf(err, "fstat")
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return d.errorf(unix.EISDIR, "not a file or block device")
	case unix.S_IFBLK:
		d.blockDev = true
		size, err := unix.IoctlGetUint64(d.fd, unix.BLKGETSIZE64)
		if err != nil {
			return d.errorf(err, "BLKGETSIZE64")
		}
		d.sizeBytes = size
		lbs, err := unix.IoctlGetInt(d.fd, unix.BLKSSZGET)
		if err != nil {
			return d.errorf(err, "BLKSSZGET")
		}
		d.detectedBS = uint32(lbs)
		d.memAlign = uint64(lbs)
	case unix.S_IFREG:
		d.sizeBytes = uint64(st.Size)
	default:
		return d.errorf(unix.EINVAL, "not a regular file or block device (mode %#o)", st.Mode)
	}
	if refused {
		d.log.Info("local bdev: file system refuses O_DIRECT; using buffered IO", "bdev", o.Name, "file", o.Filename)
	}
	if o.NoWait && !d.blockDev {
		return d.errorf(unix.ENOTSUP, "nowait needs a block device")
	}

	if d.direct {
		var sx unix.Statx_t
		err := unix.Statx(d.fd, "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &sx)
		switch {
		case err == nil && sx.Mask&unix.STATX_DIOALIGN != 0 && sx.Dio_offset_align == 0:
			// The file system accepted the flag but does no direct IO
			// on this file.
			d.log.Info("local bdev: no direct IO on this file; using buffered IO", "bdev", o.Name, "file", o.Filename)
			unix.Close(d.fd)
			d.direct = false
			if d.fd, err = unix.Open(o.Filename, flags, 0); err != nil {
				d.fd = -1
				return d.errorf(err, "open")
			}
		case err == nil && sx.Mask&unix.STATX_DIOALIGN != 0:
			if !d.blockDev {
				d.detectedBS = sx.Dio_offset_align
			}
			d.memAlign = uint64(sx.Dio_mem_align)
		}
		if d.direct && d.memAlign == 0 {
			d.memAlign = 512
		}
	}
	if d.direct && d.detectedBS == 0 {
		d.detectedBS = 512
	}

	switch {
	case o.BlockSize == 0:
		o.BlockSize = max(d.detectedBS, 512)
	case o.BlockSize < d.detectedBS:
		return d.errorf(unix.EINVAL, "block_size %d is smaller than the device's %d", o.BlockSize, d.detectedBS)
	default:
		d.bsOverride = true
	}
	if o.BlockSize < 512 || bits.OnesCount32(o.BlockSize) != 1 {
		return d.errorf(unix.EINVAL, "detected block size %d is not a power of two of at least 512", o.BlockSize)
	}
	if d.sizeBytes < uint64(o.BlockSize) {
		return d.errorf(unix.EINVAL, "size %d bytes is smaller than one block of %d", d.sizeBytes, o.BlockSize)
	}
	if d.sizeBytes%uint64(o.BlockSize) != 0 {
		return d.errorf(unix.EINVAL, "size %d bytes is not a multiple of the block size %d", d.sizeBytes, o.BlockSize)
	}

	if d.direct {
		if d.bufFd, err = unix.Open(o.Filename, flags, 0); err != nil {
			d.bufFd = -1
			return d.errorf(err, "open buffered twin")
		}
	}
	if o.Fallocate && !o.ReadOnly {
		// MAP_PRIVATE|MAP_ANONYMOUS pages read as zeroes and are never
		// written (PROT_READ): all channels may write from them at once.
		if d.zeroBuf, err = unix.Mmap(-1, 0, zeroBufSize, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS); err != nil {
			return d.errorf(err, "mmap zero buffer")
		}
	}
	return nil
}

func (d *Disk) closeFiles() {
	if d.fd >= 0 {
		unix.Close(d.fd)
		d.fd = -1
	}
	if d.bufFd >= 0 {
		unix.Close(d.bufFd)
		d.bufFd = -1
	}
	if d.zeroBuf != nil {
		unix.Munmap(d.zeroBuf)
		d.zeroBuf = nil
	}
}

// Info implements bdev.Device.
func (d *Disk) Info() *bdev.Info { return &d.info }

// Supports implements bdev.Device. Writes are "supported" on a read-only
// disk and fail, as in SPDK's aio module.
func (d *Disk) Supports(t bdev.IOType) bool {
	switch t {
	case bdev.IORead, bdev.IOWrite, bdev.IOFlush, bdev.IOReset:
		return true
	case bdev.IOUnmap, bdev.IOWriteZeroes:
		return d.opts.Fallocate
	}
	return false
}

// Direct reports whether the file is open with O_DIRECT.
func (d *Disk) Direct() bool { return d.direct }

// Filename returns the path the Disk was opened with.
func (d *Disk) Filename() string { return d.opts.Filename }

// Flavor returns the SPDK module the Disk presents itself as.
func (d *Disk) Flavor() Flavor { return d.opts.Flavor }

// Destroy implements bdev.Device: it closes the files. Every channel has
// been closed by then.
func (d *Disk) Destroy() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	d.closeFiles()
	return nil
}

// DriverSpecific implements bdev.DriverSpecific: SPDK's object for the
// flavor, plus "o_direct".
func (d *Disk) DriverSpecific() any {
	if d.opts.Flavor == FlavorAIO {
		return bdev.Obj("aio", bdev.Obj(
			"filename", d.opts.Filename,
			"block_size_override", d.bsOverride,
			"readonly", d.opts.ReadOnly,
			"fallocate", d.opts.Fallocate,
			"nowait", d.opts.NoWait,
			"o_direct", d.direct,
		))
	}
	return bdev.Obj("uring", bdev.Obj("filename", d.opts.Filename, "o_direct", d.direct))
}

// ConfigEntry implements bdev.ConfigWriter with SPDK's params and key order.
func (d *Disk) ConfigEntry() (string, any) {
	if d.opts.Flavor == FlavorAIO {
		p := bdev.Obj("name", d.info.Name)
		if d.bsOverride {
			p = append(p, bdev.KV{Key: "block_size", Value: d.info.BlockSize})
		}
		p = append(p,
			bdev.KV{Key: "filename", Value: d.opts.Filename},
			bdev.KV{Key: "readonly", Value: d.opts.ReadOnly},
			bdev.KV{Key: "fallocate", Value: d.opts.Fallocate},
			bdev.KV{Key: "uuid", Value: d.info.UUID.String()},
			bdev.KV{Key: "nowait", Value: d.opts.NoWait},
		)
		return "bdev_aio_create", p
	}
	return "bdev_uring_create", bdev.Obj(
		"name", d.info.Name, "block_size", d.info.BlockSize,
		"filename", d.opts.Filename, "uuid", d.info.UUID.String(),
	)
}

// NewChannel implements bdev.Device. It runs on r's OS thread, which then
// owns the channel's ring.
func (d *Disk) NewChannel(r *reactor.Reactor) (bdev.Channel, error) {
	c, err := newChannel(d, r)
	if err != nil {
		return nil, d.errorf(err, "channel on %s", r.Name())
	}
	d.mu.Lock()
	old := *d.chans.Load()
	next := make([]*channel, len(old), len(old)+1)
	copy(next, old)
	next = append(next, c)
	d.chans.Store(&next)
	d.mu.Unlock()
	return c, nil
}

func (d *Disk) dropChannel(c *channel) {
	d.mu.Lock()
	old := *d.chans.Load()
	next := make([]*channel, 0, len(old))
	for _, o := range old {
		if o != c {
			next = append(next, o)
		}
	}
	d.chans.Store(&next)
	d.mu.Unlock()
}
