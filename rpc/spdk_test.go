package rpc_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"hyperpath/rpc"
	"hyperpath/rpc/rpctest"
)

// These tests run SPDK's unmodified scripts/rpc.py ($SPDK_DIR) against the
// server: the oracle for the wire contract.

func newTarget(t *testing.T, populate bool) (*rpc.Server, *rpctest.Target, string) {
	t.Helper()
	s := rpc.NewServer(rpc.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	tg := &rpctest.Target{}
	tg.Register(s)
	s.LogFlags().MustRegister("bdev")
	s.LogFlags().MustRegister("nvmf")
	if populate {
		if err := tg.Populate(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	return s, tg, rpctest.Serve(t, s)
}

func rpcpy(t *testing.T, sock string, wantRC int, args ...string) string {
	t.Helper()
	out, rc := rpctest.RPCPy(t, sock, "", args...)
	if rc != wantRC {
		t.Fatalf("rpc.py %s: rc %d, want %d; output:\n%s", strings.Join(args, " "), rc, wantRC, out)
	}
	return out
}

func jsonEqual(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestRPCPyGenericMethods(t *testing.T) {
	rpctest.RPCPyPath(t)
	s, _, sock := newTarget(t, false)
	var killed []syscall.Signal
	s.OnKill(func(sig syscall.Signal) error { killed = append(killed, sig); return nil })

	// print_json of an object: indent 2, exactly.
	if got := rpcpy(t, sock, 0, "spdk_get_version"); got != `{
  "version": "SPDK v26.09-pre hyperpath 0.1.0",
  "fields": {
    "major": 26,
    "minor": 9,
    "patch": 0,
    "suffix": "-pre"
  }
}
` {
		t.Fatalf("spdk_get_version:\n%s", got)
	}

	// Startup state: runtime methods fail with SPDK's state error.
	out := rpcpy(t, sock, 1, "framework_get_subsystems")
	if !strings.Contains(out, `"code": -1`) || !strings.Contains(out, "Method may only be called after framework is initialized using framework_start_init RPC.") {
		t.Fatalf("framework_get_subsystems in Startup:\n%s", out)
	}
	var cur []string
	json.Unmarshal([]byte(rpcpy(t, sock, 0, "rpc_get_methods", "-c")), &cur)
	if !contains(cur, "iobuf_set_options") || contains(cur, "bdev_malloc_create") || !contains(cur, "framework_start_init") {
		t.Fatalf("rpc_get_methods -c in Startup: %v", cur)
	}
	var all, withAliases []string
	json.Unmarshal([]byte(rpcpy(t, sock, 0, "rpc_get_methods")), &all)
	json.Unmarshal([]byte(rpcpy(t, sock, 0, "rpc_get_methods", "--include-aliases")), &withAliases)
	if !contains(all, "bdev_malloc_create") || contains(all, "construct_malloc_bdev") || !contains(withAliases, "construct_malloc_bdev") {
		t.Fatalf("rpc_get_methods: %v / %v", all, withAliases)
	}

	// Log flags and levels work in both states.
	rpcpy(t, sock, 0, "log_set_flag", "bdev")
	jsonEqual(t, rpcpy(t, sock, 0, "log_get_flags"), `{"bdev":true,"nvmf":false,"rpc":false}`)
	rpcpy(t, sock, 0, "log_set_flag", "all")
	rpcpy(t, sock, 0, "log_clear_flag", "nvmf")
	if got := rpcpy(t, sock, 0, "log_get_flags"); got != "{\n  \"bdev\": true,\n  \"nvmf\": false,\n  \"rpc\": true\n}\n" {
		t.Fatalf("log_get_flags:\n%s", got)
	}
	rpcpy(t, sock, 0, "log_clear_flag", "all")
	out = rpcpy(t, sock, 1, "log_set_flag", "nosuch")
	if !strings.Contains(out, `"code": -32602`) || !strings.Contains(out, `"message": "invalid log flag"`) {
		t.Fatalf("bad flag:\n%s", out)
	}
	rpcpy(t, sock, 0, "log_set_level", "DEBUG")
	if got := rpcpy(t, sock, 0, "log_get_level"); got != "\"DEBUG\"\n" {
		t.Fatalf("log_get_level: %q", got)
	}
	rpcpy(t, sock, 0, "log_set_print_level", "WARNING")
	if got := rpcpy(t, sock, 0, "log_get_print_level"); got != "\"WARNING\"\n" {
		t.Fatalf("log_get_print_level: %q", got)
	}
	if s.LogLevel().Level() != -4 || s.PrintLevel().Level() != 4 {
		t.Fatal("levels not applied")
	}

	// framework_start_init, then framework_wait_init returns at once.
	if got := rpcpy(t, sock, 0, "framework_start_init"); got != "" {
		t.Fatalf("framework_start_init printed %q", got)
	}
	rpcpy(t, sock, 0, "framework_wait_init")
	out = rpcpy(t, sock, 1, "framework_start_init")
	if !strings.Contains(out, "Method may only be called before framework is initialized. Use --wait-for-rpc") {
		t.Fatalf("second framework_start_init:\n%s", out)
	}

	jsonEqual(t, rpcpy(t, sock, 0, "framework_get_subsystems"), `[
		{"subsystem":"iobuf","depends_on":[]},{"subsystem":"accel","depends_on":["iobuf"]},
		{"subsystem":"bdev","depends_on":["accel","iobuf"]},{"subsystem":"scsi","depends_on":["bdev"]},
		{"subsystem":"nvmf","depends_on":["bdev"]}]`)
	if got := rpcpy(t, sock, 0, "framework_get_config", "scsi"); got != "null\n" {
		t.Fatalf("scsi config: %q", got)
	}
	jsonEqual(t, rpcpy(t, sock, 0, "framework_get_config", "bdev"), `[{"method":"bdev_wait_for_examine"}]`)
	out = rpcpy(t, sock, 1, "framework_get_config", "nosuch")
	if !strings.Contains(out, "Subsystem 'nosuch' not found") {
		t.Fatalf("unknown subsystem:\n%s", out)
	}

	rpcpy(t, sock, 0, "spdk_kill_instance", "SIGTERM")
	if len(killed) != 1 || killed[0] != syscall.SIGTERM {
		t.Fatalf("kill hook: %v", killed)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestRPCPyPipedAndBatch: rpc.py reading commands from stdin uses one
// connection for all of them; -b sends them as one batch.
func TestRPCPyPipedAndBatch(t *testing.T) {
	rpctest.RPCPyPath(t)
	_, _, sock := newTarget(t, true)
	out, rc := rpctest.RPCPy(t, sock, "log_set_flag bdev\nlog_get_flags\nspdk_get_version\n")
	if rc != 0 || !strings.Contains(out, `"bdev": true`) || !strings.Contains(out, `"major": 26`) {
		t.Fatalf("piped: rc %d\n%s", rc, out)
	}
	out, rc = rpctest.RPCPy(t, sock, "log_clear_flag bdev\nlog_get_flags\nframework_get_config scsi\n", "-b")
	if rc != 0 || !strings.Contains(out, `"bdev": false`) {
		t.Fatalf("batch: rc %d\n%s", rc, out)
	}
}

// TestRPCPySaveLoadConfig saves a configured server's config with rpc.py,
// loads it with rpc.py into a fresh server in Startup state, and saves
// again: the two documents must be identical, byte for byte.
func TestRPCPySaveLoadConfig(t *testing.T) {
	rpctest.RPCPyPath(t)
	_, _, src := newTarget(t, true)
	saved := rpcpy(t, src, 0, "save_config")
	for _, want := range []string{`"subsystem": "scsi",` + "\n      \"config\": null", `"method": "bdev_wait_for_examine"` + "\n        }",
		`"name": "M\u00e4lloc <1> & \"quoted\""`, `"method": "nvmf_subsystem_add_ns"`} {
		if !strings.Contains(saved, want) {
			t.Fatalf("save_config lacks %q:\n%s", want, saved)
		}
	}

	dst, dtg, dsock := newTarget(t, false)
	file := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(file, []byte(saved), 0o600)
	if out := rpcpy(t, dsock, 0, "load_config", "-j", file); out != "" {
		t.Fatalf("load_config printed:\n%s", out)
	}
	if dst.State() != rpc.Runtime {
		t.Fatal("load_config did not start the framework")
	}
	// Startup round in config order (bdev_set_options is callable in
	// both states), framework_start_init, then the Runtime round.
	wantCalls := []string{"iobuf_set_options", "bdev_set_options", "nvmf_set_config", "bdev_malloc_create", "bdev_malloc_create",
		"bdev_wait_for_examine", "nvmf_create_subsystem", "nvmf_subsystem_add_ns"}
	if got := dtg.Calls(); !reflect.DeepEqual(got, wantCalls) {
		t.Fatalf("load order:\n got  %v\n want %v", got, wantCalls)
	}
	again := rpcpy(t, dsock, 0, "save_config")
	if again != saved {
		t.Fatalf("save_config after load_config differs:\n--- first\n%s\n--- second\n%s", saved, again)
	}

	// The nested-batch form (--with-batches) loads too (rpc.py call_batch).
	batched := rpcpy(t, src, 0, "save_config", "--with-batches")
	if !strings.Contains(batched, "[\n          {\n            \"method\": \"nvmf_create_subsystem\"") {
		t.Fatalf("with batches:\n%s", batched)
	}
	_, _, dsock2 := newTarget(t, false)
	os.WriteFile(file, []byte(batched), 0o600)
	rpcpy(t, dsock2, 0, "load_config", "-j", file)
	if got := rpcpy(t, dsock2, 0, "save_config"); got != saved {
		t.Fatalf("after loading the batched form:\n%s", got)
	}

	// Loading into a server already in Runtime: the Startup-only entries
	// are skipped and rpc.py says so (exit 0).
	_, rtg, rsock := newTarget(t, true)
	before := len(rtg.Calls())
	out := rpcpy(t, rsock, 0, "load_config", "-j", file)
	if out != "Some configs were skipped because the RPC state that can call them passed over.\n" {
		t.Fatalf("load into Runtime:\n%s", out)
	}
	if got := rtg.Calls()[before:]; !reflect.DeepEqual(got, []string{"bdev_set_options", "bdev_malloc_create", "bdev_malloc_create",
		"bdev_wait_for_examine", "nvmf_create_subsystem", "nvmf_subsystem_add_ns"}) {
		t.Fatalf("calls in Runtime: %v", got)
	}
}
