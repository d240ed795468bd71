package main

// Acceptance tests: the bdevperf binary itself (built once, in TestMain),
// driven the way an operator would drive it, with a JSON config (-c):
//
//   - verify for 30 s on a RAM bdev and on an io_uring file bdev (O_DIRECT
//     on a 256 MiB file), exit status 0, no miscompares, and afterwards
//     every block of the file either zero or a whole pattern block;
//   - short read and write runs on a null bdev (it keeps no data, so no
//     verify);
//   - crash durability: verify on an aio file bdev with --write-log,
//     kill -9 mid-run, then every block of the file is zero or a whole
//     pattern block and every write the log recorded as completed is on
//     the file with at least its sequence number;
//   - with HYPERPATH_BENCH=1, the scripts of test/bench.
//
// All but the flag checks skip under -short.

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"hyperpath/app/bdevperf/perf"
	"hyperpath/rpc/client"
)

// binary is the bdevperf built by TestMain ("" under -short); buildErr
// says why the build failed.
var (
	binary   string
	buildErr error
)

func TestMain(m *testing.M) {
	flag.Parse()
	var dir string
	if !testing.Short() {
		var err error
		if dir, err = os.MkdirTemp("", "bdevperf-acceptance-"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		binary = filepath.Join(dir, "bdevperf")
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = "/usr/local/go/bin/go"
		}
		if out, err := exec.Command(goTool, "build", "-o", binary, "hyperpath/app/bdevperf").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build hyperpath/app/bdevperf: %v\n%s", err, out)
		}
	}
	code := m.Run()
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// needBinary skips under -short and fails when the build did.
func needBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("acceptance test: builds and runs the bdevperf binary for up to 30 s; skipped under -short")
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// jsonResults is the part of --json-output the tests read.
type jsonResults struct {
	Seed        uint64 `json:"seed"`
	Interrupted bool   `json:"interrupted"`
	Results     []struct {
		Job         string  `json:"job"`
		Workload    string  `json:"workload"`
		Status      string  `json:"status"`
		Runtime     float64 `json:"runtime"`
		IOs         uint64  `json:"io_completed"`
		Failed      uint64  `json:"io_failed"`
		IOPS        float64 `json:"iops"`
		P99Us       float64 `json:"p99_latency_us"`
		Miscompares uint64  `json:"miscompares"`
		IOErrors    uint64  `json:"io_errors"`
	} `json:"results"`
}

// config writes an SPDK JSON config with the given bdev methods.
func config(t *testing.T, dir string, methods ...map[string]any) string {
	t.Helper()
	doc := map[string]any{"subsystems": []any{map[string]any{"subsystem": "bdev", "config": methods}}}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "bdevperf.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func method(name string, params map[string]any) map[string]any {
	return map[string]any{"method": name, "params": params}
}

// directDir returns a temporary directory whose file system takes
// O_DIRECT: the test's own, else one under /var/tmp (tmpfs /tmp refuses
// it). Where none does, it returns the test's and the file bdev runs
// buffered, which the test that checks says.
func directDir(t *testing.T) string {
	t.Helper()
	dirs := []string{t.TempDir()}
	if d, err := os.MkdirTemp("/var/tmp", "bdevperf-acceptance-"); err == nil {
		t.Cleanup(func() { os.RemoveAll(d) })
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		probe := filepath.Join(d, "o_direct.probe")
		if err := os.WriteFile(probe, nil, 0o600); err != nil {
			continue
		}
		fd, err := syscall.Open(probe, syscall.O_RDWR|syscall.O_DIRECT, 0)
		os.Remove(probe)
		if err == nil {
			syscall.Close(fd)
			return d
		}
	}
	return dirs[0]
}

