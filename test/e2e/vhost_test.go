package e2e

// vhost-user-blk end to end: the hyperpath daemon is the target (a
// process of its own, --no-default, a JSON config with a RAM bdev, an
// io_uring file bdev under /var/tmp and vhost-user-blk controllers on
// them), bdevperf is the front end (its -c config runs
// bdev_virtio_attach_controller on each socket). The target runs on core
// 1 and bdevperf on core 0 where the machine has two. The restart tests
// (vhost_restart_linux_test.go) drive the bdevperf engine in this process
// instead, so that they can watch the virtio bdev's state and held IO and
// end the run once IO has resumed after the reconnect (the attach RPC's
// reconnect parameters are tested in bdev/virtio). Identifiers of these
// files start with vhost so as not to collide with the package's other
// end-to-end tests.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// vhostOutput collects a process's output; the process writes it from
// exec's copying goroutines while the test may read it.
type vhostOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *vhostOutput) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *vhostOutput) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a process a test started. It is ended by its PID when the test
// ends, whatever happened.
type vhostProc struct {
	name string
	cmd  *exec.Cmd
	out  *vhostOutput
	done chan struct{} // closed once Wait returned
}

// startVhostProc starts the binary bin with args and registers its end
// with t.Cleanup: SIGTERM, then SIGKILL after 10 s.
func startVhostProc(t testing.TB, bin string, args ...string) *vhostProc {
	t.Helper()
	name := filepath.Base(bin)
	p := &vhostProc{name: name, out: &vhostOutput{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(10 * time.Second) })
	return p
}

