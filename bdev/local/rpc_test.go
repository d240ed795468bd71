package local

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
	"hyperpath/reactor"
	"hyperpath/rpc"
)

// rpcEnv is an RPC server in the Runtime state with the generic bdev RPCs
// and this module's.
type rpcEnv struct {
	s   *rpc.Server
	reg *bdev.Registry
}

func newRPCEnv(t *testing.T) *rpcEnv {
	r, err := reactor.New(0, reactor.Options{Core: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	reg := bdev.NewRegistry(bdev.Options{Reactors: []*reactor.Reactor{r}})
	reg.RegisterModule(Module{})
	s := rpc.NewServer(rpc.Options{})
	bdev.RegisterRPC(s, reg)
	RegisterRPC(s, reg)
	s.SetState(rpc.Runtime)
	t.Cleanup(func() {
		for _, b := range reg.List() {
			reg.Unregister(b.Name(), nil)
		}
	})
	return &rpcEnv{s: s, reg: reg}
}

func (e *rpcEnv) call(method string, params any, result any) error {
	return e.s.Call(context.Background(), method, params, result)
}

// wantErr checks that err is the JSON-RPC error code/message.
func wantErr(t *testing.T, what string, err error, code int, msg string) {
	t.Helper()
	var re *rpc.Error
	if !errors.As(err, &re) || re.Code != code || re.Message != msg {
		t.Errorf("%s: got %v, want %d %q", what, err, code, msg)
	}
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

	wantErr(t, "duplicate", e.call("bdev_aio_create", map[string]any{"name": "Aio0", "filename": path}, nil), -17, "File exists")
	wantErr(t, "missing file", e.call("bdev_aio_create", map[string]any{"name": "Aio1", "filename": path + ".nope"}, nil),
		-2, "No such file or directory")
	wantErr(t, "directory", e.call("bdev_aio_create", map[string]any{"name": "Aio1", "filename": filepath.Dir(path)}, nil),
		-21, "Is a directory")
	wantErr(t, "block size", e.call("bdev_aio_create", map[string]any{"name": "Aio1", "filename": path, "block_size": 1000}, nil),
		-22, "Invalid argument")
	wantErr(t, "nowait on a file", e.call("bdev_aio_create", map[string]any{"name": "Aio1", "filename": path, "nowait": true}, nil),
		-95, "Operation not supported")
	wantErr(t, "unknown param", e.call("bdev_aio_create", map[string]any{"name": "Aio1", "filename": path, "bogus": 1}, nil),
		-32603, "spdk_json_decode_object failed")
	wantErr(t, "no filename", e.call("bdev_aio_create", map[string]any{"name": "Aio1"}, nil),
		-32603, "spdk_json_decode_object failed")
	wantErr(t, "bad uuid", e.call("bdev_aio_create", map[string]any{"name": "Aio1", "filename": path, "uuid": "xyz"}, nil),
		-32603, "spdk_json_decode_object failed")

	// Deleting through the other flavor's method, or a claimed bdev, fails.
	wantErr(t, "uring delete of an aio bdev", e.call("bdev_uring_delete", map[string]any{"name": "Aio0"}, nil), -19, "No such device")
	desc, err := e.reg.Open("Aio0", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := desc.Claim("test"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "claimed", e.call("bdev_aio_delete", map[string]any{"name": "Aio0"}, nil), -16, "Device or resource busy")
	desc.Close()
	var ok bool
	if err := e.call("bdev_aio_delete", map[string]any{"name": "Aio0"}, &ok); err != nil || !ok {
		t.Fatalf("delete: %v %v", ok, err)
	}
	wantErr(t, "second delete", e.call("bdev_aio_delete", map[string]any{"name": "Aio0"}, nil), -19, "No such device")
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
		wantErr(t, what, e.call("bdev_uring_create", p, nil), -32603, "Unable to create URING bdev.")
	}
	wantErr(t, "aio delete of a uring bdev", e.call("bdev_aio_delete", map[string]any{"name": "Uring0"}, nil), -19, "No such device")
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
	py, rpcPy := spdkRPCPy(t)
	e := newRPCEnv(t)
	sock := listen(t, e.s)
	path := dataFile(t, "", 1<<20, 0)

	out, err := exec.Command(py, rpcPy, "-s", sock, "bdev_uring_create", path, "Uring0").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "Uring0" {
		t.Fatalf("rpc.py bdev_uring_create: %v: %s", err, out)
	}
	res := rpcPyServer(t, py, rpcPy, sock,
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
		if res[i].ok != w.ok || !strings.Contains(res[i].out, w.sub) {
			t.Errorf("line %d: ok=%v output %q; want ok=%v containing %q", i, res[i].ok, res[i].out, w.ok, w.sub)
		}
	}
	var bdevs []map[string]any
	if err := json.Unmarshal([]byte(res[1].out), &bdevs); err != nil || len(bdevs) != 1 || bdevs[0]["block_size"] != 4096.0 {
		t.Errorf("bdev_get_bdevs output %s (%v)", res[1].out, err)
	}
	if !strings.Contains(res[2].out, `"code": -2`) {
		t.Errorf("missing file: %s", res[2].out)
	}
	if names := e.reg.Names(); len(names) != 0 {
		t.Fatalf("left behind: %v", names)
	}
}

// spdkRPCPy finds python3 and $SPDK_DIR/scripts/rpc.py or skips.
func spdkRPCPy(t *testing.T) (string, string) {
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
	return py, rpcPy
}

type pyResult struct {
	ok  bool
	out string
}

// rpcPyServer runs each command line through one `rpc.py --server`
// process and returns every command's output and status.
func rpcPyServer(t *testing.T, py, rpcPy, sock string, lines ...string) []pyResult {
	t.Helper()
	var in strings.Builder
	for _, l := range lines {
		in.WriteString("-s " + sock + " -t 10 " + l + "\n")
	}
	cmd := exec.Command(py, rpcPy, "--server")
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("rpc.py --server: %v: %s", err, out)
	}
	var res []pyResult
	var cur strings.Builder
	for _, l := range strings.SplitAfter(string(out), "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(l), "**STATUS="); ok {
			res = append(res, pyResult{ok: s == "0", out: strings.TrimSpace(cur.String())})
			cur.Reset()
			continue
		}
		cur.WriteString(l)
	}
	if len(res) != len(lines) {
		t.Fatalf("rpc.py --server answered %d of %d commands:\n%s", len(res), len(lines), out)
	}
	return res
}

// listen serves s on a fresh Unix socket until the test ends.
func listen(t *testing.T, s *rpc.Server) string {
	dir, err := os.MkdirTemp("", "hplocal")
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
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return sock
}
