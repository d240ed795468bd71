package errinject

import (
	"encoding/json"
	"strings"
	"testing"

	"hyperpath/bdev"
	"hyperpath/bdev/internal/bdevtest"
	"hyperpath/bdev/malloc"
	"hyperpath/rpc"
)

// rpcEnv is an env plus an RPC server in the Runtime state with the
// generic bdev, malloc and error RPCs.
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
	var ok bool
	if err := e.call("bdev_error_create", map[string]any{"base_name": "M0", "uuid": "6a4f5c1e-0000-4000-8000-000000000001"}, &ok); err != nil || !ok {
		t.Fatalf("create: %v %v", ok, err)
	}
	var bdevs []struct {
		Name           string          `json:"name"`
		ProductName    string          `json:"product_name"`
		UUID           string          `json:"uuid"`
		DriverSpecific json.RawMessage `json:"driver_specific"`
	}
	if err := e.call("bdev_get_bdevs", map[string]any{"name": "EE_M0"}, &bdevs); err != nil || len(bdevs) != 1 {
		t.Fatalf("get: %v", err)
	}
	if b := bdevs[0]; b.ProductName != "Error Injection Disk" || b.UUID != "6a4f5c1e-0000-4000-8000-000000000001" ||
		string(b.DriverSpecific) != `{"error_disk":{"base_bdev":"M0"}}` {
		t.Fatalf("bdev %+v %s", b, b.DriverSpecific)
	}
	bdevtest.WantErr(t, "duplicate", e.call("bdev_error_create", map[string]any{"base_name": "M0"}, nil), -17, "File exists")
	bdevtest.WantErr(t, "no base_name", e.call("bdev_error_create", map[string]any{}, nil), -32603, "spdk_json_decode_object failed")

	inject := func(p map[string]any) error { return e.call("bdev_error_inject_error", p, nil) }
	if err := inject(map[string]any{"name": "EE_M0", "io_type": "read", "error_type": "failure", "num": 3}); err != nil {
		t.Fatal(err)
	}
	d, _ := e.mod.Lookup("EE_M0")
	if d.Remaining(bdev.IORead) != 3 {
		t.Fatalf("remaining %d", d.Remaining(bdev.IORead))
	}
	if err := inject(map[string]any{"name": "EE_M0", "io_type": "write", "error_type": "corrupt_data",
		"corrupt_offset": 10, "corrupt_value": 7}); err != nil {
		t.Fatal(err)
	}
	if d.Remaining(bdev.IOWrite) != 1 {
		t.Fatal("num does not default to 1")
	}
	if err := inject(map[string]any{"name": "EE_M0", "io_type": "clear", "error_type": "failure"}); err != nil ||
		d.Remaining(bdev.IORead) != 0 || d.Remaining(bdev.IOWrite) != 0 {
		t.Fatalf("clear: %v", err)
	}
	for what, tc := range map[string]struct {
		p    map[string]any
		code int
		msg  string
	}{
		"unknown bdev":      {map[string]any{"name": "EE_X", "io_type": "read", "error_type": "failure"}, -19, "No such device"},
		"not an error bdev": {map[string]any{"name": "M0", "io_type": "read", "error_type": "failure"}, -19, "No such device"},
		"bad io_type":       {map[string]any{"name": "EE_M0", "io_type": "reset", "error_type": "failure"}, -32603, "spdk_json_decode_object failed"},
		"bad error_type":    {map[string]any{"name": "EE_M0", "io_type": "read", "error_type": "boom"}, -32603, "spdk_json_decode_object failed"},
		"corrupt value 0":   {map[string]any{"name": "EE_M0", "io_type": "read", "error_type": "corrupt_data"}, -22, "Invalid argument"},
		"corrupt value 256": {map[string]any{"name": "EE_M0", "io_type": "read", "error_type": "corrupt_data", "corrupt_value": 256}, -32603, "spdk_json_decode_object failed"},
		"nvme without sc":   {map[string]any{"name": "EE_M0", "io_type": "read", "error_type": "nvme_failure"}, -22, "nvme_sct or nvme_sc should be specified for NVMe error injection"},
		"sc without nvme":   {map[string]any{"name": "EE_M0", "io_type": "read", "error_type": "failure", "nvme_sc": 1}, -22, "nvme_sct or nvme_sc should be specified for NVMe error injection"},
	} {
		bdevtest.WantErr(t, what, inject(tc.p), tc.code, tc.msg)
	}
	if err := inject(map[string]any{"name": "EE_M0", "io_type": "all", "error_type": "nvme_failure", "nvme_sct": 1, "nvme_sc": 2, "num": 4}); err != nil {
		t.Fatal(err)
	}
	if d.Remaining(bdev.IOUnmap) != 4 {
		t.Fatal("all did not reach unmap")
	}

	if err := e.call("bdev_error_resume_pending", map[string]any{"name": "EE_M0"}, &ok); err != nil || !ok {
		t.Fatalf("resume: %v", err)
	}
	bdevtest.WantErr(t, "resume unknown", e.call("bdev_error_resume_pending", map[string]any{"name": "nope"}, nil), -19, "No such device")

	bdevtest.WantErr(t, "delete base", e.call("bdev_malloc_delete", map[string]any{"name": "M0"}, nil), -16, "Device or resource busy")
	bdevtest.WantErr(t, "delete non-error", e.call("bdev_error_delete", map[string]any{"name": "M0"}, nil), -19, "No such device")
	if err := e.call("bdev_error_delete", map[string]any{"name": "EE_M0"}, &ok); err != nil || !ok {
		t.Fatalf("delete: %v", err)
	}
	if err := e.call("bdev_malloc_delete", map[string]any{"name": "M0"}, &ok); err != nil {
		t.Fatalf("delete base after: %v", err)
	}

	// A missing base is accepted: the bdev comes with the base.
	if err := e.call("bdev_error_create", map[string]any{"base_name": "Malloc9"}, &ok); err != nil {
		t.Fatal(err)
	}
	if err := e.call("bdev_malloc_create", map[string]any{"name": "Malloc9", "num_blocks": 16, "block_size": 512}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Reg.Get("EE_Malloc9"); err != nil {
		t.Fatal("no EE_Malloc9 after its base appeared")
	}

	// save_config: the error bdev follows its base.
	var entries []string
	for _, b := range e.Reg.List() {
		if cw, ok := b.Device().(bdev.ConfigWriter); ok {
			m, p := cw.ConfigEntry()
			j, _ := json.Marshal(p)
			entries = append(entries, m+" "+string(j))
		}
	}
	if len(entries) != 2 || !strings.HasPrefix(entries[1], `bdev_error_create {"base_name":"Malloc9","uuid":"`) {
		t.Fatalf("config %v", entries)
	}
}

