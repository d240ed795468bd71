package errinject

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"

	"hyperpath/bdev"
	"hyperpath/bdev/passthru"
	"hyperpath/reactor"
)

// ModuleName is SPDK's name for the module; error bdevs carry it in
// bdev.Info.Module and it is the claim on their bases.
const ModuleName = "error"

// NamePrefix is put before the base's name to name the error bdev.
const NamePrefix = "EE_"

// ErrorType is what an injection does to the IOs it hits.
type ErrorType uint32

const (
	// ErrorNone: no injection.
	ErrorNone ErrorType = iota
	// ErrorFailure completes the IO with StatusFailed.
	ErrorFailure
	// ErrorPending holds the IO until ResumePending or a reset.
	ErrorPending
	// ErrorCorruptData flips bits of the IO's data (see the package doc).
	ErrorCorruptData
	// ErrorNoMem completes the IO with StatusNoMem; the generic layer
	// retries it.
	ErrorNoMem
	// ErrorNVMeFailure is SPDK's nvme_failure; it fails the IO like
	// ErrorFailure (no NVMe status in bdev.Status).
	ErrorNVMeFailure
)

var errorTypeNames = [...]string{"none", "failure", "pending", "corrupt_data", "nomem", "nvme_failure"}

func (t ErrorType) String() string {
	if int(t) < len(errorTypeNames) {
		return errorTypeNames[t]
	}
	return "unknown"
}

// ParseErrorType maps bdev_error_inject_error's error_type names.
func ParseErrorType(s string) (ErrorType, bool) {
	for i, n := range errorTypeNames {
		if i > 0 && n == s {
			return ErrorType(i), true
		}
	}
	return ErrorNone, false
}

// Injection is one bdev_error_inject_error.
type Injection struct {
	Type ErrorType
	// Num is how many IOs to hit; 0 disables the injection.
	Num uint32
	// QueueDepth, when non-zero, hits only IOs submitted while at least
	// that many IOs of the channel are in flight at the base.
	QueueDepth    uint64
	CorruptOffset uint64
	CorruptValue  uint8
	NVMeSCT       uint32
	NVMeSC        uint32
}

// ErrBadInjection is wrapped for injections SPDK refuses (EINVAL).
var ErrBadInjection = errors.New("invalid injection")

// injectable lists the IO types injections apply to, in vector order.
var injectable = [...]bdev.IOType{bdev.IORead, bdev.IOWrite, bdev.IOFlush, bdev.IOUnmap}

// vecIndex returns t's slot in the injection vector, or -1.
func vecIndex(t bdev.IOType) int {
	switch t {
	case bdev.IORead:
		return 0
	case bdev.IOWrite:
		return 1
	case bdev.IOFlush:
		return 2
	case bdev.IOUnmap:
		return 3
	}
	return -1
}

// slot is one IO type's injection. The control plane stores Num last so
// that a channel which sees it non-zero also sees the other fields.
type slot struct {
	typ           atomic.Uint32
	num           atomic.Uint32
	qd            atomic.Uint64
	corruptOffset atomic.Uint64
	corruptValue  atomic.Uint32
}

// Options configure an error bdev.
type Options struct {
	// BaseName is the bdev to stack on; the error bdev is NamePrefix+BaseName.
	BaseName string
	UUID     bdev.UUID
}

// Disk is an error-injection bdev. The embedded passthru.Device holds the
// claimed base and the channel list; Disk adds the injection table.
type Disk struct {
	passthru.Device
	opts Options
	vec  [len(injectable)]slot
}

var (
	_ bdev.Device         = (*Disk)(nil)
	_ bdev.ConfigWriter   = (*Disk)(nil)
	_ bdev.DriverSpecific = (*Disk)(nil)
)

