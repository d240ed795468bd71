package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// MemBackend selects how guest RAM is backed. Both are shared mappings, as
// vhost-user needs: the back end maps the same pages from the fds QEMU
// sends in SET_MEM_TABLE.
type MemBackend int

const (
	// Memfd backs RAM with a shared memfd (4 KiB pages): memory-backend-memfd,share=on.
	Memfd MemBackend = iota
	// Hugetlbfs backs RAM with a file on a private hugetlbfs mount (2 MiB
	// pages, preallocated): memory-backend-file,share=on,prealloc=on. The
	// huge page pool is grown for the guest and shrunk again afterwards.
	Hugetlbfs
)

func (m MemBackend) String() string {
	switch m {
	case Memfd:
		return "memfd"
	case Hugetlbfs:
		return "hugetlbfs"
	}
	return "MemBackend(" + strconv.Itoa(int(m)) + ")"
}

// VhostUserBlk attaches a vhost-user-blk-pci disk served on a Unix socket.
// The guest sees the disks as /dev/vda, /dev/vdb, ... in order.
type VhostUserBlk struct {
	Socket    string // the back end's listening socket
	NumQueues int    // virtqueues (0 means 1); the guest uses min(NumQueues, CPUs)
	// Reconnect, when not zero, makes QEMU survive the back end going away
	// and reconnect at this interval (rounded up to whole seconds).
	Reconnect time.Duration
}

// HostForward forwards 127.0.0.1:HostPort on the host to GuestPort in the
// guest (TCP), through QEMU's user-mode network.
type HostForward struct {
	HostPort  int
	GuestPort int
}

// Net gives the guest a virtio-net NIC on a QEMU user-mode network: the
// guest is 10.0.2.15/24 and reaches the host's loopback as 10.0.2.2.
type Net struct {
	HostForwards []HostForward
	// Isolated stops the guest from reaching the host or beyond (slirp
	// restrict=on); host forwards still work.
	Isolated bool
}

// Config describes one guest run.
type Config struct {
	// Name labels logs and the console stream; empty means the test's name.
	Name string
	// MemoryMiB of guest RAM (0 means 512).
	MemoryMiB int
	// CPUs of the guest (0 means 2).
	CPUs int
	// MemBackend backs guest RAM (default Memfd).
	MemBackend MemBackend
	// VhostUserBlk disks, in order.
	VhostUserBlk []VhostUserBlk
	// Net, if set, adds a NIC on a user-mode network.
	Net *Net
	// Share9p is a host directory shared read-write with the guest at /host.
	Share9p string
	// Script is the guest's shell script (busybox sh). Its exit status is
	// the guest's exit code.
	Script string
	// Env holds variables exported to the script. Names must be shell identifiers.
	Env map[string]string
	// Files maps guest paths to host files added for this boot only (for
	// example static Go binaries from BuildGo). Dynamic ELF files bring
	// their shared libraries.
	Files map[string]string
	// Data maps guest paths to contents (mode 0755) added for this boot only.
	Data map[string][]byte
	// Timeout bounds the whole run from QEMU's start (0 means 3 minutes);
	// then QEMU is killed and Wait returns an error wrapping ErrTimeout.
	Timeout time.Duration
	// Console, if set, receives the console output as it arrives.
	// HYPERPATH_VM_CONSOLE=1 streams every guest's console to stderr.
	Console io.Writer
	// KernelArgs are appended to the kernel command line.
	KernelArgs []string
	// QEMUArgs are appended to QEMU's command line.
	QEMUArgs []string
}

// Errors of Wait.
var (
	ErrTimeout       = errors.New("vm: guest timed out")
	ErrKilled        = errors.New("vm: guest killed")
	ErrNoExitMarker  = errors.New("vm: guest stopped without reporting the script's exit status")
	errBadEnvName    = errors.New("vm: Env name is not a shell identifier")
	envName          = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	exitMarker       = regexp.MustCompile(`@@hpvm exit=(\d+)[^@]*@@`)
	startMarker      = "@@hpvm start"
	defaultTimeout   = 3 * time.Minute
	defaultMemoryMiB = 512
)

// Guest is a running (or finished) QEMU guest. Its methods are safe for
// concurrent use.
type Guest struct {
	Name string

	cfg     Config
	cmd     *exec.Cmd
	dir     string
	console *consoleBuf
	qemuErr *consoleBuf
	done    chan struct{}
	timer   *time.Timer
	start   time.Time

	mu       sync.Mutex
	cleanups []func() // run in reverse once QEMU has exited
	timedOut bool
	killed   bool
	exitErr  error // from exec's Wait
	elapsed  time.Duration
}

// consoleBuf collects output, tees it, and wakes WaitFor callers.
type consoleBuf struct {
	mu      sync.Mutex
	buf     []byte
	tee     io.Writer
	changed chan struct{}
}

