//go:build linux

package target

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"hyperpath/bdev"
	"hyperpath/bdev/malloc"
	"hyperpath/nvmf/proto"
	"hyperpath/nvmf/tcp/tcptest"
	"hyperpath/rpc"
	"hyperpath/rpc/rpctest"
)

// rpcServer registers the bdev, malloc and nvmf RPCs and the save_config
// subsystems of e on a server in the Runtime state.
func (e *env) rpcServer() *rpc.Server {
	e.t.Helper()
	s := rpc.NewServer(rpc.Options{Logger: testLogger()})
	bdevConfig := bdev.RegisterRPC(s, e.reg)
	malloc.RegisterRPC(s, e.reg)
	s.RegisterSubsystem("bdev", nil, bdevConfig)
	s.RegisterSubsystem("nvmf", []string{"bdev"}, e.tgt.RegisterRPC(s))
	if err := s.StartInit(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	return s
}

func rpcCode(err error) (int, string) {
	var re *rpc.Error
	if errors.As(err, &re) {
		return re.Code, re.Message
	}
	return 0, ""
}

func TestRPCErrors(t *testing.T) {
	e := newEnv(t, envOpts{noSubsys: true, noTransport: true})
	s := e.rpcServer()
	ctx := context.Background()
	call := func(method string, params any) (json.RawMessage, error) {
		var out json.RawMessage
		err := s.Call(ctx, method, params, &out)
		return out, err
	}
	for _, tc := range []struct {
		method string
		params any
		code   int
		msg    string
	}{
		{"nvmf_create_transport", map[string]any{"trtype": "foo"}, -32602, "Invalid transport type 'foo'"},
		{"nvmf_create_transport", map[string]any{"trtype": "rdma"}, -32603, "Transport type 'RDMA' is not supported yet"},
		{"nvmf_create_transport", map[string]any{}, -32602, "Invalid parameters"},
		{"nvmf_get_transports", map[string]any{"trtype": "tcp"}, -19, "No such device"},
		{"nvmf_create_subsystem", map[string]any{"nqn": "nqn.bad"}, -32603, "Unable to create subsystem nqn.bad"},
		{"nvmf_create_subsystem", map[string]any{"nqn": testNQN, "bogus": 1}, -32602, "Invalid parameters"},
		{"nvmf_create_subsystem", map[string]any{"nqn": testNQN, "serial_number": strings.Repeat("x", 21)}, -32602, "Invalid SN " + strings.Repeat("x", 21)},
		{"nvmf_create_subsystem", map[string]any{"nqn": testNQN, "min_cntlid": 10, "max_cntlid": 5}, -32602, "Invalid cntlid range [10-5]"},
		{"nvmf_delete_subsystem", map[string]any{"nqn": testNQN}, -32602, "Subsystem with NQN '" + testNQN + "' not found"},
		{"nvmf_subsystem_add_ns", map[string]any{"nqn": testNQN, "namespace": map[string]any{"bdev_name": "Malloc0"}}, -32602, "Subsystem with NQN '" + testNQN + "' not found"},
		{"nvmf_get_subsystems", map[string]any{"nqn": testNQN}, -32602, "No such device"},
		{"nvmf_subsystem_get_controllers", map[string]any{"nqn": testNQN}, -32602, "Invalid parameters"},
	} {
		_, err := call(tc.method, tc.params)
		code, msg := rpcCode(err)
		if code != tc.code || msg != tc.msg {
			t.Errorf("%s %v: got %d %q, want %d %q", tc.method, tc.params, code, msg, tc.code, tc.msg)
		}
	}
	if _, err := call("nvmf_create_transport", map[string]any{"trtype": "TCP", "c2h_success": true, "no_srq": false}); err != nil {
		t.Fatal(err)
	}
	_, err := call("nvmf_create_transport", map[string]any{"trtype": "tcp"})
	if code, msg := rpcCode(err); code != -32603 || msg != "Transport type 'tcp' already exists" {
		t.Errorf("duplicate transport: %d %q", code, msg)
	}
	if _, err := call("nvmf_create_subsystem", map[string]any{"nqn": testNQN}); err != nil {
		t.Fatal(err)
	}
	_, err = call("nvmf_create_subsystem", map[string]any{"nqn": testNQN})
	if code, _ := rpcCode(err); code != -32603 {
		t.Errorf("duplicate subsystem: %v", err)
	}
	for _, tc := range []struct {
		method string
		params any
		code   int
	}{
		{"nvmf_subsystem_add_ns", map[string]any{"nqn": testNQN, "namespace": map[string]any{"bdev_name": "NoSuch"}}, -32602},
		{"nvmf_subsystem_add_ns", map[string]any{"nqn": testNQN, "namespace": map[string]any{"bdev_name": "Malloc0", "nsid": 33}}, -32602},
		{"nvmf_subsystem_add_ns", map[string]any{"nqn": testNQN, "namespace": map[string]any{"bdev_name": "Malloc0", "nguid": "xyz"}}, -32602},
		{"nvmf_subsystem_add_listener", map[string]any{"nqn": testNQN, "listen_address": map[string]any{"trtype": "tcp", "traddr": "localhost", "trsvcid": "4420"}}, -32602},
		{"nvmf_subsystem_add_listener", map[string]any{"nqn": testNQN, "listen_address": map[string]any{"trtype": "rdma", "traddr": "127.0.0.1", "trsvcid": "4420"}}, -32602},
		{"nvmf_subsystem_remove_listener", map[string]any{"nqn": testNQN, "listen_address": map[string]any{"trtype": "tcp", "traddr": "127.0.0.1", "trsvcid": "4420"}}, -32602},
		{"nvmf_subsystem_remove_ns", map[string]any{"nqn": testNQN, "nsid": 9}, -32602},
		{"nvmf_subsystem_add_host", map[string]any{"nqn": testNQN, "host": "not-an-nqn"}, -32602},
		{"nvmf_subsystem_allow_any_host", map[string]any{"nqn": testNQN}, -32602},
	} {
		_, err := call(tc.method, tc.params)
		if code, _ := rpcCode(err); code != tc.code {
			t.Errorf("%s %v: %v, want code %d", tc.method, tc.params, err, tc.code)
		}
	}
	out, err := call("nvmf_subsystem_add_ns", map[string]any{"nqn": testNQN, "namespace": map[string]any{"bdev_name": "Malloc0", "nsid": 7}})
	if err != nil || string(out) != "7" {
		t.Fatalf("add_ns: %s %v", out, err)
	}
	if _, err := call("nvmf_subsystem_add_host", map[string]any{"nqn": testNQN, "host": hostNQN}); err != nil {
		t.Fatal(err)
	}
	_, err = call("nvmf_subsystem_add_host", map[string]any{"nqn": testNQN, "host": hostNQN})
	if code, msg := rpcCode(err); code != -32603 || msg != "Internal error" {
		t.Errorf("duplicate host: %d %q", code, msg)
	}
}

// TestRPCPy drives the target with SPDK's unmodified rpc.py: transport,
// subsystem, namespace, listener, host, listings, a host connecting, and a
// save_config/load_config round trip.
func TestRPCPy(t *testing.T) {
	rpctest.RPCPyPath(t) // skips when SPDK_DIR is unset
	e := newEnv(t, envOpts{noSubsys: true, noTransport: true})
	sock := rpctest.Serve(t, e.rpcServer())
	run := func(args ...string) string {
		t.Helper()
		out, code := rpctest.RPCPy(t, sock, "", args...)
		if code != 0 {
			t.Fatalf("rpc.py %v: exit %d\n%s", args, code, out)
		}
		return out
	}
	fail := func(want string, args ...string) {
		t.Helper()
		out, code := rpctest.RPCPy(t, sock, "", args...)
		if code == 0 || !strings.Contains(out, want) {
			t.Fatalf("rpc.py %v: exit %d, want failure with %q\n%s", args, code, want, out)
		}
	}
	port := e.addr.TrSvcID
	fail("Invalid transport type 'foo'", "nvmf_create_transport", "-t", "foo")
	fail("not supported yet", "nvmf_create_transport", "-t", "rdma")
	run("nvmf_create_transport", "-t", "tcp", "-q", "256", "-c", "8192")
	var trs []map[string]any
	if err := json.Unmarshal([]byte(run("nvmf_get_transports")), &trs); err != nil || len(trs) != 1 {
		t.Fatalf("get_transports: %v %v", trs, err)
	}
	if trs[0]["trtype"] != "TCP" || trs[0]["max_queue_depth"].(float64) != 256 || trs[0]["in_capsule_data_size"].(float64) != 8192 || trs[0]["c2h_success"] != true {
		t.Errorf("transport %v", trs[0])
	}
	run("nvmf_create_subsystem", testNQN, "-s", "HP0001", "-d", "Hyperpath Controller", "-m", "8")
	run("nvmf_subsystem_add_ns", testNQN, "Malloc0", "-e", "0102030405060708") // rpc.py prints nothing
	run("nvmf_subsystem_add_listener", testNQN, "-t", "tcp", "-a", "127.0.0.1", "-s", port)
	run("nvmf_subsystem_add_listener", "discovery", "-t", "tcp", "-a", "127.0.0.1", "-s", port)
	run("nvmf_subsystem_add_host", testNQN, hostNQN)

	var subs []map[string]any
	if err := json.Unmarshal([]byte(run("nvmf_get_subsystems")), &subs); err != nil || len(subs) != 2 {
		t.Fatalf("get_subsystems: %v %v", subs, err)
	}
	if subs[0]["subtype"] != "Discovery" || subs[1]["nqn"] != testNQN || subs[1]["serial_number"] != "HP0001" ||
		subs[1]["model_number"] != "Hyperpath Controller" || subs[1]["allow_any_host"] != false {
		t.Errorf("subsystems %v", subs)
	}
	ns := subs[1]["namespaces"].([]any)[0].(map[string]any)
	if ns["nsid"].(float64) != 1 || ns["bdev_name"] != "Malloc0" || ns["eui64"] != "0102030405060708" || ns["uuid"] == nil {
		t.Errorf("namespace %v", ns)
	}
	la := subs[1]["listen_addresses"].([]any)[0].(map[string]any)
	if la["trtype"] != "TCP" || la["adrfam"] != "IPv4" || la["traddr"] != "127.0.0.1" || la["trsvcid"] != port {
		t.Errorf("listener %v", la)
	}

	var lis []map[string]any
	if err := json.Unmarshal([]byte(run("nvmf_subsystem_get_listeners", testNQN)), &lis); err != nil || len(lis) != 1 ||
		lis[0]["address"].(map[string]any)["trsvcid"] != port {
		t.Fatalf("get_listeners %v %v", lis, err)
	}

	// A host connects.
	h, cntlid := e.admin(tcptest.Options{})
	q := e.io(tcptest.Options{}, cntlid, 1)
	writeRead(t, q, 0, pattern(8192, 7))
	var ctrls []map[string]any
	if err := json.Unmarshal([]byte(run("nvmf_subsystem_get_controllers", testNQN)), &ctrls); err != nil || len(ctrls) != 1 {
		t.Fatalf("get_controllers %v %v", ctrls, err)
	}
	if ctrls[0]["hostnqn"] != hostNQN || ctrls[0]["num_io_qpairs"].(float64) != 1 || ctrls[0]["cntlid"].(float64) != float64(cntlid) {
		t.Errorf("controller %v", ctrls[0])
	}
	var qps []map[string]any
	if err := json.Unmarshal([]byte(run("nvmf_subsystem_get_qpairs", testNQN)), &qps); err != nil || len(qps) != 2 {
		t.Fatalf("get_qpairs %v %v", qps, err)
	}
	if qps[1]["qid"].(float64) != 1 || qps[1]["state"] != "enabled" || qps[1]["peer_address"].(map[string]any)["traddr"] != "127.0.0.1" {
		t.Errorf("qpair %v", qps[1])
	}

	// save_config, then load it into a fresh daemon-like stack.
	saved := run("save_config")
	var cfg struct {
		Subsystems []struct {
			Subsystem string          `json:"subsystem"`
			Config    json.RawMessage `json:"config"`
		} `json:"subsystems"`
	}
	if err := json.Unmarshal([]byte(saved), &cfg); err != nil {
		t.Fatal(err)
	}
	var nvmfCfg string
	for _, s := range cfg.Subsystems {
		if s.Subsystem == "nvmf" {
			nvmfCfg = string(s.Config)
		}
	}
	for _, m := range []string{"nvmf_create_transport", "nvmf_create_subsystem", "nvmf_subsystem_add_ns", "nvmf_subsystem_add_listener", "nvmf_subsystem_add_host"} {
		if !strings.Contains(nvmfCfg, m) {
			t.Errorf("save_config nvmf section lacks %s:\n%s", m, nvmfCfg)
		}
	}

	// Host management and teardown through rpc.py.
	run("nvmf_subsystem_allow_any_host", testNQN, "--allow-any-host")
	run("nvmf_subsystem_allow_any_host", testNQN, "--no-allow-any-host")
	run("nvmf_subsystem_remove_host", testNQN, hostNQN)
	if _, err := tcptest.ReadAll(h.Conn()); err != nil {
		t.Logf("admin after remove_host: %v", err)
	}
	run("nvmf_subsystem_remove_listener", "discovery", "-t", "tcp", "-a", "127.0.0.1", "-s", port)
	run("nvmf_subsystem_remove_ns", testNQN, "1")
	run("nvmf_delete_subsystem", testNQN)
	if err := json.Unmarshal([]byte(run("nvmf_get_subsystems")), &subs); err != nil || len(subs) != 1 {
		t.Fatalf("after delete: %v %v", subs, err)
	}

	// load_config into a second target.
	e2 := newEnv(t, envOpts{noSubsys: true, noTransport: true, noMalloc: true})
	sock2 := rpctest.Serve(t, e2.rpcServer())
	// The first target still listens on port... it does not: its only
	// listener went with the subsystem, so the port is free again.
	if out, code := rpctest.RPCPy(t, sock2, saved, "load_config"); code != 0 {
		t.Fatalf("load_config: %d\n%s", code, out)
	}
	out, code := rpctest.RPCPy(t, sock2, "", "nvmf_get_subsystems", testNQN)
	if code != 0 || !strings.Contains(out, "Malloc0") || !strings.Contains(out, hostNQN) {
		t.Fatalf("loaded subsystem: %d\n%s", code, out)
	}
	e2.hostport = e.hostport
	h2, cntlid2 := e2.admin(tcptest.Options{})
	_ = h2
	q2 := e2.io(tcptest.Options{}, cntlid2, 1)
	got := make([]byte, 8192)
	r := tcptest.RW(proto.IORead, 1, 0, 16)
	cqe, err := q2.Exec(&r, nil, got)
	mustStatus(t, "read after load_config", cqe, err, proto.StatusSuccess)
}
