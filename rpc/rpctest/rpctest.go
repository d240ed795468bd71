// Package rpctest helps test code that serves or calls Hyperpath's RPC
// socket: a server on a short temporary socket, a stand-in target whose
// config methods record what they are given (for save_config/load_config
// round trips), and a runner for SPDK's unmodified scripts/rpc.py.
//
// Everything here is for tests; nothing in the daemon imports it.
package rpctest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"hyperpath/rpc"
)

// SockDir returns a short temporary directory that is removed when the
// test ends (Unix socket paths are limited to 107 bytes; t.TempDir can be
// longer).
func SockDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "hprpc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// Serve listens on a new socket and serves s until the test ends, then
// closes it and checks that Serve returned cleanly. It returns the path.
func Serve(t testing.TB, s *rpc.Server) string {
	t.Helper()
	path := filepath.Join(SockDir(t), "spdk.sock")
	if err := s.Listen(path); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("rpc server Close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("rpc server Serve: %v", err)
		}
	})
	return path
}

// RPCPy runs `python3 $SPDK_DIR/scripts/rpc.py -s sock args...` with stdin
// and returns its combined stdout and stderr and exit code. It skips the
// test when SPDK_DIR is not set or python3 is missing.
func RPCPy(t testing.TB, sock, stdin string, args ...string) (string, int) {
	t.Helper()
	script := RPCPyPath(t)
	cmd := exec.Command("python3", append([]string{script, "-s", sock}, args...)...)
	cmd.Stdin = bytes.NewBufferString(stdin)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("rpc.py %v: %v", args, err)
	}
	return string(out), 0
}

// RPCPyPath returns $SPDK_DIR/scripts/rpc.py, skipping the test when it
// cannot run.
func RPCPyPath(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("SPDK_DIR")
	if dir == "" {
		t.Skip("SPDK_DIR not set: set it to an SPDK tree (with scripts/rpc.py and python/spdk) to run SPDK's rpc.py against the server")
	}
	script := filepath.Join(dir, "scripts", "rpc.py")
	if _, err := os.Stat(script); err != nil {
		t.Skipf("SPDK_DIR=%s has no scripts/rpc.py: %v", dir, err)
	}
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not found: needed to run SPDK's rpc.py")
	}
	return script
}

// Target is a stand-in for a configured daemon: a few subsystems shaped
// like SPDK's (iobuf, accel, bdev, scsi, nvmf) whose config methods store
// their params and whose writers emit them back, so that save_config,
// load_config and save_config again must give the same document. Its
// methods use SPDK's names and states; the params are kept verbatim.
type Target struct {
	mu    sync.Mutex
	iobuf json.RawMessage   // iobuf_set_options (Startup)
	bopts json.RawMessage   // bdev_set_options (Startup|Runtime)
	bdevs []json.RawMessage // bdev_malloc_create (Runtime)
	nvmf  json.RawMessage   // nvmf_set_config (Startup)
	subs  []json.RawMessage // nvmf_create_subsystem (Runtime)
	nss   []json.RawMessage // nvmf_subsystem_add_ns (Runtime)
	calls []string
}

// Calls lists the methods called so far, in order.
func (tg *Target) Calls() []string {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]string(nil), tg.calls...)
}

