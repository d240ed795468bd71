package remote

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"hyperpath/bdev"
	"hyperpath/nvmf/initiator/testtarget"
	"hyperpath/rpc"
	"hyperpath/rpc/rpctest"
)

type rpcEnv struct {
	*env
	s      *rpc.Server
	config func() []rpc.ConfigEntry
}

func newRPCEnv(t *testing.T) *rpcEnv {
	rs := startReactors(t, 1, 0)
	reg := bdev.NewRegistry(bdev.Options{Reactors: rs})
	s := rpc.NewServer(rpc.Options{})
	config := bdev.RegisterRPC(s, reg)
	m := RegisterRPC(s, reg, rs)
	m.SetLogger(quietLog)
	t.Cleanup(m.Close)
	s.SetState(rpc.Runtime)
	return &rpcEnv{env: &env{t: t, rs: rs, reg: reg, mod: m}, s: s, config: config}
}

func (e *rpcEnv) call(method string, params, result any) error {
	return e.s.Call(context.Background(), method, params, result)
}

func wantErr(t *testing.T, what string, err error, code int, msg string) {
	t.Helper()
	var re *rpc.Error
	if !errors.As(err, &re) || re.Code != code || (msg != "" && !strings.Contains(re.Message, msg)) {
		t.Errorf("%s: got %v, want %d %q", what, err, code, msg)
	}
}