func newConsoleBuf(tee io.Writer) *consoleBuf {
	return &consoleBuf{tee: tee, changed: make(chan struct{})}
}

func (c *consoleBuf) Write(p []byte) (int, error) {
	clean := bytes.ReplaceAll(p, []byte("\r"), nil)
	c.mu.Lock()
	c.buf = append(c.buf, clean...)
	close(c.changed)
	c.changed = make(chan struct{})
	tee := c.tee
	c.mu.Unlock()
	if tee != nil {
		tee.Write(clean)
	}
	return len(p), nil
}

func (c *consoleBuf) snapshot() (string, chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.buf), c.changed
}

func (c *consoleBuf) String() string { s, _ := c.snapshot(); return s }

// linePrefixer writes each line with a prefix (console streaming).
type linePrefixer struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	start  time.Time
	midLn  bool
}

func (l *linePrefixer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b bytes.Buffer
	for _, ch := range p {
		if !l.midLn {
			fmt.Fprintf(&b, "[%s %6.2fs] ", l.prefix, time.Since(l.start).Seconds())
			l.midLn = true
		}
		b.WriteByte(ch)
		if ch == '\n' {
			l.midLn = false
		}
	}
	l.w.Write(b.Bytes())
	return len(p), nil
}

func (cfg *Config) defaults() {
	if cfg.MemoryMiB <= 0 {
		cfg.MemoryMiB = defaultMemoryMiB
	}
	if cfg.CPUs <= 0 {
		cfg.CPUs = 2
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
}

// envScript renders Env as a sourced shell file.
func envScript(env map[string]string) ([]byte, error) {
	var b bytes.Buffer
	for _, k := range sortedKeys(env) {
		if !envName.MatchString(k) {
			return nil, fmt.Errorf("%w: %q", errBadEnvName, k)
		}
		fmt.Fprintf(&b, "export %s='%s'\n", k, strings.ReplaceAll(env[k], "'", `'\''`))
	}
	return b.Bytes(), nil
}

// qemuArgs builds QEMU's command line. memPath is the hugetlbfs mount for
// the Hugetlbfs backend.
func (img *Image) qemuArgs(cfg Config, initrd, memPath string) []string {
	mem := fmt.Sprintf("%dM", cfg.MemoryMiB)
	memObj := "memory-backend-memfd,id=mem,size=" + mem + ",share=on"
	if cfg.MemBackend == Hugetlbfs {
		memObj = "memory-backend-file,id=mem,size=" + mem + ",mem-path=" + memPath + ",share=on,prealloc=on"
	}
	args := []string{
		"-nodefaults", "-no-user-config", "-M", "q35",
		"-accel", "tcg,thread=multi", "-cpu", "max",
		"-smp", strconv.Itoa(cfg.CPUs), "-m", mem,
		"-object", memObj, "-numa", "node,memdev=mem",
		"-display", "none", "-serial", "stdio", "-no-reboot",
		"-kernel", img.Kernel, "-initrd", initrd,
		"-append", strings.Join(append([]string{"console=ttyS0", "quiet", "panic=-1"}, cfg.KernelArgs...), " "),
	}
	for i, d := range cfg.VhostUserBlk {
		ch := fmt.Sprintf("socket,id=vub%d,path=%s", i, d.Socket)
		if d.Reconnect > 0 {
			ch += fmt.Sprintf(",reconnect=%d", int((d.Reconnect+time.Second-1)/time.Second))
		}
		q := max(d.NumQueues, 1)
		args = append(args, "-chardev", ch, "-device", fmt.Sprintf("vhost-user-blk-pci,chardev=vub%d,num-queues=%d", i, q))
	}
	if cfg.Net != nil {
		nd := "user,id=net0"
		if cfg.Net.Isolated {
			nd += ",restrict=on"
		}
		for _, f := range cfg.Net.HostForwards {
			nd += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", f.HostPort, f.GuestPort)
		}
		args = append(args, "-netdev", nd, "-device", "virtio-net-pci,netdev=net0")
	}
	if cfg.Share9p != "" {
		args = append(args, "-virtfs", "local,path="+cfg.Share9p+",mount_tag=host,security_model=none,id=host")
	}
	args = append(args, cfg.QEMUArgs...)
	// Last, so that it is the last virtio disk the guest finds.
	return append(args,
		"-drive", "if=none,id=hpvm-tools,format=raw,readonly=on,file="+img.Tools,
		"-device", "virtio-blk-pci,drive=hpvm-tools,serial="+ToolsSerial)
}

// writeInitrd writes the base image followed by this boot's archive
// (/guest.sh, /guest.env and Files).
func (img *Image) writeInitrd(ctx context.Context, cfg Config, out string) error {
	env, err := envScript(cfg.Env)
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	base, err := os.Open(img.Initrd)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, base) // copy_file_range where the file system allows
	base.Close()
	if err != nil {
		return err
	}
	// The base archive's length is a multiple of 4; the kernel skips NUL
	// padding between archives, so the next one can follow directly.
	s := &initrdSpec{}
	s.add(&member{dst: "/guest.sh", data: []byte(cfg.Script), perm: 0o755})
	s.add(&member{dst: "/guest.env", data: env, perm: 0o644})
	for _, dst := range sortedKeys(cfg.Data) {
		if !strings.HasPrefix(dst, "/") {
			return fmt.Errorf("vm: Data: guest path %q must be absolute", dst)
		}
		s.add(&member{dst: dst, data: cfg.Data[dst], perm: 0o755})
	}
	for _, dst := range sortedKeys(cfg.Files) {
		if !strings.HasPrefix(dst, "/") {
			return fmt.Errorf("vm: Files: guest path %q must be absolute", dst)
		}
		if err := s.addHostFile(ctx, cfg.Files[dst], dst); err != nil {
			return fmt.Errorf("vm: Files[%q]: %w", dst, err)
		}
	}
	c := newCpioWriter(f)
	for _, d := range s.order {
		m := s.members[d]
		if m.src == "" {
			err = c.Bytes(m.dst, m.perm, m.data)
		} else {
			var src *os.File
			if src, err = os.Open(m.src); err == nil {
				err = c.File(m.dst, m.perm, m.size, src)
				src.Close()
			}
		}
		if err != nil {
			return err
		}
	}
	return c.Close()
}

