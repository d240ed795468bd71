//go:build linux

package target

import (
	"flag"
	"os"
	"testing"
)

// fuzzMinimizeTime replaces the Go fuzzer's 60 s default for
// -test.fuzzminimizetime in this package (see FuzzConnStream): an input
// that adds coverage is shrunk for at most this long, so the exec rate
// stays steady. Pass the flag to minimize longer, for example a crasher.
const fuzzMinimizeTime = "250x"

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