// SPDK's rpc.py, unmodified, against our server.
func TestSPDKRPCPy(t *testing.T) {
	py, rpcPy := bdevtest.SPDKRPCPy(t)
	e := newRPCEnv(t)
	sock := bdevtest.Listen(t, e.s)
	lines := []string{
		"bdev_error_create M0",
		"bdev_error_inject_error EE_M0 read corrupt_data -n 2 -o 5 -v 255",
		"bdev_error_inject_error EE_M0 write failure -q 4",
		"bdev_error_inject_error EE_M0 read nvme_failure",
		"bdev_get_bdevs -b EE_M0",
		"bdev_error_resume_pending EE_M0",
		"bdev_error_delete EE_M0",
		"bdev_error_delete EE_M0",
	}
	var res []string
	for _, r := range bdevtest.RPCPyServer(t, py, rpcPy, sock, lines...) {
		res = append(res, r.Status+" "+r.Out)
	}
	want := []string{"0 true", "0", "0", "1 ", "0 [", "0", "0", "1 "}
	for i, w := range want {
		if !strings.HasPrefix(res[i], w) {
			t.Errorf("%q: got %q, want prefix %q", lines[i], res[i], w)
		}
	}
	if !strings.Contains(res[3], "nvme_sct or nvme_sc should be specified") || !strings.Contains(res[4], `"base_bdev": "M0"`) ||
		!strings.Contains(res[7], "No such device") {
		t.Errorf("answers:\n%s", strings.Join(res, "\n"))
	}
}
