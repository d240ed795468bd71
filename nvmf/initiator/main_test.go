package initiator

import (
	"flag"
	"os"
	"testing"
)

// fuzzMinimizeTime replaces the Go fuzzer's 60 s default for
// -test.fuzzminimizetime in this package: FuzzQPairReceive finds new
// coverage often, and minimizing each such input for up to a minute stops
// the exec count for that long. Pass the flag to minimize longer, for
// example a crasher.
const fuzzMinimizeTime = "100x"

func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.fuzzminimizetime" })
	if !set {
		if err := flag.Set("test.fuzzminimizetime", fuzzMinimizeTime); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}
