// Package fuzzbudget caps how long the Go fuzzer minimizes an input, for
// test packages whose fuzz targets find new coverage often: minimizing each
// such input for the default 60 s stops the exec count for that long. A
// package's TestMain calls Run; an explicit -test.fuzzminimizetime flag
// still wins (to minimize a crasher for longer). Used by tests only; it
// holds no state beyond the flag it sets.
package fuzzbudget

import (
	"flag"
	"os"
	"testing"
)

// Run parses the test flags, sets -test.fuzzminimizetime to minimize
// unless it was given, and runs the tests; it does not return.
func Run(m *testing.M, minimize string) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.fuzzminimizetime" })
	if !set {
		if err := flag.Set("test.fuzzminimizetime", minimize); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}