// Register adds the target's methods and subsystems to s.
func (tg *Target) Register(s *rpc.Server) {
	set := func(name string, dst *json.RawMessage) rpc.Handler {
		return func(_ context.Context, p json.RawMessage) (any, error) {
			var v map[string]any
			if err := json.Unmarshal(p, &v); err != nil || p == nil || p[0] != '{' {
				return nil, rpc.InvalidParams("Invalid parameters")
			}
			tg.mu.Lock()
			defer tg.mu.Unlock()
			tg.calls = append(tg.calls, name)
			*dst = append(json.RawMessage(nil), p...)
			return true, nil
		}
	}
	add := func(name string, dst *[]json.RawMessage, result func(json.RawMessage) any) rpc.Handler {
		return func(_ context.Context, p json.RawMessage) (any, error) {
			var v struct {
				Name string `json:"name"`
			}
			if err := rpc.DecodeRelaxed(p, &v); err != nil {
				return nil, rpc.DecodeFailed(err)
			}
			tg.mu.Lock()
			defer tg.mu.Unlock()
			tg.calls = append(tg.calls, name)
			*dst = append(*dst, append(json.RawMessage(nil), p...))
			return result(p), nil
		}
	}
	s.Register("iobuf_set_options", rpc.Startup, set("iobuf_set_options", &tg.iobuf))
	s.Register("bdev_set_options", rpc.Startup|rpc.Runtime, set("bdev_set_options", &tg.bopts))
	s.Register("nvmf_set_config", rpc.Startup, set("nvmf_set_config", &tg.nvmf))
	s.Register("bdev_malloc_create", rpc.Runtime, add("bdev_malloc_create", &tg.bdevs, func(p json.RawMessage) any {
		var v struct {
			Name string `json:"name"`
		}
		json.Unmarshal(p, &v)
		return v.Name
	}))
	s.Register("nvmf_create_subsystem", rpc.Runtime, add("nvmf_create_subsystem", &tg.subs, func(json.RawMessage) any { return true }))
	s.Register("nvmf_subsystem_add_ns", rpc.Runtime, add("nvmf_subsystem_add_ns", &tg.nss, func(json.RawMessage) any { return 1 }))
	s.Register("bdev_wait_for_examine", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		if err := rpc.NoParams(p, "bdev_wait_for_examine requires no parameters"); err != nil {
			return nil, err
		}
		tg.mu.Lock()
		tg.calls = append(tg.calls, "bdev_wait_for_examine")
		tg.mu.Unlock()
		return true, nil
	})
	s.RegisterAlias("construct_malloc_bdev", "bdev_malloc_create")

	entry := func(method string, p json.RawMessage) rpc.ConfigEntry {
		if p == nil {
			return rpc.ConfigEntry{Method: method}
		}
		return rpc.ConfigEntry{Method: method, Params: p}
	}
	s.RegisterSubsystem("iobuf", nil, func() []rpc.ConfigEntry {
		tg.mu.Lock()
		defer tg.mu.Unlock()
		if tg.iobuf == nil {
			return nil
		}
		return []rpc.ConfigEntry{entry("iobuf_set_options", tg.iobuf)}
	})
	s.RegisterSubsystem("accel", []string{"iobuf"}, func() []rpc.ConfigEntry { return nil })
	s.RegisterSubsystem("bdev", []string{"accel", "iobuf"}, func() []rpc.ConfigEntry {
		tg.mu.Lock()
		defer tg.mu.Unlock()
		var out []rpc.ConfigEntry
		if tg.bopts != nil {
			out = append(out, entry("bdev_set_options", tg.bopts))
		}
		for _, b := range tg.bdevs {
			out = append(out, entry("bdev_malloc_create", b))
		}
		return append(out, entry("bdev_wait_for_examine", nil))
	})
	s.RegisterSubsystem("scsi", []string{"bdev"}, nil)
	s.RegisterSubsystem("nvmf", []string{"bdev"}, func() []rpc.ConfigEntry {
		tg.mu.Lock()
		defer tg.mu.Unlock()
		var out []rpc.ConfigEntry
		if tg.nvmf != nil {
			out = append(out, entry("nvmf_set_config", tg.nvmf))
		}
		for i, sub := range tg.subs {
			b := rpc.ConfigEntry{Batch: []rpc.ConfigEntry{entry("nvmf_create_subsystem", sub)}}
			if i < len(tg.nss) {
				b.Batch = append(b.Batch, entry("nvmf_subsystem_add_ns", tg.nss[i]))
			}
			out = append(out, b)
		}
		return out
	})
}

// Populate configures s (a server with tg registered, in Startup) the way
// a user would over RPC: Startup options, framework_start_init, then
// Runtime objects. Non-ASCII and HTML characters are included on purpose.
func (tg *Target) Populate(ctx context.Context, s *rpc.Server) error {
	steps := []struct {
		method string
		params string
	}{
		{"iobuf_set_options", `{"small_pool_count":8192,"large_pool_count":1024,"small_bufsize":8192,"large_bufsize":135168}`},
		{"bdev_set_options", `{"bdev_io_pool_size":65535,"bdev_io_cache_size":256,"bdev_auto_examine":true}`},
		{"nvmf_set_config", `{"discovery_filter":"match_any","admin_cmd_passthru":{"identify_ctrlr":false}}`},
		{"framework_start_init", ``},
		{"bdev_malloc_create", `{"name":"Malloc0","num_blocks":2048,"block_size":512,"uuid":"2f1c8a4e-5b7d-4c1e-9f3a-0a1b2c3d4e5f","optimal_io_boundary":0}`},
		{"bdev_malloc_create", `{"name":"Mälloc <1> & \"quoted\"","num_blocks":16,"block_size":4096,"ratio":0.25}`},
		{"nvmf_create_subsystem", `{"nqn":"nqn.2016-06.io.spdk:cnode1","serial_number":"SPDK00000000000001","allow_any_host":true,"max_namespaces":32}`},
		{"nvmf_subsystem_add_ns", `{"nqn":"nqn.2016-06.io.spdk:cnode1","namespace":{"nsid":1,"bdev_name":"Malloc0","no_auto_visible":false}}`},
	}
	for _, st := range steps {
		var p any
		if st.params != "" {
			p = json.RawMessage(st.params)
		}
		if err := s.Call(ctx, st.method, p, nil); err != nil {
			return err
		}
	}
	return nil
}
