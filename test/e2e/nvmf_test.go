package e2e

// NVMe/TCP end to end: the hyperpath daemon is the target (a process of
// its own, --no-default, a JSON config), bdevperf is the host (its -c
// config runs bdev_nvme_attach_controller), and they talk over loopback.
// The target runs on core 1 and bdevperf on core 0 (or both, with -C);
// both reactors are adaptive so the tests do not pin the machine's cores
// at 100%.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hyperpath/rpc/client"
)

const (
	nvmfNQN = "nqn.2016-06.io.hyperpath:e2e"
	// Host NQNs of the allow-list test (uuid form, as nvme-cli makes them).
	nvmfAllowedHost = "nqn.2014-08.org.nvmexpress:uuid:5d2c3a80-7e51-4c4e-9a86-0c1f0e3b2a11"
	nvmfOtherHost   = "nqn.2014-08.org.nvmexpress:uuid:0badc0de-0000-4000-8000-000000000001"
)

// TestNVMfTCPVerify runs bdevperf's verify workload against a malloc
// namespace at queue depths 1, 32 and 128 with 4 KiB and 64 KiB IOs, with
// header and data digests off and on; then with two I/O queues
// (-m 0x3 -C) through a relay that checks every connection's ICReq,
// ICResp and first capsule on the wire; and a randread of the null
// namespace.
func TestNVMfTCPVerify(t *testing.T) {
	needBinaries(t)
	dir := nvTempDir(t)
	port := nvFreePort(t)
	tgt := startNVMfTarget(t, dir, nvmfTargetConfig{
		port: port, allowAnyHost: true,
		bdevs: []map[string]any{
			nvMethod("bdev_malloc_create", map[string]any{"name": "Malloc0", "num_blocks": 131072, "block_size": 512}),
			nvMethod("bdev_null_create", map[string]any{"name": "Null0", "num_blocks": 1048576, "block_size": 512}),
			nvMethod("bdev_malloc_create", map[string]any{"name": "Malloc1", "num_blocks": 65536, "block_size": 512}),
			// One IO in a hundred takes 300 us instead of 5: reads complete
			// out of order, so the host's speculative C2HData reads miss.
			nvMethod("bdev_delay_create", map[string]any{"base_bdev_name": "Malloc1", "name": "Delay0",
				"avg_read_latency": 5, "p99_read_latency": 300, "avg_write_latency": 5, "p99_write_latency": 300}),
		},
		namespaces: []string{"Malloc0", "Null0", "Delay0"},
	})

	for _, digests := range []bool{false, true} {
		ini := nvAttachConfig(t, dir, fmt.Sprintf("attach-dgst-%v.json", digests), port,
			map[string]any{"hdgst": digests, "ddgst": digests})
		for _, qd := range []int{1, 32, 128} {
			for _, size := range []int{4096, 65536} {
				name := fmt.Sprintf("digests=%s/qd=%d/io=%dk", nvOnOff(digests), qd, size/1024)
				t.Run(name, func(t *testing.T) {
					r := nvRunPerf(t, dir, "-c", ini, "-b", "Nvme0n1", "-m", "0x1", "-q", strconv.Itoa(qd),
						"-o", strconv.Itoa(size), "-w", "verify", "-t", "2", "-S", "0")
					r.requireClean(t, 1)
					t.Logf("%s: %.0f IOPS, p99 %.1f us", name, r.json.Total.IOPS, r.json.Total.P99Us)
				})
			}
		}
	}

	// Two I/O queues: bdevperf runs a job on each of its two reactors
	// (-C), and the host opens one I/O queue pair per reactor. The relay
	// sees every connection: the admin queue and two I/O queues, each
	// with the digests asked for.
	for _, c := range []struct {
		digests  bool
		qd, size int
	}{{true, 32, 4096}, {false, 128, 65536}} {
		name := fmt.Sprintf("multiqueue/digests=%s/qd=%d/io=%dk", nvOnOff(c.digests), c.qd, c.size/1024)
		t.Run(name, func(t *testing.T) {
			relay := nvStartRelay(t, fmt.Sprintf("127.0.0.1:%d", port))
			ini := nvAttachConfig(t, dir, "attach-relay.json", relay.port(),
				map[string]any{"hdgst": c.digests, "ddgst": c.digests})
			p := nvStartPerf(t, dir, "-c", ini, "-b", "Nvme0n1", "-m", "0x3", "-C", "-q", strconv.Itoa(c.qd),
				"-o", strconv.Itoa(c.size), "-w", "verify", "-t", "2", "-S", "0")
			// While it runs, the target lists the admin queue and one
			// I/O queue per bdevperf reactor.
			ioQueues, _ := nvWaitFor(t, 10*time.Second, func() (int, bool) {
				var qps []struct {
					QID int `json:"qid"`
				}
				if err := tgt.call("nvmf_subsystem_get_qpairs", map[string]any{"nqn": nvmfNQN}, &qps); err != nil {
					return 0, false
				}
				n := 0
				for _, q := range qps {
					if q.QID > 0 {
						n++
					}
				}
				return n, n == 2
			})
			if ioQueues != 2 {
				t.Errorf("target lists %d I/O queue pairs during the -m 0x3 -C run, want 2", ioQueues)
			}
			r := p.finish(t)
			r.requireClean(t, 2)
			cores := map[int]bool{}
			for _, j := range r.json.Results {
				cores[j.Core] = true
			}
			if !cores[0] || !cores[1] {
				t.Errorf("jobs ran on cores %v, want 0 and 1", cores)
			}
			conns := relay.close()
			if len(conns) != 3 {
				t.Errorf("relay saw %d connections, want 3 (admin + 2 I/O queues): %+v", len(conns), conns)
			}
			for i, w := range conns {
				if w.err != nil {
					t.Errorf("connection %d: %v", i, w.err)
					continue
				}
				w.check(t, i, c.digests)
			}
			t.Logf("%s: %.0f IOPS over %d jobs, %d connections checked on the wire",
				name, r.json.Total.IOPS, len(r.json.Results), len(conns))
		})
	}

	// Out-of-order completions: verify through a delay bdev whose slow
	// IOs overtake nothing but are overtaken by fast ones.
	for _, digests := range []bool{false, true} {
		name := fmt.Sprintf("reordered/digests=%s/qd=64/io=4k", nvOnOff(digests))
		t.Run(name, func(t *testing.T) {
			ini := nvAttachConfig(t, dir, fmt.Sprintf("attach-delay-%v.json", digests), port,
				map[string]any{"hdgst": digests, "ddgst": digests})
			r := nvRunPerf(t, dir, "-c", ini, "-b", "Nvme0n3", "-m", "0x1", "-q", "64",
				"-o", "4096", "-w", "verify", "-t", "3", "-S", "0")
			r.requireClean(t, 1)
			t.Logf("%s: %.0f IOPS, p99 %.1f us", name, r.json.Total.IOPS, r.json.Total.P99Us)
		})
	}

	t.Run("null-namespace/randread", func(t *testing.T) {
		before := nvReadOps(t, tgt, "Null0")
		ini := nvAttachConfig(t, dir, "attach-null.json", port, nil)
		r := nvRunPerf(t, dir, "-c", ini, "-b", "Nvme0n2", "-m", "0x1", "-q", "32", "-o", "4096",
			"-w", "randread", "-t", "1", "-S", "0")
		r.requireClean(t, 1)
		after := nvReadOps(t, tgt, "Null0")
		if after-before < r.json.Total.IOs {
			t.Errorf("target's Null0 served %d reads, bdevperf completed %d on Nvme0n2", after-before, r.json.Total.IOs)
		}
	})
}

