package vm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// imageFormat is part of every cache key: bump it when the layout of the
// image changes in a way the inputs do not show.
const imageFormat = "hyperpath-vm-5"

//go:embed scripts/init
var initScript []byte

//go:embed scripts/hpvm-mount-tools
var mountToolsScript []byte

// Fixed NVMe host identity of every guest, so nvme-cli needs no --hostnqn.
const (
	GuestHostID  = "6f1c2a4e-9d3b-4c1f-8e2a-5b7d9c0e1f23"
	GuestHostNQN = "nqn.2014-08.org.nvmexpress:uuid:" + GuestHostID
)

// guestTools are host programs copied into the image with their libraries.
// dst is where the guest finds them (its PATH is /usr/sbin:/usr/bin:/sbin:/bin).
var guestTools = []struct{ name, dst string }{
	{"nvme", "/usr/sbin/nvme"},
	{"ibv_rc_pingpong", "/usr/bin/ibv_rc_pingpong"},
	{"ibv_devices", "/usr/bin/ibv_devices"},
	{"ibv_devinfo", "/usr/bin/ibv_devinfo"},
	{"rping", "/usr/bin/rping"},
	{"rdma", "/usr/sbin/rdma"},
	{"mke2fs", "/usr/sbin/mke2fs"},
	{"blkdiscard", "/usr/sbin/blkdiscard"},
}

// diskTools go on the read-only tools disk (ext2, mounted at /opt/tools on
// first use) with their libraries in /opt/tools/lib; a wrapper in the
// initramfs mounts the disk and runs them through the disk's own loader.
// fio is there because its engines pull in about 75 MiB of libraries (ceph,
// gluster, ICU): in the initramfs they would cost every boot about 1.5 s
// under TCG (the kernel copies the whole archive), on the disk only the
// guests that run fio pay, and only for the pages the loader touches.
var diskTools = []struct{ name, wrapper string }{
	{"fio", "/usr/bin/fio"},
}

// ToolsMount is where the guest mounts the tools disk; ToolsSerial is the
// disk's virtio serial. It is the last virtio disk, after every
// Config.VhostUserBlk disk, so those keep the names /dev/vda, /dev/vdb, ...
const (
	ToolsMount  = "/opt/tools"
	ToolsSerial = "hpvm-tools"
)

// guestTrees are host files or directories copied as they are (dynamic
// libraries among them bring their dependencies): the Soft-RoCE verbs
// provider that libibverbs loads at run time (the only RDMA device a guest
// has), and libgcc_s that glibc loads for thread exit.
var guestTrees = []string{
	"/usr/lib/x86_64-linux-gnu/libibverbs/librxe-rdmav34.so",
	"/etc/libibverbs.d/rxe.driver",
	"/usr/lib/x86_64-linux-gnu/libgcc_s.so.1",
	"/etc/mke2fs.conf",
}

// Build makes sure the packages, the kernel and the base initramfs exist in
// the cache directory and returns the image. Each artefact is rebuilt only
// when its inputs change: the kernel when apt names another package
// version, the initramfs when its key (kernel version plus the path, size
// and mtime of every input file) changes. Concurrent Builds, in this or
// other processes, serialise on a lock file in the cache directory.
func Build(ctx context.Context, o BuildOptions) (*Image, error) {
	if runtime.GOOS != "linux" {
		return nil, skipf("guests need a Linux host, this is %s", runtime.GOOS)
	}
	dir := o.Dir
	if dir == "" {
		dir = CacheDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("vm: cache dir: %w", err)
	}
	unlock, err := lockFile(filepath.Join(dir, ".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()

	if err := ensurePackages(ctx, o); err != nil {
		return nil, err
	}
	img := &Image{Dir: dir}
	if img.QEMU, err = lookTool("qemu-system-x86_64"); err != nil {
		return nil, skipf("%v (package qemu-system-x86)", err)
	}
	if img.StorageDaemon, err = lookTool("qemu-storage-daemon"); err != nil {
		return nil, skipf("%v (package qemu-system-common)", err)
	}
	k, err := ensureKernel(ctx, dir, o.Progress)
	if err != nil {
		return nil, err
	}
	img.Kernel = k.Kernel
	img.KernelVersion = k.Version
	img.KernelPackage = k.Package + " " + k.PackageVersion
	if err := ensureInitrd(ctx, img, k, o); err != nil {
		return nil, err
	}
	return img, nil
}

// runCmd runs a command and returns its combined output; the error carries
// the tail of that output.
func runCmd(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, tail(string(out), 800))
	}
	return string(out), nil
}

