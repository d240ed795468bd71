//go:build linux

package target

import (
	"testing"

	"hyperpath/internal/fuzzbudget"
)

// TestMain caps fuzz minimization at 250 runs (see FuzzConnStream): an
// input that adds coverage is shrunk for at most that long, so the exec
// rate stays steady.
func TestMain(m *testing.M) { fuzzbudget.Run(m, "250x") }
