// Package invariants gates expensive self-checks behind the `invariants`
// build tag, the way pebble's internal/invariants does.
//
// Build with `-tags invariants` (CI does) to make Assertf panic on a broken
// invariant; in ordinary builds Assertf returns the error instead so the
// caller can fail the one operation and go on.
package invariants

import "fmt"

// Assertf reports a broken invariant. Under the invariants build tag it
// panics; otherwise it returns an error describing the problem (nil when cond
// holds).
func Assertf(cond bool, format string, args ...any) error {
	if cond {
		return nil
	}
	err := fmt.Errorf("invariant violated: "+format, args...)
	if Enabled {
		panic(err)
	}
	return err
}
