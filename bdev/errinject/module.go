package errinject

import (
	"fmt"
	"syscall"

	"hyperpath/bdev"
	"hyperpath/bdev/passthru"
)

// Module is the error bdev module of one registry. It remembers the bases
// bdev_error_create named, so that an error bdev appears when its base
// does (Examine) and is forgotten when the error bdev is destroyed.
type Module struct {
	reg     *bdev.Registry
	configs passthru.Configs[Options] // keyed by base name
}

var (
	_ bdev.Module   = (*Module)(nil)
	_ bdev.Examiner = (*Module)(nil)
)

// NewModule returns the module for reg. Register it with
// reg.RegisterModule so that Examine sees new bdevs (RegisterRPC does
// both).
func NewModule(reg *bdev.Registry) *Module {
	return &Module{reg: reg}
}

// moduleFor returns reg's registered *Module, registering a new one if
// there is none.
func moduleFor(reg *bdev.Registry) *Module {
	return passthru.ModuleFor(reg, func(m *Module) bool { return m.reg == reg }, func() *Module { return NewModule(reg) })
}

// Name implements bdev.Module.
func (m *Module) Name() string { return ModuleName }

// Create records base and creates EE_<base> if base exists. A base that
// does not exist yet is not an error: the error bdev is created when it is
// registered. It fails with syscall.EEXIST if base already has one.
func (m *Module) Create(base string, uuid bdev.UUID) error {
	if base == "" {
		return fmt.Errorf("error bdev: base_name is required: %w", syscall.EINVAL)
	}
	return m.configs.Create(base, base, Options{BaseName: base, UUID: uuid},
		fmt.Errorf("error bdev for %q already configured: %w", base, syscall.EEXIST), m.attach)
}

// attach creates and registers the error bdev on o.BaseName.
func (m *Module) attach(o Options) error {
	d, err := New(m.reg, o)
	if err != nil {
		return err
	}
	return d.Register(d, func() { m.configs.Forget(o.BaseName) })
}

// Examine implements bdev.Examiner: a new bdev that a bdev_error_create
// named gets its error bdev now.
func (m *Module) Examine(b *bdev.Bdev) {
	for _, o := range m.configs.Waiting(b.Name()) {
		m.attach(o)
	}
}

// Lookup returns the error bdev named name.
func (m *Module) Lookup(name string) (*Disk, error) {
	return passthru.Lookup[*Disk](m.reg, name, "an error bdev")
}
