package virtq

import (
	"errors"
	"fmt"
	"slices"
)

// MaxRegions bounds a memory table (QEMU exposes at most 512 memory slots
// to a vhost-user back-end; a back-end announces its own limit with
// GET_MAX_MEM_SLOTS).
const MaxRegions = 512

// Errors of GuestMemory. Translation errors are returned unwrapped so the
// data path does not allocate.
var (
	// ErrAddr: an address range is not (wholly) inside guest memory, or
	// wraps around 2^64.
	ErrAddr = errors.New("virtq: address range outside guest memory")
	// ErrIovecFull: the caller's segment array has no room left.
	ErrIovecFull = errors.New("virtq: too many segments")
	// ErrRegion: a memory table is invalid (empty or overlapping regions,
	// too many regions, a region to remove that is not there).
	ErrRegion = errors.New("virtq: invalid memory region")
)

// Region is one contiguous piece of guest memory mapped in this process.
type Region struct {
	// GuestAddr is the guest physical address of Host[0].
	GuestAddr uint64
	// UserAddr is the front-end's virtual address of Host[0]. vhost-user
	// gives ring addresses (SET_VRING_ADDR) in this space.
	UserAddr uint64
	// Host is the memory; len(Host) is the region's size.
	Host []byte
	// mapping is the mmap the region lives in when this package mapped it
	// (MapRegion); nil when Host belongs to the caller.
	mapping *Mapping
}

// NewRegion describes caller-owned memory (a test buffer, or the shared
// memory of our own front-end) as a region. GuestMemory never unmaps it.
func NewRegion(guestAddr, userAddr uint64, host []byte) Region {
	return Region{GuestAddr: guestAddr, UserAddr: userAddr, Host: host}
}

// Size returns the region's size in bytes.
func (r *Region) Size() uint64 { return uint64(len(r.Host)) }

// guestEnd returns the exclusive end of the guest range.
func (r *Region) guestEnd() uint64 { return r.GuestAddr + uint64(len(r.Host)) }

// Mapping is a shared mmap of a file descriptor made by this package. The
// bytes a caller asked for are Bytes(); the mapping itself may start
// earlier and end later to satisfy the page alignment of the file.
type Mapping struct {
	whole []byte // what mmap returned
	data  []byte // the requested range within whole
}

// Bytes returns the mapped range that was asked for.
func (mp *Mapping) Bytes() []byte { return mp.data }

// GuestMemory is an immutable table of regions, sorted by guest address,
// whose guest ranges and user ranges do not overlap.
//
// Concurrency: a *GuestMemory is never modified after construction, so any
// number of reactors may translate through it without locks. A change of
// the table (SET_MEM_TABLE, ADD_MEM_REG, REM_MEM_REG) builds a new table
// (With, Without, NewGuestMemory) that shares the unchanged mappings; the
// session hands it to each queue with Queue.SetMemory, a message run on the
// queue's reactor. Mappings that the new table no longer holds stay mapped
// until the session calls old.UnmapExcept(new), which it may do only once
// every queue has switched (its SetMemory message has run) and every
// request popped under the old table has completed, because those requests
// hold slices into the old mappings.
type GuestMemory struct {
	regions []Region // sorted by GuestAddr
}

// NewGuestMemory builds a table from regions (in any order). Regions must be
// non-empty and must not overlap in guest or user address space.
func NewGuestMemory(regions ...Region) (*GuestMemory, error) {
	if len(regions) > MaxRegions {
		return nil, fmt.Errorf("%d regions, at most %d: %w", len(regions), MaxRegions, ErrRegion)
	}
	rs := slices.Clone(regions)
	for i := range rs {
		r := &rs[i]
		if len(r.Host) == 0 {
			return nil, fmt.Errorf("region at guest 0x%x is empty: %w", r.GuestAddr, ErrRegion)
		}
		if r.GuestAddr+r.Size() < r.GuestAddr {
			return nil, fmt.Errorf("region at guest 0x%x size 0x%x wraps: %w", r.GuestAddr, r.Size(), ErrRegion)
		}
		if r.UserAddr+r.Size() < r.UserAddr {
			return nil, fmt.Errorf("region at user 0x%x size 0x%x wraps: %w", r.UserAddr, r.Size(), ErrRegion)
		}
	}
	slices.SortFunc(rs, func(a, b Region) int {
		switch {
		case a.GuestAddr < b.GuestAddr:
			return -1
		case a.GuestAddr > b.GuestAddr:
			return 1
		}
		return 0
	})
	for i := 1; i < len(rs); i++ {
		if rs[i-1].guestEnd() > rs[i].GuestAddr {
			return nil, fmt.Errorf("regions at guest 0x%x and 0x%x overlap: %w", rs[i-1].GuestAddr, rs[i].GuestAddr, ErrRegion)
		}
	}
	// User ranges: sort a copy of the starts and check neighbours.
	us := slices.Clone(rs)
	slices.SortFunc(us, func(a, b Region) int {
		switch {
		case a.UserAddr < b.UserAddr:
			return -1
		case a.UserAddr > b.UserAddr:
			return 1
		}
		return 0
	})
	for i := 1; i < len(us); i++ {
		if us[i-1].UserAddr+us[i-1].Size() > us[i].UserAddr {
			return nil, fmt.Errorf("regions at user 0x%x and 0x%x overlap: %w", us[i-1].UserAddr, us[i].UserAddr, ErrRegion)
		}
	}
	return &GuestMemory{regions: rs}, nil
}

