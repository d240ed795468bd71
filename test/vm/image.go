package vm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Image is a built guest: a Debian kernel, a base initramfs and the host
// tools that run it. It is immutable once returned and safe to share
// between goroutines and tests; every Boot appends its own small archive.
type Image struct {
	Dir           string   // cache directory (build/vm under the repository root)
	Kernel        string   // kernel to boot: vmlinux (PVH entry), or the bzImage when no vmlinux could be extracted
	Initrd        string   // base initramfs (newc cpio, uncompressed)
	Tools         string   // tools disk (ext2: fio and its libraries), mounted at ToolsMount on first use
	KernelVersion string   // uname -r of the guest, e.g. 6.1.0-28-amd64
	KernelPackage string   // Debian package and version, e.g. "linux-image-6.1.0-28-amd64 6.1.119-1"
	Modules       []string // kernel modules in the initramfs (names as given, deps not listed)
	QEMU          string   // host qemu-system-x86_64
	StorageDaemon string   // host qemu-storage-daemon
	Key           string   // cache key of the initramfs (hash of kernel version and every input)
}

// BuildOptions controls Build.
type BuildOptions struct {
	// Dir is the cache directory; empty means CacheDir().
	Dir string
	// Install lets Build run apt-get (as root) for missing Debian packages.
	Install bool
	// Extra host files copied into the base image: "SRC" (same path in the
	// guest) or "SRC=DST". Dynamic ELF files bring their shared libraries.
	// Prefer Config.Files for per-test binaries: it needs no rebuild.
	Extra []string
	// Progress receives one line per slow step; nil discards them.
	Progress io.Writer
}

// Packages are the Debian packages the image and the tests need.
var Packages = []string{
	"qemu-system-x86", "qemu-utils", "busybox-static", "fio", "nvme-cli",
	"ibverbs-utils", "rdmacm-utils", "ibverbs-providers", "libibverbs-dev",
	"e2fsprogs", "util-linux", "iproute2", "xz-utils",
}

// BootModules are loaded by the guest's /init before the script runs;
// ScriptModules are in the image for scripts to modprobe. Dependencies come
// along from the kernel's modules.dep. A name the kernel has built in is fine.
var (
	BootModules   = []string{"virtio_pci", "virtio_blk", "virtio_net", "9pnet_virtio", "9p", "configfs", "crc32c_generic"}
	ScriptModules = []string{
		"ext4", "crc32_generic", "null_blk",
		"nvme_tcp", "nvme_rdma", "nvmet", "nvmet_tcp", "nvmet_rdma",
		"rdma_rxe", "rdma_ucm", "ib_uverbs",
	}
)

// SkipError reports why the image cannot be built on this machine (a
// missing package that cannot be installed, no apt, no network). Require
// turns it into t.Skip; other errors are bugs or broken inputs and fail.
type SkipError struct{ Reason string }

func (e *SkipError) Error() string { return "vm: " + e.Reason }

func skipf(format string, args ...any) error {
	return &SkipError{Reason: fmt.Sprintf(format, args...)}
}

// EnvStrict names the environment variable that turns Require's skips into
// failures (set it to 1 in CI jobs that must run the guests).
const EnvStrict = "HYPERPATH_VM_REQUIRE"

// EnvNoInstall names the environment variable that stops Require from
// running apt-get (set it to 1 to get a skip instead of an install).
const EnvNoInstall = "HYPERPATH_VM_NOINSTALL"

// EnvCacheDir overrides the cache directory.
const EnvCacheDir = "HYPERPATH_VM_CACHE"

// CacheDir is where images are cached: $HYPERPATH_VM_CACHE, else build/vm
// under the repository root (found from the working directory by go.mod),
// else a directory under the system temp dir.
func CacheDir() string {
	if d := os.Getenv(EnvCacheDir); d != "" {
		return d
	}
	if root, err := RepoRoot(); err == nil {
		return filepath.Join(root, "build", "vm")
	}
	return filepath.Join(os.TempDir(), "hyperpath-vm")
}

// RepoRoot finds the hyperpath module root above the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if f, err := os.Open(filepath.Join(dir, "go.mod")); err == nil {
			sc := bufio.NewScanner(f)
			isOurs := false
			for sc.Scan() {
				if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "module ") {
					isOurs = strings.TrimSpace(strings.TrimPrefix(line, "module ")) == "hyperpath"
					break
				}
			}
			f.Close()
			if isOurs {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("vm: no go.mod of module hyperpath above the working directory")
		}
		dir = parent
	}
}

var required struct {
	sync.Mutex
	done bool
	img  *Image
	err  error
	took time.Duration
}

// Require returns the cached guest image, building it first if needed
// (installing missing Debian packages when running as root, unless
// HYPERPATH_VM_NOINSTALL=1). When that is not possible it skips the test
// with the exact reason (or fails it under HYPERPATH_VM_REQUIRE=1). The
// result is remembered for the rest of the process.
func Require(t testing.TB) *Image {
	t.Helper()
	required.Lock()
	if !required.done {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		required.img, required.err = Build(ctx, BuildOptions{
			Install:  os.Getenv(EnvNoInstall) != "1",
			Progress: os.Stderr,
		})
		cancel()
		required.took = time.Since(start)
		required.done = true
		if required.err == nil {
			t.Logf("vm: image ready in %v: kernel %s, initrd %s", required.took.Round(time.Millisecond), required.img.KernelVersion, required.img.Initrd)
		}
	}
	img, err := required.img, required.err
	required.Unlock()
	if err != nil {
		var se *SkipError
		if errors.As(err, &se) && os.Getenv(EnvStrict) != "1" {
			t.Skip(err.Error())
		}
		t.Fatal(err)
	}
	return img
}

func progressf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, "vm: "+format+"\n", args...)
	}
}
