package virtio

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"hyperpath/bdev"
	"hyperpath/reactor"
	"hyperpath/rpc"
	"hyperpath/rpc/rpctest"
)

type rpcEnv struct {
	s      *rpc.Server
	reg    *bdev.Registry
	config func() []rpc.ConfigEntry
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
	cfg := bdev.RegisterRPC(s, reg)
	RegisterRPC(s, reg)
	s.SetState(rpc.Runtime)
	t.Cleanup(func() {
		for _, b := range reg.List() {
			done := make(chan struct{})
			reg.Unregister(b.Name(), func(error) { close(done) })
			<-done
		}
	})
	return &rpcEnv{s: s, reg: reg, config: cfg}
}

func (e *rpcEnv) call(method string, params any, result any) error {
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
	qsd := startQSD(t, qsdConfig{NullBytes: 1 << 30, Queues: 2})
	e := newRPCEnv(t)
	var names []string
	if err := e.call("bdev_virtio_attach_controller", map[string]any{"name": "VirtioUser0", "trtype": "user",
		"traddr": qsd.sock, "dev_type": "blk", "vq_count": 2, "vq_size": 128}, &names); err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "VirtioUser0" {
		t.Fatalf("attach returned %v", names)
	}
	var bdevs []struct {
		Name           string          `json:"name"`
		ProductName    string          `json:"product_name"`
		BlockSize      uint32          `json:"block_size"`
		NumBlocks      uint64          `json:"num_blocks"`
		SupportedTypes map[string]bool `json:"supported_io_types"`
		DriverSpecific json.RawMessage `json:"driver_specific"`
	}
	if err := e.call("bdev_get_bdevs", map[string]any{"name": "VirtioUser0"}, &bdevs); err != nil || len(bdevs) != 1 {
		t.Fatalf("get_bdevs: %v", err)
	}
	b := bdevs[0]
	if b.ProductName != "VirtioBlk Disk" || b.BlockSize != 512 || b.NumBlocks != 1<<21 ||
		!b.SupportedTypes["unmap"] || !b.SupportedTypes["write_zeroes"] || !b.SupportedTypes["flush"] ||
		string(b.DriverSpecific) != `{"virtio":{"vq_count":2,"vq_size":128,"type":"user","socket":"`+qsd.sock+`"}}` {
		t.Fatalf("bdev %+v %s", b, b.DriverSpecific)
	}

	var ctrls []map[string]any
	if err := e.call("bdev_virtio_get_controllers", nil, &ctrls); err != nil || len(ctrls) != 1 {
		t.Fatalf("get_controllers: %v %v", ctrls, err)
	}
	c := ctrls[0]
	if c["name"] != "VirtioUser0" || c["state"] != "connected" || c["traddr"] != qsd.sock || c["vq_count"] != 2.0 || c["seg_max"] != 126.0 {
		t.Fatalf("controller %v", c)
	}
	if err := e.call("bdev_virtio_get_controllers", map[string]any{"name": "nope"}, &ctrls); err == nil {
		t.Fatal("get_controllers of an unknown name succeeded")
	} else {
		wantErr(t, "get_controllers unknown", err, -19, "No such device")
	}

	// save_config writes SPDK's attach call.
	found := false
	for _, ce := range e.config() {
		if ce.Method == "bdev_virtio_attach_controller" {
			j, _ := json.Marshal(ce.Params)
			want := `{"name":"VirtioUser0","dev_type":"blk","trtype":"user","traddr":"` + qsd.sock + `","vq_count":2,"vq_size":128}`
			if string(j) != want {
				t.Fatalf("config entry %s\nwant %s", j, want)
			}
			found = true
		}
	}
	if !found {
		t.Fatal("save_config has no bdev_virtio_attach_controller")
	}

	// Errors, with SPDK's codes.
	err := e.call("bdev_virtio_attach_controller", map[string]any{"name": "X", "trtype": "tcp", "traddr": "a", "dev_type": "blk"}, nil)
	wantErr(t, "bad trtype", err, -22, "Invalid trtype 'tcp'")
	err = e.call("bdev_virtio_attach_controller", map[string]any{"name": "X", "trtype": "user", "traddr": "a", "dev_type": "nvme"}, nil)
	wantErr(t, "bad dev_type", err, -22, "Invalid dev_type 'nvme'")
	err = e.call("bdev_virtio_attach_controller", map[string]any{"name": "X", "trtype": "pci", "traddr": "0000:00:04.0", "dev_type": "blk"}, nil)
	if re := (*rpc.Error)(nil); !errors.As(err, &re) || re.Code != -95 {
		t.Errorf("pci: %v", err)
	}
	err = e.call("bdev_virtio_attach_controller", map[string]any{"name": "X", "trtype": "user", "traddr": "/nonexistent.sock", "dev_type": "blk"}, nil)
	wantErr(t, "no socket", err, -22, "Invalid argument")
	err = e.call("bdev_virtio_attach_controller", map[string]any{"name": "VirtioUser0", "trtype": "user", "traddr": qsd.sock, "dev_type": "blk"}, nil)
	wantErr(t, "duplicate name", err, -22, "Invalid argument")
	err = e.call("bdev_virtio_attach_controller", map[string]any{"name": "X", "trtype": "user", "traddr": qsd.sock}, nil)
	wantErr(t, "missing dev_type", err, -32603, "spdk_json_decode_object failed")
	err = e.call("bdev_virtio_attach_controller", map[string]any{"name": "X", "trtype": "user", "traddr": qsd.sock, "dev_type": "blk", "vq_size": 100}, nil)
	wantErr(t, "vq_size not a power of two", err, -22, "Invalid argument")
	err = e.call("bdev_virtio_detach_controller", map[string]any{"name": "nope"}, nil)
	wantErr(t, "detach unknown", err, -19, "No such device")

	bd, _ := e.reg.Get("VirtioUser0")
	d := bd.Device().(*Disk)
	kept := d.AllocBuffer(4096)
	var ok bool
	if err := e.call("bdev_virtio_detach_controller", map[string]any{"name": "VirtioUser0"}, &ok); err != nil || !ok {
		t.Fatalf("detach: %v %v", ok, err)
	}
	if d.State() != StateClosed || d.AllocBuffer(4096) != nil {
		t.Fatalf("after detach: state %v, AllocBuffer still hands out memory", d.State())
	}
	d.FreeBuffer(kept) // a no-op once the region is gone
	if _, err := e.reg.Get("VirtioUser0"); err == nil {
		t.Fatal("bdev still registered after detach")
	}
	// QSD takes the next front end once the first one closed.
	if err := e.call("bdev_virtio_attach_controller", map[string]any{"name": "VirtioUser1", "trtype": "user",
		"traddr": qsd.sock, "dev_type": "blk"}, &names); err != nil {
		t.Fatalf("attach after detach: %v", err)
	}
}

