package passthru

import (
	"errors"
	"fmt"
	"sync"

	"hyperpath/bdev"
)

// Configs is a stacked module's record of the bdevs its create RPC asked
// for (SPDK keeps the same list per module): each entry names the stacked
// bdev, its base and the module's options. An entry whose base does not
// exist yet waits for it (Examine); an entry is forgotten when its bdev is
// destroyed. Control plane only; safe for concurrent use.
type Configs[O any] struct {
	mu sync.Mutex
	m  map[string]config[O]
}

type config[O any] struct {
	base string
	opts O
}

// Add records o under key (the stacked bdev's name, or whatever the module
// keys its entries by) with its base. It reports false, and records
// nothing, when key is taken.
func (c *Configs[O]) Add(key, base string, o O) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.m[key]; dup {
		return false
	}
	if c.m == nil {
		c.m = map[string]config[O]{}
	}
	c.m[key] = config[O]{base: base, opts: o}
	return true
}

// Forget drops key's entry.
func (c *Configs[O]) Forget(key string) {
	c.mu.Lock()
	delete(c.m, key)
	c.mu.Unlock()
}

// Waiting returns the options of the entries whose base is base.
func (c *Configs[O]) Waiting(base string) []O {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []O
	for _, e := range c.m {
		if e.base == base {
			out = append(out, e.opts)
		}
	}
	return out
}

// Create is the create RPC's flow: record o under key, then attach it. A
// base that does not exist yet (attach fails with bdev.ErrNotFound) is not
// an error: the entry waits for Examine. Any other failure forgets the
// entry. dup is returned when key is taken.
func (c *Configs[O]) Create(key, base string, o O, dup error, attach func(O) error) error {
	if !c.Add(key, base, o) {
		return dup
	}
	err := attach(o)
	if errors.Is(err, bdev.ErrNotFound) {
		return nil
	}
	if err != nil {
		c.Forget(key)
	}
	return err
}

// Lookup returns the device of the bdev named name if it is a T; what
// names the kind in the error ("an error bdev"), which wraps
// bdev.ErrNotFound.
func Lookup[T bdev.Device](reg *bdev.Registry, name, what string) (T, error) {
	var zero T
	b, err := reg.Get(name)
	if err != nil {
		return zero, err
	}
	d, ok := b.Device().(T)
	if !ok {
		return zero, fmt.Errorf("bdev %q is not %s: %w", name, what, bdev.ErrNotFound)
	}
	return d, nil
}

// ModuleFor returns reg's registered module of type M for which mine
// holds (modules of one type may be registered on several registries), or
// registers mk() and returns it. Control plane only.
func ModuleFor[M bdev.Module](reg *bdev.Registry, mine func(M) bool, mk func() M) M {
	for _, m := range reg.Modules() {
		if mm, ok := m.(M); ok && mine(mm) {
			return mm
		}
	}
	m := mk()
	reg.RegisterModule(m)
	return m
}
