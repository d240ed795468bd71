package vhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"hyperpath/rpc"
	"hyperpath/rpc/rpctest"
	"hyperpath/vhost/blk"
)

func rpcServer(t *testing.T, e *tenv) (*rpc.Server, func() []rpc.ConfigEntry) {
	s := rpc.NewServer(rpc.Options{})
	w := e.tgt.RegisterRPC(s)
	s.SetState(rpc.Runtime)
	return s, w
}

// call runs method and returns its JSON result, or the *rpc.Error.
func call(t *testing.T, s *rpc.Server, method string, params any) (string, *rpc.Error) {
	t.Helper()
	var raw json.RawMessage
	err := s.Call(context.Background(), method, params, &raw)
	if err != nil {
		var re *rpc.Error
		if !errors.As(err, &re) {
			t.Fatalf("%s: %v is not an *rpc.Error", method, err)
		}
		return "", re
	}
	return string(raw), nil
}

func wantErr(t *testing.T, s *rpc.Server, method string, params any, code int, msg string) {
	t.Helper()
	_, re := call(t, s, method, params)
	if re == nil || re.Code != code || re.Message != msg {
		t.Fatalf("%s %v: got %v, want %d %q", method, params, re, code, msg)
	}
}

func TestRPC(t *testing.T) {
	e := newTEnv(t, tenvOpts{reactors: 2})
	e.malloc("Malloc0", 512, 2048)
	e.malloc("Malloc1", 4096, 256)
	s, writer := rpcServer(t, e)

	// rpc.py's shape, plus a key SPDK's relaxed decoder ignores.
	if res, re := call(t, s, "vhost_create_blk_controller", map[string]any{
		"ctrlr": "vhost.0", "dev_name": "Malloc0", "readonly": false, "packed_ring": false, "future": 1,
	}); re != nil || res != "true" {
		t.Fatalf("create: %s %v", res, re)
	}
	if res, re := call(t, s, "vhost_create_blk_controller", map[string]any{
		"ctrlr": "vhost.1", "dev_name": "Malloc1", "readonly": true, "cpumask": "0x2", "transport": "vhost_user_blk",
	}); re != nil || res != "true" {
		t.Fatalf("create: %s %v", res, re)
	}
	const inval = rpc.CodeInvalidParams
	wantErr(t, s, "vhost_create_blk_controller", map[string]any{"ctrlr": "vhost.0", "dev_name": "Malloc1"}, inval, "File exists")
	wantErr(t, s, "vhost_create_blk_controller", map[string]any{"ctrlr": "vhost.2", "dev_name": "Nope"}, inval, "No such device")
	wantErr(t, s, "vhost_create_blk_controller", map[string]any{"ctrlr": "vhost.2", "dev_name": "Malloc0", "cpumask": "0x10"}, inval, "Invalid argument")
	wantErr(t, s, "vhost_create_blk_controller", map[string]any{"ctrlr": "vhost.2", "dev_name": "Malloc0", "packed_ring": true}, inval, "packed ring not supported yet")
	wantErr(t, s, "vhost_create_blk_controller", map[string]any{"dev_name": "Malloc0"}, inval, "Invalid argument")
	wantErr(t, s, "vhost_create_blk_controller", map[string]any{"ctrlr": 5, "dev_name": "Malloc0"}, inval, "Invalid argument")

	// Coalescing.
	if res, re := call(t, s, "vhost_controller_set_coalescing", map[string]any{"ctrlr": "vhost.0", "delay_base_us": 20, "iops_threshold": 40000}); re != nil || res != "true" {
		t.Fatalf("set_coalescing: %s %v", res, re)
	}
	wantErr(t, s, "vhost_controller_set_coalescing", map[string]any{"ctrlr": "nope", "delay_base_us": 20, "iops_threshold": 40000}, inval, "No such device")
	wantErr(t, s, "vhost_controller_set_coalescing", map[string]any{"ctrlr": "vhost.0", "delay_base_us": 20, "iops_threshold": 50}, inval, "Invalid argument")
	wantErr(t, s, "vhost_controller_set_coalescing", map[string]any{"ctrlr": "vhost.0", "delay_base_us": 20}, inval, "Invalid argument")

	// A connected front-end shows up as a session.
	f := dialFrontend(t, e.tgt.Controllers()[0].Socket(), feOpts{})
	f.startAll()
	f.queues[0].do(blk.Header{Type: blk.TypeIn}, nil, 512)

	res, re := call(t, s, "vhost_get_controllers", nil)
	if re != nil {
		t.Fatal(re)
	}
	want := fmt.Sprintf(`[{"ctrlr":"vhost.0","cpumask":"0x3","delay_base_us":20,"iops_threshold":40000,"socket":%q,`+
		`"sessions":[{"vid":0,"id":0,"name":"vhost.0s0","started":true,"max_queues":1,"inflight_task_cnt":0}],`+
		`"backend_specific":{"block":{"readonly":false,"bdev":"Malloc0","transport":"vhost_user_blk"}}},`+
		`{"ctrlr":"vhost.1","cpumask":"0x2","delay_base_us":0,"iops_threshold":60000,"socket":%q,"sessions":[],`+
		`"backend_specific":{"block":{"readonly":true,"bdev":"Malloc1","transport":"vhost_user_blk"}}}]`,
		e.dir+"/vhost.0", e.dir+"/vhost.1")
	if res != want {
		t.Fatalf("vhost_get_controllers:\n got %s\nwant %s", res, want)
	}
	if res, re := call(t, s, "vhost_get_controllers", map[string]any{"name": "vhost.1"}); re != nil || !strings.HasPrefix(res, `[{"ctrlr":"vhost.1"`) {
		t.Fatalf("by name: %s %v", res, re)
	}
	wantErr(t, s, "vhost_get_controllers", map[string]any{"name": "nope"}, rpc.CodeInternalError, "No such device")

	// save_config section.
	b, err := json.Marshal(writer())
	if err != nil {
		t.Fatal(err)
	}
	wantCfg := `[{"Method":"vhost_create_blk_controller","Params":{"ctrlr":"vhost.0","dev_name":"Malloc0","cpumask":"3","readonly":false,"transport":"vhost_user_blk"},"Batch":null},` +
		`{"Method":"vhost_controller_set_coalescing","Params":{"ctrlr":"vhost.0","delay_base_us":20,"iops_threshold":40000},"Batch":null},` +
		`{"Method":"vhost_create_blk_controller","Params":{"ctrlr":"vhost.1","dev_name":"Malloc1","cpumask":"2","readonly":true,"transport":"vhost_user_blk"},"Batch":null}]`
	if string(b) != wantCfg {
		t.Fatalf("config:\n got %s\nwant %s", b, wantCfg)
	}

	// Delete: busy while connected, then fine.
	wantErr(t, s, "vhost_delete_controller", map[string]any{"ctrlr": "vhost.0"}, inval, "Device or resource busy")
	wantErr(t, s, "vhost_delete_controller", map[string]any{"ctrlr": "nope"}, inval, "No such device")
	wantErr(t, s, "vhost_delete_controller", map[string]any{"ctrlr": "vhost.1", "x": 1}, inval, "Invalid argument")
	if res, re := call(t, s, "vhost_delete_controller", map[string]any{"ctrlr": "vhost.1"}); re != nil || res != "true" {
		t.Fatalf("delete: %s %v", res, re)
	}
	if _, err := os.Stat(e.dir + "/vhost.1"); !os.IsNotExist(err) {
		t.Fatal("socket of a deleted controller still there")
	}
}

