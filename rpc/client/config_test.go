package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"hyperpath/rpc"
	"hyperpath/rpc/client"
	"hyperpath/rpc/rpctest"
)

// recorder is a Caller that records calls and forwards them to a server
// in process.
type recorder struct {
	s     *rpc.Server
	calls []string
}

func (r *recorder) Call(ctx context.Context, method string, params, result any) error {
	p, _ := json.Marshal(params)
	if params == nil {
		p = nil
	}
	r.calls = append(r.calls, method+" "+string(p))
	return r.s.Call(ctx, method, params, result)
}

func TestSaveLoadInProcessAndOverSocket(t *testing.T) {
	ctx := context.Background()
	src := rpc.NewServer(rpc.Options{Logger: quiet()})
	tg := &rpctest.Target{}
	tg.Register(src)
	if err := tg.Populate(ctx, src); err != nil {
		t.Fatal(err)
	}
	// Over the socket.
	c := dial(t, rpctest.Serve(t, src))
	cfg, err := client.SaveConfig(ctx, c, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(cfg)
	// In process gives the same document.
	cfg2, err := client.SaveConfig(ctx, src, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if doc2, _ := json.Marshal(cfg2); string(doc2) != string(doc) {
		t.Fatalf("in-process save differs:\n%s\n%s", doc, doc2)
	}
	// -s bdev: bdev and its dependencies only, in order.
	part, err := client.SaveConfig(ctx, c, []string{"bdev"}, false)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range part.Subsystems {
		names = append(names, s.Subsystem)
	}
	if strings.Join(names, ",") != "iobuf,accel,bdev" {
		t.Fatalf("subset: %v", names)
	}
	if _, err := client.SaveConfig(ctx, c, []string{"nope"}, false); err == nil {
		t.Fatal("unknown subsystem accepted")
	}

	// Load in process into a fresh server in Startup, record the calls.
	dst := rpc.NewServer(rpc.Options{Logger: quiet()})
	(&rpctest.Target{}).Register(dst)
	rec := &recorder{s: dst}
	if err := client.LoadConfig(ctx, rec, doc, false); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`rpc_get_methods {"include_aliases":false}`,
		`rpc_get_methods {"current":true,"include_aliases":false}`,
		`iobuf_set_options {"small_pool_count":8192,"large_pool_count":1024,"small_bufsize":8192,"large_bufsize":135168}`,
		`bdev_set_options {"bdev_io_pool_size":65535,"bdev_io_cache_size":256,"bdev_auto_examine":true}`,
		`nvmf_set_config {"discovery_filter":"match_any","admin_cmd_passthru":{"identify_ctrlr":false}}`,
		`framework_start_init `,
		`rpc_get_methods {"current":true,"include_aliases":false}`,
		`bdev_malloc_create {"name":"Malloc0","num_blocks":2048,"block_size":512,"uuid":"2f1c8a4e-5b7d-4c1e-9f3a-0a1b2c3d4e5f","optimal_io_boundary":0}`,
		`bdev_malloc_create {"name":"Mälloc \u003c1\u003e \u0026 \"quoted\"","num_blocks":16,"block_size":4096,"ratio":0.25}`,
		`bdev_wait_for_examine `,
		`nvmf_create_subsystem {"nqn":"nqn.2016-06.io.spdk:cnode1","serial_number":"SPDK00000000000001","allow_any_host":true,"max_namespaces":32}`,
		`nvmf_subsystem_add_ns {"nqn":"nqn.2016-06.io.spdk:cnode1","namespace":{"nsid":1,"bdev_name":"Malloc0","no_auto_visible":false}}`,
	}
	if !reflect.DeepEqual(rec.calls, want) {
		t.Fatalf("calls:\n%s", strings.Join(rec.calls, "\n"))
	}
	cfg3, err := client.SaveConfig(ctx, dst, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if doc3, _ := json.Marshal(cfg3); string(doc3) != string(doc) {
		t.Fatalf("round trip differs:\n%s\n%s", doc, doc3)
	}
}

func TestLoadConfigCases(t *testing.T) {
	ctx := context.Background()
	fresh := func() (*rpc.Server, *recorder) {
		s := rpc.NewServer(rpc.Options{Logger: quiet()})
		(&rpctest.Target{}).Register(s)
		return s, &recorder{s: s}
	}

	// Nothing to load: just framework_start_init.
	s, rec := fresh()
	if err := client.LoadConfig(ctx, rec, []byte(`{"subsystems":[{"subsystem":"a","config":null},{"subsystem":"b","config":[]}]}`), false); err != nil {
		t.Fatal(err)
	}
	if s.State() != rpc.Runtime || len(rec.calls) != 2 {
		t.Fatalf("empty config: %v", rec.calls)
	}
	// ... which fails in Runtime, as with rpc.py.
	if err := client.LoadConfig(ctx, rec, []byte(`{"subsystems":[]}`), false); err == nil {
		t.Fatal("empty config in Runtime: no error")
	}

	// An unknown method aborts before anything is called.
	_, rec = fresh()
	err := client.LoadConfig(ctx, rec, []byte(`{"subsystems":[{"subsystem":"bdev","config":[
		{"method":"bdev_set_options","params":{"a":1}},[{"method":"nvmf_set_config","params":{"x":1}},{"method":"nope"}]]}]}`), false)
	if err == nil || err.Error() != "Unknown method was included in the config file" || len(rec.calls) != 1 {
		t.Fatalf("unknown method: %v %v", err, rec.calls)
	}
	// A missing "method" counts as unknown too; an alias only with include_aliases.
	_, rec = fresh()
	if err := client.LoadConfig(ctx, rec, []byte(`{"subsystems":[{"subsystem":"x","config":[{"params":{}}]}]}`), false); err == nil {
		t.Fatal("entry without method accepted")
	}
	alias := []byte(`{"subsystems":[{"subsystem":"bdev","config":[{"method":"construct_malloc_bdev","params":{"name":"m"}},{"method":"bdev_wait_for_examine","params":{}}]}]}`)
	_, rec = fresh()
	if err := client.LoadConfig(ctx, rec, alias, false); err == nil {
		t.Fatal("alias accepted without include_aliases")
	}
	s, rec = fresh()
	if err := client.LoadConfig(ctx, rec, alias, true); err != nil {
		t.Fatal(err)
	}
	// Empty params are sent as none (bdev_wait_for_examine rejects params).
	if rec.calls[len(rec.calls)-1] != "bdev_wait_for_examine " {
		t.Fatalf("calls: %v", rec.calls)
	}

	// An error reply stops the load.
	_, rec = fresh()
	err = client.LoadConfig(ctx, rec, []byte(`{"subsystems":[{"subsystem":"iobuf","config":[{"method":"iobuf_set_options","params":[1]}]}]}`), false)
	var re *rpc.Error
	if !errors.As(err, &re) || re.Code != rpc.CodeInvalidParams {
		t.Fatalf("error reply: %v", err)
	}

	// Startup-only entries in a Runtime server are skipped.
	s, rec = fresh()
	s.SetState(rpc.Runtime)
	err = client.LoadConfig(ctx, rec, []byte(`{"subsystems":[{"subsystem":"iobuf","config":[{"method":"iobuf_set_options","params":{"a":1}}]},
		{"subsystem":"bdev","config":[{"method":"bdev_wait_for_examine"}]}]}`), false)
	if !errors.Is(err, client.ErrSkipped) {
		t.Fatalf("skipped: %v", err)
	}

	for _, bad := range []string{`[]`, `{}`, `{"subsystems":[{"subsystem":"a"}]}`, `{"subsystems":[{"subsystem":"a","config":{}}]}`,
		`{"subsystems":[{"subsystem":"a","config":[{"method":"x","extra":1}]}]}`, `not json`} {
		_, rec = fresh()
		if err := client.LoadConfig(ctx, rec, []byte(bad), false); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}