func TestRPC(t *testing.T) {
	e := newRPCEnv(t)
	tg := startTarget(t, testtarget.Options{Namespaces: []testtarget.NS{{ID: 1, BlockSize: 512, NumBlocks: 2048}, {ID: 2, BlockSize: 4096, NumBlocks: 64}}})
	h, p := tg.Addr()
	// What rpc.py sends for bdev_nvme_attach_controller -b Nvme0 -t tcp -a
	// ... -s ... -f ipv4 -n ...: store_true flags as false.
	params := map[string]any{"name": "Nvme0", "trtype": "tcp", "traddr": h, "adrfam": "ipv4", "trsvcid": p,
		"subnqn": tg.SubNQN(), "prchk_reftag": false, "prchk_guard": false, "hdgst": false, "ddgst": true,
		"allow_unrecognized_csi": false, "disable_sq_flow_control": false,
		"ctrlr_loss_timeout_sec": -1, "reconnect_delay_sec": 2, "fast_io_fail_timeout_sec": 4}
	var names []string
	if err := e.call("bdev_nvme_attach_controller", params, &names); err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, " ") != "Nvme0n1 Nvme0n2" {
		t.Fatalf("names %v", names)
	}

	var ctrlrs []map[string]any
	if err := e.call("bdev_nvme_get_controllers", nil, &ctrlrs); err != nil || len(ctrlrs) != 1 {
		t.Fatalf("get_controllers: %v %v", err, ctrlrs)
	}
	raw, _ := json.Marshal(ctrlrs[0])
	for _, want := range []string{`"name":"Nvme0"`, `"state":"enabled"`, `"trtype":"TCP"`, `"adrfam":"IPv4"`,
		`"traddr":"` + h + `"`, `"trsvcid":"` + p + `"`, `"subnqn":"` + tg.SubNQN() + `"`, `"cntlid":1`, `"host":{"addr":""`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("get_controllers lacks %s: %s", want, raw)
		}
	}
	var got json.RawMessage
	if err := e.s.Call(context.Background(), "bdev_nvme_get_controllers", map[string]any{"name": "Nvme0"}, &got); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(got), `[{"name":"Nvme0","ctrlrs":[{"state":"enabled","trid":{"trtype":"TCP","adrfam":"IPv4",`) {
		t.Errorf("key order: %s", got)
	}
	wantErr(t, "get unknown", e.call("bdev_nvme_get_controllers", map[string]any{"name": "Nvme9"}, nil), -22, "Controller Nvme9 does not exist")

	var bdevs []struct {
		Name           string          `json:"name"`
		ProductName    string          `json:"product_name"`
		DriverSpecific json.RawMessage `json:"driver_specific"`
	}
	if err := e.call("bdev_get_bdevs", map[string]any{"name": "Nvme0n2"}, &bdevs); err != nil || len(bdevs) != 1 {
		t.Fatalf("bdev_get_bdevs: %v", err)
	}
	if bdevs[0].ProductName != "NVMe disk" || !strings.Contains(string(bdevs[0].DriverSpecific), `"ns_data":{"id":2`) {
		t.Errorf("bdev %s %s", bdevs[0].ProductName, bdevs[0].DriverSpecific)
	}

	// save_config: one attach per controller, loadable as is.
	cfg := e.config()
	var attaches []rpc.ConfigEntry
	for _, c := range cfg {
		if c.Method == "bdev_nvme_attach_controller" {
			attaches = append(attaches, c)
		}
	}
	if len(attaches) != 1 {
		t.Fatalf("save_config has %d attaches", len(attaches))
	}
	saved, _ := json.Marshal(attaches[0].Params)
	for _, want := range []string{`"name":"Nvme0"`, `"trtype":"TCP"`, `"ddgst":true`, `"hdgst":false`, `"ctrlr_loss_timeout_sec":-1`,
		`"reconnect_delay_sec":2`, `"fast_io_fail_timeout_sec":4`, `"hostnqn":"nqn.2014-08.org.nvmexpress:uuid:`} {
		if !strings.Contains(string(saved), want) {
			t.Errorf("saved params lack %s: %s", want, saved)
		}
	}

	wantErr(t, "duplicate", e.call("bdev_nvme_attach_controller", params, nil), -114, "already exists")
	wantErr(t, "reset unknown", e.call("bdev_nvme_reset_controller", map[string]any{"name": "x"}, nil), -19, "No such device")
	var ok bool
	if err := e.call("bdev_nvme_reset_controller", map[string]any{"name": "Nvme0"}, &ok); err != nil || !ok {
		t.Errorf("reset: %v %v", ok, err)
	}
	wantErr(t, "set_options with controllers", e.call("bdev_nvme_set_options", map[string]any{"keep_alive_timeout_ms": 5000}, nil), -1, "not permitted")
	wantErr(t, "detach wrong path", e.call("bdev_nvme_detach_controller", map[string]any{"name": "Nvme0", "traddr": "127.0.0.2"}, nil), -19, "No such device")
	if err := e.call("bdev_nvme_detach_controller", map[string]any{"name": "Nvme0", "trtype": "tcp", "traddr": h, "trsvcid": p}, &ok); err != nil || !ok {
		t.Fatalf("detach: %v", err)
	}
	wantErr(t, "detach again", e.call("bdev_nvme_detach_controller", map[string]any{"name": "Nvme0"}, nil), -19, "No such device")

	// Load the saved attach back.
	if err := e.call("bdev_nvme_attach_controller", attaches[0].Params, &names); err != nil || len(names) != 2 {
		t.Fatalf("re-attach from save_config: %v %v", err, names)
	}
}

