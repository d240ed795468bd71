//go:build !invariants

package invariants

// Enabled is true when the binary was built with -tags invariants.
const Enabled = false