// tail returns the last n bytes of s, starting at a line boundary when possible.
func tail(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 && i < len(s)-1 {
		s = s[i+1:]
	}
	return "..." + s
}

var toolPath = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// lookTool finds a host program in PATH or the usual system directories.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range toolPath {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("no %s on this host", name)
}

// missingPackages lists the packages of want that dpkg does not report installed.
func missingPackages(ctx context.Context, want []string) ([]string, error) {
	if _, err := lookTool("dpkg-query"); err != nil {
		return nil, skipf("not a Debian host (%v); the guests need these packages: %s", err, strings.Join(want, " "))
	}
	cmd := exec.CommandContext(ctx, "dpkg-query", append([]string{"-W", "-f=${Package} ${db:Status-Abbrev}\n"}, want...)...)
	out, _ := cmd.Output() // exits 1 when some package is unknown; stdout still lists the known ones
	installed := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && strings.HasPrefix(f[1], "ii") {
			installed[strings.SplitN(f[0], ":", 2)[0]] = true
		}
	}
	var missing []string
	for _, p := range want {
		if !installed[p] {
			missing = append(missing, p)
		}
	}
	return missing, nil
}

func ensurePackages(ctx context.Context, o BuildOptions) error {
	missing, err := missingPackages(ctx, Packages)
	if err != nil || len(missing) == 0 {
		return err
	}
	list := strings.Join(missing, " ")
	switch {
	case !o.Install:
		return skipf("missing Debian packages: %s (apt-get install %s, or run test/vm/setup.sh as root)", list, list)
	case os.Geteuid() != 0:
		return skipf("missing Debian packages: %s, and not root to install them (run test/vm/setup.sh as root)", list)
	}
	if _, err := lookTool("apt-get"); err != nil {
		return skipf("missing Debian packages %s and no apt-get: %v", list, err)
	}
	start := time.Now()
	progressf(o.Progress, "installing Debian packages: %s (apt-get update + install)", list)
	env := []string{"DEBIAN_FRONTEND=noninteractive"}
	if _, err := runCmd(ctx, "", env, "apt-get", "-o", "DPkg::Lock::Timeout=300", "update", "-qq"); err != nil {
		return skipf("cannot install %s: %v", list, err)
	}
	args := append([]string{"-o", "DPkg::Lock::Timeout=300", "install", "-y", "-qq", "--no-install-recommends"}, missing...)
	if _, err := runCmd(ctx, "", env, "apt-get", args...); err != nil {
		return skipf("cannot install %s: %v", list, err)
	}
	if still, _ := missingPackages(ctx, missing); len(still) > 0 {
		return skipf("apt-get install did not install %s", strings.Join(still, " "))
	}
	progressf(o.Progress, "packages installed in %.1fs", time.Since(start).Seconds())
	return nil
}

// kernelInfo describes an unpacked guest kernel in the cache (kernel.json).
type kernelInfo struct {
	Package        string // linux-image-6.1.0-28-amd64
	PackageVersion string // 6.1.119-1
	Version        string // 6.1.0-28-amd64 (uname -r, the modules directory)
	Kernel         string // absolute path of the file QEMU boots
	Modules        string // absolute path of lib/modules/<Version>
	dir            string
}

