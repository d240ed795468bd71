package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hyperpath/app/daemon"
	"hyperpath/bdev"
	"hyperpath/reactor"
	"hyperpath/rpc/rpctest"
)

// startDaemon starts Hyperpath in process (one reactor, no config) with
// its RPC socket in a temporary directory, and stops it when the test
// ends.
func startDaemon(t *testing.T) (*daemon.Daemon, string) {
	t.Helper()
	sock := filepath.Join(rpctest.SockDir(t), "spdk.sock")
	d, err := daemon.New(daemon.Options{
		CoreMask:     "0x1",
		RPCSocket:    sock,
		VhostSockDir: rpctest.SockDir(t), // short: Unix socket paths
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("daemon Stop: %v", err)
		}
	})
	return d, sock
}

// hasMethod reports whether the daemon serves method.
func hasMethod(t *testing.T, d *daemon.Daemon, method string) bool {
	t.Helper()
	var names []string
	if err := d.RPC().Call(context.Background(), "rpc_get_methods", nil, &names); err != nil {
		t.Fatal(err)
	}
	return slices.Contains(names, method)
}

// rpcCall calls a method on the daemon in process (test set-up).
func rpcCall(t *testing.T, d *daemon.Daemon, method string, params any) {
	t.Helper()
	if err := d.RPC().Call(context.Background(), method, params, nil); err != nil {
		t.Fatalf("%s %v: %v", method, params, err)
	}
}

// doIO submits n one-block IOs (reads and writes alternately, up to 32
// outstanding) to the bdev from the main reactor and waits for them. The
// channel stays open until the test ends, since a bdev's histograms live
// in its channels.
func doIO(t *testing.T, d *daemon.Daemon, name string, n int) {
	t.Helper()
	r := d.Group().Main()
	desc, err := d.Registry().Open(name, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ch *bdev.IOChannel
	reactor.Call(r, func() { ch, err = desc.GetChannel(r) })
	if err != nil {
		desc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { // before the daemon stops (cleanups run last first)
		reactor.Call(r, ch.PutChannel)
		desc.Close()
	})
	info := desc.Bdev().Info()
	buf := make([]byte, info.BlockSize) // touched only on the reactor
	var done, failed atomic.Int64
	cb := func(io *bdev.IO) {
		if io.Status != bdev.StatusSuccess {
			failed.Add(1)
		}
		done.Add(1)
	}
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < n; {
		submitted := false
		reactor.Call(r, func() {
			if ch.Outstanding() >= 32 {
				return
			}
			io := ch.Alloc()
			if io == nil {
				return
			}
			io.Type = bdev.IORead
			if i%2 == 1 {
				io.Type = bdev.IOWrite
			}
			io.OffsetBlocks, io.NumBlocks = uint64(i)%info.NumBlocks, 1
			io.Iovs = append(io.Iovs[:0], buf)
			ch.Submit(io, cb)
			submitted = true
		})
		if submitted {
			i++
		} else if time.Now().After(deadline) {
			t.Fatalf("IO stuck: %d of %d done", done.Load(), n)
		}
	}
	for done.Load() < int64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("IO stuck: %d of %d done", done.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
	if f := failed.Load(); f != 0 {
		t.Fatalf("%d of %d IOs failed", f, n)
	}
}

// recorder is a Unix socket proxy in front of the daemon that keeps the
// bytes clients send, so a test sees the requests rpc.py and hpctl put on
// the wire.
type recorder struct {
	mu   sync.Mutex
	sent bytes.Buffer
}

func (r *recorder) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent.Write(b)
}

// take returns the requests sent since the last call as "method params"
// lines, params re-formatted on one line in their wire key order.
func (r *recorder) take(t *testing.T) []string {
	t.Helper()
	r.mu.Lock()
	raw := append([]byte(nil), r.sent.Bytes()...)
	r.sent.Reset()
	r.mu.Unlock()
	var out []string
	dec := json.NewDecoder(bytes.NewReader(raw))
	for {
		var req struct {
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		}
		err := dec.Decode(&req)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("recorded requests %q: %v", raw, err)
		}
		line := req.Method
		if req.Params != nil {
			p, err := pyDumps(req.Params, -1)
			if err != nil {
				t.Fatal(err)
			}
			line += " " + string(p)
		}
		out = append(out, line)
	}
}

// recordingProxy listens on a new socket and forwards every connection to
// target, recording what clients send.
func recordingProxy(t *testing.T, target string) (string, *recorder) {
	t.Helper()
	path := filepath.Join(rpctest.SockDir(t), "proxy.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("unix", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			wg.Add(2)
			go func() {
				defer wg.Done()
				// The request is recorded before the server can see it.
				io.Copy(up, io.TeeReader(c, rec))
				up.(*net.UnixConn).CloseWrite()
			}()
			go func() {
				defer wg.Done()
				io.Copy(c, up)
				c.Close()
				up.Close()
			}()
		}
	}()
	return path, rec
}