// TestNVMfTCPTargetRestart kills the target with SIGKILL while bdevperf
// runs verify over it, and starts it again on the same config. The host
// attaches with reconnect_delay_sec=1, fast_io_fail_timeout_sec=5 and
// ctrlr_loss_timeout_sec=10 (bdev/remote, as SPDK's bdev_nvme): after the
// connection is lost, IO is held, a reconnect is tried at once and then
// every second, held IO fails 5 s after the loss, and the controller is
// given up after 10 s.
//
// The namespace is a file bdev: its data survives the SIGKILL (the file
// keeps it), so every read verify issues after the restart must find the
// pattern its slot wrote before or after it. A malloc namespace would
// come back zeroed, and a read whose write completed before the kill
// would then miscompare: a property of the RAM device, not of the path.
func TestNVMfTCPTargetRestart(t *testing.T) {
	needBinaries(t)

	// An outage shorter than fast_io_fail_timeout_sec: the host holds the
	// IO and starts it again once it has reconnected; verify passes with
	// no IO error.
	t.Run("outage-1s", func(t *testing.T) {
		res := nvRestartDuringVerify(t, time.Second, 8)
		res.r.requireClean(t, 1)
		for _, l := range res.progress {
			if strings.Contains(l.text, "IO errors") {
				t.Errorf("progress line reports IO errors during a 1 s outage: %q", l.text)
			}
		}
	})

	// An outage longer than fast_io_fail_timeout_sec (and shorter than
	// ctrlr_loss_timeout_sec): held and new IO fails from about 5 s
	// after the loss; bdevperf counts those as IO errors and exits 1.
	// Verify finds no miscompare: a failed write is not read back, and
	// once the target is back IO completes again with no further errors.
	t.Run("outage-7s", func(t *testing.T) {
		res := nvRestartDuringVerify(t, 7*time.Second, 13)
		r := res.r
		if r.rc != 1 || !strings.Contains(r.stderr, "IO errors") {
			t.Fatalf("bdevperf exit %d, want 1 with IO errors reported\nstderr:\n%s", r.rc, r.stderr)
		}
		tot := r.json.Total
		if tot.Miscompares != 0 {
			t.Fatalf("%d miscompares after the outage, want 0\n%s", tot.Miscompares, r.stdout)
		}
		if tot.IOErrors == 0 {
			t.Fatalf("no IO errors counted for a 7 s outage with fast_io_fail_timeout_sec=5\n%s", r.stdout)
		}
		statuses := map[string]int{}
		for _, j := range r.json.Results {
			for _, e := range j.ErrorDetails {
				statuses[e.Status]++
			}
		}
		// IO fails at fast_io_fail_timeout_sec, not before: the first
		// progress line that reports an IO error covers a second that
		// ends at least 5 s after the kill (4.5 s allows for the line's
		// own timer).
		var firstErr time.Duration = -1
		for _, l := range res.progress {
			if strings.Contains(l.text, "IO errors") {
				firstErr = l.at.Sub(res.killedAt)
				break
			}
		}
		if firstErr < 4500*time.Millisecond {
			t.Errorf("first IO errors reported %v after the kill, want about 5 s (fast_io_fail_timeout_sec)", firstErr)
		}
		// Once the host has reconnected, IO completes again with no new
		// failures: every progress line whose second began after the
		// reconnection reports 0 Fail/s, and together they report IO.
		// (Not "the last line shows IO": on a loaded machine a single
		// second of a race-detector build can pass without a completion.)
		var after []string
		var iopsAfter float64
		for _, l := range res.progress {
			if l.at.Sub(res.reconnectedAt) <= 1100*time.Millisecond {
				continue
			}
			iops, failPerSec := nvParseProgress(l.text)
			if iops < 0 {
				continue // not a progress line
			}
			if failPerSec != 0 {
				t.Errorf("progress line %q, a second after the reconnection: want 0 Fail/s", l.text)
			}
			iopsAfter += iops
			after = append(after, l.text)
		}
		if len(after) == 0 || iopsAfter <= 0 {
			t.Errorf("no IO completed in the %d progress lines after the reconnection: %q", len(after), after)
		}
		t.Logf("outage 7 s: %d IO errors (statuses of the first ones: %v), first reported %.1f s after the kill; "+
			"%d IOs completed, 0 miscompares", tot.IOErrors, statuses, firstErr.Seconds(), tot.IOs)
	})
}

