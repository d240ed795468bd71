package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hyperpath/app/bdevperf/perf"
	"hyperpath/rpc"
	"hyperpath/rpc/client"
)

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string // "" for success
	}{
		{[]string{"--null", "64", "-w", "randread"}, ""},
		{[]string{"--malloc", "64", "-w", "rw", "-M", "70", "-o", "8k", "-q", "4", "-t", "0.5"}, ""},
		{[]string{"-c", "x.json", "-b", "Malloc0,Malloc1", "-T", "Null0", "-w", "verify"}, ""},
		{[]string{"-z"}, ""},
		{[]string{"--null", "64"}, "-w is required"},
		{[]string{"--null", "64", "-w", "randomread"}, "bad workload"},
		{[]string{"--null", "64", "-w", "rw"}, "-M must be given"},
		{[]string{"--null", "64", "-w", "randrw", "-M", "101"}, "-M must be given"},
		{[]string{"--null", "64", "-w", "read", "-o", "4x"}, "-o"},
		{[]string{"--null", "64", "-w", "read", "-t", "0"}, "-t"},
		{[]string{"-w", "read"}, "no bdevs"},
		{[]string{"-w", "read", "-b", "Malloc0"}, "bdevs come from -c"},
		{[]string{"--null", "64", "-w", "read", "--block-size", "1000"}, "--block-size"},
		{[]string{"--null", "64", "-w", "read", "extra"}, "unexpected argument"},
	} {
		o, err := parseFlags(tc.args, &bytes.Buffer{})
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, errUsage)):
			t.Errorf("%v: got %v, want a usage error with %q", tc.args, err, tc.err)
		case err == nil && tc.args[0] == "--malloc":
			c := o.cfg
			if c.Workload != perf.RW || c.ReadPercent != 70 || c.IOSizeBytes != 8192 || c.QueueDepth != 4 || c.Duration != 500*time.Millisecond {
				t.Errorf("%v: parsed %+v", tc.args, c)
			}
		case err == nil && tc.args[0] == "-c":
			if strings.Join(o.cfg.Bdevs, " ") != "Malloc0 Malloc1 Null0" {
				t.Errorf("-b/-T: %v", o.cfg.Bdevs)
			}
		case err == nil && tc.args[0] == "-z":
			if o.rpcSocket != "/var/tmp/spdk.sock" {
				t.Errorf("-z socket %q", o.rpcSocket)
			}
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int{"4096": 4096, "4k": 4096, "4K": 4096, "4KiB": 4096, "1m": 1 << 20, "2MB": 2 << 20, "128m": 128 << 20} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "k", "4q", "1g", "9999999999"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

