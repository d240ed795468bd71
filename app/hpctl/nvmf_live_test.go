package main

import (
	"context"
	"net"
	"strconv"
	"testing"

	"hyperpath/rpc/rpctest"
)

// freeLoopbackPort returns a TCP port on 127.0.0.1 that was free a moment
// ago.
func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// TestNvmfCommandsLikeRPCPy runs the NVMe-oF target commands with rpc.py
// and with hpctl against a live in-process daemon, where the daemon wires
// the target (TestNvmfDryRunLikeRPCPy covers the requests either way).
// Listeners are on 127.0.0.1 only.
func TestNvmfCommandsLikeRPCPy(t *testing.T) {
	rpctest.RPCPyPath(t)
	d, sock := startDaemon(t)
	if !hasMethod(t, d, "nvmf_create_subsystem") {
		t.Skip("the daemon does not serve the NVMe-oF target RPCs yet; TestNvmfDryRunLikeRPCPy checks the requests")
	}
	proxy, rec := recordingProxy(t, sock)
	call := func(method string, params any) { rpcCall(t, d, method, params) }
	ignore := func(method string, params any) func(string, int) {
		return func(string, int) { d.RPC().Call(context.Background(), method, params, nil) }
	}
	const nqn = "nqn.2016-06.io.hyperpath:cnode1"
	const nqn2 = "nqn.2016-06.io.hyperpath:cnode2"
	const host = "nqn.2014-08.org.nvmexpress:uuid:6a0c8b6e-4f5d-4b8e-9d5e-0e0c2f3a4b5c"
	port := freeLoopbackPort(t)
	call("bdev_malloc_create", map[string]any{"name": "Malloc0", "num_blocks": 2048, "block_size": 512})
	call("bdev_malloc_create", map[string]any{"name": "Malloc1", "num_blocks": 2048, "block_size": 512})
	call("nvmf_create_transport", map[string]any{"trtype": "tcp"})
	call("nvmf_create_subsystem", map[string]any{"nqn": nqn, "serial_number": "HP0001", "allow_any_host": true})
	delSub := ignore("nvmf_delete_subsystem", map[string]any{"nqn": nqn2})
	listener := map[string]any{"nqn": nqn, "listen_address": map[string]any{"trtype": "tcp", "traddr": "127.0.0.1", "trsvcid": port}}
	runLiveSteps(t, proxy, rec, []liveStep{
		// The transport exists already: both get the same error, and the
		// proxy still sees both requests.
		{args: []string{"nvmf_create_transport", "-t", "tcp", "-q", "64", "-c", "4096", "-o", "--masked-oncs", "nvmcmps"}},
		{args: []string{"nvmf_create_transport", "-t", "bogus"}},
		{args: []string{"nvmf_get_transports"}},
		{args: []string{"nvmf_get_transports", "--trtype", "tcp"}},
		{args: []string{"nvmf_get_transports", "--trtype", "rdma"}},

		{args: []string{"nvmf_create_subsystem", nqn2}, cleanup: delSub},
		{args: []string{"nvmf_create_subsystem", nqn2, "-a", "-s", "HP0002", "-d", "Hyperpath test", "-m", "8", "-r",
			"-i", "1", "-I", "100"}, cleanup: delSub},
		{args: []string{"nvmf_create_subsystem", nqn}},
		{args: []string{"nvmf_delete_subsystem", nqn2},
			setup: func() { call("nvmf_create_subsystem", map[string]any{"nqn": nqn2}) }},
		{args: []string{"nvmf_delete_subsystem", nqn2}},

		{args: []string{"nvmf_subsystem_add_ns", nqn, "Malloc0", "-n", "1"},
			cleanup: ignore("nvmf_subsystem_remove_ns", map[string]any{"nqn": nqn, "nsid": 1})},
		{args: []string{"nvmf_subsystem_add_ns", nqn, "Malloc1", "-u", "ceccf520-691e-4b46-9546-34af789907c5",
			"-g", "00112233445566778899aabbccddeeff", "-e", "0011223344556677", "-n", "2"},
			cleanup: ignore("nvmf_subsystem_remove_ns", map[string]any{"nqn": nqn, "nsid": 2})},
		{args: []string{"nvmf_subsystem_add_ns", nqn, "NoSuch"}},
		{args: []string{"nvmf_subsystem_add_ns", nqn2, "Malloc0"}},
		{args: []string{"nvmf_subsystem_remove_ns", nqn, "1"},
			setup: func() {
				call("nvmf_subsystem_add_ns", map[string]any{"nqn": nqn, "namespace": map[string]any{"bdev_name": "Malloc0", "nsid": 1}})
			}},
		{args: []string{"nvmf_subsystem_remove_ns", nqn, "9"}},

		{args: []string{"nvmf_subsystem_add_listener", nqn, "-t", "tcp", "-a", "127.0.0.1", "-s", port, "-f", "ipv4"},
			cleanup: ignore("nvmf_subsystem_remove_listener", listener)},
		{args: []string{"nvmf_subsystem_remove_listener", nqn, "-t", "tcp", "-a", "127.0.0.1", "-s", port},
			setup: func() { call("nvmf_subsystem_add_listener", listener) }},
		{args: []string{"nvmf_subsystem_remove_listener", nqn, "-t", "tcp", "-a", "127.0.0.1", "-s", port}},
		{args: []string{"nvmf_subsystem_add_listener", "discovery", "-t", "tcp", "-a", "127.0.0.1", "-s", port},
			cleanup: ignore("nvmf_subsystem_remove_listener", map[string]any{"nqn": "nqn.2014-08.org.nvmexpress.discovery",
				"listen_address": map[string]any{"trtype": "tcp", "traddr": "127.0.0.1", "trsvcid": port}})},
		{args: []string{"nvmf_subsystem_add_listener", nqn2, "-t", "tcp", "-a", "127.0.0.1", "-s", port}},

		{args: []string{"nvmf_subsystem_add_host", nqn, host},
			cleanup: ignore("nvmf_subsystem_remove_host", map[string]any{"nqn": nqn, "host": host})},
		{args: []string{"nvmf_subsystem_remove_host", nqn, host},
			setup: func() { call("nvmf_subsystem_add_host", map[string]any{"nqn": nqn, "host": host}) }},
		{args: []string{"nvmf_subsystem_add_host", nqn2, host}},
		{args: []string{"nvmf_subsystem_allow_any_host", nqn, "--no-allow-any-host"}},
		{args: []string{"nvmf_subsystem_allow_any_host", nqn, "--allow-any-host"}},
		{args: []string{"nvmf_subsystem_allow_any_host", nqn2, "--allow-any-host"}},

		{args: []string{"nvmf_get_subsystems"}, setup: func() {
			call("nvmf_subsystem_add_ns", map[string]any{"nqn": nqn, "namespace": map[string]any{"bdev_name": "Malloc0", "nsid": 1}})
			call("nvmf_subsystem_add_listener", listener)
			call("nvmf_subsystem_add_host", map[string]any{"nqn": nqn, "host": host})
		}, cleanup: func(string, int) {
			ignore("nvmf_subsystem_remove_ns", map[string]any{"nqn": nqn, "nsid": 1})("", 0)
			ignore("nvmf_subsystem_remove_listener", listener)("", 0)
			ignore("nvmf_subsystem_remove_host", map[string]any{"nqn": nqn, "host": host})("", 0)
		}},
		{args: []string{"nvmf_get_subsystems", nqn}},
		{args: []string{"nvmf_get_subsystems", nqn2}},
		{args: []string{"nvmf_subsystem_get_controllers", nqn}},
		{args: []string{"nvmf_subsystem_get_controllers", nqn2}},
		{args: []string{"nvmf_subsystem_get_qpairs", nqn}},
		{args: []string{"nvmf_subsystem_get_qpairs", nqn2}},
	})
}
