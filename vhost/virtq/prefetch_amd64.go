package virtq

// prefetch asks the CPU to bring the cache line at p closer (PREFETCHT0).
// It does not wait for the line and never faults. Lines the driver wrote
// on another core cost a cross-core transfer each; a device that has
// popped several heads starts the transfers of all their descriptors (and
// then of all their headers) together instead of one after the other.
//
//go:noescape
func prefetch(p *byte)