// New opens and claims the base bdev and returns the error bdev (not yet
// registered). Errors wrap bdev.ErrNotFound (no base) or bdev.ErrClaimed.
func New(reg *bdev.Registry, o Options) (*Disk, error) {
	if o.BaseName == "" {
		return nil, fmt.Errorf("error bdev: base_name is required: %w", syscall.EINVAL)
	}
	if o.UUID.IsZero() {
		o.UUID = bdev.NewUUID()
	}
	d := &Disk{opts: o}
	info := bdev.Info{Name: NamePrefix + o.BaseName, ProductName: "Error Injection Disk", UUID: o.UUID}
	if err := d.Open(reg, o.BaseName, ModuleName, info); err != nil {
		return nil, fmt.Errorf("error bdev on %q: %w", o.BaseName, err)
	}
	return d, nil
}

// DriverSpecific implements bdev.DriverSpecific (SPDK's "error_disk").
func (d *Disk) DriverSpecific() any {
	return bdev.Obj("error_disk", bdev.Obj("base_bdev", d.opts.BaseName))
}

// ConfigEntry implements bdev.ConfigWriter.
func (d *Disk) ConfigEntry() (string, any) {
	return "bdev_error_create", bdev.Obj("base_name", d.opts.BaseName, "uuid", d.Info().UUID.String())
}

// Inject sets the injection for IO type t (read, write, flush or unmap).
func (d *Disk) Inject(t bdev.IOType, inj Injection) error {
	i := vecIndex(t)
	if i < 0 {
		return fmt.Errorf("error bdev %s: io type %v: %w", d.Info().Name, t, ErrBadInjection)
	}
	if err := inj.validate(); err != nil {
		return fmt.Errorf("error bdev %s: %w", d.Info().Name, err)
	}
	d.vec[i].set(inj)
	return nil
}

// InjectAll sets inj for every injectable IO type (io_type "all").
func (d *Disk) InjectAll(inj Injection) error {
	if err := inj.validate(); err != nil {
		return fmt.Errorf("error bdev %s: %w", d.Info().Name, err)
	}
	for i := range d.vec {
		d.vec[i].set(inj)
	}
	return nil
}

// Clear disables every injection (io_type "clear").
func (d *Disk) Clear() {
	for i := range d.vec {
		d.vec[i].num.Store(0)
	}
}

// Remaining returns how many IOs of type t the current injection will
// still hit.
func (d *Disk) Remaining(t bdev.IOType) uint32 {
	if i := vecIndex(t); i >= 0 {
		return d.vec[i].num.Load()
	}
	return 0
}

func (inj *Injection) validate() error {
	if inj.Type == ErrorNone || inj.Type > ErrorNVMeFailure {
		return fmt.Errorf("error type %d: %w", inj.Type, ErrBadInjection)
	}
	if inj.Type == ErrorCorruptData && inj.CorruptValue == 0 {
		return fmt.Errorf("corrupt_value must be non-zero: %w", ErrBadInjection)
	}
	return nil
}

func (s *slot) set(inj Injection) {
	s.num.Store(0)
	s.typ.Store(uint32(inj.Type))
	s.qd.Store(inj.QueueDepth)
	s.corruptOffset.Store(inj.CorruptOffset)
	s.corruptValue.Store(uint32(inj.CorruptValue))
	s.num.Store(inj.Num)
}

// take decides what happens to the next IO of vector slot i submitted
// with inflight IOs in flight at the base, consuming one hit.
func (d *Disk) take(i int, inflight uint64) ErrorType {
	s := &d.vec[i]
	if s.num.Load() == 0 || inflight < s.qd.Load() {
		return ErrorNone
	}
	for {
		n := s.num.Load()
		if n == 0 {
			return ErrorNone
		}
		if s.num.CompareAndSwap(n, n-1) {
			return ErrorType(s.typ.Load())
		}
	}
}

// ResumePending disables the pending injections and resubmits every held
// IO on its channel's reactor. Control plane.
func (d *Disk) ResumePending() {
	for i := range d.vec {
		if ErrorType(d.vec[i].typ.Load()) == ErrorPending {
			d.vec[i].num.Store(0)
		}
	}
	d.Broadcast(nil, resumeMsg)
}

// NewChannel implements bdev.Device: it gets the base's channel on r.
func (d *Disk) NewChannel(r *reactor.Reactor) (bdev.Channel, error) {
	c := &channel{d: d}
	if err := d.Device.NewChannel(&c.Channel, r, c); err != nil {
		return nil, err
	}
	return c, nil
}
