package delay

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"hyperpath/bdev"
	"hyperpath/bdev/malloc"
	"hyperpath/rpc"
)

type rpcEnv struct {
	*env
	s *rpc.Server
}

func newRPCEnv(t *testing.T) *rpcEnv {
	e := newEnv(t)
	s := rpc.NewServer(rpc.Options{})
	bdev.RegisterRPC(s, e.reg)
	malloc.RegisterRPC(s, e.reg)
	RegisterRPC(s, e.reg)
	s.SetState(rpc.Runtime)
	return &rpcEnv{env: e, s: s}
}

func (e *rpcEnv) call(method string, params, result any) error {
	return e.s.Call(context.Background(), method, params, result)
}

func wantErr(t *testing.T, what string, err error, code int, msg string) {
	t.Helper()
	var re *rpc.Error
	if !errors.As(err, &re) || re.Code != code || re.Message != msg {
		t.Errorf("%s: got %v, want %d %q", what, err, code, msg)
	}
}

func TestRPC(t *testing.T) {
	e := newRPCEnv(t)
	if moduleFor(e.reg) != e.mod {
		t.Fatal("RegisterRPC registered a second module")
	}
	params := map[string]any{"name": "Delay0", "base_bdev_name": "M0", "avg_read_latency": 10,
		"p99_read_latency": 100, "avg_write_latency": 20, "p99_write_latency": 200,
		"uuid": "0b0e5c1e-0000-4000-8000-0000000000aa"}
	var name string
	if err := e.call("bdev_delay_create", params, &name); err != nil || name != "Delay0" {
		t.Fatalf("create: %q %v", name, err)
	}
	var bdevs []struct {
		ProductName    string          `json:"product_name"`
		Claimed        bool            `json:"claimed"`
		DriverSpecific json.RawMessage `json:"driver_specific"`
	}
	if err := e.call("bdev_get_bdevs", map[string]any{"name": "Delay0"}, &bdevs); err != nil || len(bdevs) != 1 {
		t.Fatalf("get: %v", err)
	}
	want := `{"delay":{"name":"Delay0","base_bdev_name":"M0","uuid":"0b0e5c1e-0000-4000-8000-0000000000aa",` +
		`"avg_read_latency":10,"p99_read_latency":100,"avg_write_latency":20,"p99_write_latency":200}}`
	if bdevs[0].ProductName != "delay" || string(bdevs[0].DriverSpecific) != want {
		t.Fatalf("bdev %+v\n%s\nwant %s", bdevs[0], bdevs[0].DriverSpecific, want)
	}
	if err := e.call("bdev_get_bdevs", map[string]any{"name": "M0"}, &bdevs); err != nil || !bdevs[0].Claimed {
		t.Fatalf("base not claimed: %v", err)
	}

	wantErr(t, "duplicate", e.call("bdev_delay_create", params, nil), -17, "File exists")
	bad := map[string]any{"name": "Delay1", "base_bdev_name": "M1", "avg_read_latency": 10,
		"p99_read_latency": 1, "avg_write_latency": 20, "p99_write_latency": 200}
	wantErr(t, "p99 < avg", e.call("bdev_delay_create", bad, nil), -22, "Invalid argument")
	delete(bad, "p99_write_latency")
	wantErr(t, "missing latency", e.call("bdev_delay_create", bad, nil), -32603, "spdk_json_decode_object failed")

	var ok bool
	if err := e.call("bdev_delay_update_latency", map[string]any{"delay_bdev_name": "Delay0",
		"latency_type": "p99_write", "latency_us": 5000}, &ok); err != nil || !ok {
		t.Fatalf("update: %v", err)
	}
	d, _ := e.mod.Lookup("Delay0")
	if d.LatencyUs(P99Write) != 5000 {
		t.Fatal("update not applied")
	}
	wantErr(t, "update unknown bdev", e.call("bdev_delay_update_latency", map[string]any{"delay_bdev_name": "nope",
		"latency_type": "avg_read", "latency_us": 1}, nil), -32602, "The requested bdev does not exist.")
	wantErr(t, "update a non-delay bdev", e.call("bdev_delay_update_latency", map[string]any{"delay_bdev_name": "M0",
		"latency_type": "avg_read", "latency_us": 1}, nil), -32602, "The requested bdev does not exist.")
	wantErr(t, "bad latency type", e.call("bdev_delay_update_latency", map[string]any{"delay_bdev_name": "Delay0",
		"latency_type": "max_read", "latency_us": 1}, nil), -32603, "spdk_json_decode_object failed")

	// save_config replays with the updated latency.
	m, p := d.ConfigEntry()
	j, _ := json.Marshal(p)
	if m != "bdev_delay_create" || !strings.Contains(string(j), `"p99_write_latency":5000`) {
		t.Fatalf("config %s %s", m, j)
	}

	wantErr(t, "delete base", e.call("bdev_malloc_delete", map[string]any{"name": "M0"}, nil), -16, "Device or resource busy")
	wantErr(t, "delete non-delay", e.call("bdev_delay_delete", map[string]any{"name": "M0"}, nil), -19, "No such device")
	if err := e.call("bdev_delay_delete", map[string]any{"name": "Delay0"}, &ok); err != nil || !ok {
		t.Fatalf("delete: %v", err)
	}
	// Replaying the saved entry recreates it.
	if err := e.call("bdev_delay_create", p, &name); err != nil {
		t.Fatalf("replay config: %v", err)
	}
}

