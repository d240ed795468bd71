package passthru_test

import (
	"encoding/json"
	"strings"
	"testing"

	"hyperpath/bdev"
	"hyperpath/bdev/internal/bdevtest"
	"hyperpath/bdev/malloc"
	"hyperpath/bdev/passthru"
	"hyperpath/rpc"
)

// rpcEnv is an env plus a server with the generic bdev, malloc and
// passthru methods.
type rpcEnv struct {
	*env
	s *rpc.Server
}

func newRPCEnv(t testing.TB) *rpcEnv {
	e := &env{Env: bdevtest.New(t)}
	e.Malloc("M0", 512, 256)
	s := bdevtest.NewRPC(e.Reg, malloc.RegisterRPC, passthru.RegisterRPC)
	for _, m := range e.Reg.Modules() {
		if pm, ok := m.(*passthru.Module); ok {
			e.mod = pm
		}
	}
	if e.mod == nil {
		t.Fatal("RegisterRPC registered no passthru module")
	}
	return &rpcEnv{env: e, s: s}
}

func (e *rpcEnv) call(method string, params, result any) error {
	return bdevtest.Call(e.s, method, params, result)
}

func TestRPC(t *testing.T) {
	e := newRPCEnv(t)
	params := map[string]any{"base_bdev_name": "M0", "name": "P0", "uuid": "7a55c0de-0000-4000-8000-000000000007"}
	var name string
	if err := e.call("bdev_passthru_create", params, &name); err != nil || name != "P0" {
		t.Fatalf("create: %q %v", name, err)
	}
	var bdevs []struct {
		ProductName    string          `json:"product_name"`
		UUID           string          `json:"uuid"`
		Claimed        bool            `json:"claimed"`
		DriverSpecific json.RawMessage `json:"driver_specific"`
	}
	if err := e.call("bdev_get_bdevs", map[string]any{"name": "P0"}, &bdevs); err != nil || len(bdevs) != 1 {
		t.Fatalf("get: %v", err)
	}
	want := `{"passthru":{"name":"P0","base_bdev_name":"M0"}}`
	if bdevs[0].ProductName != "passthru" || bdevs[0].UUID != "7a55c0de-0000-4000-8000-000000000007" ||
		string(bdevs[0].DriverSpecific) != want {
		t.Fatalf("bdev %+v\n%s\nwant %s", bdevs[0], bdevs[0].DriverSpecific, want)
	}
	if err := e.call("bdev_get_bdevs", map[string]any{"name": "M0"}, &bdevs); err != nil || !bdevs[0].Claimed {
		t.Fatalf("base not claimed: %v", err)
	}

	bdevtest.WantErr(t, "duplicate", e.call("bdev_passthru_create", params, nil), -17, "File exists")
	bdevtest.WantErr(t, "claimed base", e.call("bdev_passthru_create", map[string]any{"base_bdev_name": "M0", "name": "P1"}, nil),
		-16, "Device or resource busy")
	bdevtest.WantErr(t, "no name", e.call("bdev_passthru_create", map[string]any{"base_bdev_name": "M0"}, nil),
		-32603, "spdk_json_decode_object failed")
	bdevtest.WantErr(t, "empty name", e.call("bdev_passthru_create", map[string]any{"base_bdev_name": "M0", "name": ""}, nil),
		-22, "Invalid argument")
	bdevtest.WantErr(t, "bad uuid", e.call("bdev_passthru_create", map[string]any{"base_bdev_name": "M9", "name": "P9", "uuid": "x"}, nil),
		-32603, "spdk_json_decode_object failed")

	// save_config: the entry recreates the bdev with its UUID.
	d, err := e.mod.Lookup("P0")
	if err != nil {
		t.Fatal(err)
	}
	m, p := d.ConfigEntry()
	j, _ := json.Marshal(p)
	if m != "bdev_passthru_create" ||
		string(j) != `{"base_bdev_name":"M0","name":"P0","uuid":"7a55c0de-0000-4000-8000-000000000007"}` {
		t.Fatalf("config %s %s", m, j)
	}

	bdevtest.WantErr(t, "delete base", e.call("bdev_malloc_delete", map[string]any{"name": "M0"}, nil), -16, "Device or resource busy")
	bdevtest.WantErr(t, "delete non-passthru", e.call("bdev_passthru_delete", map[string]any{"name": "M0"}, nil), -19, "No such device")
	var ok bool
	if err := e.call("bdev_passthru_delete", map[string]any{"name": "P0"}, &ok); err != nil || !ok {
		t.Fatalf("delete: %v", err)
	}
	bdevtest.WantErr(t, "second delete", e.call("bdev_passthru_delete", map[string]any{"name": "P0"}, nil), -19, "No such device")
	if err := e.call("bdev_passthru_create", json.RawMessage(j), &name); err != nil || name != "P0" {
		t.Fatalf("replay config: %v", err)
	}
	if err := e.call("bdev_get_bdevs", map[string]any{"name": "P0"}, &bdevs); err != nil || bdevs[0].UUID != "7a55c0de-0000-4000-8000-000000000007" {
		t.Fatalf("replayed bdev: %v %+v", err, bdevs)
	}

	// A base that does not exist yet: created when it appears.
	if err := e.call("bdev_passthru_create", map[string]any{"base_bdev_name": "M1", "name": "P1"}, &name); err != nil {
		t.Fatalf("deferred create: %v", err)
	}
	if err := e.call("bdev_malloc_create", map[string]any{"name": "M1", "num_blocks": 16, "block_size": 512}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.mod.Lookup("P1"); err != nil {
		t.Fatalf("not created on examine: %v", err)
	}
}

// save_config lists the passthru bdev after its base, so that loading it
// recreates both.
func TestSaveConfig(t *testing.T) {
	e := newRPCEnv(t)
	if err := e.call("bdev_passthru_create", map[string]any{"base_bdev_name": "M0", "name": "P0"}, nil); err != nil {
		t.Fatal(err)
	}
	var cfg []struct {
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	}
	s := rpc.NewServer(rpc.Options{})
	s.RegisterSubsystem("bdev", nil, bdev.RegisterRPC(s, e.Reg))
	malloc.RegisterRPC(s, e.Reg)
	passthru.RegisterRPC(s, e.Reg)
	s.SetState(rpc.Runtime)
	if err := bdevtest.Call(s, "framework_get_config", map[string]any{"name": "bdev"}, &cfg); err != nil {
		t.Fatal(err)
	}
	var methods []string
	for _, c := range cfg {
		methods = append(methods, c.Method)
		if c.Method == "bdev_passthru_create" && !strings.Contains(string(c.Params), `"base_bdev_name":"M0","name":"P0"`) {
			t.Errorf("params %s", c.Params)
		}
	}
	got := strings.Join(methods, " ")
	if !strings.Contains(got, "bdev_malloc_create bdev_passthru_create") {
		t.Fatalf("save_config methods: %s", got)
	}
}

// SPDK's rpc.py, unmodified, against our server (--server mode).
func TestSPDKRPCPy(t *testing.T) {
	py, rpcPy := bdevtest.SPDKRPCPy(t)
	e := newRPCEnv(t)
	sock := bdevtest.Listen(t, e.s)
	res := bdevtest.RPCPyServer(t, py, rpcPy, sock,
		"bdev_passthru_create -b M0 -p P0 -u 7a55c0de-0000-4000-8000-000000000007",
		"bdev_passthru_create -b M0 -p P0",
		"bdev_get_bdevs -b P0",
		"bdev_passthru_delete P0",
		"bdev_passthru_delete P0",
	)
	want := []struct {
		ok  bool
		sub string
	}{
		{true, "P0"},
		{false, "File exists"},
		{true, `"base_bdev_name": "M0"`},
		{true, ""},
		{false, "No such device"},
	}
	for i, w := range want {
		if res[i].OK != w.ok || !strings.Contains(res[i].Out, w.sub) {
			t.Errorf("line %d: ok=%v output %q; want ok=%v containing %q", i, res[i].OK, res[i].Out, w.ok, w.sub)
		}
	}
}