// Start launches a guest and returns at once; the caller owns it and must
// call Kill (or Wait, then Kill) to release its resources. Tests use Boot,
// which registers the clean-up.
func (img *Image) Start(cfg Config) (g *Guest, err error) {
	cfg.defaults()
	if cfg.Script == "" {
		return nil, errors.New("vm: Config.Script is empty")
	}
	g = &Guest{Name: cfg.Name, cfg: cfg, done: make(chan struct{})}
	if g.Name == "" {
		g.Name = "guest"
	}
	defer func() {
		if err != nil {
			g.runCleanups()
		}
	}()
	if g.dir, err = os.MkdirTemp("", "hpvm"); err != nil {
		return nil, err
	}
	dir := g.dir
	g.addCleanup(func() { os.RemoveAll(dir) })
	initrd := dir + "/initrd"
	if err := img.writeInitrd(context.Background(), cfg, initrd); err != nil {
		return nil, err
	}
	var memPath string
	if cfg.MemBackend == Hugetlbfs {
		var undo func()
		if memPath, undo, err = setupHugetlbfs(cfg.MemoryMiB); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNoHugepages, err)
		}
		g.addCleanup(undo)
	}
	tee := cfg.Console
	if os.Getenv("HYPERPATH_VM_CONSOLE") == "1" {
		lp := &linePrefixer{w: os.Stderr, prefix: g.Name, start: time.Now()}
		if tee == nil {
			tee = lp
		} else {
			tee = io.MultiWriter(tee, lp)
		}
	}
	g.console = newConsoleBuf(tee)
	g.qemuErr = newConsoleBuf(nil)
	g.cmd = exec.Command(img.QEMU, img.qemuArgs(cfg, initrd, memPath)...)
	g.cmd.Stdin = nil
	g.cmd.Stdout = g.console
	g.cmd.Stderr = g.qemuErr
	g.cmd.SysProcAttr = sysProcAttr()
	g.start = time.Now()
	if err := g.cmd.Start(); err != nil {
		return nil, fmt.Errorf("vm: starting %s: %w", img.QEMU, err)
	}
	g.timer = time.AfterFunc(cfg.Timeout, func() {
		g.mu.Lock()
		g.timedOut = true
		g.mu.Unlock()
		g.cmd.Process.Kill()
	})
	go func() {
		err := g.cmd.Wait()
		g.timer.Stop()
		g.mu.Lock()
		g.exitErr = err
		g.elapsed = time.Since(g.start)
		g.mu.Unlock()
		g.runCleanups()
		close(g.done)
	}()
	return g, nil
}

// SocketDir returns a new short directory for Unix sockets (their paths
// must stay under 108 bytes, which t.TempDir's often are not), removed when
// the test ends.
func SocketDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "hpvm-sock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// ErrNoHugepages wraps failures to set up hugetlbfs guest memory.
var ErrNoHugepages = errors.New("vm: hugetlbfs guest memory unavailable")

func (g *Guest) addCleanup(f func()) {
	g.mu.Lock()
	g.cleanups = append(g.cleanups, f)
	g.mu.Unlock()
}

func (g *Guest) runCleanups() {
	g.mu.Lock()
	cs := g.cleanups
	g.cleanups = nil
	g.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}

// PID is QEMU's process id.
func (g *Guest) PID() int { return g.cmd.Process.Pid }