// nvRestart is what nvRestartDuringVerify observed.
type nvRestart struct {
	r        *nvPerfResult
	progress []nvTimedLine // bdevperf's progress lines, as they arrived
	killedAt time.Time
	// reconnectedAt is when the restarted target first listed the host's
	// controller (one RPC poll, 20 ms apart, after it connected).
	reconnectedAt time.Time
}

// nvRestartDuringVerify starts a target on a file bdev and bdevperf verify
// (QD 32, 4 KiB, seconds long) against it; once IO flows it kills the
// target with SIGKILL, waits outage, starts it again on the same config,
// port and RPC socket, and checks on the new instance that the host
// reconnected and IO reaches the bdev again. It returns bdevperf's result.
func nvRestartDuringVerify(t *testing.T, outage time.Duration, seconds int) nvRestart {
	dir := nvTempDir(t)
	port := nvFreePort(t)
	disk := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(disk, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 64<<20); err != nil {
		t.Fatal(err)
	}
	tgt := startNVMfTarget(t, dir, nvmfTargetConfig{
		port: port, allowAnyHost: true,
		bdevs: []map[string]any{nvMethod("bdev_aio_create",
			map[string]any{"name": "Disk0", "filename": disk, "block_size": 512})},
		namespaces: []string{"Disk0"},
	})
	ini := nvAttachConfig(t, dir, "attach-reconnect.json", port, map[string]any{
		"reconnect_delay_sec": 1, "ctrlr_loss_timeout_sec": 10, "fast_io_fail_timeout_sec": 5})
	p := nvStartPerf(t, dir, "-c", ini, "-b", "Nvme0n1", "-m", "0x1", "-q", "32", "-o", "4096",
		"-w", "verify", "-t", strconv.Itoa(seconds))
	if _, ok := nvWaitFor(t, 20*time.Second, func() (int, bool) { return 0, len(p.out.progress()) > 0 }); !ok {
		t.Fatalf("bdevperf printed no progress line\nstdout:\n%s\nstderr:\n%s", p.out.String(), p.errOut.String())
	}

	killedAt := tgt.kill9(t)
	time.Sleep(outage)
	tgt.start(t)
	upAt := time.Now()
	if _, ok := nvWaitFor(t, 5*time.Second, func() (int, bool) {
		var ctrlrs []json.RawMessage
		err := tgt.call("nvmf_subsystem_get_controllers", map[string]any{"nqn": nvmfNQN}, &ctrlrs)
		return 0, err == nil && len(ctrlrs) > 0
	}); !ok {
		t.Fatalf("the host did not reconnect within 5 s of the target's restart\ntarget log:\n%s", tgt.proc.out.String())
	}
	reconnected := time.Since(upAt)
	if n, ok := nvWaitFor(t, 5*time.Second, func() (uint64, bool) {
		n := nvReadOps(t, tgt, "Disk0")
		return n, n > 0
	}); !ok {
		t.Fatalf("no read reached Disk0 on the restarted target (%d)", n)
	}
	r := p.finish(t)
	t.Logf("target killed, restarted %.1f s later; host reconnected %.2f s after the restart; bdevperf:\n%s",
		outage.Seconds(), reconnected.Seconds(), r.stdout)
	return nvRestart{r: r, progress: p.out.progress(), killedAt: killedAt, reconnectedAt: upAt.Add(reconnected)}
}