var ticksRE = regexp.MustCompile(`"ticks": [0-9]+`)

// liveStep is one command run with rpc.py and with hpctl against the same
// daemon. setup runs before each tool's run and cleanup after it (with
// that tool's output), so both start from the same state.
type liveStep struct {
	args    []string
	setup   func()
	cleanup func(out string, rc int)
}

// TestBdevCommandsLikeRPCPy runs the bdev commands with SPDK's rpc.py and
// with hpctl against one live in-process daemon and requires the same
// requests on the wire, the same output and the same exit status.
func TestBdevCommandsLikeRPCPy(t *testing.T) {
	rpctest.RPCPyPath(t)
	d, sock := startDaemon(t)
	proxy, rec := recordingProxy(t, sock)
	call := func(method string, params any) { rpcCall(t, d, method, params) }
	ignore := func(method string, params any) func(string, int) {
		return func(string, int) { d.RPC().Call(context.Background(), method, params, nil) }
	}
	call("bdev_malloc_create", map[string]any{"name": "Malloc0", "num_blocks": 16384, "block_size": 512})
	call("bdev_null_create", map[string]any{"name": "Null0", "num_blocks": 4096, "block_size": 4096})
	call("bdev_enable_histogram", map[string]any{"name": "Malloc0", "enable": true})
	doIO(t, d, "Malloc0", 200)

	file := filepath.Join(t.TempDir(), "aio.img")
	if err := os.WriteFile(file, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	const uuid = "6a0c8b6e-4f5d-4b8e-9d5e-0e0c2f3a4b5c"
	malloc := func(name string) func() {
		return func() {
			call("bdev_malloc_create", map[string]any{"name": name, "num_blocks": 64, "block_size": 512, "uuid": uuid})
		}
	}
	steps := []liveStep{
		{args: []string{"bdev_get_bdevs"}},
		{args: []string{"bdev_get_bdevs", "-b", "Malloc0"}},
		// (rpc.py also takes this -t, in ms, as its own response timeout
		// in seconds, so -t 0 makes it fail before sending; hpctl does
		// not copy that.)
		{args: []string{"bdev_get_bdevs", "--name", "Null0", "-t", "5000"}},
		{args: []string{"bdev_get_bdevs", "-b", "NoSuch", "--timeout-ms", "1"}},
		{args: []string{"bdev_get_iostat"}},
		{args: []string{"bdev_get_iostat", "--names", "Malloc0,Null0"}},
		{args: []string{"bdev_get_iostat", "-c", "--names", "Malloc0"}},
		{args: []string{"bdev_get_iostat", "--per-channel"}},
		{args: []string{"bdev_get_iostat", "--names", "Null0", "--reset-mode", "all"}},
		{args: []string{"bdev_get_iostat", "--names", "NoSuch"}},
		{args: []string{"bdev_reset_iostat", "-b", "Null0", "-m", "maxmin"}},
		{args: []string{"bdev_reset_iostat", "--name", "NoSuch"}},
		{args: []string{"bdev_get_histogram", "Malloc0"}},
		{args: []string{"bdev_get_histogram", "Null0"}},
		{args: []string{"bdev_enable_histogram", "Null0", "--histogram", "-o", "read", "--granularity", "7",
			"--min-nsec", "1000", "--max-nsec", "1000000000"}},
		{args: []string{"bdev_enable_histogram", "--no-histogram", "Null0"}},
		{args: []string{"bdev_enable_histogram", "NoSuch", "--histogram"}},
		{args: []string{"bdev_enable_histogram", "Null0", "--histogram", "--opc", "bogus"}},
		{args: []string{"bdev_set_qos_limit", "Null0", "--rw-ios-per-sec", "20000", "--r-mbytes-per-sec", "100"}},
		{args: []string{"bdev_get_bdevs", "-b", "Null0"}},
		{args: []string{"bdev_set_qos_limit", "Null0"}},
		{args: []string{"bdev_set_qos_limit", "NoSuch", "--w-mbytes-per-sec", "1"}},
		{args: []string{"bdev_set_qos_limit", "Null0", "--rw-ios-per-sec", "0", "--r-mbytes-per-sec", "0", "--rw-mbytes-per-sec", "0", "--w-mbytes-per-sec", "0"}},
		{args: []string{"bdev_examine", "-b", "Malloc0"}},
		{args: []string{"bdev_examine", "--name", "NoSuch"}},
		{args: []string{"bdev_wait_for_examine"}},
		{args: []string{"bdev_set_options", "-p", "65535", "--no-auto-examine", "--iobuf-small-cache-size", "128"}},

		{args: []string{"bdev_malloc_create", "-b", "M1", "-u", uuid, "8", "4096", "-p", "4096", "-o", "8", "-n", "-1"},
			cleanup: ignore("bdev_malloc_delete", map[string]any{"name": "M1"})},
		{args: []string{"bdev_get_bdevs", "-b", "M1"}, setup: malloc("M1"), cleanup: ignore("bdev_malloc_delete", map[string]any{"name": "M1"})},
		{args: []string{"bdev_malloc_create", "-b", "Malloc0", "0.5", "512"}},
		{args: []string{"bdev_malloc_create", "--name", "M2", "1", "512", "-m", "8", "-t", "1", "-i", "-d", "-f", "0"}},
		{args: []string{"bdev_malloc_delete", "M1"}, setup: malloc("M1")},
		{args: []string{"bdev_malloc_delete", "NoSuch"}},
		{args: []string{"bdev_null_create", "N1", "16", "4096", "-u", uuid, "-p", "4096"},
			cleanup: ignore("bdev_null_delete", map[string]any{"name": "N1"})},
		{args: []string{"bdev_null_create", "N1", "1", "512", "-m", "8", "-t", "1"},
			cleanup: ignore("bdev_null_delete", map[string]any{"name": "N1"})},
		{args: []string{"bdev_null_delete", "N1"}, setup: func() {
			call("bdev_null_create", map[string]any{"name": "N1", "num_blocks": 64, "block_size": 512})
		}},
		{args: []string{"bdev_null_delete", "Malloc0"}},

		{args: []string{"bdev_aio_create", file, "A1", "512"}, cleanup: ignore("bdev_aio_delete", map[string]any{"name": "A1"})},
		{args: []string{"bdev_aio_create", file, "A1", "-r", "--fallocate"}, cleanup: ignore("bdev_aio_delete", map[string]any{"name": "A1"})},
		{args: []string{"bdev_aio_create", filepath.Join(t.TempDir(), "none"), "A2"}},
		{args: []string{"bdev_aio_delete", "A1"}, setup: func() {
			call("bdev_aio_create", map[string]any{"name": "A1", "filename": file})
		}},
		{args: []string{"bdev_uring_create", file, "U1", "4096", "-u", uuid}, cleanup: ignore("bdev_uring_delete", map[string]any{"name": "U1"})},
		{args: []string{"bdev_uring_delete", "NoSuch"}},

		{args: []string{"bdev_error_create", "Null0"}, cleanup: ignore("bdev_error_delete", map[string]any{"name": "EE_Null0"})},
		{args: []string{"bdev_error_inject_error", "EE_Null0", "read", "failure", "-n", "1", "-q", "2"},
			setup:   func() { call("bdev_error_create", map[string]any{"base_name": "Null0"}) },
			cleanup: ignore("bdev_error_delete", map[string]any{"name": "EE_Null0"})},
		{args: []string{"bdev_error_inject_error", "NoSuch", "all", "nvme_failure", "--nvme-sct", "1", "--nvme-sc", "2"}},
		{args: []string{"bdev_error_delete", "EE_Null0"},
			setup: func() { call("bdev_error_create", map[string]any{"base_name": "Null0"}) }},

		{args: []string{"bdev_delay_create", "-b", "Null0", "-d", "D1", "-r", "10", "-t", "20", "-w", "30", "-n", "40", "-u", uuid},
			cleanup: ignore("bdev_delay_delete", map[string]any{"name": "D1"})},
		{args: []string{"bdev_delay_update_latency", "D1", "p99_write", "50"},
			setup: func() {
				call("bdev_delay_create", map[string]any{"base_bdev_name": "Null0", "name": "D1", "avg_read_latency": 1,
					"p99_read_latency": 1, "avg_write_latency": 1, "p99_write_latency": 1})
			},
			cleanup: ignore("bdev_delay_delete", map[string]any{"name": "D1"})},
		{args: []string{"bdev_delay_delete", "NoSuch"}},
	}
	runLiveSteps(t, proxy, rec, steps)
}

// runLiveSteps runs each step with rpc.py and with hpctl through the
// recording proxy and requires the same single request on the wire, the
// same output (the "ticks" of bdev_get_iostat aside) and the same status.
func runLiveSteps(t *testing.T, proxy string, rec *recorder, steps []liveStep) {
	t.Helper()
	for _, s := range steps {
		name := strings.Join(s.args, " ")
		if s.setup != nil {
			s.setup()
		}
		want, wantRC := rpctest.RPCPy(t, proxy, "", s.args...)
		wantReqs := rec.take(t)
		if s.cleanup != nil {
			s.cleanup(want, wantRC)
		}
		if s.setup != nil {
			s.setup()
		}
		got, gotRC := hpctl(t, "", append([]string{"-s", proxy}, s.args...)...)
		gotReqs := rec.take(t)
		if s.cleanup != nil {
			s.cleanup(got, gotRC)
		}
		if len(wantReqs) != 1 || !slices.Equal(gotReqs, wantReqs) {
			t.Errorf("%s: requests differ\n hpctl  %q\n rpc.py %q", name, gotReqs, wantReqs)
		}
		want, got = ticksRE.ReplaceAllString(want, `"ticks": T`), ticksRE.ReplaceAllString(got, `"ticks": T`)
		if got != want || gotRC != wantRC {
			t.Errorf("%s: rc %d vs rpc.py %d\n--- hpctl\n%s--- rpc.py\n%s", name, gotRC, wantRC, got, want)
		}
	}
}

// dryRunSame runs each command line with rpc.py --dry-run (one process,
// the lines on stdin) and hpctl --dry-run, and requires the same request.
// rpc.py's dry run shows empty params as {} where hpctl shows null (both
// send no params key on the wire).
func dryRunSame(t *testing.T, lines [][]string) {
	t.Helper()
	script := rpctest.RPCPyPath(t)
	var stdin strings.Builder
	for _, l := range lines {
		q := make([]string, len(l))
		for i, a := range l {
			q[i] = shQuote(a)
		}
		stdin.WriteString(strings.Join(q, " ") + "\n")
	}
	cmd := exec.Command("python3", script, "--dry-run")
	cmd.Stdin = strings.NewReader(stdin.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("rpc.py --dry-run: %v\n%s", err, out)
	}
	blocks := strings.Split(string(out), "Request:\n")[1:]
	if len(blocks) != len(lines) {
		t.Fatalf("rpc.py printed %d requests for %d commands:\n%s", len(blocks), len(lines), out)
	}
	for i, l := range lines {
		got, rc := hpctl(t, "", append([]string{"--dry-run"}, l...)...)
		got = strings.Replace(got, `"params": null`, `"params": {}`, 1)
		if want := "Request:\n" + blocks[i]; rc != 0 || got != want {
			t.Errorf("%s: rc %d\n--- hpctl\n%s--- rpc.py\n%s", strings.Join(l, " "), rc, got, want)
		}
	}
}

// dryRunSameEach is dryRunSame with one rpc.py process per command.
func dryRunSameEach(t *testing.T, lines [][]string) {
	t.Helper()
	for _, l := range lines {
		want, rc := rpctest.RPCPy(t, "/nonexistent.sock", "", append([]string{"--dry-run"}, l...)...)
		got, gotRC := hpctl(t, "", append([]string{"--dry-run"}, l...)...)
		got = strings.Replace(got, `"params": null`, `"params": {}`, 1)
		if rc != 0 || gotRC != 0 || got != want {
			t.Errorf("%s: rc %d, rpc.py %d\n--- hpctl\n%s--- rpc.py\n%s", strings.Join(l, " "), gotRC, rc, got, want)
		}
	}
}

// usageSame runs command lines that rpc.py rejects before sending
// anything, and requires hpctl to reject them too (status 2), with
// argparse's message where hpctl words it the same.
func usageSame(t *testing.T, cases []usageCase) {
	t.Helper()
	for _, c := range cases {
		want, wantRC := rpctest.RPCPy(t, "/nonexistent.sock", "", append([]string{"--dry-run"}, c.args...)...)
		got, gotRC := hpctl(t, "", append([]string{"--dry-run"}, c.args...)...)
		name := strings.Join(c.args, " ")
		if wantRC == 0 || gotRC != 2 {
			t.Errorf("%s: rc %d, rpc.py %d\n--- hpctl\n%s--- rpc.py\n%s", name, gotRC, wantRC, got, want)
			continue
		}
		if wantRC != c.pyRC {
			t.Errorf("%s: rpc.py exited %d, the test expects %d:\n%s", name, wantRC, c.pyRC, want)
		}
		if !strings.Contains(want, c.msg) || !strings.Contains(got, c.msg) {
			t.Errorf("%s: want %q in both\n--- hpctl\n%s--- rpc.py\n%s", name, c.msg, got, want)
		}
	}
}

type usageCase struct {
	args []string
	pyRC int    // rpc.py's status: 2 from argparse, 1 from its own checks
	msg  string // text both print
}

func TestBdevDryRunLikeRPCPy(t *testing.T) {
	const uuid = "6a0c8b6e-4f5d-4b8e-9d5e-0e0c2f3a4b5c"
	dryRunSame(t, [][]string{
		{"bdev_set_options", "-p", "1024", "-c", "32", "--auto-examine", "--iobuf-small-cache-size", "1", "--iobuf-large-cache-size", "2"},
		{"bdev_set_options", "--no-auto-examine"},
		{"bdev_set_options"},
		{"bdev_examine", "-b", "Malloc0"},
		{"bdev_wait_for_examine"},
		{"bdev_malloc_create", "64", "512"},
		{"bdev_malloc_create", "0.5", "4096", "-b", "M", "-u", uuid, "-p", "4096", "-o", "16", "-m", "8", "-i", "-t", "1", "-d", "-f", "2", "-n", "-1"},
		{"bdev_malloc_create", "1.3", "512"},
		{"bdev_malloc_create", " 1_0 ", "+512"},
		{"bdev_malloc_create", "1e3", "4096"},
		{"bdev_malloc_create", "-b", "", "8", "520"},
		{"bdev_malloc_create", "100000000000", "3"},
		{"bdev_malloc_create", "--", "-1", "512"},
		{"bdev_malloc_delete", "Malloc0"},
		{"bdev_null_create", "Null0", "100", "4096"},
		// A negative positional number needs "--" in hpctl (argparse
		// takes it as positional when no option looks like a number).
		{"bdev_null_create", "-u", uuid, "-p", "512", "-m", "8", "-t", "3", "-d", "-f", "1",
			"-a", "1", "-g", "2", "-s", "3", "-c", "4", "-r", "5", "--", "Null0", "-7", "4096"},
		{"bdev_null_create", "N", "123456789012345678901234567890", "7"},
		{"bdev_null_create", "N", "1", "512", "-t", "0"},
		{"bdev_null_delete", "Null0"},
		{"bdev_aio_create", "/dev/sda", "Aio0"},
		{"bdev_aio_create", "/tmp/f", "Aio0", "4096", "-r", "--fallocate", "-u", uuid, "--no-wait"},
		{"bdev_aio_delete", "Aio0"},
		{"bdev_uring_create", "/dev/nvme0n1", "U0"},
		{"bdev_uring_create", "f", "U0", "512", "--uuid", uuid},
		{"bdev_uring_delete", "U0"},
		{"bdev_error_create", "Malloc0"},
		{"bdev_error_create", "Malloc0", "--uuid", uuid},
		{"bdev_error_delete", "EE_Malloc0"},
		{"bdev_error_inject_error", "EE_Malloc0", "write", "nomem"},
		{"bdev_error_inject_error", "EE_Malloc0", "all", "corrupt_data", "-n", "3", "-q", "4", "-o", "5", "-v", "255",
			"--nvme-sct", "1", "--nvme-sc", "2"},
		{"bdev_delay_create", "-b", "Malloc0", "-d", "D0", "-r", "1", "-t", "2", "-w", "3", "-n", "4"},
		{"bdev_delay_create", "--base-bdev-name", "Malloc0", "--name", "D0", "--avg-read-latency", "1",
			"--nine-nine-read-latency", "2", "--avg-write-latency", "3", "--nine-nine-write-latency", "4", "-u", uuid},
		{"bdev_delay_delete", "D0"},
		{"bdev_delay_update_latency", "D0", "avg_read", "100"},
		{"bdev_get_bdevs"},
		{"bdev_get_iostat"},
		{"bdev_get_iostat", "-c", "--reset-mode", "maxmin", "--names", "a,b,,c"},
		{"bdev_get_iostat", "--names", ""},
		{"bdev_reset_iostat"},
		{"bdev_reset_iostat", "-b", "Malloc0", "-m", "error"},
		{"bdev_enable_histogram", "--histogram", "Malloc0"},
		{"bdev_enable_histogram", "Malloc0", "--no-histogram", "-o", "write", "--granularity", "3", "--min-nsec", "10", "--max-nsec", "100"},
		{"bdev_enable_histogram", "Malloc0", "--histogram", "--no-histogram"},
		{"bdev_get_histogram", "Malloc0"},
		{"bdev_set_qos_limit", "Malloc0"},
		{"bdev_set_qos_limit", "Malloc0", "--rw-ios-per-sec", "20000", "--rw-mbytes-per-sec", "1", "--r-mbytes-per-sec", "2", "--w-mbytes-per-sec", "0"},
		{"bdev_nvme_attach_controller", "-b", "Nvme0", "-t", "tcp", "-a", "127.0.0.1"},
		{"bdev_nvme_attach_controller", "-b", "Nvme0", "-t", "rdma", "-a", "10.0.0.1", "-f", "ipv4", "-s", "4420",
			"-p", "1", "-n", "nqn.2016-06.io.spdk:cnode1", "-q", "nqn.host", "-i", "10.0.0.2", "-c", "5000", "-r", "-g",
			"-e", "-d", "--fabrics-timeout", "100", "-x", "multipath", "--num-io-queues", "4", "-l", "-1", "-o", "2",
			"-u", "1", "-k", "key0", "-m", "32", "--dhchap-key", "k1", "--dhchap-ctrlr-key", "k2", "-U",
			"--policy", "active_active", "--selector", "queue_depth", "--min-io", "8", "--disable-sq-flow-control"},
		{"bdev_nvme_attach_controller", "-b", "N", "-t", "tcp", "-a", "::1", "--selector", "round_robin"},
		{"bdev_nvme_get_controllers"},
		{"bdev_nvme_get_controllers", "-n", "Nvme0"},
		{"bdev_nvme_detach_controller", "Nvme0"},
		{"bdev_nvme_detach_controller", "Nvme0", "-t", "tcp", "-a", "1.2.3.4", "-f", "ipv4", "-s", "4420", "-n", "nqn.x",
			"-i", "1.2.3.5", "-c", "99"},
	})
	// bdev_get_bdevs -t has the dest "timeout", which rpc.py's script mode
	// (commands on stdin) overwrites with its own -t: run it alone.
	dryRunSameEach(t, [][]string{{"bdev_get_bdevs", "-b", "Malloc0", "-t", "100"}, {"bdev_get_bdevs", "--timeout-ms", "7"}})
	usageSame(t, []usageCase{
		{[]string{"bdev_malloc_create", "64"}, 2, "the following arguments are required: block_size"},
		{[]string{"bdev_malloc_create", "x", "512"}, 2, "argument total_size: invalid float value: 'x'"},
		{[]string{"bdev_malloc_create", "8", "0x200"}, 2, "argument block_size: invalid int value: '0x200'"},
		{[]string{"bdev_malloc_create", "8", "512", "9"}, 2, "unrecognized arguments: 9"},
		{[]string{"bdev_malloc_create", "8", "512", "-t", "5"}, 2, "argument -t/--dif-type: invalid choice: 5 (choose from 0, 1, 2, 3)"},
		{[]string{"bdev_null_create", "N", "1", "512", "-t", "1"}, 1, "ERROR: --md-size must be > 0 when --dif-type is > 0"},
		{[]string{"bdev_delay_create", "-b", "M", "-r", "1"}, 2,
			"the following arguments are required: -d/--name, -t/--nine-nine-read-latency, -w/--avg-write-latency, -n/--nine-nine-write-latency"},
		{[]string{"bdev_delay_update_latency", "D", "avg", "1"}, 2, "argument latency_type: invalid choice: 'avg' (choose from 'avg_read', 'avg_write', 'p99_read', 'p99_write')"},
		{[]string{"bdev_error_inject_error", "E", "read"}, 2, "the following arguments are required: error_type"},
		{[]string{"bdev_enable_histogram", "M"}, 2, "the following arguments are required: --histogram/--no-histogram"},
		{[]string{"bdev_get_iostat", "--reset-mode", "it's"}, 2, `argument --reset-mode: invalid choice: "it's" (choose from 'all', 'maxmin', 'error', 'none')`},
		{[]string{"bdev_examine"}, 2, "the following arguments are required: -b/--name"},
		{[]string{"bdev_nvme_attach_controller", "-b", "N"}, 2, "the following arguments are required: -t/--trtype, -a/--traddr"},
		{[]string{"bdev_nvme_attach_controller", "-b", "N", "-t", "tcp", "-a", "x", "-x", "on"}, 2, "argument -x/--multipath: invalid choice: 'on' (choose from 'disable', 'failover', 'multipath')"},
	})
}

// rpcPyParsers returns, for each rpc.py command, its argparse actions
// (dest, option strings, kind, required, nargs='?', choices) and
// mutually exclusive groups, read from rpc.py's own parser.
func rpcPyParsers(t *testing.T) map[string]pyParser {
	t.Helper()
	script := rpctest.RPCPyPath(t)
	var out map[string]pyParser
	python(t, `
import sys, json, argparse, importlib.util
spdk = json.loads(sys.stdin.read())
sys.path.insert(0, spdk + "/python")
sys.argv = ["rpc.py"]
spec = importlib.util.spec_from_file_location("rpcpy", spdk + "/scripts/rpc.py")
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
parser, sub = m.create_parser()
kinds = {argparse._StoreTrueAction: "store_true", argparse._StoreFalseAction: "store_false",
         argparse.BooleanOptionalAction: "optbool"}
out = {}
for name, sp in sub.choices.items():
    acts = []
    for a in sp._actions:
        if isinstance(a, argparse._HelpAction):
            continue
        kind = kinds.get(type(a))
        if kind is None:
            t = a.type
            kind = ("int" if t is int else "float" if t is float else "str" if t in (None, str)
                    else "list" if getattr(t, "func", None) is str.split else repr(t))
        acts.append({"dest": a.dest, "options": a.option_strings, "kind": kind, "required": bool(a.required),
                     "optional": a.nargs == "?", "choices": [str(c) for c in a.choices] if a.choices else None})
    out[name] = {"args": acts, "exclusive": [[a.dest for a in g._group_actions] for g in sp._mutually_exclusive_groups]}
print(json.dumps(out))
`, filepath.Dir(filepath.Dir(script)), &out)
	return out
}

type pyParser struct {
	Args []struct {
		Dest     string   `json:"dest"`
		Options  []string `json:"options"`
		Kind     string   `json:"kind"`
		Required bool     `json:"required"`
		Optional bool     `json:"optional"`
		Choices  []string `json:"choices"`
	} `json:"args"`
	Exclusive [][]string `json:"exclusive"`
}

var kindNames = map[argKind]string{argStr: "str", argInt: "int", argFloat: "float", argStoreTrue: "store_true",
	argStoreFalse: "store_false", argOptBool: "optbool", argList: "list"}

// ourOwnCommands are hpctl commands rpc.py does not have.
var ourOwnCommands = []string{"bdev_virtio_get_controllers", "bdev_histogram_dump"}

// TestArgsMatchRPCPyParsers holds every pyArgs command's declarations
// against rpc.py's parser for the same command: the same arguments in the
// same order, with the same option strings, types, actions, required
// flags, choices and exclusive groups.
func TestArgsMatchRPCPyParsers(t *testing.T) {
	py := rpcPyParsers(t)
	if len(argSpecs) < 45 {
		t.Fatalf("only %d commands declared with pyArgs", len(argSpecs))
	}
	for name, spec := range argSpecs {
		want, ok := py[name]
		if slices.Contains(ourOwnCommands, name) {
			if ok {
				t.Errorf("%s: rpc.py has it now; mirror it", name)
			}
			continue
		}
		if !ok {
			t.Errorf("%s: rpc.py has no such command", name)
			continue
		}
		p := newPyArgs(flag.NewFlagSet(name, flag.ContinueOnError))
		spec(p)
		p.list = slices.DeleteFunc(p.list, func(a *pyArg) bool { return a.ours })
		if len(p.list) != len(want.Args) {
			t.Errorf("%s: %d arguments, rpc.py %d", name, len(p.list), len(want.Args))
			continue
		}
		for i, a := range p.list {
			w := want.Args[i]
			var opts []string
			for _, n := range a.names {
				opts = append(opts, dashed(n))
				if a.kind == argOptBool {
					opts = append(opts, "--no-"+n)
				}
			}
			if opts == nil {
				opts = []string{}
			}
			required := a.required || (a.names == nil && !a.optional)
			if a.dest != w.Dest || !slices.Equal(opts, w.Options) || kindNames[a.kind] != w.Kind ||
				required != w.Required || a.optional != w.Optional || !slices.Equal(a.choices, w.Choices) {
				t.Errorf("%s argument %d:\n ours   %s %v %s required=%v optional=%v choices=%v\n rpc.py %s %v %s required=%v optional=%v choices=%v",
					name, i, a.dest, opts, kindNames[a.kind], required, a.optional, a.choices,
					w.Dest, w.Options, w.Kind, w.Required, w.Optional, w.Choices)
			}
		}
		var excl [][]string
		for _, x := range p.excl {
			excl = append(excl, []string{x[0], x[1]})
		}
		if fmt.Sprint(excl) != fmt.Sprint(want.Exclusive) && !(len(excl) == 0 && len(want.Exclusive) == 0) {
			t.Errorf("%s: exclusive groups %v, rpc.py %v", name, excl, want.Exclusive)
		}
	}
}

// TestHelpEveryCommand: -h works for every command this file set adds,
// names every option and the positional arguments, and exits 0.
func TestHelpEveryCommand(t *testing.T) {
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range argSpecs {
			if !yield(n) {
				return
			}
		}
	})
	names = append(names, "bdev_wait_for_examine", "bdev_histogram_dump")
	for _, name := range names {
		out, rc := hpctl(t, "", name, "-h")
		if rc != 0 || !strings.HasPrefix(out, "usage: hpctl [options] "+name+" [options] ") {
			t.Errorf("%s -h: rc %d\n%s", name, rc, out)
			continue
		}
		if spec, ok := argSpecs[name]; ok {
			p := newPyArgs(flag.NewFlagSet(name, flag.ContinueOnError))
			spec(p)
			if !strings.Contains(strings.SplitN(out, "\n", 2)[0], p.synopsis()) {
				t.Errorf("%s -h: usage line lacks %q:\n%s", name, p.synopsis(), out)
			}
			// -h lists options with the same help text as one option.
			usage := map[string]string{}
			p.fs.VisitAll(func(f *flag.Flag) {
				if a := p.byFlag[f.Name]; a != nil {
					if d, ok := usage[f.Usage]; ok && d != a.dest {
						t.Errorf("%s: %s and %s have the same help text", name, d, a.dest)
					}
					usage[f.Usage] = a.dest
				}
			})
			for _, a := range p.list {
				for _, n := range a.names {
					if !regexp.MustCompile(`(?m)^  (.*, )?` + regexp.QuoteMeta(dashed(n)) + `( |,|$)`).MatchString(out) {
						t.Errorf("%s -h: no %s:\n%s", name, dashed(n), out)
					}
				}
			}
		}
	}
	// And the global list names them.
	out, _ := hpctl(t, "", "-h")
	for _, name := range names {
		if !strings.Contains(out, "\n  "+name+" ") {
			t.Errorf("hpctl -h does not list %s", name)
		}
	}
}

