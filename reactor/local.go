package reactor

// Local holds one T per reactor of a group, on its own cache line, for state
// that each reactor owns (a bdev's per-reactor channel, a module's
// per-reactor poll group). The value for reactor r may be touched only on r.
type Local[T any] struct {
	slots []localSlot[T]
}

type localSlot[T any] struct {
	v T
	_ cacheLinePad // no false sharing between neighbouring reactors
}

// NewLocal returns storage for n reactors (IDs 0..n-1).
func NewLocal[T any](n int) *Local[T] {
	return &Local[T]{slots: make([]localSlot[T], n)}
}

// Get returns r's value. Reactor r only.
func (l *Local[T]) Get(r *Reactor) *T { return &l.slots[r.id].v }

// At returns the value of the reactor with id; control-plane code uses it
// while reactors are stopped or from a message on that reactor.
func (l *Local[T]) At(id int) *T { return &l.slots[id].v }

// Len is the number of slots.
func (l *Local[T]) Len() int { return len(l.slots) }
