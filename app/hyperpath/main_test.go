package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"hyperpath/rpc/client"
)

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hyperpath-bin")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "hyperpath")
	out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a daemon started by a test; it is killed (by PID) at cleanup.
type proc struct {
	cmd    *exec.Cmd
	sock   string
	dir    string
	stderr *bytes.Buffer
	done   chan error
	exited bool
	err    error
}

func startDaemon(t *testing.T, args ...string) *proc {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "rpc.sock")
	// Only TestDefaultConfig runs the embedded default: it listens on the
	// fixed NVMe/TCP port 4420, which parallel daemons would fight over.
	if !slices.Contains(args, "--default") {
		args = append([]string{"--no-default"}, args...)
	} else {
		args = slices.DeleteFunc(args, func(a string) bool { return a == "--default" })
	}
	cmd := exec.Command(binPath, append([]string{"-r", sock, "-S", dir}, args...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, sock: sock, dir: dir, stderr: &stderr, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if !p.exited {
			cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("daemon stderr:\n%s", stderr.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := client.Dial(sock); err == nil {
			c.Close()
			return p
		}
		select {
		case err := <-p.done:
			p.exited, p.err = true, err
			t.Fatalf("daemon exited early: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not open %s\n%s", sock, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *proc) call(t *testing.T, method string, params, result any) error {
	t.Helper()
	c, err := client.Dial(p.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.Call(ctx, method, params, result)
}

func (p *proc) wait(t *testing.T) error {
	if p.exited {
		return p.err
	}
	select {
	case err := <-p.done:
		p.exited, p.err = true, err
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not exit")
		return nil
	}
}

func TestSIGTERMStopsCleanly(t *testing.T) {
	p := startDaemon(t, "-f", "pidfile")
	pid, _ := os.ReadFile(filepath.Join(p.dir, "pidfile"))
	if strings.TrimSpace(string(pid)) != strconv.Itoa(p.cmd.Process.Pid) {
		t.Fatalf("pid file %q, pid %d", pid, p.cmd.Process.Pid)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(t); err != nil {
		t.Fatalf("exit: %v", err)
	}
	for _, f := range []string{p.sock, p.sock + ".lock", filepath.Join(p.dir, "pidfile")} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s left behind", f)
		}
	}
}

func TestDefaultConfig(t *testing.T) {
	p := startDaemon(t, "--default")
	var bdevs []map[string]any
	if err := p.call(t, "bdev_get_bdevs", nil, &bdevs); err != nil || len(bdevs) != 1 || bdevs[0]["name"] != "Malloc0" {
		t.Fatalf("bdevs %v %v", bdevs, err)
	}
	var ctrlrs []map[string]any
	if err := p.call(t, "vhost_get_controllers", nil, &ctrlrs); err != nil || len(ctrlrs) != 1 {
		t.Fatalf("vhost controllers %v %v", ctrlrs, err)
	}
	if _, err := os.Stat(filepath.Join(p.dir, "vhost.0")); err != nil {
		t.Fatalf("vhost socket: %v", err)
	}
	var subs []map[string]any
	if err := p.call(t, "nvmf_get_subsystems", nil, &subs); err != nil || len(subs) != 2 {
		t.Fatalf("nvmf subsystems %v %v", subs, err)
	}
	c, err := net.DialTimeout("tcp", "127.0.0.1:4420", 2*time.Second)
	if err != nil {
		t.Fatalf("NVMe/TCP listener: %v", err)
	}
	c.Close()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(t); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(p.dir, "vhost.0")); !os.IsNotExist(err) {
		t.Fatal("vhost socket left behind")
	}
}

func TestSecondInstanceOnSameSocketRefused(t *testing.T) {
	p := startDaemon(t)
	cmd := exec.Command(binPath, "-r", p.sock, "--no-default", "-S", t.TempDir())
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use") {
		t.Fatalf("second daemon: %v\n%s", err, out)
	}
	var v map[string]any
	if err := p.call(t, "spdk_get_version", nil, &v); err != nil {
		t.Fatalf("first daemon hurt: %v", err)
	}
}

func TestBadFlagsExplain(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-m", "0x0"}, "no cores"},
		{[]string{"-m", "[1023]", "--no-default", "-r", filepath.Join(t.TempDir(), "s")}, "core 1023"},
		{[]string{"-s", "lots"}, "memory size"},
		{[]string{"-c", "/nonexistent.json"}, "no such file"},
	} {
		out, err := exec.Command(binPath, tc.args...).CombinedOutput()
		if err == nil || !strings.Contains(strings.ToLower(string(out)), tc.want) {
			t.Errorf("%v: err %v output %q, want %q", tc.args, err, out, tc.want)
		}
	}
	out, err := exec.Command(binPath, "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--wait-for-rpc") {
		t.Fatalf("--help: %v %s", err, out)
	}
}

func TestTOMLConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.toml")
	os.WriteFile(cfg, []byte(`
[[bdev_null_create]]
name = "Null7"
num_blocks = 2048
block_size = 4096
`), 0o644)
	p := startDaemon(t, "--config-toml", cfg)
	var bdevs []map[string]any
	if err := p.call(t, "bdev_get_bdevs", nil, &bdevs); err != nil {
		t.Fatal(err)
	}
	if len(bdevs) != 1 || bdevs[0]["name"] != "Null7" || bdevs[0]["block_size"].(float64) != 4096 {
		t.Fatalf("bdevs %v", bdevs)
	}
}

// TestIdleCPU measures the daemon's CPU use over 10 s in the default
// adaptive mode: the target is at most 2% of one core.
func TestIdleCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("10 s measurement skipped in -short mode")
	}
	p := startDaemon(t, "-m", "0x3")
	time.Sleep(500 * time.Millisecond)
	before := cpuTicks(t, p.cmd.Process.Pid)
	start := time.Now()
	time.Sleep(10 * time.Second)
	used := float64(cpuTicks(t, p.cmd.Process.Pid)-before) / 100 // USER_HZ
	frac := used / time.Since(start).Seconds()
	t.Logf("idle daemon on 2 reactors used %.2f%% of a core over 10 s", frac*100)
	if frac > 0.02 {
		t.Fatalf("idle CPU %.2f%% of a core, want <= 2%%", frac*100)
	}
}