// TestRPCPy drives the RPCs with SPDK's own rpc.py (SPDK_DIR).
func TestRPCPy(t *testing.T) {
	rpctest.RPCPyPath(t)
	e := newTEnv(t, tenvOpts{reactors: 1})
	e.malloc("Malloc0", 512, 2048)
	s, writer := rpcServer(t, e)
	s.RegisterSubsystem(Subsystem, nil, writer)
	sock := rpctest.Serve(t, s)
	if out, rc := rpctest.RPCPy(t, sock, "", "vhost_create_blk_controller", "--cpumask", "0x1", "vhost.0", "Malloc0"); rc != 0 {
		t.Fatalf("create: rc %d: %s", rc, out)
	}
	if out, rc := rpctest.RPCPy(t, sock, "", "vhost_create_blk_controller", "-p", "vhost.1", "Malloc0"); rc == 0 || !strings.Contains(out, "packed ring not supported yet") {
		t.Fatalf("packed ring: rc %d: %s", rc, out)
	}
	if out, rc := rpctest.RPCPy(t, sock, "", "vhost_controller_set_coalescing", "vhost.0", "10", "50000"); rc != 0 {
		t.Fatalf("coalescing: rc %d: %s", rc, out)
	}
	out, rc := rpctest.RPCPy(t, sock, "", "vhost_get_controllers", "-n", "vhost.0")
	if rc != 0 || !strings.Contains(out, `"ctrlr": "vhost.0"`) || !strings.Contains(out, `"delay_base_us": 10`) || !strings.Contains(out, `"bdev": "Malloc0"`) {
		t.Fatalf("get: rc %d: %s", rc, out)
	}
	out, rc = rpctest.RPCPy(t, sock, "", "save_config", "-s", Subsystem)
	if rc != 0 || !strings.Contains(out, `"method": "vhost_create_blk_controller"`) || !strings.Contains(out, `"cpumask": "1"`) {
		t.Fatalf("save_config: rc %d: %s", rc, out)
	}
	if out, rc := rpctest.RPCPy(t, sock, "", "vhost_delete_controller", "vhost.0"); rc != 0 {
		t.Fatalf("delete: rc %d: %s", rc, out)
	}
	if out, rc := rpctest.RPCPy(t, sock, "", "vhost_delete_controller", "vhost.0"); rc == 0 || !strings.Contains(out, "No such device") {
		t.Fatalf("delete again: rc %d: %s", rc, out)
	}
}
