package virtio

import (
	"sort"
	"sync"
)

// arenaAlign is the alignment and granularity of buffers handed out by
// AllocBuffer: a page, so that a buffer never shares a page with another
// and O_DIRECT back ends accept it.
const arenaAlign = 4096

// extent is a range of the buffer area, in bytes from its start.
type extent struct{ off, len uint64 }

// arena is a first-fit allocator over the buffer area of the shared
// region. It is control plane (buffers are taken when a job starts, not per
// IO), so a mutex guards it.
type arena struct {
	mu    sync.Mutex
	size  uint64
	free  []extent          // sorted by off, coalesced, never empty extents
	taken map[uint64]uint64 // off -> len of each live buffer
}

func newArena(size uint64) *arena {
	a := &arena{size: size, taken: map[uint64]uint64{}}
	if size > 0 {
		a.free = []extent{{0, size}}
	}
	return a
}

// alloc takes n bytes (rounded up to arenaAlign) and returns their
// offset, or false when no free extent is large enough.
func (a *arena) alloc(n uint64) (uint64, bool) {
	if n == 0 || n > a.size {
		return 0, false
	}
	n = (n + arenaAlign - 1) / arenaAlign * arenaAlign
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range a.free {
		e := &a.free[i]
		if e.len < n {
			continue
		}
		off := e.off
		e.off += n
		e.len -= n
		if e.len == 0 {
			a.free = append(a.free[:i], a.free[i+1:]...)
		}
		a.taken[off] = n
		return off, true
	}
	return 0, false
}

// release gives back the buffer that starts at off. It reports false
// when no live buffer starts there.
func (a *arena) release(off uint64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	n, ok := a.taken[off]
	if !ok {
		return false
	}
	delete(a.taken, off)
	i := sort.Search(len(a.free), func(i int) bool { return a.free[i].off > off })
	a.free = append(a.free, extent{})
	copy(a.free[i+1:], a.free[i:])
	a.free[i] = extent{off, n}
	// Coalesce with the next, then the previous neighbour.
	if i+1 < len(a.free) && a.free[i].off+a.free[i].len == a.free[i+1].off {
		a.free[i].len += a.free[i+1].len
		a.free = append(a.free[:i+1], a.free[i+2:]...)
	}
	if i > 0 && a.free[i-1].off+a.free[i-1].len == a.free[i].off {
		a.free[i-1].len += a.free[i].len
		a.free = append(a.free[:i], a.free[i+1:]...)
	}
	return true
}

// inUse returns the bytes held by live buffers.
func (a *arena) inUse() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	var n uint64
	for _, l := range a.taken {
		n += l
	}
	return n
}