// TestNVMfTCPHostNotAllowed: with allow_any_host false and one host on
// the allow list, an attach with another host NQN is refused at the
// admin queue's Fabrics Connect (NVMe-oF 1.1 Connect Invalid Host, SCT 1
// SC 84h) and bdevperf exits before running any IO; the allowed host
// then attaches and runs verify.
func TestNVMfTCPHostNotAllowed(t *testing.T) {
	needBinaries(t)
	dir := nvTempDir(t)
	port := nvFreePort(t)
	startNVMfTarget(t, dir, nvmfTargetConfig{
		port: port, allowAnyHost: false, hosts: []string{nvmfAllowedHost},
		bdevs: []map[string]any{nvMethod("bdev_malloc_create",
			map[string]any{"name": "Malloc0", "num_blocks": 32768, "block_size": 512})},
		namespaces: []string{"Malloc0"},
	})

	bad := nvAttachConfig(t, dir, "attach-other.json", port, map[string]any{"hostnqn": nvmfOtherHost})
	r := nvRunPerf(t, dir, "-c", bad, "-m", "0x1", "-q", "8", "-o", "4096", "-w", "verify", "-t", "1", "-S", "0")
	if r.rc != 1 {
		t.Fatalf("attach as %s: bdevperf exit %d, want 1\nstdout:\n%s\nstderr:\n%s", nvmfOtherHost, r.rc, r.stdout, r.stderr)
	}
	for _, want := range []string{"Connect (qid 0)", "invalid host", "sct 1 sc 0x84"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("refusal does not mention %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stdout, "Running") {
		t.Errorf("bdevperf ran IO although the attach was refused:\n%s", r.stdout)
	}
	t.Logf("refused host %s: %s", nvmfOtherHost, strings.TrimSpace(nvLastLine(r.stderr)))

	good := nvAttachConfig(t, dir, "attach-allowed.json", port, map[string]any{"hostnqn": nvmfAllowedHost})
	r = nvRunPerf(t, dir, "-c", good, "-b", "Nvme0n1", "-m", "0x1", "-q", "8", "-o", "4096", "-w", "verify", "-t", "1", "-S", "0")
	r.requireClean(t, 1)
}

// --- the target -------------------------------------------------------

// nvmfTargetConfig describes a target: bdev methods, the namespaces (bdev
// names, NSIDs 1, 2, ... in order) of subsystem nvmfNQN, its host
// allow-list, and the TCP port of its listener on 127.0.0.1.
type nvmfTargetConfig struct {
	port         int
	bdevs        []map[string]any
	namespaces   []string
	allowAnyHost bool
	hosts        []string
}

// nvmfTarget is a hyperpath daemon serving as the NVMe/TCP target on
// core 1, with its RPC socket in the test's directory.
type nvmfTarget struct {
	cfgPath, sock string
	proc          *nvProc
}

func startNVMfTarget(t *testing.T, dir string, c nvmfTargetConfig) *nvmfTarget {
	t.Helper()
	nvmf := []map[string]any{
		nvMethod("nvmf_create_transport", map[string]any{"trtype": "TCP"}),
		nvMethod("nvmf_create_subsystem", map[string]any{"nqn": nvmfNQN, "serial_number": "HPE2E0001",
			"allow_any_host": c.allowAnyHost}),
	}
	for _, h := range c.hosts {
		nvmf = append(nvmf, nvMethod("nvmf_subsystem_add_host", map[string]any{"nqn": nvmfNQN, "host": h}))
	}
	for _, b := range c.namespaces {
		nvmf = append(nvmf, nvMethod("nvmf_subsystem_add_ns", map[string]any{"nqn": nvmfNQN,
			"namespace": map[string]any{"bdev_name": b}}))
	}
	nvmf = append(nvmf, nvMethod("nvmf_subsystem_add_listener", map[string]any{"nqn": nvmfNQN,
		"listen_address": map[string]any{"trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1",
			"trsvcid": strconv.Itoa(c.port)}}))
	cfg := map[string]any{"subsystems": []any{
		map[string]any{"subsystem": "bdev", "config": c.bdevs},
		map[string]any{"subsystem": "nvmf", "config": nvmf},
	}}
	tg := &nvmfTarget{cfgPath: nvWriteJSON(t, dir, "target.json", cfg), sock: filepath.Join(dir, "target.sock")}
	tg.start(t)
	return tg
}

// start starts the daemon and waits until it has applied its config and
// serves (its "hyperpath started" log line).
func (tg *nvmfTarget) start(t *testing.T) {
	t.Helper()
	tg.proc = nvStartProc(t, hyperpathBin, "--no-default", "-c", tg.cfgPath, "-r", tg.sock, "-m", "0x2")
	if _, ok := nvWaitFor(t, 15*time.Second, func() (int, bool) {
		return 0, strings.Contains(tg.proc.errOut.String(), "hyperpath started") || tg.proc.exitedNow()
	}); !ok || tg.proc.exitedNow() {
		t.Fatalf("target did not start\n%s", tg.proc.errOut.String())
	}
}

// kill9 sends SIGKILL to the daemon's PID, waits for it to be gone and
// returns when it was killed.
func (tg *nvmfTarget) kill9(t *testing.T) time.Time {
	t.Helper()
	at := time.Now()
	if err := syscall.Kill(tg.proc.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-tg.proc.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("target still running 10 s after SIGKILL")
	}
	return at
}

// call makes one JSON-RPC call to the target.
func (tg *nvmfTarget) call(method string, params, result any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, tg.sock)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Call(ctx, method, params, result)
}