// tempFile creates a sparse file of size bytes, zero everywhere.
func tempFile(t *testing.T, dir string, size int64) string {
	t.Helper()
	path := filepath.Join(dir, "disk.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// proc is a bdevperf process the test started.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	exited         chan struct{}
	err            error // Wait's, once exited is closed
}

// start runs the binary with args; the process is killed (by its PID) at
// the end of the test if it is still running.
func start(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// wait waits up to timeout for the process to exit and returns its exit
// code (-1 when a signal ended it).
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.exited
		t.Fatalf("bdevperf %v still running after %v; killed\nstdout:\n%s\nstderr:\n%s",
			p.cmd.Args[1:], timeout, p.stdout.String(), p.stderr.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

// runOK runs bdevperf to the end, wants exit status 0, and returns its
// --json-output.
func runOK(t *testing.T, bin, dir string, timeout time.Duration, args ...string) *jsonResults {
	t.Helper()
	out := filepath.Join(dir, "results.json")
	p := start(t, bin, append(args, "--json-output", out)...)
	if code := p.wait(t, timeout); code != 0 {
		t.Fatalf("bdevperf %v: exit status %d\nstdout:\n%s\nstderr:\n%s", args, code, p.stdout.String(), p.stderr.String())
	}
	t.Logf("bdevperf %s\n%s", strings.Join(args, " "), p.stdout.String())
	return readResults(t, out)
}

func readResults(t *testing.T, path string) *jsonResults {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r jsonResults
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("--json-output: %v\n%s", err, b)
	}
	return &r
}

// checkClean wants one job on bdev that ran about seconds with IO done,
// none failed and nothing miscompared.
func checkClean(t *testing.T, r *jsonResults, bdev, workload string, seconds float64) {
	t.Helper()
	if r.Interrupted || len(r.Results) != 1 {
		t.Fatalf("results %+v: want one uninterrupted job", r)
	}
	j := r.Results[0]
	if j.Job != bdev || j.Workload != workload || j.Status != "finished" {
		t.Errorf("job %+v: want %s %s finished", j, bdev, workload)
	}
	if j.IOs == 0 || j.IOPS <= 0 || j.Failed != 0 || j.IOErrors != 0 || j.Miscompares != 0 {
		t.Errorf("job %+v: want IO done, no failure, no miscompare", j)
	}
	if j.Runtime < seconds*0.95 || j.Runtime > seconds*1.1 {
		t.Errorf("runtime %.2f s for -t %v", j.Runtime, seconds)
	}
}

// TestAcceptanceVerifyMalloc: 30 s of verify on a RAM bdev.
func TestAcceptanceVerifyMalloc(t *testing.T) {
	bin := needBinary(t)
	dir := t.TempDir()
	cfg := config(t, dir, method("bdev_malloc_create", map[string]any{"name": "Malloc0", "num_blocks": 131072, "block_size": 512}))
	r := runOK(t, bin, dir, 90*time.Second, "-c", cfg, "-b", "Malloc0", "-w", "verify", "-q", "32", "-o", "4096",
		"-t", "30", "-S", "5", "-H")
	checkClean(t, r, "Malloc0", "verify", 30)
}

// TestAcceptanceVerifyFile: 30 s of verify on an io_uring bdev over a
// 256 MiB file opened O_DIRECT (checked over RPC while it runs); then
// every block of the file is zero or a whole pattern block of the run.
func TestAcceptanceVerifyFile(t *testing.T) {
	bin := needBinary(t)
	dir := t.TempDir()
	const size = 256 << 20
	img := tempFile(t, directDir(t), size)
	cfg := config(t, dir, method("bdev_uring_create", map[string]any{"name": "Uring0", "filename": img}))
	sock := filepath.Join(dir, "rpc.sock")
	out := filepath.Join(dir, "results.json")
	args := []string{"-c", cfg, "-b", "Uring0", "-w", "verify", "-q", "32", "-o", "4096", "-t", "30", "-S", "5", "-H",
		"-r", sock, "--json-output", out}
	p := start(t, bin, args...)

	// While it runs: the bdev is the file, opened O_DIRECT.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var c *client.Client
	for c == nil {
		var err error
		if c, err = client.DialContext(ctx, sock); err != nil {
			select {
			case <-p.exited:
				t.Fatalf("bdevperf exited early: %v\n%s\n%s", p.err, p.stdout.String(), p.stderr.String())
			case <-ctx.Done():
				t.Fatalf("no RPC socket %s: %v", sock, err)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	var bdevs []struct {
		Name           string `json:"name"`
		ProductName    string `json:"product_name"`
		NumBlocks      uint64 `json:"num_blocks"`
		BlockSize      uint64 `json:"block_size"`
		DriverSpecific struct {
			URing struct {
				Filename string `json:"filename"`
				ODirect  bool   `json:"o_direct"`
			} `json:"uring"`
		} `json:"driver_specific"`
	}
	err := c.Call(ctx, "bdev_get_bdevs", map[string]any{"name": "Uring0"}, &bdevs)
	c.Close()
	if err != nil {
		t.Fatalf("bdev_get_bdevs: %v", err)
	}
	if len(bdevs) != 1 || bdevs[0].NumBlocks*bdevs[0].BlockSize != size || bdevs[0].DriverSpecific.URing.Filename != img {
		t.Fatalf("bdev %+v: want Uring0 over %s, %d bytes", bdevs, img, size)
	}
	if !bdevs[0].DriverSpecific.URing.ODirect {
		t.Errorf("Uring0 is not O_DIRECT: the file system of %s refused it", img)
	}

	if code := p.wait(t, 90*time.Second); code != 0 {
		t.Fatalf("bdevperf %v: exit status %d\nstdout:\n%s\nstderr:\n%s", args, code, p.stdout.String(), p.stderr.String())
	}
	t.Logf("bdevperf %s\n%s", strings.Join(args, " "), p.stdout.String())
	r := readResults(t, out)
	checkClean(t, r, "Uring0", "verify", 30)

	// The file itself: no log, so only the per-block check.
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	job := perf.WriteLogJob{Bdev: "Uring0", BlockSize: uint32(bdevs[0].BlockSize), Seed: r.Seed}
	checkStart := time.Now()
	rep, err := perf.CheckDurability(f, size, job, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Failure(); err != nil {
		t.Fatal(err)
	}
	if rep.PatternBlocks == 0 {
		t.Errorf("no pattern block on the file after a verify run: %+v", rep)
	}
	t.Logf("file after the run: %d pattern blocks, %d zero (checked in %v)", rep.PatternBlocks, rep.ZeroBlocks,
		time.Since(checkStart).Round(time.Millisecond))
}

// TestAcceptanceNull: short randread and write runs on a null bdev.
func TestAcceptanceNull(t *testing.T) {
	bin := needBinary(t)
	dir := t.TempDir()
	cfg := config(t, dir, method("bdev_null_create", map[string]any{"name": "Null0", "num_blocks": 262144, "block_size": 4096}))
	for _, tc := range []struct {
		w     string
		depth string
	}{{"randread", "128"}, {"write", "32"}} {
		r := runOK(t, bin, dir, 60*time.Second, "-c", cfg, "-b", "Null0", "-w", tc.w, "-q", tc.depth, "-o", "4096",
			"-t", "3", "-S", "1", "-H")
		checkClean(t, r, "Null0", tc.w, 3)
	}
}

// TestAcceptanceCrashDurability kills bdevperf (kill -9, by PID) while
// verify writes to an aio file bdev with --write-log, then checks the
// file against the log: no torn, mixed or misplaced block, and every
// write logged as completed present with at least its sequence number.
// It then damages the file in two ways to show the check catches both.
func TestAcceptanceCrashDurability(t *testing.T) {
	bin := needBinary(t)
	dir := t.TempDir()
	const size = 256 << 20
	img := tempFile(t, directDir(t), size)
	cfg := config(t, dir, method("bdev_aio_create", map[string]any{"name": "Aio0", "filename": img}))
	logPath := filepath.Join(dir, "writes.log")
	p := start(t, bin, "-c", cfg, "-b", "Aio0", "-w", "verify", "-q", "32", "-o", "4096", "-t", "60", "-S", "0", "-H",
		"--write-log", logPath)

	// Let it log a few thousand writes (a record is under 30 bytes), and
	// at least a second of run, then kill it mid-run.
	deadline := time.Now().Add(30 * time.Second)
	began := time.Now()
	for {
		select {
		case <-p.exited:
			t.Fatalf("bdevperf exited before the kill: %v\n%s\n%s", p.err, p.stdout.String(), p.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if st, err := os.Stat(logPath); err == nil && st.Size() > 64<<10 && time.Since(began) > time.Second {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("write log did not grow past 64 KiB in 30 s\n%s\n%s", p.stdout.String(), p.stderr.String())
		}
	}
	ranFor := time.Since(began)
	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait(t, 30*time.Second)
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("bdevperf ended with %v, not by SIGKILL\n%s\n%s", p.cmd.ProcessState, p.stdout.String(), p.stderr.String())
	}

	lf, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	data, err := perf.ReadWriteLog(lf)
	lf.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(data.Jobs) != 1 || data.Jobs[0].Bdev != "Aio0" || len(data.Records) < 1000 || data.Dropped != 0 {
		t.Fatalf("write log: jobs %+v, %d records, %d dropped", data.Jobs, len(data.Records), data.Dropped)
	}
	job := data.Jobs[0]

	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	check := func() *perf.DurabilityReport {
		t.Helper()
		rep, err := perf.CheckDurability(f, size, job, data.Records)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	rep := check()
	if err := rep.Failure(); err != nil {
		t.Fatal(err)
	}
	if rep.Records != uint64(len(data.Records)) || rep.PatternBlocks == 0 {
		t.Fatalf("report %+v", rep)
	}
	t.Logf("killed after %v: %d writes logged (%d blocks, last line cut: %v); file: %d pattern blocks, %d zero, %d bad",
		ranFor.Round(time.Millisecond), rep.Records, rep.LoggedBlocks, data.Truncated,
		rep.PatternBlocks, rep.ZeroBlocks, rep.BadBlocks)

	// The check must see damage: a logged block zeroed (a lost write) and
	// one byte flipped in another (a torn block).
	bs := int64(job.BlockSize)
	lost, torn := data.Records[0].OffsetBlocks, data.Records[len(data.Records)-1].OffsetBlocks
	if lost == torn {
		torn += data.Records[len(data.Records)-1].NumBlocks - 1
	}
	if _, err := f.WriteAt(make([]byte, bs), int64(lost)*bs); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, int64(torn)*bs+bs/2); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, int64(torn)*bs+bs/2); err != nil {
		t.Fatal(err)
	}
	rep = check()
	if err := rep.Failure(); err == nil || rep.BadBlocks != 1 || rep.Missing < 2 ||
		!strings.Contains(err.Error(), fmt.Sprintf("block %d: logged write seq", lost)) ||
		!strings.Contains(err.Error(), fmt.Sprintf("block %d: header LBA, seed and seq", torn)) {
		t.Errorf("damaged file: bad %d, missing %d, %v", rep.BadBlocks, rep.Missing, err)
	}
}

// TestWriteLogFlags: --write-log goes with -w verify only, and not with -z.
func TestWriteLogFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"--malloc", "16", "-w", "verify", "--write-log", "x.log"}, ""},
		{[]string{"--malloc", "16", "-w", "randwrite", "--write-log", "x.log"}, "needs -w verify"},
		{[]string{"-z", "-w", "verify", "--write-log", "x.log"}, "does not combine with -z"},
	} {
		o, err := parseFlags(tc.args, &bytes.Buffer{})
		switch {
		case tc.err == "" && (err != nil || o.writeLog != "x.log"):
			t.Errorf("%v: %v", tc.args, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%v: got %v, want an error with %q", tc.args, err, tc.err)
		}
	}
}

// TestBenchScripts runs test/bench/null.sh and local-vs-fio.sh with the
// binary built here. They take about 80 s and want a quiet machine, so
// they run only with HYPERPATH_BENCH=1.
func TestBenchScripts(t *testing.T) {
	if os.Getenv("HYPERPATH_BENCH") != "1" {
		t.Skip("benchmark scripts: set HYPERPATH_BENCH=1 to run them")
	}
	bin := needBinary(t)
	for _, script := range []string{"null.sh", "local-vs-fio.sh"} {
		cmd := exec.Command("bash", filepath.Join("..", "..", "test", "bench", script))
		cmd.Env = append(os.Environ(), "BDEVPERF="+bin, "BENCH_DIR="+t.TempDir())
		out, err := cmd.CombinedOutput()
		t.Logf("%s:\n%s", script, out)
		if err != nil {
			t.Fatalf("%s: %v", script, err)
		}
		if !strings.Contains(string(out), "IOPS") {
			t.Errorf("%s printed no IOPS", script)
		}
	}
}
