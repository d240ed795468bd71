package delay

import (
	"errors"
	"fmt"
	"sync"
	"syscall"

	"hyperpath/bdev"
)

// Module is the delay module of one registry. It keeps the associations
// bdev_delay_create made (delay name -> options), so that a delay bdev
// whose base is missing appears when the base does (Examine).
type Module struct {
	reg   *bdev.Registry
	mu    sync.Mutex
	assoc map[string]Options
}

var (
	_ bdev.Module   = (*Module)(nil)
	_ bdev.Examiner = (*Module)(nil)
)

// NewModule returns the module for reg. Register it with
// reg.RegisterModule so that Examine sees new bdevs (RegisterRPC does
// both).
func NewModule(reg *bdev.Registry) *Module {
	return &Module{reg: reg, assoc: map[string]Options{}}
}

func moduleFor(reg *bdev.Registry) *Module {
	for _, m := range reg.Modules() {
		if dm, ok := m.(*Module); ok && dm.reg == reg {
			return dm
		}
	}
	m := NewModule(reg)
	reg.RegisterModule(m)
	return m
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
	m.mu.Lock()
	if _, dup := m.assoc[o.Name]; dup {
		m.mu.Unlock()
		return fmt.Errorf("delay bdev %q already configured: %w", o.Name, syscall.EEXIST)
	}
	m.assoc[o.Name] = o
	m.mu.Unlock()
	err := m.attach(o)
	if errors.Is(err, bdev.ErrNotFound) {
		return nil
	}
	if err != nil {
		m.forget(o.Name)
	}
	return err
}

func (m *Module) attach(o Options) error {
	d, err := New(m.reg, o)
	if err != nil {
		return err
	}
	d.onDestroy = func() { m.forget(o.Name) }
	if _, err := m.reg.Register(d); err != nil {
		d.onDestroy = nil
		d.Destroy()
		return err
	}
	return nil
}

func (m *Module) forget(name string) {
	m.mu.Lock()
	delete(m.assoc, name)
	m.mu.Unlock()
}

// Examine implements bdev.Examiner: delay bdevs waiting for b are created.
func (m *Module) Examine(b *bdev.Bdev) {
	m.mu.Lock()
	var todo []Options
	for _, o := range m.assoc {
		if o.BaseName == b.Name() {
			todo = append(todo, o)
		}
	}
	m.mu.Unlock()
	for _, o := range todo {
		if _, err := m.reg.Get(o.Name); err != nil {
			m.attach(o)
		}
	}
}

// Lookup returns the delay bdev named name.
func (m *Module) Lookup(name string) (*Disk, error) {
	b, err := m.reg.Get(name)
	if err != nil {
		return nil, err
	}
	d, ok := b.Device().(*Disk)
	if !ok {
		return nil, fmt.Errorf("bdev %q is not a delay bdev: %w", name, bdev.ErrNotFound)
	}
	return d, nil
}