// resolveKernelPackage asks apt which package linux-image-amd64 currently
// depends on, and that package's candidate version.
func resolveKernelPackage(ctx context.Context) (pkg, version string, err error) {
	out, err := runCmd(ctx, "", nil, "apt-cache", "depends", "linux-image-amd64")
	if err != nil {
		return "", "", err
	}
	re := regexp.MustCompile(`(?m)^\s*Depends:\s*(linux-image-[0-9][^\s]*)`)
	m := re.FindStringSubmatch(out)
	if m == nil {
		return "", "", fmt.Errorf("apt-cache depends linux-image-amd64 names no linux-image-N package: %s", tail(out, 300))
	}
	pkg = m[1]
	out, err = runCmd(ctx, "", nil, "apt-cache", "show", "--no-all-versions", pkg)
	if err != nil {
		return "", "", err
	}
	vm := regexp.MustCompile(`(?m)^Version:\s*(\S+)`).FindStringSubmatch(out)
	if vm == nil {
		return "", "", fmt.Errorf("apt-cache show %s has no Version", pkg)
	}
	return pkg, vm[1], nil
}

func loadKernel(dir string) (*kernelInfo, error) {
	b, err := os.ReadFile(filepath.Join(dir, "kernel.json"))
	if err != nil {
		return nil, err
	}
	var k kernelInfo
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("%s/kernel.json: %w", dir, err)
	}
	k.dir = dir
	for _, p := range []string{k.Kernel, filepath.Join(k.Modules, "modules.dep")} {
		if _, err := os.Stat(p); err != nil {
			return nil, err
		}
	}
	return &k, nil
}

// cachedKernels lists unpacked kernels, newest first.
func cachedKernels(dir string) []*kernelInfo {
	ents, _ := filepath.Glob(filepath.Join(dir, "kernel", "*", "kernel.json"))
	var ks []*kernelInfo
	for _, e := range ents {
		if k, err := loadKernel(filepath.Dir(e)); err == nil {
			ks = append(ks, k)
		}
	}
	sort.Slice(ks, func(i, j int) bool { return ks[i].PackageVersion > ks[j].PackageVersion })
	return ks
}

// aptListsStamp fingerprints apt's package lists: the kernel package apt
// names can only change when they do.
func aptListsStamp() string {
	h := sha256.New()
	files, _ := filepath.Glob("/var/lib/apt/lists/*Packages*")
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			fmt.Fprintf(h, "%s %d %d\n", f, st.Size(), st.ModTime().UnixNano())
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

type kernelResolution struct{ Stamp, Package, Version string }

// resolveKernelCached is resolveKernelPackage, remembered in the cache
// directory until apt's lists change (apt-cache takes about a second per
// call on hosts without a package cache file).
func resolveKernelCached(ctx context.Context, dir string) (pkg, version string, err error) {
	path := filepath.Join(dir, "kernel-resolved.json")
	stamp := aptListsStamp()
	var r kernelResolution
	if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &r) == nil && r.Stamp == stamp && r.Package != "" {
		return r.Package, r.Version, nil
	}
	if pkg, version, err = resolveKernelPackage(ctx); err != nil {
		return "", "", err
	}
	b, _ := json.Marshal(kernelResolution{stamp, pkg, version})
	os.WriteFile(path, b, 0o644)
	return pkg, version, nil
}