// nvReadOps returns the reads bdev has completed on the target.
func nvReadOps(t *testing.T, tg *nvmfTarget, bdev string) uint64 {
	t.Helper()
	var st struct {
		Bdevs []struct {
			Name      string `json:"name"`
			ReadOps   uint64 `json:"num_read_ops"`
			WriteOpts uint64 `json:"num_write_ops"`
		} `json:"bdevs"`
	}
	if err := tg.call("bdev_get_iostat", map[string]any{"name": bdev}, &st); err != nil {
		t.Fatalf("bdev_get_iostat %s: %v", bdev, err)
	}
	if len(st.Bdevs) != 1 {
		t.Fatalf("bdev_get_iostat %s: %d bdevs", bdev, len(st.Bdevs))
	}
	return st.Bdevs[0].ReadOps
}

// --- bdevperf ---------------------------------------------------------

// nvPerfJSON is the part of bdevperf's --json-output the tests read.
type nvPerfJSON struct {
	Results []nvPerfJob `json:"results"`
	Total   nvPerfJob   `json:"total"`
}

type nvPerfJob struct {
	Job          string  `json:"job"`
	Core         int     `json:"core"`
	Status       string  `json:"status"`
	IOs          uint64  `json:"io_completed"`
	IOPS         float64 `json:"iops"`
	AvgUs        float64 `json:"avg_latency_us"`
	P99Us        float64 `json:"p99_latency_us"`
	Miscompares  uint64  `json:"miscompares"`
	IOErrors     uint64  `json:"io_errors"`
	ErrorDetails []struct {
		Type   string `json:"type"`
		Status string `json:"status"`
	} `json:"error_details"`
}

