package reactor

import (
	"errors"
	"fmt"
	"sync"
)

// Group is the set of reactors of a process, one per core of the core mask.
// Reactor IDs are dense indexes into Reactors().
type Group struct {
	reactors []*Reactor
	wg       sync.WaitGroup
	mu       sync.Mutex
	errs     []error
	started  bool
}

// GroupOptions configure NewGroup.
type GroupOptions struct {
	// Cores to run on, as from ParseCoreMask. Each must be in the process's
	// CPU affinity set.
	Cores []int
	// Reactor is applied to every reactor (Core and Name are set per core).
	Reactor Options
}

// NewGroup creates one reactor per core. It fails, naming the core and the
// usable set, when a core is not available to this process.
func NewGroup(o GroupOptions) (*Group, error) {
	if len(o.Cores) == 0 {
		return nil, errors.New("reactor: no cores given")
	}
	avail, err := AvailableCores()
	if err != nil {
		return nil, err
	}
	ok := map[int]bool{}
	for _, c := range avail {
		ok[c] = true
	}
	g := &Group{}
	for i, c := range o.Cores {
		if !ok[c] {
			return nil, fmt.Errorf("%w: core %d is not usable by this process (usable: 0x%s); pass -m with cores from that set",
				ErrCoreUnavailable, c, FormatCoreMask(avail))
		}
		ro := o.Reactor
		ro.Core = c
		ro.Name = ""
		r, err := New(i, ro)
		if err != nil {
			g.Close()
			return nil, err
		}
		g.reactors = append(g.reactors, r)
	}
	return g, nil
}

// Reactors returns the group's reactors by ID. The first one is the main
// reactor (SPDK's main core).
func (g *Group) Reactors() []*Reactor { return g.reactors }

// Main returns the first reactor.
func (g *Group) Main() *Reactor { return g.reactors[0] }

// Len is the number of reactors.
func (g *Group) Len() int { return len(g.reactors) }

// Start runs every reactor on its own goroutine.
func (g *Group) Start() {
	g.started = true
	for _, r := range g.reactors {
		g.wg.Add(1)
		go func(r *Reactor) {
			defer g.wg.Done()
			if err := r.Run(); err != nil {
				g.mu.Lock()
				g.errs = append(g.errs, err)
				g.mu.Unlock()
			}
		}(r)
	}
}

// Stop stops every reactor and waits for their Run to return. It returns
// the errors reactors failed with (for example a core that could not be
// pinned).
func (g *Group) Stop() error {
	for _, r := range g.reactors {
		r.Stop()
	}
	g.wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	return errors.Join(g.errs...)
}

// Close releases the reactors' resources. Call after Stop.
func (g *Group) Close() {
	for _, r := range g.reactors {
		r.Close()
	}
}

// CallAll runs fn on every reactor in turn and waits. Control plane only.
func (g *Group) CallAll(fn func(r *Reactor)) error {
	for _, r := range g.reactors {
		if err := Call(r, func() { fn(r) }); err != nil {
			return err
		}
	}
	return nil
}
