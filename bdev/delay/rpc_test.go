package delay

import (
	"encoding/json"
	"strings"
	"testing"

	"hyperpath/bdev/internal/bdevtest"
	"hyperpath/bdev/malloc"
	"hyperpath/rpc"
)

// rpcEnv is an env plus an RPC server in the Runtime state with the
// generic bdev, malloc and delay RPCs.
type rpcEnv struct {
	*env
	s *rpc.Server
}

func newRPCEnv(t *testing.T) *rpcEnv {
	e := newEnv(t)
	return &rpcEnv{env: e, s: bdevtest.NewRPC(e.Reg, malloc.RegisterRPC, RegisterRPC)}
}

func (e *rpcEnv) call(method string, params, result any) error {
	return bdevtest.Call(e.s, method, params, result)
}

func TestRPC(t *testing.T) {
	e := newRPCEnv(t)
	if moduleFor(e.Reg) != e.mod {
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

	bdevtest.WantErr(t, "duplicate", e.call("bdev_delay_create", params, nil), -17, "File exists")
	bad := map[string]any{"name": "Delay1", "base_bdev_name": "M1", "avg_read_latency": 10,
		"p99_read_latency": 1, "avg_write_latency": 20, "p99_write_latency": 200}
	bdevtest.WantErr(t, "p99 < avg", e.call("bdev_delay_create", bad, nil), -22, "Invalid argument")
	delete(bad, "p99_write_latency")
	bdevtest.WantErr(t, "missing latency", e.call("bdev_delay_create", bad, nil), -32603, "spdk_json_decode_object failed")

	var ok bool
	if err := e.call("bdev_delay_update_latency", map[string]any{"delay_bdev_name": "Delay0",
		"latency_type": "p99_write", "latency_us": 5000}, &ok); err != nil || !ok {
		t.Fatalf("update: %v", err)
	}
	d, _ := e.mod.Lookup("Delay0")
	if d.LatencyUs(P99Write) != 5000 {
		t.Fatal("update not applied")
	}
	bdevtest.WantErr(t, "update unknown bdev", e.call("bdev_delay_update_latency", map[string]any{"delay_bdev_name": "nope",
		"latency_type": "avg_read", "latency_us": 1}, nil), -32602, "The requested bdev does not exist.")
	bdevtest.WantErr(t, "update a non-delay bdev", e.call("bdev_delay_update_latency", map[string]any{"delay_bdev_name": "M0",
		"latency_type": "avg_read", "latency_us": 1}, nil), -32602, "The requested bdev does not exist.")
	bdevtest.WantErr(t, "bad latency type", e.call("bdev_delay_update_latency", map[string]any{"delay_bdev_name": "Delay0",
		"latency_type": "max_read", "latency_us": 1}, nil), -32603, "spdk_json_decode_object failed")

	// save_config replays with the updated latency.
	m, p := d.ConfigEntry()
	j, _ := json.Marshal(p)
	if m != "bdev_delay_create" || !strings.Contains(string(j), `"p99_write_latency":5000`) {
		t.Fatalf("config %s %s", m, j)
	}

	bdevtest.WantErr(t, "delete base", e.call("bdev_malloc_delete", map[string]any{"name": "M0"}, nil), -16, "Device or resource busy")
	bdevtest.WantErr(t, "delete non-delay", e.call("bdev_delay_delete", map[string]any{"name": "M0"}, nil), -19, "No such device")
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
	py, rpcPy := bdevtest.SPDKRPCPy(t)
	e := newRPCEnv(t)
	sock := bdevtest.Listen(t, e.s)
	lines := []string{
		"bdev_delay_create -b M0 -d Delay0 -r 10 -t 100 -w 20 -n 200",
		"bdev_delay_update_latency Delay0 avg_read 50",
		"bdev_delay_update_latency Nope avg_read 50",
		"bdev_get_bdevs -b Delay0",
		"bdev_delay_delete Delay0",
		"bdev_delay_delete Delay0",
	}
	var res []string
	for _, r := range bdevtest.RPCPyServer(t, py, rpcPy, sock, lines...) {
		res = append(res, r.Status+" "+r.Out)
	}
	want := []string{"0 Delay0", "0 true", "1 ", "0 [", "0", "1 "}
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