type nvPerfResult struct {
	rc             int
	stdout, stderr string
	json           nvPerfJSON // zero when bdevperf wrote none
}

// requireClean fails the test unless bdevperf exited 0 with jobs jobs,
// each finished with IO done and no miscompare or IO error.
func (r *nvPerfResult) requireClean(t *testing.T, jobs int) {
	t.Helper()
	if r.rc != 0 {
		t.Fatalf("bdevperf exit %d\nstdout:\n%s\nstderr:\n%s", r.rc, r.stdout, r.stderr)
	}
	if len(r.json.Results) != jobs {
		t.Fatalf("bdevperf ran %d jobs, want %d\n%s", len(r.json.Results), jobs, r.stdout)
	}
	for _, j := range r.json.Results {
		if j.Status != "finished" || j.IOs == 0 || j.Miscompares != 0 || j.IOErrors != 0 {
			t.Fatalf("job %s on core %d: status %s, %d IOs, %d miscompares, %d IO errors\n%s",
				j.Job, j.Core, j.Status, j.IOs, j.Miscompares, j.IOErrors, r.stdout)
		}
	}
}

// nvPerfRun is a bdevperf process the test started.
type nvPerfRun struct {
	*nvProc
	jsonPath string
}

var nvPerfRuns sync.Mutex // numbers --json-output files
var nvPerfSeq int

func nvStartPerf(t *testing.T, dir string, args ...string) *nvPerfRun {
	t.Helper()
	nvPerfRuns.Lock()
	nvPerfSeq++
	jsonPath := filepath.Join(dir, fmt.Sprintf("bdevperf-%d.json", nvPerfSeq))
	nvPerfRuns.Unlock()
	return &nvPerfRun{nvProc: nvStartProc(t, bdevperfBin, append(args, "--json-output", jsonPath)...), jsonPath: jsonPath}
}

// finish waits for bdevperf to exit (60 s at most) and reads its results.
func (b *nvPerfRun) finish(t *testing.T) *nvPerfResult {
	t.Helper()
	select {
	case <-b.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("bdevperf still running after 60 s\n%s", b.out.String())
	}
	r := &nvPerfResult{rc: b.cmd.ProcessState.ExitCode(), stdout: b.out.String(), stderr: b.errOut.String()}
	if data, err := os.ReadFile(b.jsonPath); err == nil {
		if err := json.Unmarshal(data, &r.json); err != nil {
			t.Fatalf("bdevperf --json-output: %v\n%s", err, data)
		}
	}
	return r
}

func nvRunPerf(t *testing.T, dir string, args ...string) *nvPerfResult {
	t.Helper()
	return nvStartPerf(t, dir, args...).finish(t)
}