// Done is closed when QEMU has exited and the guest's resources are released.
func (g *Guest) Done() <-chan struct{} { return g.done }

// Console returns the console output so far (carriage returns removed).
func (g *Guest) Console() string { return g.console.String() }

// ConsoleTail returns about the last n bytes of the console.
func (g *Guest) ConsoleTail(n int) string { return tail(g.Console(), n) }

// Kill stops QEMU with SIGKILL (by its PID) and waits until it has exited
// and the guest's resources (temporary files, hugetlbfs mount, huge pages)
// are released. It is idempotent.
func (g *Guest) Kill() {
	select {
	case <-g.done:
		return
	default:
	}
	g.mu.Lock()
	g.killed = true
	g.mu.Unlock()
	g.cmd.Process.Kill()
	<-g.done
}

// WaitFor waits until the console contains s, the guest stops, or the
// timeout passes.
func (g *Guest) WaitFor(s string, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		out, changed := g.console.snapshot()
		if strings.Contains(out, s) {
			return nil
		}
		select {
		case <-changed:
		case <-g.done:
			if strings.Contains(g.Console(), s) {
				return nil
			}
			return fmt.Errorf("vm: %s stopped before printing %q; console tail:\n%s", g.Name, s, g.ConsoleTail(2000))
		case <-deadline.C:
			return fmt.Errorf("vm: %s did not print %q within %v; console tail:\n%s", g.Name, s, timeout, g.ConsoleTail(2000))
		}
	}
}

// Wait waits for the guest to power off and returns the script's exit
// status and its output (the console between the start and exit markers,
// kernel messages included if any were printed meanwhile). err is set when
// the guest timed out (ErrTimeout), was killed (ErrKilled), or stopped
// without the exit marker (ErrNoExitMarker: kernel panic, QEMU error); the
// output is then the whole console.
func (g *Guest) Wait() (exitCode int, output string, err error) {
	<-g.done
	g.mu.Lock()
	timedOut, killed, exitErr, elapsed := g.timedOut, g.killed, g.exitErr, g.elapsed
	g.mu.Unlock()
	console := g.Console()
	ms := exitMarker.FindAllStringSubmatchIndex(console, -1)
	if timedOut {
		return -1, console, fmt.Errorf("%w: %s after %v; console tail:\n%s", ErrTimeout, g.Name, g.cfg.Timeout, tail(console, 2000))
	}
	if len(ms) == 0 {
		if killed {
			return -1, console, fmt.Errorf("%w: %s", ErrKilled, g.Name)
		}
		return -1, console, fmt.Errorf("%w: %s after %v (qemu: %v %s); console tail:\n%s", ErrNoExitMarker, g.Name, elapsed.Round(time.Millisecond), exitErr, strings.TrimSpace(g.qemuErr.String()), tail(console, 2000))
	}
	last := ms[len(ms)-1]
	code, _ := strconv.Atoi(console[last[2]:last[3]])
	out := console[:last[0]]
	if i := strings.LastIndex(out, startMarker); i >= 0 {
		out = out[i:]
		if j := strings.IndexByte(out, '\n'); j >= 0 {
			out = out[j+1:]
		} else {
			out = ""
		}
	}
	return code, out, nil
}

// Elapsed is how long QEMU ran (zero while it runs).
func (g *Guest) Elapsed() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.elapsed
}

// Boot starts a guest for a test: it skips the test when hugetlbfs memory
// was asked for and cannot be had, fails it on other start errors, and
// registers a clean-up that kills QEMU by its PID and releases everything
// (also when the test fails), logging the console tail if the test failed.
func (img *Image) Boot(t testing.TB, cfg Config) *Guest {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = t.Name()
	}
	g, err := img.Start(cfg)
	if err != nil {
		if errors.Is(err, ErrNoHugepages) && os.Getenv(EnvStrict) != "1" {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.Kill()
		if t.Failed() {
			t.Logf("console of %s (tail):\n%s", g.Name, g.ConsoleTail(4000))
		}
	})
	return g
}

// Run boots a guest, waits for it and returns the script's exit status and
// output; a timeout or crash fails the test.
func (img *Image) Run(t testing.TB, cfg Config) (exitCode int, output string) {
	t.Helper()
	g := img.Boot(t, cfg)
	code, out, err := g.Wait()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: exit %d after %v", g.Name, code, g.Elapsed().Round(time.Millisecond))
	return code, out
}

// Boot is Require(t).Boot(t, cfg).
func Boot(t testing.TB, cfg Config) *Guest {
	t.Helper()
	return Require(t).Boot(t, cfg)
}

// Run is Require(t).Run(t, cfg).
func Run(t testing.TB, cfg Config) (exitCode int, output string) {
	t.Helper()
	return Require(t).Run(t, cfg)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
