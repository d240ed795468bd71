package vm

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// BuildGo builds a Go main package as a static binary (CGO_ENABLED=0) for
// a guest and returns its path, for Config.Files. pkg is an import path
// ("hyperpath/app/hyperpath") or a directory relative to the repository
// root ("./test/vm/testdata/guestprobe"). The binary is removed when the
// test ends. Build failures fail the test.
func BuildGo(t testing.TB, pkg string) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Fatalf("vm: BuildGo: no go command: %v", err)
		}
	}
	out := filepath.Join(t.TempDir(), filepath.Base(strings.TrimSuffix(pkg, "/")))
	cmd := exec.Command(goBin, "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("vm: go build %s: %v\n%s", pkg, err, b)
	}
	return out
}