var nvProgressRE = regexp.MustCompile(`^\s*[0-9.]+ s:\s+([0-9.]+) IOPS\s+[0-9.]+ MiB/s(?:\s+([0-9.]+) Fail/s)?`)

// nvParseProgress returns the IOPS and Fail/s of a progress line.
func nvParseProgress(line string) (iops, failPerSec float64) {
	m := nvProgressRE.FindStringSubmatch(line)
	if m == nil {
		return -1, -1
	}
	iops, _ = strconv.ParseFloat(m[1], 64)
	if m[2] != "" {
		failPerSec, _ = strconv.ParseFloat(m[2], 64)
	}
	return iops, failPerSec
}

// --- processes --------------------------------------------------------

// nvProc is a process the test started; t.Cleanup ends it by its PID
// (SIGTERM, then SIGKILL after 5 s) if it is still running.
type nvProc struct {
	cmd         *exec.Cmd
	out, errOut *nvLineLog
	exited      chan struct{}
}

func nvStartProc(t *testing.T, bin string, args ...string) *nvProc {
	t.Helper()
	p := &nvProc{cmd: exec.Command(bin, args...), out: &nvLineLog{}, errOut: &nvLineLog{}, exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.errOut
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if p.exitedNow() {
			return
		}
		pid := p.cmd.Process.Pid
		syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(pid, syscall.SIGKILL)
			<-p.exited
		}
	})
	return p
}

func (p *nvProc) exitedNow() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// nvTimedLine is a line of output and when it arrived.
type nvTimedLine struct {
	at   time.Time
	text string
}

// nvLineLog collects a process's output, stamping each line on arrival.
type nvLineLog struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	partial []byte
	lines   []nvTimedLine
}

func (l *nvLineLog) Write(b []byte) (int, error) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(b)
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, nvTimedLine{at: now, text: string(l.partial[:i])})
		l.partial = l.partial[i+1:]
	}
	return len(b), nil
}

func (l *nvLineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// progress returns bdevperf's progress lines so far.
func (l *nvLineLog) progress() []nvTimedLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []nvTimedLine
	for _, line := range l.lines {
		if nvProgressRE.MatchString(line.text) {
			out = append(out, line)
		}
	}
	return out
}

// --- the relay that reads the wire -----------------------------------

// nvRelay forwards TCP connections to the target and records, for each,
// the DGST byte of the host's ICReq and of the controller's ICResp and the
// common header of the first PDU after the ICReq (the Fabrics Connect
// capsule). Everything else is copied through untouched.
type nvRelay struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []*nvWireConn
	open   []net.Conn
	wg     sync.WaitGroup
}

// nvWireConn is what the relay saw on one connection.
type nvWireConn struct {
	icreqDGST, icrespDGST byte
	firstType, firstFlags byte
	sawICReq, sawICResp   bool
	sawFirst              bool
	err                   error
}

// NVMe/TCP 1.0: every PDU starts with an 8-byte common header (PDU-type,
// FLAGS, HLEN, PDO, PLEN); ICReq and ICResp are 128 bytes with DGST at
// byte 11 (§3.6.2.2, §3.6.2.3: bit 0 HDGST_ENABLE, bit 1 DDGST_ENABLE);
// FLAGS bit 0 is HDGSTF and bit 1 DDGSTF (§3.6.1).
const (
	nvICLen          = 128
	nvICDGSTOff      = 11
	nvPDUICReq       = 0x00
	nvPDUICResp      = 0x01
	nvPDUCapsuleCmd  = 0x04
	nvHDGST, nvDDGST = 0x01, 0x02
)

func nvStartRelay(t *testing.T, target string) *nvRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &nvRelay{ln: ln, target: target}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(func() { r.close() })
	return r
}

func (r *nvRelay) port() int { return r.ln.Addr().(*net.TCPAddr).Port }

func (r *nvRelay) accept() {
	defer r.wg.Done()
	for {
		host, err := r.ln.Accept()
		if err != nil {
			return
		}
		ctrl, err := net.Dial("tcp", r.target)
		w := &nvWireConn{err: err}
		r.mu.Lock()
		r.conns = append(r.conns, w)
		r.open = append(r.open, host)
		if err == nil {
			r.open = append(r.open, ctrl)
		}
		r.mu.Unlock()
		if err != nil {
			host.Close()
			continue
		}
		r.wg.Add(2)
		go r.pipe(host, ctrl, w, true)
		go r.pipe(ctrl, host, w, false)
	}
}