// TestRPCPy drives the module with SPDK's unmodified rpc.py (skipped
// unless SPDK_DIR points at an SPDK tree).
func TestRPCPy(t *testing.T) {
	rpctest.RPCPyPath(t)
	qsd := startQSD(t, qsdConfig{NullBytes: 64 << 20})
	e := newRPCEnv(t)
	sock := rpctest.Serve(t, e.s)
	out, code := rpctest.RPCPy(t, sock, "", "bdev_virtio_attach_controller", "-t", "user", "-a", qsd.sock, "-d", "blk", "--vq-count", "1", "--vq-size", "64", "Virtio7")
	if code != 0 || strings.TrimSpace(out) != "Virtio7" {
		t.Fatalf("attach: exit %d: %s", code, out)
	}
	out, code = rpctest.RPCPy(t, sock, "", "bdev_get_bdevs", "-b", "Virtio7")
	if code != 0 || !strings.Contains(out, `"product_name": "VirtioBlk Disk"`) {
		t.Fatalf("get_bdevs: exit %d: %s", code, out)
	}
	out, code = rpctest.RPCPy(t, sock, "", "bdev_virtio_detach_controller", "Virtio7")
	if code != 0 {
		t.Fatalf("detach: exit %d: %s", code, out)
	}
	out, code = rpctest.RPCPy(t, sock, "", "bdev_virtio_detach_controller", "Virtio7")
	if code == 0 || !strings.Contains(out, "No such device") {
		t.Fatalf("second detach: exit %d: %s", code, out)
	}
}

