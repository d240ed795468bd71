package remote

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"hyperpath/bdev"
	"hyperpath/nvmf/initiator"
	"hyperpath/rpc"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz seed files")

var attachSeeds = map[string]string{
	"rpcpy":     `{"name":"Nvme0","trtype":"tcp","traddr":"127.0.0.1","adrfam":"ipv4","trsvcid":"4420","subnqn":"nqn.2016-06.io.spdk:cnode1","prchk_reftag":false,"prchk_guard":false,"hdgst":false,"ddgst":false,"allow_unrecognized_csi":false,"disable_sq_flow_control":false}`,
	"saved":     `{"name":"Nvme0","trtype":"TCP","adrfam":"IPv4","traddr":"127.0.0.1","trsvcid":"4420","subnqn":"nqn.2016-06.io.spdk:cnode1","prchk_reftag":false,"prchk_guard":false,"ctrlr_loss_timeout_sec":-1,"reconnect_delay_sec":2,"fast_io_fail_timeout_sec":4,"hostnqn":"nqn.2014-08.org.nvmexpress:uuid:6f1c2a4e-9d3b-4c1f-8e2a-5b7d9c0e1f23","hdgst":true,"ddgst":true}`,
	"multipath": `{"name":"Nvme1","trtype":"tcp","traddr":"::1","trsvcid":"4421","subnqn":"nqn.2016-06.io.spdk:cnode2","multipath":"failover","multipath_opts":{"policy":"active_active","selector":"round_robin","min_io":8},"num_io_queues":4,"max_bdevs":2,"fabrics_connect_timeout_us":1000000,"priority":"3"}`,
	"rdma":      `{"name":"Nvme2","trtype":"rdma","traddr":"10.0.0.1","subnqn":"nqn.x"}`,
}

// FuzzAttachParams: any params bdev_nvme_attach_controller may receive
// decode and validate without panicking, and a configuration that passes
// validation is one the initiator accepts.
func FuzzAttachParams(f *testing.F) {
	for _, s := range attachSeeds {
		f.Add([]byte(s))
	}
	m := New(bdev.NewRegistry(bdev.Options{}), nil, quietLog)
	f.Fuzz(func(t *testing.T, data []byte) {
		var req attachParams
		if err := rpc.Decode(json.RawMessage(data), &req); err != nil {
			return
		}
		cfg, maxBdevs, err := m.attachConfig(&req)
		if err != nil {
			var re *rpc.Error
			if !isRPCError(err, &re) || re.Code >= 0 {
				t.Fatalf("error %v is not an RPC error with a negative code", err)
			}
			return
		}
		if maxBdevs < 0 || cfg.Name != req.Name || cfg.TRSvcID == "" {
			t.Fatalf("config %+v max %d", cfg, maxBdevs)
		}
		if err := initiator.ValidateReconnect(cfg.CtrlrLossTimeoutSec, cfg.ReconnectDelaySec, cfg.FastIOFailTimeoutSec); err != nil {
			t.Fatalf("accepted reconnect parameters the initiator refuses: %v", err)
		}
	})
}

func isRPCError(err error, re **rpc.Error) bool {
	e, ok := err.(*rpc.Error)
	*re = e
	return ok
}

// TestFuzzSeeds keeps testdata/fuzz/FuzzAttachParams in step with
// attachSeeds (-update-seeds rewrites it).
func TestFuzzSeeds(t *testing.T) {
	for name, s := range attachSeeds {
		path := filepath.Join("testdata", "fuzz", "FuzzAttachParams", "seed-"+name)
		want := []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s))
		if *updateSeeds {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != string(want) {
			t.Errorf("%s is missing or stale (err %v); run go test -run TestFuzzSeeds -update-seeds", path, err)
		}
	}
}
