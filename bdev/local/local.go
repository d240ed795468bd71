package local

import (
	"log/slog"

	"hyperpath/bdev"
)

// ModuleName is the module's name in the registry.
const ModuleName = "local"

// Module is the local bdev module as the registry knows it.
type Module struct{}

var _ bdev.Module = Module{}

// Name implements bdev.Module.
func (Module) Name() string { return ModuleName }

// Flavor selects which SPDK module a Disk presents itself as.
type Flavor uint8

const (
	// FlavorURING is SPDK's uring bdev (bdev_uring_create): product name
	// "URING bdev", Info.Module "uring".
	FlavorURING Flavor = iota
	// FlavorAIO is SPDK's aio bdev (bdev_aio_create): product name
	// "AIO disk", Info.Module "aio".
	FlavorAIO
)

// BdevModule returns the module name the flavor's bdevs carry in
// bdev.Info.Module (and that bdev_*_delete checks).
func (f Flavor) BdevModule() string {
	if f == FlavorAIO {
		return "aio"
	}
	return "uring"
}

// ProductName returns SPDK's product_name for the flavor.
func (f Flavor) ProductName() string {
	if f == FlavorAIO {
		return "AIO disk"
	}
	return "URING bdev"
}

// Defaults and limits.
const (
	// DefaultQueueDepth is the number of IOs a channel keeps in flight
	// (its task count and SQ size).
	DefaultQueueDepth = 512
	// MaxQueueDepth bounds Options.QueueDepth.
	MaxQueueDepth = 4096
	// MaxIovs is the most iovecs one read or write may have (the kernel's
	// UIO_MAXIOV); larger IOs complete with StatusInvalid.
	MaxIovs = 1024
	// zeroBufSize is the size of the shared zero page run that
	// write_zeroes falls back to writing from.
	zeroBufSize = 1 << 20
)

// Options configure a Disk (bdev_aio_create's and bdev_uring_create's
// params plus our own).
type Options struct {
	Name     string
	Filename string
	// BlockSize in bytes; 0 autodetects (see the package doc).
	BlockSize uint32
	// ReadOnly opens the file read-only; writes, unmaps and write-zeroes
	// then fail.
	ReadOnly bool
	// Fallocate enables unmap and write_zeroes (SPDK aio's "fallocate").
	Fallocate bool
	// NoWait sets RWF_NOWAIT on reads and writes (block devices only);
	// IOs that would block complete with StatusNoMem and are retried.
	NoWait bool
	UUID   bdev.UUID
	// Flavor picks the SPDK module the Disk looks like (default uring).
	Flavor Flavor
	// Buffered skips O_DIRECT.
	Buffered bool
	// QueueDepth is the per-channel number of IOs in flight (default
	// DefaultQueueDepth, at most MaxQueueDepth).
	QueueDepth uint32
	// Logger receives the control-plane notes (nil: slog.Default()).
	Logger *slog.Logger
}