func ensureKernel(ctx context.Context, dir string, progress io.Writer) (*kernelInfo, error) {
	pkg, ver, err := resolveKernelCached(ctx, dir)
	if err != nil {
		if ks := cachedKernels(dir); len(ks) > 0 {
			progressf(progress, "apt cannot name the kernel (%v); using cached %s %s", err, ks[0].Package, ks[0].PackageVersion)
			return ks[0], nil
		}
		return nil, skipf("cannot resolve the guest kernel package: %v", err)
	}
	kdir := filepath.Join(dir, "kernel", pkg+"_"+strings.NewReplacer("/", "_", ":", "_").Replace(ver))
	if k, err := loadKernel(kdir); err == nil {
		now := time.Now()
		os.Chtimes(filepath.Join(kdir, "kernel.json"), now, now) // in use: see the clean-up below
		return k, nil
	}
	start := time.Now()
	tmp := kdir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, err
	}
	progressf(progress, "downloading %s %s (apt-get download)", pkg, ver)
	if _, err := runCmd(ctx, tmp, nil, "apt-get", "download", "-q", pkg+"="+ver); err != nil {
		os.RemoveAll(tmp)
		return nil, skipf("cannot download the guest kernel: %v", err)
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("vm: apt-get download %s left %d .deb files", pkg, len(debs))
	}
	progressf(progress, "unpacking %s (dpkg -x)", filepath.Base(debs[0]))
	root := filepath.Join(tmp, "root")
	if _, err := runCmd(ctx, "", nil, "dpkg", "-x", debs[0], root); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("vm: %w", err)
	}
	os.Remove(debs[0])
	k := &kernelInfo{Package: pkg, PackageVersion: ver}
	var modBase string
	for _, cand := range []string{"lib/modules", "usr/lib/modules"} {
		ents, err := os.ReadDir(filepath.Join(root, cand))
		if err == nil && len(ents) == 1 {
			k.Version, modBase = ents[0].Name(), cand
			break
		}
	}
	if k.Version == "" {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("vm: %s holds no single lib/modules/<version> directory", pkg)
	}
	progressf(progress, "depmod %s", k.Version)
	// busybox depmod takes the base directory that holds lib/modules.
	depBase := root
	if modBase == "usr/lib/modules" {
		depBase = filepath.Join(root, "usr")
	}
	if _, err := runCmd(ctx, "", nil, "busybox", "depmod", "-b", depBase, k.Version); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("vm: %w", err)
	}
	bz := filepath.Join(root, "boot", "vmlinuz-"+k.Version)
	kernelFile := filepath.Join("root", "boot", "vmlinuz-"+k.Version)
	progressf(progress, "extracting vmlinux from %s", filepath.Base(bz))
	if err := extractVmlinux(ctx, bz, filepath.Join(tmp, "vmlinux")); err != nil {
		progressf(progress, "no vmlinux (%v); booting the bzImage instead (about 3 s slower under TCG)", err)
	} else {
		kernelFile = "vmlinux"
	}
	os.RemoveAll(kdir)
	if err := os.Rename(tmp, kdir); err != nil {
		return nil, err
	}
	k.Kernel = filepath.Join(kdir, kernelFile)
	k.Modules = filepath.Join(kdir, "root", modBase, k.Version)
	k.dir = kdir
	b, _ := json.MarshalIndent(k, "", "  ")
	if err := os.WriteFile(filepath.Join(kdir, "kernel.json"), b, 0o644); err != nil {
		return nil, err
	}
	// Older kernels take several hundred MB each; drop those nobody has
	// used for an hour (a test elsewhere may still be booting one).
	others, _ := filepath.Glob(filepath.Join(dir, "kernel", "*"))
	for _, o := range others {
		if o == kdir {
			continue
		}
		st, err := os.Stat(filepath.Join(o, "kernel.json"))
		if err != nil || time.Since(st.ModTime()) > time.Hour {
			os.RemoveAll(o)
		}
	}
	progressf(progress, "kernel %s ready in %.1fs", k.Version, time.Since(start).Seconds())
	return k, nil
}

// extractVmlinux writes the uncompressed kernel ELF held in a bzImage. The
// x86 boot protocol (>= 2.08) gives the payload's place in the setup
// header: payload_offset (0x248) from the start of the protected-mode code,
// which follows (setup_sects+1) 512-byte sectors, and payload_length
// (0x24c). Debian compresses it with xz. The uncompressed ELF carries the
// PVH note, so QEMU starts it directly and skips the decompressor.
func extractVmlinux(ctx context.Context, bzImage, out string) error {
	b, err := os.ReadFile(bzImage)
	if err != nil {
		return err
	}
	if len(b) < 0x250 || string(b[0x202:0x206]) != "HdrS" {
		return errors.New("not a bzImage (no HdrS at 0x202)")
	}
	if v := binary.LittleEndian.Uint16(b[0x206:]); v < 0x208 {
		return fmt.Errorf("boot protocol %#x has no payload fields", v)
	}
	setup := int(b[0x1f1])
	if setup == 0 {
		setup = 4
	}
	start := (setup+1)*512 + int(binary.LittleEndian.Uint32(b[0x248:]))
	n := int(binary.LittleEndian.Uint32(b[0x24c:]))
	if start < 0 || n <= 0 || start+n > len(b) {
		return fmt.Errorf("payload %d+%d outside the %d-byte file", start, n, len(b))
	}
	payload := b[start : start+n]
	if !bytes.HasPrefix(payload, []byte("\xfd7zXZ\x00")) {
		return fmt.Errorf("payload is not xz (starts %x)", payload[:6])
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, "xz", "-dc", "--single-stream")
	cmd.Stdin = bytes.NewReader(payload)
	cmd.Stdout = f
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		os.Remove(out)
		return fmt.Errorf("xz: %v: %s", err, stderr.String())
	}
	var magic [4]byte
	if _, err := f.ReadAt(magic[:], 0); err != nil || string(magic[:]) != "\x7fELF" {
		os.Remove(out)
		return errors.New("decompressed payload is not an ELF file")
	}
	return nil
}

