package local

import "unsafe"

// addrOf returns the address of b's first byte, for alignment checks only:
// the value is never turned back into a pointer.
func addrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
