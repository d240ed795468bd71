package passthru

import (
	"fmt"
	"syscall"

	"hyperpath/bdev"
	"hyperpath/reactor"
)

// ModuleName is SPDK's name for the module; passthru bdevs carry it in
// bdev.Info.Module and it is the claim on their bases.
const ModuleName = "passthru"

// Options configure a passthru bdev (bdev_passthru_create's params).
type Options struct {
	// Name of the passthru bdev.
	Name string
	// BaseName is the bdev it stacks on.
	BaseName string
	// UUID of the passthru bdev; a new one when zero.
	UUID bdev.UUID
}

// Disk is SPDK's passthru bdev: Device as is, with Channel as its channel.
type Disk struct {
	Device
	opts Options
}

var (
	_ bdev.Device         = (*Disk)(nil)
	_ bdev.ConfigWriter   = (*Disk)(nil)
	_ bdev.DriverSpecific = (*Disk)(nil)
)

// New opens and claims the base bdev and returns the passthru bdev (not
// yet registered). Errors wrap syscall.EINVAL, bdev.ErrNotFound (no base)
// or bdev.ErrClaimed.
func New(reg *bdev.Registry, o Options) (*Disk, error) {
	if o.Name == "" || o.BaseName == "" {
		return nil, fmt.Errorf("passthru bdev: name and base_bdev_name are required: %w", syscall.EINVAL)
	}
	if o.UUID.IsZero() {
		o.UUID = bdev.NewUUID()
	}
	d := &Disk{opts: o}
	if err := d.Open(reg, o.BaseName, ModuleName, bdev.Info{Name: o.Name, ProductName: "passthru", UUID: o.UUID}); err != nil {
		return nil, fmt.Errorf("passthru bdev %q on %q: %w", o.Name, o.BaseName, err)
	}
	return d, nil
}

// NewChannel implements bdev.Device.
func (d *Disk) NewChannel(r *reactor.Reactor) (bdev.Channel, error) {
	c := &Channel{}
	if err := d.Device.NewChannel(c, r, nil); err != nil {
		return nil, err
	}
	return c, nil
}

// DriverSpecific implements bdev.DriverSpecific (SPDK's "passthru" object).
func (d *Disk) DriverSpecific() any {
	return bdev.Obj("passthru", bdev.Obj("name", d.Info().Name, "base_bdev_name", d.opts.BaseName))
}

// ConfigEntry implements bdev.ConfigWriter.
func (d *Disk) ConfigEntry() (string, any) {
	return "bdev_passthru_create", bdev.Obj("base_bdev_name", d.opts.BaseName, "name", d.Info().Name,
		"uuid", d.Info().UUID.String())
}

// Module is the passthru module of one registry. It keeps what
// bdev_passthru_create asked for, so that a passthru bdev whose base is
// missing appears when the base does (Examine).
type Module struct {
	reg     *bdev.Registry
	configs Configs[Options] // keyed by passthru bdev name
}

var (
	_ bdev.Module   = (*Module)(nil)
	_ bdev.Examiner = (*Module)(nil)
)

// NewModule returns the module for reg. Register it with
// reg.RegisterModule so that Examine sees new bdevs (RegisterRPC does
// both).
func NewModule(reg *bdev.Registry) *Module { return &Module{reg: reg} }

func moduleFor(reg *bdev.Registry) *Module {
	return ModuleFor(reg, func(m *Module) bool { return m.reg == reg }, func() *Module { return NewModule(reg) })
}

// Name implements bdev.Module.
func (m *Module) Name() string { return ModuleName }

// Create records o and creates the passthru bdev if its base exists; a
// missing base is not an error (the bdev comes with the base). It fails
// with EINVAL for a missing name and EEXIST for a name taken.
func (m *Module) Create(o Options) error {
	if o.Name == "" || o.BaseName == "" {
		return fmt.Errorf("passthru bdev: name and base_bdev_name are required: %w", syscall.EINVAL)
	}
	if _, err := m.reg.Get(o.Name); err == nil {
		return fmt.Errorf("passthru bdev %q: %w", o.Name, syscall.EEXIST)
	}
	if o.UUID.IsZero() {
		o.UUID = bdev.NewUUID() // kept with the record for a later examine
	}
	return m.configs.Create(o.Name, o.BaseName, o,
		fmt.Errorf("passthru bdev %q already configured: %w", o.Name, syscall.EEXIST), m.attach)
}

func (m *Module) attach(o Options) error {
	d, err := New(m.reg, o)
	if err != nil {
		return err
	}
	return d.Register(d, func() { m.configs.Forget(o.Name) })
}

// Examine implements bdev.Examiner: passthru bdevs waiting for b are
// created.
func (m *Module) Examine(b *bdev.Bdev) {
	for _, o := range m.configs.Waiting(b.Name()) {
		if _, err := m.reg.Get(o.Name); err != nil {
			m.attach(o)
		}
	}
}

// Lookup returns the passthru bdev named name.
func (m *Module) Lookup(name string) (*Disk, error) {
	return Lookup[*Disk](m.reg, name, "a passthru bdev")
}