// member is one entry of the base initramfs.
type member struct {
	dst   string
	src   string // host file to copy; empty for generated contents
	data  []byte // generated contents
	perm  uint32
	link  string // symlink target
	size  int64  // of src, for the cache key
	mtime int64  // of src, for the cache key
}

type initrdSpec struct {
	members map[string]*member
	order   []string
	// libDir, when set, is where shared libraries go (by base name);
	// otherwise they keep their host paths.
	libDir string
}

func (s *initrdSpec) add(m *member) {
	if s.members == nil {
		s.members = map[string]*member{}
	}
	if _, ok := s.members[m.dst]; ok {
		return
	}
	s.members[m.dst] = m
	s.order = append(s.order, m.dst)
}

// addHostFile adds a host file (following symlinks) and, for dynamic ELF
// files, the shared libraries ldd names (ldd lists the whole closure, so
// the libraries themselves need no second look).
func (s *initrdSpec) addHostFile(ctx context.Context, src, dst string) error {
	if _, ok := s.members[dst]; ok {
		return nil
	}
	if err := s.addPlain(src, dst); err != nil {
		return err
	}
	libs, err := lddLibs(ctx, src)
	if err != nil {
		return err
	}
	for _, l := range libs {
		ldst := l
		if s.libDir != "" {
			ldst = s.libDir + "/" + filepath.Base(l)
		}
		if err := s.addPlain(l, ldst); err != nil {
			return fmt.Errorf("library of %s: %w", src, err)
		}
	}
	return nil
}

// addPlain adds one host file as it is.
func (s *initrdSpec) addPlain(src, dst string) error {
	if _, ok := s.members[dst]; ok {
		return nil
	}
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	s.add(&member{dst: dst, src: src, perm: uint32(st.Mode().Perm()), size: st.Size(), mtime: st.ModTime().UnixNano()})
	return nil
}

var lddPath = regexp.MustCompile(`(/\S+) \(0x[0-9a-f]+\)`)

