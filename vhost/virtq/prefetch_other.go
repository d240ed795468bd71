//go:build !amd64

package virtq

// prefetch is a no-op where we have no PREFETCH instruction wired up.
func prefetch(*byte) {}
