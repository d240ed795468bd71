package errinject

import (
	"errors"
	"fmt"
	"sync"
	"syscall"

	"hyperpath/bdev"
)

// Module is the error bdev module of one registry. It remembers the bases
// bdev_error_create named, so that an error bdev appears when its base
// does (Examine) and is forgotten when the error bdev is destroyed.
type Module struct {
	reg     *bdev.Registry
	mu      sync.Mutex
	configs map[string]bdev.UUID // base name -> UUID of its error bdev
}

var (
	_ bdev.Module   = (*Module)(nil)
	_ bdev.Examiner = (*Module)(nil)
)

// NewModule returns the module for reg. Register it with
// reg.RegisterModule so that Examine sees new bdevs (RegisterRPC does
// both).
func NewModule(reg *bdev.Registry) *Module {
	return &Module{reg: reg, configs: map[string]bdev.UUID{}}
}

// moduleFor returns reg's registered *Module, registering a new one if
// there is none.
func moduleFor(reg *bdev.Registry) *Module {
	for _, m := range reg.Modules() {
		if em, ok := m.(*Module); ok && em.reg == reg {
			return em
		}
	}
	m := NewModule(reg)
	reg.RegisterModule(m)
	return m
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
	m.mu.Lock()
	if _, dup := m.configs[base]; dup {
		m.mu.Unlock()
		return fmt.Errorf("error bdev for %q already configured: %w", base, syscall.EEXIST)
	}
	m.configs[base] = uuid
	m.mu.Unlock()
	err := m.attach(base, uuid)
	if errors.Is(err, bdev.ErrNotFound) {
		return nil
	}
	if err != nil {
		m.forget(base)
	}
	return err
}

// attach creates and registers the error bdev on base.
func (m *Module) attach(base string, uuid bdev.UUID) error {
	d, err := New(m.reg, Options{BaseName: base, UUID: uuid})
	if err != nil {
		return err
	}
	d.onDestroy = func() { m.forget(base) }
	if _, err := m.reg.Register(d); err != nil {
		d.onDestroy = nil
		d.Destroy()
		return err
	}
	return nil
}

func (m *Module) forget(base string) {
	m.mu.Lock()
	delete(m.configs, base)
	m.mu.Unlock()
}

// Examine implements bdev.Examiner: a new bdev that a bdev_error_create
// named gets its error bdev now.
func (m *Module) Examine(b *bdev.Bdev) {
	m.mu.Lock()
	uuid, ok := m.configs[b.Name()]
	m.mu.Unlock()
	if ok {
		m.attach(b.Name(), uuid)
	}
}

// Lookup returns the error bdev named name.
func (m *Module) Lookup(name string) (*Disk, error) {
	b, err := m.reg.Get(name)
	if err != nil {
		return nil, err
	}
	d, ok := b.Device().(*Disk)
	if !ok {
		return nil, fmt.Errorf("bdev %q is not an error bdev: %w", name, bdev.ErrNotFound)
	}
	return d, nil
}