// Regions returns the regions sorted by guest address. The caller must not
// modify the slice.
func (m *GuestMemory) Regions() []Region {
	if m == nil {
		return nil
	}
	return m.regions
}

// With returns a new table holding m's regions and r (ADD_MEM_REG).
func (m *GuestMemory) With(r Region) (*GuestMemory, error) {
	rs := make([]Region, 0, len(m.Regions())+1)
	rs = append(rs, m.Regions()...)
	return NewGuestMemory(append(rs, r)...)
}

// Without returns a new table without the region at guestAddr with the
// given size and user address (REM_MEM_REG identifies a region by these
// three; its mmap offset is ignored), and the region removed. The removed
// region stays mapped: unmap it with UnmapExcept once no queue uses m.
func (m *GuestMemory) Without(guestAddr, size, userAddr uint64) (*GuestMemory, Region, error) {
	for i, r := range m.Regions() {
		if r.GuestAddr == guestAddr && r.Size() == size && r.UserAddr == userAddr {
			rs := slices.Delete(slices.Clone(m.regions), i, i+1)
			return &GuestMemory{regions: rs}, r, nil
		}
	}
	return nil, Region{}, fmt.Errorf("no region at guest 0x%x size 0x%x user 0x%x: %w", guestAddr, size, userAddr, ErrRegion)
}

// find returns the index of the region holding guest address gpa, or -1.
func (m *GuestMemory) find(gpa uint64) int {
	if m == nil {
		return -1
	}
	rs := m.regions
	if len(rs) <= 8 {
		for i := range rs {
			if gpa-rs[i].GuestAddr < rs[i].Size() {
				return i
			}
		}
		return -1
	}
	// Binary search for the last region starting at or below gpa.
	lo, hi := 0, len(rs)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if rs[mid].GuestAddr <= gpa {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == 0 {
		return -1
	}
	if i := lo - 1; gpa-rs[i].GuestAddr < rs[i].Size() {
		return i
	}
	return -1
}

// Slice returns the host memory of guest range [gpa, gpa+n) when it lies
// in one region. The slice's capacity ends with the range. A zero-length
// range inside a region, or at its end, is an empty slice.
func (m *GuestMemory) Slice(gpa, n uint64) ([]byte, error) {
	i := m.find(gpa)
	if i < 0 {
		return nil, ErrAddr
	}
	r := &m.regions[i]
	off := gpa - r.GuestAddr
	if n > r.Size()-off {
		return nil, ErrAddr
	}
	return r.Host[off : off+n : off+n], nil
}

// UserSlice is Slice for front-end user addresses (vhost-user ring
// addresses).
func (m *GuestMemory) UserSlice(uaddr, n uint64) ([]byte, error) {
	gpa, err := m.UserToGuest(uaddr)
	if err != nil {
		return nil, err
	}
	return m.Slice(gpa, n)
}

// UserToGuest translates a front-end user address to a guest address.
// It is a linear scan: it serves ring setup, not the data path.
func (m *GuestMemory) UserToGuest(uaddr uint64) (uint64, error) {
	for i := range m.Regions() {
		r := &m.regions[i]
		if uaddr-r.UserAddr < r.Size() {
			return r.GuestAddr + (uaddr - r.UserAddr), nil
		}
	}
	return 0, ErrAddr
}

// GuestToUser translates a guest address to the front-end's user address.
func (m *GuestMemory) GuestToUser(gpa uint64) (uint64, error) {
	i := m.find(gpa)
	if i < 0 {
		return 0, ErrAddr
	}
	return m.regions[i].UserAddr + (gpa - m.regions[i].GuestAddr), nil
}

// Translate appends to iov the host memory of guest range [gpa, gpa+n),
// split at region boundaries, and returns the extended slice. It never
// grows iov beyond cap(iov): if the range needs more segments it returns
// ErrIovecFull, and ErrAddr if any byte of the range is outside guest
// memory; on error the returned slice is iov as passed (entries appended
// past its length may have been overwritten). Each segment's capacity ends
// with the segment. A zero-length range appends nothing and always succeeds.
//
// Translate does not allocate; it is safe for concurrent use.
func (m *GuestMemory) Translate(iov [][]byte, gpa, n uint64) ([][]byte, error) {
	if n == 0 {
		return iov, nil
	}
	if gpa+n < gpa {
		return iov, ErrAddr
	}
	out := iov
	for n > 0 {
		i := m.find(gpa)
		if i < 0 {
			return iov, ErrAddr
		}
		if len(out) == cap(out) {
			return iov, ErrIovecFull
		}
		r := &m.regions[i]
		off := gpa - r.GuestAddr
		take := min(n, r.Size()-off)
		out = append(out, r.Host[off:off+take:off+take])
		gpa += take
		n -= take
	}
	return out, nil
}

// translateHinted is Translate that first tries region *hint (any value
// is safe: it is bounds-checked and the range is checked against the
// region) and afterwards leaves there the region gpa was found in. The
// table stays read-only and shared between reactors; each queue keeps
// its own hint, since a driver's buffers mostly lie in one region.
func (m *GuestMemory) translateHinted(hint *int, iov [][]byte, gpa, n uint64) ([][]byte, error) {
	if m != nil && uint(*hint) < uint(len(m.regions)) && n > 0 && len(iov) < cap(iov) {
		r := &m.regions[*hint]
		if off := gpa - r.GuestAddr; off < r.Size() && n <= r.Size()-off {
			return append(iov, r.Host[off:off+n:off+n]), nil
		}
	}
	out, err := m.Translate(iov, gpa, n)
	if err == nil && n > 0 {
		*hint = m.find(gpa)
	}
	return out, err
}
