// Command guestprobe is a static Go program the tests of hyperpath/test/vm
// run inside a guest: it proves that host-built binaries reach the guest
// and run there, and reports what it sees.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
)

func main() {
	rel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	fmt.Printf("guestprobe args=%s cpus=%d kernel=%s env=%s\n",
		strings.Join(os.Args[1:], ","), runtime.NumCPU(), strings.TrimSpace(string(rel)), os.Getenv("PROBE"))
	if len(os.Args) > 1 && os.Args[1] == "fail" {
		os.Exit(3)
	}
}
