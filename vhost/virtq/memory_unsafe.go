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
