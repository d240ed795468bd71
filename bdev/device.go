package bdev

import (
	"crypto/rand"
	"errors"
	"fmt"

	"hyperpath/reactor"
)

// Info describes a block device. A module fills it once when it creates
// the device; the generic layer treats it as immutable afterwards.
type Info struct {
	Name        string
	Aliases     []string
	ProductName string // "Malloc disk", "Null disk", "URING bdev", ...
	UUID        UUID
	BlockSize   uint32
	NumBlocks   uint64
	// MaxTransferBlocks, when non-zero, makes the generic layer split
	// larger reads and writes.
	MaxTransferBlocks uint64
	// OptimalIOBoundary, when non-zero and SplitOnBoundary is set, makes
	// the generic layer split IO that crosses a multiple of it (in blocks).
	OptimalIOBoundary uint64
	SplitOnBoundary   bool
	// WriteCache reports a volatile write cache (flush is meaningful).
	WriteCache bool
	// Module is the name of the module that owns the device.
	Module string
}

// Device is what a bdev module implements (SPDK's spdk_bdev_fn_table).
type Device interface {
	// Info returns the device's description; it must not change.
	Info() *Info
	// Supports reports whether the device handles t natively. The generic
	// layer fails unsupported IO with StatusInvalid.
	Supports(t IOType) bool
	// NewChannel creates the device's per-reactor state. It runs on r,
	// and the channel is only ever used on r.
	NewChannel(r *reactor.Reactor) (Channel, error)
	// Destroy releases the device once it is unregistered and the last
	// descriptor is closed. It runs on the control plane.
	Destroy() error
}

// Channel is a device's per-reactor state (SPDK's io_channel context).
type Channel interface {
	// Submit starts io. The module completes it with io.Complete, inside
	// Submit or later, on the same reactor.
	Submit(io *IO)
	// Close releases the channel; it runs on its reactor after every IO
	// submitted through it has completed.
	Close()
}

// ConfigWriter is implemented by devices that appear in save_config: it
// returns the RPC method and params that recreate the device.
type ConfigWriter interface {
	ConfigEntry() (method string, params any)
}

// DriverSpecific is implemented by devices with a driver_specific object
// in bdev_get_bdevs.
type DriverSpecific interface {
	DriverSpecific() any
}

// UUID is an RFC 4122 UUID.
type UUID [16]byte

// NewUUID returns a random (version 4) UUID.
func NewUUID() UUID {
	var u UUID
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

// String formats u in lower case, as SPDK prints UUIDs.
func (u UUID) String() string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// IsZero reports whether u is all zero.
func (u UUID) IsZero() bool { return u == UUID{} }

// ErrBadUUID is returned by ParseUUID.
var ErrBadUUID = errors.New("bad uuid")

// ParseOptionalUUID is ParseUUID for an optional parameter: "" gives the
// zero UUID (the caller generates one).
func ParseOptionalUUID(s string) (UUID, error) {
	if s == "" {
		return UUID{}, nil
	}
	return ParseUUID(s)
}

// ParseUUID parses the 8-4-4-4-12 hexadecimal form.
func ParseUUID(s string) (UUID, error) {
	var u UUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, fmt.Errorf("%w %q: want 8-4-4-4-12 hex digits", ErrBadUUID, s)
	}
	j := 0
	for i := 0; i < 36; {
		if s[i] == '-' {
			i++
			continue
		}
		hi, ok1 := unhex(s[i])
		lo, ok2 := unhex(s[i+1])
		if !ok1 || !ok2 {
			return UUID{}, fmt.Errorf("%w %q: bad hex digit at %d", ErrBadUUID, s, i)
		}
		u[j] = hi<<4 | lo
		j++
		i += 2
	}
	return u, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