func TestRPCAttachErrors(t *testing.T) {
	e := newRPCEnv(t)
	tg := startTarget(t, testtarget.Options{})
	h, p := tg.Addr()
	base := func() map[string]any {
		return map[string]any{"name": "Nvme0", "trtype": "tcp", "traddr": h, "trsvcid": p, "subnqn": tg.SubNQN()}
	}
	with := func(k string, v any) map[string]any {
		m := base()
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	for _, c := range []struct {
		name   string
		params map[string]any
		code   int
		msg    string
	}{
		{"rdma", with("trtype", "rdma"), -95, "not supported yet"},
		{"pcie", with("trtype", "PCIe"), -22, "not supported"},
		{"unknown key", with("bogus", 1), -32603, "spdk_json_decode_object failed"},
		{"missing traddr", with("traddr", nil), -32603, "spdk_json_decode_object failed"},
		{"wrong type", with("hdgst", "yes"), -32603, "spdk_json_decode_object failed"},
		{"bad adrfam", with("adrfam", "ib"), -22, "adrfam"},
		{"bad multipath", with("multipath", "sometimes"), -22, "multipath"},
		{"loss without delay", with("ctrlr_loss_timeout_sec", 5), -22, "Invalid argument"},
		{"num_io_queues 0", with("num_io_queues", 0), -22, "num_io_queues"},
		{"psk", with("psk", "key0"), -95, "PSK"},
		{"no subnqn", with("subnqn", nil), -22, "subnqn"},
		{"refused", with("trsvcid", "1"), -111, "connection refused"},
		{"unknown subsystem", with("subnqn", "nqn.2016-06.io.hyperpath:none"), -5, "Connect"},
	} {
		wantErr(t, c.name, e.call("bdev_nvme_attach_controller", c.params, nil), c.code, c.msg)
	}
	if len(e.mod.Controllers()) != 0 || len(e.reg.Names()) != 0 {
		t.Error("failed attaches left something behind")
	}
	// max_bdevs smaller than the namespace count: bdevs exist, -34.
	wantErr(t, "max_bdevs", e.call("bdev_nvme_attach_controller", with("max_bdevs", 0), nil), -34, "max_bdevs")
	if _, err := e.reg.Get("Nvme0n1"); err != nil {
		t.Error("bdev missing after the max_bdevs error")
	}
	var ok bool
	if err := e.call("bdev_nvme_detach_controller", map[string]any{"name": "Nvme0"}, &ok); err != nil {
		t.Fatal(err)
	}
	if err := e.call("bdev_nvme_set_options", map[string]any{"keep_alive_timeout_ms": 3000, "ctrlr_loss_timeout_sec": -1,
		"reconnect_delay_sec": 1, "action_on_timeout": "none", "bdev_retry_count": 3, "transport_ack_timeout": 0}, &ok); err != nil {
		t.Fatalf("set_options: %v", err)
	}
	if d := e.mod.Defaults(); d.KeepAliveTimeoutMs != 3000 || d.CtrlrLossTimeoutSec != -1 || d.ReconnectDelaySec != 1 {
		t.Errorf("defaults %+v", d)
	}
	wantErr(t, "bad set_options", e.call("bdev_nvme_set_options", map[string]any{"ctrlr_loss_timeout_sec": 3, "reconnect_delay_sec": 5}, nil), -22, "Invalid argument")
}

// TestRPCPy drives the module with SPDK's unmodified rpc.py.
func TestRPCPy(t *testing.T) {
	if os.Getenv("SPDK_DIR") == "" {
		if _, err := os.Stat("/opt/spdk/scripts/rpc.py"); err == nil {
			t.Setenv("SPDK_DIR", "/opt/spdk")
		}
	}
	e := newRPCEnv(t)
	sock := rpctest.Serve(t, e.s)
	tg := startTarget(t, testtarget.Options{})
	h, p := tg.Addr()
	out, code := rpctest.RPCPy(t, sock, "", "bdev_nvme_attach_controller", "-b", "Nvme0", "-t", "tcp", "-a", h, "-s", p,
		"-f", "ipv4", "-n", tg.SubNQN(), "-l", "-1", "-o", "1", "--ddgst")
	if code != 0 || strings.TrimSpace(out) != "Nvme0n1" {
		t.Fatalf("attach: %d %s", code, out)
	}
	out, code = rpctest.RPCPy(t, sock, "", "bdev_nvme_get_controllers", "-n", "Nvme0")
	if code != 0 || !strings.Contains(out, `"state": "enabled"`) || !strings.Contains(out, `"trtype": "TCP"`) {
		t.Fatalf("get_controllers: %d %s", code, out)
	}
	out, code = rpctest.RPCPy(t, sock, "", "bdev_nvme_attach_controller", "-b", "Nvme1", "-t", "rdma", "-a", h, "-s", p, "-n", tg.SubNQN())
	if code == 0 || !strings.Contains(out, "not supported yet") {
		t.Fatalf("rdma attach: %d %s", code, out)
	}
	out, code = rpctest.RPCPy(t, sock, "", "bdev_nvme_reset_controller", "Nvme0")
	if code != 0 {
		t.Fatalf("reset: %d %s", code, out)
	}
	out, code = rpctest.RPCPy(t, sock, "", "bdev_nvme_detach_controller", "Nvme0")
	if code != 0 {
		t.Fatalf("detach: %d %s", code, out)
	}
	if len(e.reg.Names()) != 0 {
		t.Errorf("bdevs left: %v", e.reg.Names())
	}
}