// lddLibs returns the shared libraries (and loader) a dynamic ELF file needs.
func lddLibs(ctx context.Context, file string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	var magic [4]byte
	_, err = io.ReadFull(f, magic[:])
	f.Close()
	if err != nil || string(magic[:]) != "\x7fELF" {
		return nil, nil // scripts, config files
	}
	out, err := exec.CommandContext(ctx, "ldd", file).CombinedOutput()
	s := string(out)
	if err != nil {
		if strings.Contains(s, "not a dynamic executable") || strings.Contains(s, "statically linked") {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %v: %s", file, err, tail(s, 300))
	}
	if strings.Contains(s, "not found") {
		return nil, fmt.Errorf("ldd %s: missing libraries: %s", file, tail(s, 500))
	}
	var libs []string
	for _, m := range lddPath.FindAllStringSubmatch(s, -1) {
		libs = append(libs, m[1])
	}
	return libs, nil
}

// modName normalises a module name the way modprobe does (dashes are underscores).
func modName(s string) string {
	s = path.Base(s)
	for _, suf := range []string{".ko.xz", ".ko.zst", ".ko.gz", ".ko"} {
		s = strings.TrimSuffix(s, suf)
	}
	return strings.ReplaceAll(s, "-", "_")
}

// addModules adds the named modules and every dependency modules.dep lists,
// writes the image's own modules.dep, copies modules.builtin, and returns
// the boot list for /etc/modules.
func (s *initrdSpec) addModules(k *kernelInfo, boot, script []string) ([]string, error) {
	depText, err := os.ReadFile(filepath.Join(k.Modules, "modules.dep"))
	if err != nil {
		return nil, err
	}
	deps := map[string][]string{} // name -> [path, dep paths...]
	lines := map[string]string{}  // path -> its modules.dep line
	for _, line := range strings.Split(string(depText), "\n") {
		p, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		deps[modName(p)] = append([]string{p}, strings.Fields(rest)...)
		lines[p] = line
	}
	builtin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(k.Modules, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			builtin[modName(l)] = true
		}
	}
	mdir := "/lib/modules/" + k.Version + "/"
	chosen := map[string]bool{}
	var bootList []string
	for i, name := range append(append([]string{}, boot...), script...) {
		n := modName(name)
		paths, ok := deps[n]
		if !ok {
			if builtin[n] {
				continue
			}
			return nil, fmt.Errorf("kernel %s has no module %s", k.Version, name)
		}
		if i < len(boot) {
			bootList = append(bootList, n)
		}
		for _, p := range paths {
			if chosen[p] {
				continue
			}
			if !strings.HasSuffix(p, ".ko") {
				return nil, fmt.Errorf("module %s is compressed; the image builder expects plain .ko files", p)
			}
			chosen[p] = true
			src := filepath.Join(k.Modules, p)
			st, err := os.Stat(src)
			if err != nil {
				return nil, err
			}
			s.add(&member{dst: mdir + p, src: src, perm: 0o644, size: st.Size(), mtime: st.ModTime().UnixNano()})
		}
	}
	var dep strings.Builder
	for _, p := range sortedKeys(chosen) {
		dep.WriteString(lines[p] + "\n")
	}
	s.add(&member{dst: mdir + "modules.dep", data: []byte(dep.String()), perm: 0o644})
	for _, f := range []string{"modules.builtin", "modules.order"} {
		if b, err := os.ReadFile(filepath.Join(k.Modules, f)); err == nil {
			s.add(&member{dst: mdir + f, data: b, perm: 0o644})
		}
	}
	return bootList, nil
}