// SPDK's rpc.py, unmodified, against our server (--server mode: one
// interpreter for all commands).
func TestSPDKRPCPy(t *testing.T) {
	spdk := os.Getenv("SPDK_DIR")
	if spdk == "" {
		t.Skip("SPDK_DIR not set (point it at an SPDK tree with scripts/rpc.py, e.g. /opt/spdk)")
	}
	rpcPy := filepath.Join(spdk, "scripts", "rpc.py")
	if _, err := os.Stat(rpcPy); err != nil {
		t.Skipf("no %s: %v", rpcPy, err)
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	e := newRPCEnv(t)
	sock := listen(t, e.s)
	lines := []string{
		"bdev_delay_create -b M0 -d Delay0 -r 10 -t 100 -w 20 -n 200",
		"bdev_delay_update_latency Delay0 avg_read 50",
		"bdev_delay_update_latency Nope avg_read 50",
		"bdev_get_bdevs -b Delay0",
		"bdev_delay_delete Delay0",
		"bdev_delay_delete Delay0",
	}
	var in strings.Builder
	for _, l := range lines {
		in.WriteString("-s " + sock + " -t 10 " + l + "\n")
	}
	cmd := exec.Command(py, rpcPy, "--server")
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("rpc.py: %v: %s", err, out)
	}
	var res []string
	var cur strings.Builder
	for _, l := range strings.SplitAfter(string(out), "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(l), "**STATUS="); ok {
			res = append(res, s+" "+strings.TrimSpace(cur.String()))
			cur.Reset()
			continue
		}
		cur.WriteString(l)
	}
	want := []string{"0 Delay0", "0 true", "1 ", "0 [", "0", "1 "}
	if len(res) != len(want) {
		t.Fatalf("%d answers to %d commands:\n%s", len(res), len(want), out)
	}
	for i, w := range want {
		if !strings.HasPrefix(res[i], w) {
			t.Errorf("%q: got %q, want prefix %q", lines[i], res[i], w)
		}
	}
	if !strings.Contains(res[2], "The requested bdev does not exist.") || !strings.Contains(res[3], `"avg_read_latency": 50`) ||
		!strings.Contains(res[5], "No such device") {
		t.Errorf("answers:\n%s", strings.Join(res, "\n"))
	}
}

func listen(t *testing.T, s *rpc.Server) string {
	dir, err := os.MkdirTemp("", "hpdelay")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "spdk.sock")
	if err := s.Listen(sock); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() { s.Close(); <-done })
	return sock
}