// pipe copies src to dst, reading the first PDUs of one direction on the
// way; when either side ends, both are closed.
func (r *nvRelay) pipe(src, dst net.Conn, w *nvWireConn, fromHost bool) {
	defer r.wg.Done()
	defer dst.Close()
	defer src.Close()
	ic := make([]byte, nvICLen)
	if _, err := io.ReadFull(src, ic); err != nil {
		return
	}
	r.mu.Lock()
	if fromHost {
		w.sawICReq = ic[0] == nvPDUICReq
		w.icreqDGST = ic[nvICDGSTOff]
	} else {
		w.sawICResp = ic[0] == nvPDUICResp
		w.icrespDGST = ic[nvICDGSTOff]
	}
	r.mu.Unlock()
	if _, err := dst.Write(ic); err != nil {
		return
	}
	if fromHost {
		ch := make([]byte, 8)
		if _, err := io.ReadFull(src, ch); err != nil {
			return
		}
		r.mu.Lock()
		w.sawFirst, w.firstType, w.firstFlags = true, ch[0], ch[1]
		r.mu.Unlock()
		if _, err := dst.Write(ch); err != nil {
			return
		}
	}
	io.Copy(dst, src)
}

// close stops the relay and returns what it saw.
func (r *nvRelay) close() []nvWireConn {
	r.ln.Close()
	r.mu.Lock()
	for _, c := range r.open {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]nvWireConn, len(r.conns))
	for i, c := range r.conns {
		out[i] = *c
	}
	return out
}

// check requires both digests enabled in ICReq and ICResp, and the
// Connect capsule sent with HDGSTF and DDGSTF, exactly when digests is
// set.
func (w *nvWireConn) check(t *testing.T, i int, digests bool) {
	t.Helper()
	want := byte(0)
	if digests {
		want = nvHDGST | nvDDGST
	}
	if !w.sawICReq || !w.sawICResp || !w.sawFirst {
		t.Errorf("connection %d: ICReq %v, ICResp %v, first capsule %v: want all three", i, w.sawICReq, w.sawICResp, w.sawFirst)
		return
	}
	if w.icreqDGST != want || w.icrespDGST != want {
		t.Errorf("connection %d: DGST %#x in ICReq, %#x in ICResp, want %#x", i, w.icreqDGST, w.icrespDGST, want)
	}
	if w.firstType != nvPDUCapsuleCmd || w.firstFlags&(nvHDGST|nvDDGST) != want {
		t.Errorf("connection %d: first PDU type %#x flags %#x, want CapsuleCmd with digest flags %#x",
			i, w.firstType, w.firstFlags, want)
	}
}

// --- small helpers ----------------------------------------------------

// nvTempDir returns a directory removed at the end of the test whose
// path is short enough for a Unix socket (t.TempDir's names of subtests
// can pass 108 bytes).
func nvTempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "nvmf-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// nvFreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func nvFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func nvMethod(name string, params map[string]any) map[string]any {
	return map[string]any{"method": name, "params": params}
}

// nvAttachConfig writes a bdevperf config that attaches controller
// Nvme0 to subsystem nvmfNQN on 127.0.0.1:port, with extra params.
func nvAttachConfig(t *testing.T, dir, name string, port int, extra map[string]any) string {
	t.Helper()
	p := map[string]any{"name": "Nvme0", "trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1",
		"trsvcid": strconv.Itoa(port), "subnqn": nvmfNQN}
	for k, v := range extra {
		p[k] = v
	}
	return nvWriteJSON(t, dir, name, map[string]any{"subsystems": []any{
		map[string]any{"subsystem": "bdev", "config": []any{nvMethod("bdev_nvme_attach_controller", p)}},
	}})
}

func nvWriteJSON(t *testing.T, dir, name string, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// nvWaitFor calls f every 20 ms until it reports done or timeout passes,
// and returns its last value and whether it got done.
func nvWaitFor[T any](t *testing.T, timeout time.Duration, f func() (T, bool)) (T, bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v, ok := f()
		if ok || time.Now().After(deadline) {
			return v, ok
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func nvOnOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func nvLastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
