package delay

import (
	"fmt"
	"syscall"

	"hyperpath/bdev"
	"hyperpath/bdev/passthru"
)

// Module is the delay module of one registry. It keeps the associations
// bdev_delay_create made (delay name -> options), so that a delay bdev
// whose base is missing appears when the base does (Examine).
type Module struct {
	reg   *bdev.Registry
	assoc passthru.Configs[Options] // keyed by delay bdev name
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

func moduleFor(reg *bdev.Registry) *Module {
	return passthru.ModuleFor(reg, func(m *Module) bool { return m.reg == reg }, func() *Module { return NewModule(reg) })
}

// Name implements bdev.Module.
func (m *Module) Name() string { return ModuleName }

// Create records the association and creates the delay bdev if its base
// exists; a missing base is not an error (the bdev comes with the base).
// It fails with EINVAL for bad latencies and EEXIST for a taken name.
func (m *Module) Create(o Options) error {
	if err := validate(&o); err != nil {
		return err
	}
	if _, err := m.reg.Get(o.Name); err == nil {
		return fmt.Errorf("delay bdev %q: %w", o.Name, syscall.EEXIST)
	}
	if o.UUID.IsZero() {
		o.UUID = bdev.NewUUID() // kept with the association for a later examine
	}
	return m.assoc.Create(o.Name, o.BaseName, o,
		fmt.Errorf("delay bdev %q already configured: %w", o.Name, syscall.EEXIST), m.attach)
}

func (m *Module) attach(o Options) error {
	d, err := New(m.reg, o)
	if err != nil {
		return err
	}
	return d.Register(d, func() { m.assoc.Forget(o.Name) })
}

// Examine implements bdev.Examiner: delay bdevs waiting for b are created.
func (m *Module) Examine(b *bdev.Bdev) {
	for _, o := range m.assoc.Waiting(b.Name()) {
		if _, err := m.reg.Get(o.Name); err != nil {
			m.attach(o)
		}
	}
}

// Lookup returns the delay bdev named name.
func (m *Module) Lookup(name string) (*Disk, error) {
	return passthru.Lookup[*Disk](m.reg, name, "a delay bdev")
}