// buildSpec lists every member of the base initramfs and of the tools disk.
func buildSpec(ctx context.Context, k *kernelInfo, extra []string) (s, tools *initrdSpec, err error) {
	s = &initrdSpec{}
	tools = &initrdSpec{libDir: "/lib"}
	for _, t := range diskTools {
		p, err := lookTool(t.name)
		if err != nil {
			return nil, nil, skipf("%v", err)
		}
		if err := tools.addHostFile(ctx, p, "/bin/"+t.name); err != nil {
			return nil, nil, err
		}
		wrapper := fmt.Sprintf("#!/bin/sh\n# %s lives on the tools disk with its own libraries.\n"+
			"[ -x %s/bin/%s ] || hpvm-mount-tools || exit 127\n"+
			"exec %s/lib/ld-linux-x86-64.so.2 --library-path %s/lib %s/bin/%s \"$@\"\n",
			t.name, ToolsMount, t.name, ToolsMount, ToolsMount, ToolsMount, t.name)
		s.add(&member{dst: t.wrapper, data: []byte(wrapper), perm: 0o755})
	}
	if _, ok := tools.members["/lib/ld-linux-x86-64.so.2"]; !ok {
		return nil, nil, errors.New("vm: the tools disk has no /lib/ld-linux-x86-64.so.2")
	}
	s.add(&member{dst: "/init", data: initScript, perm: 0o755})
	s.add(&member{dst: "/usr/sbin/hpvm-mount-tools", data: mountToolsScript, perm: 0o755})
	bb, err := lookTool("busybox")
	if err != nil {
		return nil, nil, skipf("%v (package busybox-static)", err)
	}
	if err := s.addHostFile(ctx, bb, "/bin/busybox"); err != nil {
		return nil, nil, err
	}
	for _, t := range guestTools {
		p, err := lookTool(t.name)
		if err != nil {
			return nil, nil, skipf("%v", err)
		}
		if err := s.addHostFile(ctx, p, t.dst); err != nil {
			return nil, nil, err
		}
	}
	s.add(&member{dst: "/usr/sbin/mkfs.ext4", link: "mke2fs"})
	for _, tree := range guestTrees {
		err := filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			return s.addHostFile(ctx, p, p)
		})
		if err != nil {
			return nil, nil, fmt.Errorf("vm: %s: %w", tree, err)
		}
	}
	for _, e := range extra {
		src, dst, ok := strings.Cut(e, "=")
		if !ok {
			dst = src
		}
		abs, err := filepath.Abs(src)
		if err != nil {
			return nil, nil, err
		}
		if !strings.HasPrefix(dst, "/") {
			return nil, nil, fmt.Errorf("vm: extra file %q: guest path must be absolute", e)
		}
		if err := s.addHostFile(ctx, abs, dst); err != nil {
			return nil, nil, fmt.Errorf("vm: extra file %q: %w", e, err)
		}
	}
	bootList, err := s.addModules(k, BootModules, ScriptModules)
	if err != nil {
		return nil, nil, fmt.Errorf("vm: %w", err)
	}
	gen := map[string]string{
		"/etc/modules":      strings.Join(bootList, "\n") + "\n",
		"/etc/nvme/hostnqn": GuestHostNQN + "\n",
		"/etc/nvme/hostid":  GuestHostID + "\n",
		"/etc/passwd":       "root:x:0:0:root:/root:/bin/sh\n",
		"/etc/group":        "root:x:0:\n",
		"/etc/hosts":        "127.0.0.1 localhost\n::1 localhost\n",
	}
	for _, dst := range sortedKeys(gen) {
		s.add(&member{dst: dst, data: []byte(gen[dst]), perm: 0o644})
	}
	return s, tools, nil
}