// TestRPCReconnectParams: the reconnect parameters are checked with SPDK's
// rules, reported by bdev_virtio_get_controllers, and written by
// save_config only when set, so that the saved call recreates the same
// controller.
func TestRPCReconnectParams(t *testing.T) {
	qsd := startQSD(t, qsdConfig{NullBytes: 64 << 20})
	e := newRPCEnv(t)
	base := func(kv ...any) map[string]any {
		m := map[string]any{"name": "V1", "trtype": "user", "traddr": qsd.sock, "dev_type": "blk"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	bad := []struct {
		params map[string]any
		msg    string
	}{
		{base("ctrlr_loss_timeout_sec", -2, "reconnect_delay_sec", 1), "ctrlr_loss_timeout_sec -2: must be -1 (reconnect forever), 0 (no reconnect) or a number of seconds"},
		{base("ctrlr_loss_timeout_sec", 5), "invalid reconnect parameters: reconnect_delay_sec must be non-zero when ctrlr_loss_timeout_sec is not 0"},
		{base("reconnect_delay_sec", 1), "invalid reconnect parameters: reconnect_delay_sec (1s) and fast_io_fail_timeout_sec (0s) must be 0 when ctrlr_loss_timeout_sec is 0 (no reconnect)"},
		{base("fast_io_fail_timeout_sec", 1), "invalid reconnect parameters: reconnect_delay_sec (0s) and fast_io_fail_timeout_sec (1s) must be 0 when ctrlr_loss_timeout_sec is 0 (no reconnect)"},
		{base("ctrlr_loss_timeout_sec", 5, "reconnect_delay_sec", 6), "invalid reconnect parameters: reconnect_delay_sec (6s) must not exceed ctrlr_loss_timeout_sec (5s)"},
		{base("ctrlr_loss_timeout_sec", 5, "reconnect_delay_sec", 2, "fast_io_fail_timeout_sec", 1), "invalid reconnect parameters: fast_io_fail_timeout_sec (1s) must not be less than reconnect_delay_sec (2s)"},
		{base("ctrlr_loss_timeout_sec", 5, "reconnect_delay_sec", 2, "fast_io_fail_timeout_sec", 6), "invalid reconnect parameters: fast_io_fail_timeout_sec (6s) must not exceed ctrlr_loss_timeout_sec (5s)"},
		{base("ctrlr_loss_timeout_sec", -1, "reconnect_delay_sec", 3, "fast_io_fail_timeout_sec", 2), "invalid reconnect parameters: fast_io_fail_timeout_sec (2s) must not be less than reconnect_delay_sec (3s)"},
	}
	for _, c := range bad {
		err := e.call("bdev_virtio_attach_controller", c.params, nil)
		wantErr(t, "attach "+c.msg, err, -22, c.msg)
	}
	err := e.call("bdev_virtio_attach_controller", base("reconnect_delay_sec", -1), nil)
	wantErr(t, "negative reconnect_delay_sec", err, -32603, "spdk_json_decode_object failed")
	if len(e.reg.List()) != 0 {
		t.Fatalf("a refused attach left %d bdevs", len(e.reg.List()))
	}

	saved := func() string {
		t.Helper()
		for _, ce := range e.config() {
			if ce.Method == "bdev_virtio_attach_controller" {
				j, _ := json.Marshal(ce.Params)
				return string(j)
			}
		}
		t.Fatal("save_config has no bdev_virtio_attach_controller")
		return ""
	}
	for _, c := range []struct {
		params map[string]any
		want   string
	}{
		{base("ctrlr_loss_timeout_sec", -1, "reconnect_delay_sec", 2, "fast_io_fail_timeout_sec", 5),
			`"vq_size":512,"ctrlr_loss_timeout_sec":-1,"reconnect_delay_sec":2,"fast_io_fail_timeout_sec":5}`},
		{base("ctrlr_loss_timeout_sec", 30, "reconnect_delay_sec", 3),
			`"vq_size":512,"ctrlr_loss_timeout_sec":30,"reconnect_delay_sec":3}`},
		{base(), `"vq_size":512}`},
	} {
		if err := e.call("bdev_virtio_attach_controller", c.params, nil); err != nil {
			t.Fatal(err)
		}
		got := saved()
		if !strings.HasSuffix(got, c.want) {
			t.Fatalf("saved %s\nwant it to end %s", got, c.want)
		}
		var ctrls []map[string]any
		if err := e.call("bdev_virtio_get_controllers", map[string]any{"name": "V1"}, &ctrls); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"ctrlr_loss_timeout_sec", "reconnect_delay_sec", "fast_io_fail_timeout_sec"} {
			want, ok := c.params[k]
			if !ok {
				want = 0
			}
			if ctrls[0][k] != float64(want.(int)) {
				t.Errorf("get_controllers %s = %v, want %v", k, ctrls[0][k], want)
			}
		}
		// load_config replays the saved params: same controller, same
		// saved call.
		if err := e.call("bdev_virtio_detach_controller", map[string]any{"name": "V1"}, nil); err != nil {
			t.Fatal(err)
		}
		if err := e.call("bdev_virtio_attach_controller", json.RawMessage(got), nil); err != nil {
			t.Fatalf("attach with the saved params %s: %v", got, err)
		}
		if again := saved(); again != got {
			t.Fatalf("saved after reload %s\nbefore %s", again, got)
		}
		if err := e.call("bdev_virtio_detach_controller", map[string]any{"name": "V1"}, nil); err != nil {
			t.Fatal(err)
		}
	}
}
