package virtq

import "unsafe"

// hostAddr returns the address of the first byte of b's backing array.
func hostAddr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// Contains reports whether all of b, up to its capacity, lies inside one
// region of m. An empty slice with no capacity is contained trivially.
func (m *GuestMemory) Contains(b []byte) bool {
	if cap(b) == 0 {
		return true
	}
	p := hostAddr(b)
	for _, r := range m.Regions() {
		if len(r.Host) == 0 {
			continue
		}
		base := hostAddr(r.Host)
		if p >= base && p-base <= uintptr(len(r.Host)) && uintptr(cap(b)) <= uintptr(len(r.Host))-(p-base) {
			return true
		}
	}
	return false
}

// HostAddr returns the virtual address of b's first byte in this process:
// what a front-end sends as userspace_addr (SET_MEM_TABLE) and as ring
// addresses (SET_VRING_ADDR) for memory it shares.
func HostAddr(b []byte) uint64 { return uint64(hostAddr(b)) }

// GuestAddrOf returns the guest address of b's first byte if b lies wholly
// (by length) inside one region: a front-end uses it to put a buffer that
// already lives in shared memory into a descriptor without copying.
// It does not allocate.
func (m *GuestMemory) GuestAddrOf(b []byte) (uint64, error) {
	if len(b) == 0 {
		return 0, ErrAddr
	}
	p := hostAddr(b)
	for _, r := range m.Regions() {
		base := hostAddr(r.Host)
		if p >= base && p-base < uintptr(len(r.Host)) && uintptr(len(b)) <= uintptr(len(r.Host))-(p-base) {
			return r.GuestAddr + uint64(p-base), nil
		}
	}
	return 0, ErrAddr
}