// TestPyNumbers checks the argument number parsing against Python's
// int() and float() and the size arithmetic against Python's //.
func TestPyNumbers(t *testing.T) {
	ints := []string{"0", "-0", "+5", " 12 ", "1_000", "007", "-0012", "1__0", "_1", "1_", "0x10", "1.0", "", "-",
		"123456789012345678901234567890", "\t9\n"}
	floats := []string{"1.5", " 2 ", "1e3", "-1E-2", "1_0.5", "inf", "-Infinity", "nan", ".5", "5.", "0x1p3", "1__0",
		"_1", "1e", "", "1_000_000.25"}
	type div struct {
		Size, Bs string
		Float    bool
	}
	divs := []div{{"64", "512", true}, {"1.3", "512", true}, {"-1", "512", true}, {"1e3", "4096", true},
		{"100000000000", "3", true}, {"0.0001", "7", true}, {"-7", "4096", false}, {"16", "-3", false},
		{"123456789012345678901234567890", "7", false}, {"1", "512", false}, {"3", "-7", true}}
	var ref struct {
		Ints   []*string
		Floats []*float64
		NaN    []bool
		Divs   []*string
	}
	python(t, `
import sys, json, math
req = json.loads(sys.stdin.read())
def i(s):
    try: return str(int(s))
    except ValueError: return None
def f(s):
    try: return float(s)
    except ValueError: return None
def d(x):
    try:
        size = float(x["Size"]) if x["Float"] else int(x["Size"])
        return str(int((size * 1024 * 1024) // int(x["Bs"])))
    except (ValueError, OverflowError, ZeroDivisionError): return None
fl = [f(s) for s in req["floats"]]
print(json.dumps({"Ints": [i(s) for s in req["ints"]],
                  "Floats": [None if v is None or math.isinf(v) or math.isnan(v) else v for v in fl],
                  "NaN": [v is not None and (math.isinf(v) or math.isnan(v)) for v in fl],
                  "Divs": [d(x) for x in req["divs"]]}))
`, map[string]any{"ints": ints, "floats": floats, "divs": divs}, &ref)
	for i, s := range ints {
		got, ok := pyInt(s)
		if want := ref.Ints[i]; (want == nil) == ok || (ok && got != *want) {
			t.Errorf("pyInt(%q) = %q %v, Python %v", s, got, ok, deref(want))
		}
	}
	for i, s := range floats {
		got, ok := pyFloat(s)
		switch want := ref.Floats[i]; {
		case ref.NaN[i]:
			if !ok {
				t.Errorf("pyFloat(%q) refused; Python reads inf/nan", s)
			}
		case (want == nil) == ok || (ok && got != *want):
			t.Errorf("pyFloat(%q) = %v %v, Python %v", s, got, ok, deref(want))
		}
	}
	for i, x := range divs {
		p := newPyArgs(flag.NewFlagSet("x", flag.ContinueOnError))
		kind := argInt
		if x.Float {
			kind = argFloat
		}
		p.pos("total_size", kind, "")
		p.pos("block_size", argInt, "")
		if err := p.parse([]string{x.Size, x.Bs}); err != nil {
			t.Fatal(err)
		}
		got, err := sizeMB(p)
		if want := ref.Divs[i]; (want == nil) != (err != nil) || (err == nil && string(got) != *want) {
			t.Errorf("%+v: num_blocks %s %v, Python %v", x, got, err, deref(want))
		}
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