func cpuTicks(t *testing.T, pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseUint(f[11], 10, 64)
	k, _ := strconv.ParseUint(f[12], 10, 64)
	return u + k
}

// --- SPDK's rpc.py against the daemon --------------------------------------

func spdkDir(t *testing.T) string {
	d := os.Getenv("SPDK_DIR")
	if d == "" {
		t.Skip("SPDK_DIR not set: point it at an SPDK source tree (scripts/rpc.py, python/) to run rpc.py against the daemon")
	}
	if _, err := os.Stat(filepath.Join(d, "scripts", "rpc.py")); err != nil {
		t.Skipf("SPDK_DIR=%s has no scripts/rpc.py", d)
	}
	return d
}

func rpcPy(t *testing.T, spdk, sock string, stdin []byte, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("python3", append([]string{filepath.Join(spdk, "scripts", "rpc.py"), "-s", sock, "-t", "30"}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestRPCPyEveryMethod(t *testing.T) {
	spdk := spdkDir(t)
	p := startDaemon(t, "-m", "0x1")
	ok := func(want string, args ...string) string {
		t.Helper()
		out, err := rpcPy(t, spdk, p.sock, nil, args...)
		if err != nil {
			t.Fatalf("rpc.py %v: %v\n%s", args, err, out)
		}
		if !strings.Contains(out, want) {
			t.Fatalf("rpc.py %v: output lacks %q:\n%s", args, want, out)
		}
		return out
	}
	fail := func(want string, args ...string) {
		t.Helper()
		out, err := rpcPy(t, spdk, p.sock, nil, args...)
		if err == nil || !strings.Contains(out, want) {
			t.Fatalf("rpc.py %v: want failure with %q, got %v:\n%s", args, want, err, out)
		}
	}
	ok("hyperpath", "spdk_get_version")
	ok("framework_get_reactors", "rpc_get_methods")
	ok("bdev_malloc_create", "rpc_get_methods", "--current")
	ok(`"lcore": 0`, "framework_get_reactors")
	ok(`"subsystem": "bdev"`, "framework_get_subsystems")
	ok("bdev_wait_for_examine", "framework_get_config", "bdev")
	ok("", "framework_wait_init")
	ok(`"threads"`, "thread_get_stats")
	ok(`"active_pollers"`, "thread_get_pollers")
	ok("", "log_set_flag", "rpc")
	ok(`"rpc": true`, "log_get_flags")
	ok("", "log_clear_flag", "rpc")
	fail("invalid log flag", "log_set_flag", "nosuchflag")
	fail("Method may only be called before", "framework_start_init")

	ok("Malloc1", "bdev_malloc_create", "-b", "Malloc1", "8", "512")
	ok("Null1", "bdev_null_create", "Null1", "16", "4096")
	fail("File exists", "bdev_null_create", "Null1", "16", "4096")
	ok(`"product_name": "Null disk"`, "bdev_get_bdevs", "-b", "Null1")
	fail("No such device", "bdev_get_bdevs", "-b", "NoSuch")
	ok(`"bytes_read"`, "bdev_get_iostat", "--names", "Malloc1", "--reset-mode", "maxmin")
	ok(`"channels"`, "bdev_get_iostat", "--names", "Malloc1", "--per-channel")
	ok("", "bdev_enable_histogram", "Malloc1", "--histogram")
	hist := ok(`"histogram"`, "bdev_get_histogram", "Malloc1")
	cmd := exec.Command("python3", filepath.Join(spdk, "scripts", "histogram.py"))
	cmd.Stdin = strings.NewReader(hist)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("histogram.py: %v\n%s", err, out)
	}
	ok("", "bdev_set_qos_limit", "Malloc1", "--rw-ios-per-sec", "20000")
	ok(`"rw_ios_per_sec": 20000`, "bdev_get_bdevs", "-b", "Malloc1")
	ok("", "bdev_malloc_delete", "Malloc1")
	ok("", "bdev_null_delete", "Null1")
	fail("No such device", "bdev_malloc_delete", "Malloc1")
	ok("", "spdk_kill_instance", "SIGTERM")
	if err := p.wait(t); err != nil {
		t.Fatalf("exit after spdk_kill_instance: %v", err)
	}
}

// TestSaveConfigRoundTrip: save_config of one daemon loads (load_config)
// into a second started with --wait-for-rpc and saves back identical.
func TestSaveConfigRoundTrip(t *testing.T) {
	spdk := spdkDir(t)
	a := startDaemon(t)
	for _, args := range [][]string{
		{"bdev_malloc_create", "-b", "M1", "16", "4096"},
		{"bdev_null_create", "N1", "64", "512"},
		{"bdev_set_qos_limit", "N1", "--rw-ios-per-sec", "3000"},
		{"bdev_enable_histogram", "M1", "--histogram", "--opc", "write"},
		{"bdev_passthru_create", "-b", "M1", "-p", "PT1"},
	} {
		if out, err := rpcPy(t, spdk, a.sock, nil, args...); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	saved, err := rpcPy(t, spdk, a.sock, nil, "save_config")
	if err != nil {
		t.Fatalf("save_config: %v\n%s", err, saved)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(saved), &doc); err != nil {
		t.Fatalf("save_config output is not JSON: %v\n%s", err, saved)
	}
	b := startDaemon(t, "--wait-for-rpc")
	if out, err := rpcPy(t, spdk, b.sock, []byte(saved), "load_config"); err != nil {
		t.Fatalf("load_config: %v\n%s", err, out)
	}
	again, err := rpcPy(t, spdk, b.sock, nil, "save_config")
	if err != nil {
		t.Fatalf("save_config #2: %v\n%s", err, again)
	}
	if again != saved {
		t.Fatalf("configs differ\nfirst:\n%s\nsecond:\n%s", saved, again)
	}
	// The same file through -c.
	cfg := filepath.Join(t.TempDir(), "saved.json")
	os.WriteFile(cfg, []byte(saved), 0o644)
	c := startDaemon(t, "-c", cfg)
	third, _ := rpcPy(t, spdk, c.sock, nil, "save_config")
	if third != saved {
		t.Fatalf("-c config differs\nfirst:\n%s\nthird:\n%s", saved, third)
	}
}