// imageKey hashes everything that decides the contents of the initramfs
// and the tools disk.
func imageKey(k *kernelInfo, specs ...*initrdSpec) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s %s %s\n", imageFormat, k.Package, k.PackageVersion, k.Version)
	for i, s := range specs {
		fmt.Fprintf(h, "spec %d\n", i)
		dsts := append([]string{}, s.order...)
		sort.Strings(dsts)
		for _, d := range dsts {
			m := s.members[d]
			sum := sha256.Sum256(m.data)
			fmt.Fprintf(h, "%s %s %o %d %d %s %x\n", m.dst, m.src, m.perm, m.size, m.mtime, m.link, sum[:8])
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// writeExt2 writes the tools disk: an ext2 file system (4 KiB blocks, so
// the guest reads it in large requests) made by mke2fs from a staging copy.
func (s *initrdSpec) writeExt2(ctx context.Context, out string) error {
	stage, err := os.MkdirTemp(filepath.Dir(out), "tools-stage")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	var total int64
	for _, d := range s.order {
		m := s.members[d]
		p := filepath.Join(stage, m.dst)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		switch {
		case m.link != "":
			err = os.Symlink(m.link, p)
		case m.src == "":
			err = os.WriteFile(p, m.data, os.FileMode(m.perm))
			total += int64(len(m.data))
		default:
			err = copyFile(m.src, p, os.FileMode(m.perm))
			total += m.size
		}
		if err != nil {
			return err
		}
	}
	sizeKiB := (total*5/4)>>10 + 8192
	_, err = runCmd(ctx, "", nil, "mke2fs", "-q", "-F", "-t", "ext2", "-b", "4096", "-m", "0",
		"-N", strconv.Itoa(len(s.order)+64), "-L", ToolsSerial, "-d", stage, out, strconv.FormatInt(sizeKiB, 10)+"k")
	return err
}

func copyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// write writes the archive: skeleton directories, /dev/console, members in
// path order.
func (s *initrdSpec) write(w io.Writer, k *kernelInfo) error {
	c := newCpioWriter(w)
	for _, d := range []string{"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/proc", "/sys", "/dev", "/tmp", "/run", "/mnt", "/host", "/root", "/var/tmp", "/etc", "/lib/modules/" + k.Version} {
		if err := c.Dir(d); err != nil {
			return err
		}
	}
	if err := c.CharDev("/dev/console", 0o600, 5, 1); err != nil {
		return err
	}
	dsts := append([]string{}, s.order...)
	sort.Strings(dsts)
	for _, d := range dsts {
		m := s.members[d]
		var err error
		switch {
		case m.link != "":
			err = c.Symlink(m.dst, m.link)
		case m.src == "":
			err = c.Bytes(m.dst, m.perm, m.data)
		default:
			var f *os.File
			if f, err = os.Open(m.src); err != nil {
				return err
			}
			var st os.FileInfo
			if st, err = f.Stat(); err == nil {
				err = c.File(m.dst, m.perm, st.Size(), f)
			}
			f.Close()
		}
		if err != nil {
			return err
		}
	}
	return c.Close()
}

func ensureInitrd(ctx context.Context, img *Image, k *kernelInfo, o BuildOptions) error {
	s, tools, err := buildSpec(ctx, k, o.Extra)
	if err != nil {
		return err
	}
	img.Key = imageKey(k, s, tools)
	img.Modules = append(append([]string{}, BootModules...), ScriptModules...)
	img.Initrd = filepath.Join(img.Dir, "initrd-"+img.Key+".img")
	img.Tools = filepath.Join(img.Dir, "initrd-"+img.Key+".tools")
	_, err1 := os.Stat(img.Initrd)
	_, err2 := os.Stat(img.Tools)
	if err1 == nil && err2 == nil {
		now := time.Now()
		os.Chtimes(img.Initrd, now, now) // in use: keep them from the clean-up below
		os.Chtimes(img.Tools, now, now)
		return nil
	}
	tstart := time.Now()
	progressf(o.Progress, "building tools disk %s (%d files)", filepath.Base(img.Tools), len(tools.order))
	err = tools.writeExt2(ctx, img.Tools+".tmp")
	if err == nil {
		err = os.Rename(img.Tools+".tmp", img.Tools)
	}
	if err != nil {
		os.Remove(img.Tools + ".tmp")
		return fmt.Errorf("vm: writing tools disk: %w", err)
	}
	if st, err := os.Stat(img.Tools); err == nil {
		progressf(o.Progress, "tools disk ready in %.1fs (%d MiB)", time.Since(tstart).Seconds(), st.Size()>>20)
	}
	start := time.Now()
	progressf(o.Progress, "building initramfs %s (%d files, kernel %s)", filepath.Base(img.Initrd), len(s.order), k.Version)
	tmp := img.Initrd + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	err = s.write(bw, k)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, img.Initrd)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("vm: writing initramfs: %w", err)
	}
	var list strings.Builder
	for _, d := range s.order {
		m := s.members[d]
		fmt.Fprintf(&list, "%s\t%s\n", m.dst, m.src)
	}
	for _, d := range tools.order {
		m := tools.members[d]
		fmt.Fprintf(&list, "%s%s\t%s\n", ToolsMount, m.dst, m.src)
	}
	os.WriteFile(strings.TrimSuffix(img.Initrd, ".img")+".files", []byte(list.String()), 0o644)
	// Drop images of earlier inputs that nobody has touched for an hour
	// (a running test elsewhere may still be copying a recent one).
	old, _ := filepath.Glob(filepath.Join(img.Dir, "initrd-*"))
	for _, p := range old {
		if strings.HasPrefix(filepath.Base(p), "initrd-"+img.Key+".") {
			continue
		}
		if st, err := os.Stat(p); err == nil && time.Since(st.ModTime()) > time.Hour {
			os.Remove(p)
		}
	}
	st, _ := os.Stat(img.Initrd)
	progressf(o.Progress, "initramfs ready in %.1fs (%d MiB)", time.Since(start).Seconds(), st.Size()>>20)
	return nil
}
