package local

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"hyperpath/bdev"
	"hyperpath/bdev/internal/bdevtest"
	"hyperpath/rpc"
)

// rpcEnv is an RPC server in the Runtime state with the generic bdev RPCs
// and this module's.
type rpcEnv struct {
	s   *rpc.Server
	reg *bdev.Registry
}

func newRPCEnv(t *testing.T) *rpcEnv {
	e := bdevtest.New(t) // unregisters what the test left at its end
	e.Reg.RegisterModule(Module{})
	return &rpcEnv{s: bdevtest.NewRPC(e.Reg, RegisterRPC), reg: e.Reg}
}

func (e *rpcEnv) call(method string, params any, result any) error {
	return bdevtest.Call(e.s, method, params, result)
}

func TestRPCAioCreateDelete(t *testing.T) {
	e := newRPCEnv(t)
	path := dataFile(t, "", 1<<20, 0)
	var name string
	if err := e.call("bdev_aio_create", map[string]any{"name": "Aio0", "filename": path, "block_size": 4096,
		"readonly": false, "fallocate": true, "nowait": false}, &name); err != nil || name != "Aio0" {
		t.Fatalf("create: %q %v", name, err)
	}
	var bdevs []struct {
		Name           string          `json:"name"`
		ProductName    string          `json:"product_name"`
		BlockSize      uint32          `json:"block_size"`
		NumBlocks      uint64          `json:"num_blocks"`
		SupportedTypes map[string]bool `json:"supported_io_types"`
		DriverSpecific json.RawMessage `json:"driver_specific"`
	}
	if err := e.call("bdev_get_bdevs", map[string]any{"name": "Aio0"}, &bdevs); err != nil || len(bdevs) != 1 {
		t.Fatalf("get_bdevs: %v", err)
	}
	b := bdevs[0]
	if b.ProductName != "AIO disk" || b.BlockSize != 4096 || b.NumBlocks != 256 || !b.SupportedTypes["unmap"] ||
		!strings.HasPrefix(string(b.DriverSpecific), `{"aio":{"filename":"`+path+`","block_size_override":true,"readonly":false,"fallocate":true,"nowait":false,"o_direct":`) {
		t.Fatalf("bdev %+v %s", b, b.DriverSpecific)
	}

	bdevtest.WantErr(t, "duplicate", e.call("bdev_aio_create", map[string]any{"name": "Aio0", "filename": path}, nil), -17, "File exists")
	bdevtest.WantErr(t, "missing file", e.call("bdev_aio_create", map[string]any{"name": "Aio1", "filename": path + ".nope"}, nil),
		-2, "No such file or directory")
	bdevtest.WantErr(t, "directory", e.call("bdev_aio_create", map[string]any{"name": "Aio1", "filename": filepath.Dir(path)}, nil),
		-21, "Is a directory")
	bdevtest.WantErr(t, "block size", e.call("bdev_aio_create", map[string]any{"name": "Aio1", "filename": path, "block_size": 1000}, nil),
		-22, "Invalid argument")
	bdevtest.WantErr(t, "nowait on a file", e.call("bdev_aio_create", map[string]any{"name": "Aio1", "filename": path, "nowait": true}, nil),
		-95, "Operation not supported")
	bdevtest.WantErr(t, "unknown param", e.call("bdev_aio_create", map[string]any{"name": "Aio1", "filename": path, "bogus": 1}, nil),
		-32603, "spdk_json_decode_object failed")
	bdevtest.WantErr(t, "no filename", e.call("bdev_aio_create", map[string]any{"name": "Aio1"}, nil),
		-32603, "spdk_json_decode_object failed")
	bdevtest.WantErr(t, "bad uuid", e.call("bdev_aio_create", map[string]any{"name": "Aio1", "filename": path, "uuid": "xyz"}, nil),
		-32603, "spdk_json_decode_object failed")

	// Deleting through the other flavor's method, or a claimed bdev, fails.
	bdevtest.WantErr(t, "uring delete of an aio bdev", e.call("bdev_uring_delete", map[string]any{"name": "Aio0"}, nil), -19, "No such device")
	desc, err := e.reg.Open("Aio0", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := desc.Claim("test"); err != nil {
		t.Fatal(err)
	}
	bdevtest.WantErr(t, "claimed", e.call("bdev_aio_delete", map[string]any{"name": "Aio0"}, nil), -16, "Device or resource busy")
	desc.Close()
	var ok bool
	if err := e.call("bdev_aio_delete", map[string]any{"name": "Aio0"}, &ok); err != nil || !ok {
		t.Fatalf("delete: %v %v", ok, err)
	}
	bdevtest.WantErr(t, "second delete", e.call("bdev_aio_delete", map[string]any{"name": "Aio0"}, nil), -19, "No such device")
}

func TestRPCUringCreateDelete(t *testing.T) {
	e := newRPCEnv(t)
	path := dataFile(t, "", 1<<20, 0)
	var name string
	if err := e.call("bdev_uring_create", map[string]any{"filename": path, "name": "Uring0",
		"uuid": "0d4b3b8a-5c65-4a5e-9b3c-2c8c8c7a1b20"}, &name); err != nil || name != "Uring0" {
		t.Fatalf("create: %q %v", name, err)
	}
	var bdevs []struct {
		ProductName    string          `json:"product_name"`
		UUID           string          `json:"uuid"`
		DriverSpecific json.RawMessage `json:"driver_specific"`
	}
	if err := e.call("bdev_get_bdevs", map[string]any{"name": "Uring0"}, &bdevs); err != nil || len(bdevs) != 1 {
		t.Fatalf("get_bdevs: %v", err)
	}
	if bdevs[0].ProductName != "URING bdev" || bdevs[0].UUID != "0d4b3b8a-5c65-4a5e-9b3c-2c8c8c7a1b20" ||
		!strings.HasPrefix(string(bdevs[0].DriverSpecific), `{"uring":{"filename":"`+path+`"`) {
		t.Fatalf("bdev %+v %s", bdevs[0], bdevs[0].DriverSpecific)
	}
	for what, p := range map[string]map[string]any{
		"duplicate":    {"filename": path, "name": "Uring0"},
		"missing file": {"filename": path + ".nope", "name": "Uring1"},
		"block size":   {"filename": path, "name": "Uring1", "block_size": 100},
	} {
		bdevtest.WantErr(t, what, e.call("bdev_uring_create", p, nil), -32603, "Unable to create URING bdev.")
	}
	bdevtest.WantErr(t, "aio delete of a uring bdev", e.call("bdev_aio_delete", map[string]any{"name": "Uring0"}, nil), -19, "No such device")
	if err := e.call("bdev_uring_delete", map[string]any{"name": "Uring0"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Get("Uring0"); err == nil {
		t.Fatal("still registered after delete")
	}
}

// SPDK's own rpc.py, unmodified, against our server on a Unix socket:
// once as a plain command line and then in its --server mode (one command
// per line, "**STATUS=n" after each), which saves the interpreter start-up
// per command on a small machine.
func TestSPDKRPCPy(t *testing.T) {
	py, rpcPy := bdevtest.SPDKRPCPy(t)
	e := newRPCEnv(t)
	sock := bdevtest.Listen(t, e.s)
	path := dataFile(t, "", 1<<20, 0)

	out, err := exec.Command(py, rpcPy, "-s", sock, "bdev_uring_create", path, "Uring0").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "Uring0" {
		t.Fatalf("rpc.py bdev_uring_create: %v: %s", err, out)
	}
	res := bdevtest.RPCPyServer(t, py, rpcPy, sock,
		"bdev_aio_create "+path+" Aio0 4096 --fallocate",
		"bdev_get_bdevs -b Aio0",
		"bdev_aio_create "+path+".nope Aio1",
		"bdev_uring_create "+path+".nope Uring1",
		"bdev_aio_delete Aio0",
		"bdev_uring_delete Uring0",
		"bdev_uring_delete Uring0",
	)
	want := []struct {
		ok  bool
		sub string
	}{
		{true, "Aio0"},
		{true, `"product_name": "AIO disk"`},
		{false, "No such file or directory"},
		{false, "Unable to create URING bdev."},
		{true, ""},
		{true, ""},
		{false, "No such device"},
	}
	for i, w := range want {
		if res[i].OK != w.ok || !strings.Contains(res[i].Out, w.sub) {
			t.Errorf("line %d: ok=%v output %q; want ok=%v containing %q", i, res[i].OK, res[i].Out, w.ok, w.sub)
		}
	}
	var bdevs []map[string]any
	if err := json.Unmarshal([]byte(res[1].Out), &bdevs); err != nil || len(bdevs) != 1 || bdevs[0]["block_size"] != 4096.0 {
		t.Errorf("bdev_get_bdevs output %s (%v)", res[1].Out, err)
	}
	if !strings.Contains(res[2].Out, `"code": -2`) {
		t.Errorf("missing file: %s", res[2].Out)
	}
	if names := e.reg.Names(); len(names) != 0 {
		t.Fatalf("left behind: %v", names)
	}
}