// TestRunNull is the command of the documentation, shortened, with both
// output files.
func TestRunNull(t *testing.T) {
	dir := t.TempDir()
	hgrm, js := filepath.Join(dir, "lat.hgrm"), filepath.Join(dir, "res.json")
	var stdout, stderr bytes.Buffer
	code := run([]string{"--null", "64", "-b", "Null0", "-q", "16", "-o", "4096", "-w", "randread", "-t", "0.3",
		"-S", "0.1", "-H", "--hgrm", hgrm, "--json-output", js}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"Running randread", " s: ", "IOPS", "Latency(us)", "Job: Null0 (Core Mask 0x", "Total"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	h, err := os.ReadFile(hgrm)
	if err != nil || !strings.Contains(string(h), "Percentile") || !strings.Contains(string(h), "microseconds") {
		t.Errorf("hgrm file: %v\n%.300s", err, h)
	}
	var res struct {
		Results []struct {
			Job  string  `json:"job"`
			IOPS float64 `json:"iops"`
		} `json:"results"`
	}
	b, err := os.ReadFile(js)
	if err != nil || json.Unmarshal(b, &res) != nil || len(res.Results) != 1 || res.Results[0].Job != "Null0" || res.Results[0].IOPS <= 0 {
		t.Errorf("json output: %v\n%s", err, b)
	}
}

// jsonConfig is save_config's shape. (SPDK also accepts comments in
// startup configs; app/daemon does not yet.)
const jsonConfig = `{
  "subsystems": [
    {"subsystem": "bdev", "config": [
      {"method": "bdev_malloc_create", "params": {"name": "Malloc7", "num_blocks": 16384, "block_size": 512}},
      {"method": "bdev_null_create", "params": {"name": "Null7", "num_blocks": 16384, "block_size": 4096}},
      {"method": "bdev_wait_for_examine"}
    ]}
  ]
}`

const tomlConfig = `
[[bdev_malloc_create]]
name = "Malloc8"
num_blocks = 8192
block_size = 4096
`

func TestRunConfigs(t *testing.T) {
	dir := t.TempDir()
	jf, tf := filepath.Join(dir, "bdevs.json"), filepath.Join(dir, "bdevs.toml")
	if err := os.WriteFile(jf, []byte(jsonConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tf, []byte(tomlConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		jobs []string
	}{
		{[]string{"-c", jf, "-b", "Malloc7", "-w", "verify", "-q", "8", "-o", "4k"}, []string{"Job: Malloc7 "}},
		{[]string{"--json", jf, "-w", "randwrite", "-q", "8", "-o", "4096"}, []string{"Job: Malloc7 ", "Job: Null7 "}},
		{[]string{"-c", tf, "-w", "verify", "-q", "8", "-o", "8k"}, []string{"Job: Malloc8 "}},
	} {
		var stdout, stderr bytes.Buffer
		args := append(tc.args, "-t", "0.2", "-S", "0", "-H")
		code := run(args, &stdout, &stderr)
		if code != 0 {
			t.Errorf("%v: exit %d\n%s\n%s", args, code, stdout.String(), stderr.String())
			continue
		}
		for _, j := range tc.jobs {
			if !strings.Contains(stdout.String(), j) {
				t.Errorf("%v: no %q in\n%s", args, j, stdout.String())
			}
		}
	}
}

func TestRunErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--malloc", "1", "-w", "read", "-o", "1000", "-t", "0.1"}, 1, "not a multiple of bdev Malloc0's block size 512"},
		{[]string{"--malloc", "1", "-b", "Nope", "-w", "read", "-t", "0.1"}, 1, "Nope"},
		{[]string{"--null", "1", "-w", "read", "-t", "0.1", "-c", "/nonexistent.json"}, 1, "nonexistent"},
		{[]string{"--null", "1", "-w", "read", "-m", "0x80000000"}, 1, "core"},
		{[]string{"-w", "read"}, 2, "no bdevs"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, stderr.String(), tc.code, tc.msg)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "perform_tests") {
		t.Errorf("--help: exit %d, %q", code, stderr.String())
	}
}

// TestWaitForTests drives -z over the RPC socket: a test with params, a
// bad request, then spdk_kill_instance.
func TestWaitForTests(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "bdevperf.sock")
	// Read only after run returns (done), which orders the accesses.
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"-z", "-r", sock, "--null", "16", "-q", "4", "-o", "512", "-t", "1", "-S", "0", "-H"}, &stdout, &stderr)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var c *client.Client
	for {
		var err error
		if c, err = client.Dial(sock); err == nil {
			break
		}
		select {
		case code := <-done:
			t.Fatalf("bdevperf -z exited %d: %s", code, stderr.String())
		case <-ctx.Done():
			t.Fatal("no RPC socket")
		case <-time.After(20 * time.Millisecond):
		}
	}
	defer c.Close()
	// The method is registered just after the socket opens.
	var res struct {
		Results []struct {
			Job        string  `json:"job"`
			Workload   string  `json:"workload"`
			Percentage int     `json:"percentage"`
			QueueDepth int     `json:"queue_depth"`
			IOSize     int     `json:"io_size"`
			Runtime    float64 `json:"runtime"`
			IOPS       float64 `json:"iops"`
		} `json:"results"`
	}
	var err error
	for i := 0; i < 100; i++ {
		err = c.Call(ctx, "perform_tests", map[string]any{"workload_type": "randrw", "rw_percentage": 30,
			"queue_depth": 8, "io_size": "4k", "time_in_sec": 1}, &res)
		if err == nil || !strings.Contains(err.Error(), "Method not found") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("perform_tests: %v\n%s", err, stderr.String())
	}
	if len(res.Results) != 1 {
		t.Fatalf("results %+v", res)
	}
	r := res.Results[0]
	if r.Job != "Null0" || r.Workload != "randrw" || r.Percentage != 30 || r.QueueDepth != 8 || r.IOSize != 4096 || r.IOPS <= 0 || r.Runtime < 0.9 {
		t.Errorf("result %+v", r)
	}
	if err := c.Call(ctx, "perform_tests", map[string]any{"workload_type": "sideways"}, nil); err == nil ||
		!strings.Contains(err.Error(), "Invalid parameters") {
		t.Errorf("bad workload: %v", err)
	}
	if err := c.Call(ctx, "spdk_kill_instance", map[string]any{"sig_name": "SIGTERM"}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d: %s", code, stderr.String())
		}
	case <-ctx.Done():
		t.Fatal("bdevperf -z did not exit after spdk_kill_instance")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
}

// FuzzPerformTestsParams: any params either give options that pass the
// engine's validation or an RPC error; never a panic.
func FuzzPerformTestsParams(f *testing.F) {
	for _, s := range []string{
		`{"workload_type":"randrw","rw_percentage":30,"queue_depth":8,"io_size":"4k","time_in_sec":1}`,
		`{"workload_type":"verify"}`, `{}`, `{"io_size":"1m","unknown":[1,2]}`, `[]`, `null`,
	} {
		f.Add([]byte(s))
	}
	base, err := parseFlags([]string{"--null", "16", "-w", "randread"}, &bytes.Buffer{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		o, err := decodeParams(*base, raw)
		if err != nil {
			var rerr *rpc.Error
			if !errors.As(err, &rerr) || rerr.Code != rpc.CodeParseError {
				t.Fatalf("%q: error %v is not a -32700 RPC error", raw, err)
			}
			return
		}
		if err := o.cfg.Validate(); err != nil {
			t.Fatalf("%q: accepted options fail validation: %v", raw, err)
		}
	})
}
