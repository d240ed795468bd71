// Package e2e runs Hyperpath's binaries against each other as separate
// processes: the hyperpath daemon as a target, bdevperf (or a guest) as
// its client, over real sockets on loopback. Each test starts its own
// processes, names its own ports and socket paths, and kills what it
// started by PID in t.Cleanup. Everything here is skipped under -short.
//
// TestMain builds app/hyperpath and app/bdevperf once into a temporary
// directory; tests reach them through hyperpathBin and bdevperfBin after
// calling needBinaries.
package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

var (
	// hyperpathBin and bdevperfBin are the paths of the binaries TestMain
	// built (empty under -short).
	hyperpathBin string
	bdevperfBin  string
	// buildErr is why the build failed, if it did.
	buildErr error
)

func TestMain(m *testing.M) {
	flag.Parse()
	var dir string
	if !testing.Short() {
		var err error
		if dir, err = os.MkdirTemp("", "hyperpath-e2e-bin-"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		hyperpathBin = filepath.Join(dir, "hyperpath")
		bdevperfBin = filepath.Join(dir, "bdevperf")
		buildErr = build(map[string]string{hyperpathBin: "hyperpath/app/hyperpath", bdevperfBin: "hyperpath/app/bdevperf"})
	}
	code := m.Run()
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// build runs go build for each output path and package.
func build(targets map[string]string) error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go"
	}
	for out, pkg := range targets {
		if b, err := exec.Command(goTool, "build", "-o", out, pkg).CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	return nil
}

// needBinaries skips the test under -short and fails it when the build
// failed.
func needBinaries(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: builds and runs the hyperpath and bdevperf binaries; skipped under -short")
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}