// exited reports whether the process has ended.
func (p *vhostProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL to the process's PID and waits for it.
func (p *vhostProc) kill() {
	if !p.exited() {
		syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-p.done
}

// stop sends SIGTERM to the process's PID, waits up to grace, then kills
// it. It reports whether the process ended on its own with status 0 (or
// had ended before).
func (p *vhostProc) stop(grace time.Duration) (clean bool) {
	if p.exited() {
		return true
	}
	syscall.Kill(p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode() == 0
	case <-time.After(grace):
		p.kill()
		return false
	}
}

// wait waits up to limit for the process to end and returns its exit
// status; past the limit it kills the process and fails the test.
func (p *vhostProc) wait(t testing.TB, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(limit):
		p.kill()
		t.Fatalf("%s did not end within %v; output:\n%s", p.name, limit, p.out)
	}
	return p.cmd.ProcessState.ExitCode()
}

// call is one entry of an SPDK JSON config.
type vhostCall struct {
	Method string         `json:"method"`
	Params map[string]any `json:"params,omitempty"`
}

type vhostSubsystem struct {
	Subsystem string      `json:"subsystem"`
	Config    []vhostCall `json:"config"`
}

// writeVhostConfig writes an SPDK JSON config ({"subsystems": [...]}) to path.
func writeVhostConfig(t testing.TB, path string, subs ...vhostSubsystem) {
	t.Helper()
	b, err := json.MarshalIndent(map[string]any{"subsystems": subs}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Controllers of every test target, and the bdevs behind them.
const (
	ctrlMalloc = "vhost.malloc" // Malloc0, 64 MiB of 512-byte blocks
	ctrlUring  = "vhost.uring"  // Uring0, a 64 MiB file under /var/tmp, 512-byte blocks
	ctrlMQ     = "vhost.mq"     // Malloc1, 32 MiB, served to a two-queue front end
	ctrlRO     = "vhost.ro"     // Malloc2, 8 MiB, readonly=true
)

// target is a hyperpath daemon (the second process) and what it needs:
// its config, socket directory and the file behind Uring0.
type vhostTarget struct {
	t       *testing.T
	dir     string // scratch: configs, bdevperf JSON output
	sockDir string // vhost-user sockets and the RPC socket (short path)
	config  string
	mask    string
	d       *vhostProc
	runs    int // bdevperf runs so far, to name their output files
}

// cores returns the core masks of the target and of a one-core client:
// each its own core where the machine has two.
func vhostCores() (targetMask, clientMask string) {
	if runtime.NumCPU() >= 2 {
		return "0x2", "0x1"
	}
	return "0x1", "0x1"
}

// newVhostTarget writes the target's config and starts the daemon on it.
func newVhostTarget(t *testing.T) *vhostTarget {
	t.Helper()
	tg := &vhostTarget{t: t, dir: t.TempDir()}
	tg.mask, _ = vhostCores()
	sd, err := os.MkdirTemp("", "hpe2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sd) })
	tg.sockDir = sd
	file := vhostDirectFile(t, 64<<20)
	tg.config = filepath.Join(tg.dir, "target.json")
	writeVhostConfig(t, tg.config,
		vhostSubsystem{"bdev", []vhostCall{
			{"bdev_malloc_create", map[string]any{"name": "Malloc0", "num_blocks": 131072, "block_size": 512}},
			{"bdev_uring_create", map[string]any{"name": "Uring0", "filename": file, "block_size": 512}},
			{"bdev_malloc_create", map[string]any{"name": "Malloc1", "num_blocks": 65536, "block_size": 512}},
			{"bdev_malloc_create", map[string]any{"name": "Malloc2", "num_blocks": 16384, "block_size": 512}},
		}},
		vhostSubsystem{"vhost_blk", []vhostCall{
			{"vhost_create_blk_controller", map[string]any{"ctrlr": ctrlMalloc, "dev_name": "Malloc0"}},
			{"vhost_create_blk_controller", map[string]any{"ctrlr": ctrlUring, "dev_name": "Uring0"}},
			{"vhost_create_blk_controller", map[string]any{"ctrlr": ctrlMQ, "dev_name": "Malloc1"}},
			{"vhost_create_blk_controller", map[string]any{"ctrlr": ctrlRO, "dev_name": "Malloc2", "readonly": true}},
		}},
	)
	tg.start()
	return tg
}

// vhostDirectFile creates a zero-filled file of size bytes in a directory that
// allows O_DIRECT (/var/tmp; tmpfs does not), removed when the test ends.
// The blocks are written so that reads hit allocated extents.
func vhostDirectFile(t *testing.T, size int) string {
	t.Helper()
	dir := "/var/tmp"
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		dir = t.TempDir()
	}
	f, err := os.CreateTemp(dir, "hp-e2e-*.img")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(f.Name()) })
	chunk := make([]byte, 1<<20)
	for off := 0; off < size; off += len(chunk) {
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return f.Name()
}

// sock returns the path of a controller's vhost-user socket.
func (tg *vhostTarget) sock(ctrlr string) string { return filepath.Join(tg.sockDir, ctrlr) }

// start runs the daemon on the target's config (--no-default, so nothing
// but the config's bdevs) and waits until every controller accepts
// connections. At the end of the test the daemon gets SIGTERM and must
// exit 0, unless the test killed it.
func (tg *vhostTarget) start() {
	t := tg.t
	t.Helper()
	d := startVhostProc(t, hyperpathBin, "--no-default", "-c", tg.config, "-S", tg.sockDir,
		"-r", filepath.Join(tg.sockDir, "rpc.sock"), "-m", tg.mask)
	tg.d = d
	t.Cleanup(func() {
		if d.exited() {
			if st := d.cmd.ProcessState; st.ExitCode() != 0 && !vhostKilled(st) {
				t.Errorf("hyperpath exited with %v before the end of the test; output:\n%s", st, d.out)
			}
			return
		}
		if !d.stop(10 * time.Second) {
			t.Errorf("hyperpath did not exit 0 on SIGTERM (%v); output:\n%s", d.cmd.ProcessState, d.out)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for _, c := range []string{ctrlMalloc, ctrlUring, ctrlMQ, ctrlRO} {
		for {
			conn, err := net.Dial("unix", tg.sock(c))
			if err == nil {
				conn.Close()
				break
			}
			if d.exited() || time.Now().After(deadline) {
				d.kill()
				t.Fatalf("hyperpath did not serve %s: %v; output:\n%s", tg.sock(c), err, d.out)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func vhostKilled(st *os.ProcessState) bool {
	ws, ok := st.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// attach is one bdev_virtio_attach_controller of a bdevperf config.
type vhostAttach struct {
	name, ctrlr string
	vqCount     int
}

// clientConfig writes a bdevperf config that attaches each controller of
// the target as a virtio bdev, and returns its path.
func (tg *vhostTarget) clientConfig(file string, as ...vhostAttach) string {
	tg.t.Helper()
	var calls []vhostCall
	for _, a := range as {
		calls = append(calls, vhostCall{"bdev_virtio_attach_controller", map[string]any{
			"name": a.name, "trtype": "user", "traddr": tg.sock(a.ctrlr), "dev_type": "blk", "vq_count": a.vqCount}})
	}
	path := filepath.Join(tg.dir, file)
	writeVhostConfig(tg.t, path, vhostSubsystem{"bdev", calls})
	return path
}

// vhostPerfJob is the part of bdevperf's --json-output job object the tests
// look at.
type vhostPerfJob struct {
	Job         string  `json:"job"`
	Reactor     int     `json:"reactor"`
	Status      string  `json:"status"`
	IOs         uint64  `json:"io_completed"`
	Failed      uint64  `json:"io_failed"`
	IOErrors    uint64  `json:"io_errors"`
	Miscompares uint64  `json:"miscompares"`
	IOPS        float64 `json:"iops"`
	AvgUs       float64 `json:"avg_latency_us"`
	P99Us       float64 `json:"p99_latency_us"`
}

type vhostPerfResult struct {
	Seed uint64         `json:"seed"`
	Jobs []vhostPerfJob `json:"results"`
}

// bdevperf runs the bdevperf binary with config and args (plus -S 0 and
// --json-output) and returns its parsed JSON output (nil when it wrote
// none), its combined output and its exit status.
func (tg *vhostTarget) bdevperf(t *testing.T, config string, args ...string) (*vhostPerfResult, string, int) {
	t.Helper()
	tg.runs++
	jsonOut := filepath.Join(tg.dir, "bdevperf-"+strconv.Itoa(tg.runs)+".json")
	p := startVhostProc(t, bdevperfBin, append([]string{"-c", config, "-S", "0", "--json-output", jsonOut}, args...)...)
	rc := p.wait(t, 90*time.Second)
	out := p.out.String()
	b, err := os.ReadFile(jsonOut)
	if errors.Is(err, os.ErrNotExist) {
		return nil, out, rc
	}
	if err != nil {
		t.Fatal(err)
	}
	var res vhostPerfResult
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("bdevperf JSON output: %v\n%s", err, b)
	}
	return &res, out, rc
}

// checkVhostClean fails the test unless bdevperf exited 0 and every one of the
// wanted jobs (by bdev name, with multiplicity) completed IO with no error
// and no miscompare.
func checkVhostClean(t *testing.T, res *vhostPerfResult, out string, rc int, want ...string) {
	t.Helper()
	if rc != 0 || res == nil {
		t.Fatalf("bdevperf exit %d; output:\n%s", rc, out)
	}
	var got []string
	for _, j := range res.Jobs {
		got = append(got, j.Job)
		if j.IOs == 0 || j.Failed != 0 || j.IOErrors != 0 || j.Miscompares != 0 || j.Status != "finished" {
			t.Errorf("job %s on reactor %d: %d IOs, %d failed, %d IO errors, %d miscompares, status %q",
				j.Job, j.Reactor, j.IOs, j.Failed, j.IOErrors, j.Miscompares, j.Status)
		}
		t.Logf("%-14s reactor %d: %9.0f IOPS  avg %8.1f us  p99 %8.1f us", j.Job, j.Reactor, j.IOPS, j.AvgUs, j.P99Us)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("jobs %v, want %v; output:\n%s", got, want, out)
	}
	if t.Failed() {
		t.Logf("seed %d; output:\n%s", res.Seed, out)
	}
}

// TestVhostVerifyMatrix runs bdevperf's verify workload through the daemon's
// vhost-user-blk controllers, on a RAM bdev and on an io_uring file bdev at
// once, for queue depths 1, 32 and 128 and IO sizes 512 B, 4 KiB and
// 128 KiB: every pattern written through the target must read back intact.
func TestVhostVerifyMatrix(t *testing.T) {
	needBinaries(t)
	tg := newVhostTarget(t)
	_, client := vhostCores()
	cfg := tg.clientConfig("matrix.json",
		vhostAttach{"VirtioMalloc0", ctrlMalloc, 1}, vhostAttach{"VirtioUring0", ctrlUring, 1})
	for _, qd := range []int{1, 32, 128} {
		for _, size := range []int{512, 4096, 131072} {
			t.Run(fmt.Sprintf("qd%d/%dB", qd, size), func(t *testing.T) {
				res, out, rc := tg.bdevperf(t, cfg, "-q", strconv.Itoa(qd), "-o", strconv.Itoa(size),
					"-w", "verify", "-t", "2", "-m", client)
				checkVhostClean(t, res, out, rc, "VirtioMalloc0", "VirtioUring0")
			})
		}
	}
}

// TestVhostMultiQueue attaches a two-queue front end (vq_count 2) and runs
// verify from two client reactors (-m 0x3 -C), each job on its own queue
// and its own slice of the bdev.
func TestVhostMultiQueue(t *testing.T) {
	needBinaries(t)
	if runtime.NumCPU() < 2 {
		t.Skip("needs two cores for two client reactors")
	}
	tg := newVhostTarget(t)
	cfg := tg.clientConfig("mq.json", vhostAttach{"VirtioMQ", ctrlMQ, 2})
	for _, c := range []struct{ qd, size int }{{32, 4096}, {128, 131072}} {
		t.Run(fmt.Sprintf("qd%d/%dB", c.qd, c.size), func(t *testing.T) {
			res, out, rc := tg.bdevperf(t, cfg, "-q", strconv.Itoa(c.qd), "-o", strconv.Itoa(c.size),
				"-w", "verify", "-t", "2", "-m", "0x3", "-C")
			checkVhostClean(t, res, out, rc, "VirtioMQ", "VirtioMQ")
			if res != nil && len(res.Jobs) == 2 && res.Jobs[0].Reactor == res.Jobs[1].Reactor {
				t.Errorf("both jobs on reactor %d", res.Jobs[0].Reactor)
			}
		})
	}
}

// TestVhostFlushUnmapWriteZeroes runs the non-data workloads through the target
// on both bdevs: every request must complete successfully.
func TestVhostFlushUnmapWriteZeroes(t *testing.T) {
	needBinaries(t)
	tg := newVhostTarget(t)
	_, client := vhostCores()
	cfg := tg.clientConfig("nodata.json",
		vhostAttach{"VirtioMalloc0", ctrlMalloc, 1}, vhostAttach{"VirtioUring0", ctrlUring, 1})
	for _, w := range []string{"flush", "unmap", "write_zeroes"} {
		t.Run(w, func(t *testing.T) {
			res, out, rc := tg.bdevperf(t, cfg, "-q", "32", "-o", "4096", "-w", w, "-t", "1", "-m", client)
			checkVhostClean(t, res, out, rc, "VirtioMalloc0", "VirtioUring0")
		})
	}
}

// TestVhostReadOnlyController attaches to a controller created with
// readonly=true: reads pass; writes, unmaps and write-zeroes must fail
// (bdevperf exits non-zero) without a single one succeeding.
//
// The device offers VIRTIO_BLK_F_RO, so our virtio bdev refuses these IO
// types before sending any (bdevperf: "cannot write"); a front end that
// sent them anyway would get VIRTIO_BLK_S_IOERR from the target, which
// the test also accepts (every job failed with IO errors).
func TestVhostReadOnlyController(t *testing.T) {
	needBinaries(t)
	tg := newVhostTarget(t)
	_, client := vhostCores()
	cfg := tg.clientConfig("ro.json", vhostAttach{"VirtioRO", ctrlRO, 1})
	t.Run("read", func(t *testing.T) {
		res, out, rc := tg.bdevperf(t, cfg, "-q", "32", "-o", "4096", "-w", "read", "-t", "1", "-m", client)
		checkVhostClean(t, res, out, rc, "VirtioRO")
	})
	for _, w := range []string{"write", "unmap", "write_zeroes"} {
		t.Run(w, func(t *testing.T) {
			res, out, rc := tg.bdevperf(t, cfg, "-q", "32", "-o", "4096", "-w", w, "-t", "1", "-m", client)
			if rc == 0 {
				t.Fatalf("bdevperf -w %s on a readonly controller exited 0; output:\n%s", w, out)
			}
			switch {
			case res == nil && strings.Contains(out, "cannot "):
				t.Logf("refused before any IO (exit %d): %s", rc, vhostLastLine(out))
			case res != nil && len(res.Jobs) > 0:
				for _, j := range res.Jobs {
					if j.IOErrors == 0 || j.IOs != 0 {
						t.Errorf("job %s: %d IOs succeeded, %d IO errors: a readonly controller must fail every write",
							j.Job, j.IOs, j.IOErrors)
					}
				}
				t.Logf("failed with IO errors (exit %d)", rc)
			default:
				t.Fatalf("bdevperf exit %d for a reason other than the controller being readonly; output:\n%s", rc, out)
			}
		})
	}
}

func vhostLastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
