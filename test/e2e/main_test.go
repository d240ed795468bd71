// Package e2e runs Hyperpath's commands against each other as separate
// processes, the way an operator would: the hyperpath daemon as a
// vhost-user-blk or NVMe/TCP target, bdevperf as its client, over real
// sockets on this machine (Unix sockets, TCP on 127.0.0.1). The package has
// no code of its own; everything is in its tests.
//
// # Processes and ownership
//
// TestMain builds the binaries once. Each test owns the processes it
// starts, the ports and socket paths it picks and the temporary
// directories it makes; every process is registered with t.Cleanup and
// ended by its PID (SIGTERM, then SIGKILL), also when the test fails.
// Tests run one at a time: the daemon and bdevperf pin reactors to cores 1
// and 0. Everything is skipped under -short and off Linux.
package e2e

// TestMain builds app/hyperpath and app/bdevperf once into a temporary
// directory (binDir); tests reach them through hyperpathBin and
// bdevperfBin after calling needBinaries. Under -short, or off Linux,
// nothing is built and every end-to-end test skips.

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

var (
	// binDir is the directory TestMain built the binaries into;
	// hyperpathBin and bdevperfBin are their paths (all empty under
	// -short).
	binDir       string
	hyperpathBin string
	bdevperfBin  string
	// buildErr is why the build failed, if it did.
	buildErr error
)

func TestMain(m *testing.M) {
	flag.Parse()
	var dir string
	if !testing.Short() && runtime.GOOS == "linux" {
		var err error
		if dir, err = os.MkdirTemp("", "hyperpath-e2e-bin-"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		binDir = dir
		hyperpathBin = filepath.Join(dir, "hyperpath")
		bdevperfBin = filepath.Join(dir, "bdevperf")
		buildErr = goBuild(map[string]string{hyperpathBin: "hyperpath/app/hyperpath", bdevperfBin: "hyperpath/app/bdevperf"})
	}
	code := m.Run()
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// goBuild runs go build for each output path and package.
func goBuild(targets map[string]string) error {
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

// needBinaries skips the test under -short and off Linux (the daemon's
// data path is Linux-only), and fails it when the build failed.
func needBinaries(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: builds and runs the hyperpath and bdevperf binaries; skipped under -short")
	}
	if runtime.GOOS != "linux" {
		t.Skip("end-to-end test: the daemon's data path (io_uring, vhost-user, nvmf/tcp) is Linux-only")
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}
