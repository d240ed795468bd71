package initiator

import (
	"testing"

	"hyperpath/internal/fuzzbudget"
)

// TestMain caps fuzz minimization at 100 runs: FuzzQPairReceive finds new
// coverage often, and minimizing each such input for the default minute
// stops the exec count for that long.
func TestMain(m *testing.M) { fuzzbudget.Run(m, "100x") }
