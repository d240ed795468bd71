package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"hyperpath/bdev/virtio"
	"hyperpath/rpc/rpctest"
	"hyperpath/vhost"
)

// TestVhostCommandsLikeRPCPy runs the vhost and virtio commands with
// rpc.py and with hpctl against a live in-process daemon. Where the
// daemon does not wire the vhost target or the virtio initiator, the test
// registers their RPCs on the daemon's server itself. The virtio
// initiator connects to the daemon's own vhost-user-blk controller.
func TestVhostCommandsLikeRPCPy(t *testing.T) {
	rpctest.RPCPyPath(t)
	d, sock := startDaemon(t)
	sockDir := d.Options().VhostSockDir
	var tg *vhost.Target
	if !hasMethod(t, d, "vhost_create_blk_controller") {
		tg = vhost.NewTarget(vhost.Options{Registry: d.Registry(), Reactors: d.Group().Reactors(), SockDir: sockDir,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		tg.RegisterRPC(d.RPC())
	}
	if !hasMethod(t, d, "bdev_virtio_attach_controller") {
		virtio.RegisterRPC(d.RPC(), d.Registry())
	}
	proxy, rec := recordingProxy(t, sock)
	call := func(method string, params any) { rpcCall(t, d, method, params) }
	quiet := func(method string, params any) { d.RPC().Call(context.Background(), method, params, nil) }
	ignore := func(method string, params any) func(string, int) {
		return func(string, int) { quiet(method, params) }
	}
	t.Cleanup(func() { // before the daemon stops
		for _, b := range d.Registry().Names() {
			if strings.HasPrefix(b, "Virtio") {
				quiet("bdev_virtio_detach_controller", map[string]any{"name": b})
			}
		}
		for _, c := range []string{"vhost.0", "vhost.1"} {
			quiet("vhost_delete_controller", map[string]any{"ctrlr": c})
		}
		if tg != nil {
			tg.Close()
		}
	})
	call("bdev_malloc_create", map[string]any{"name": "Malloc0", "num_blocks": 2048, "block_size": 512})
	call("bdev_null_create", map[string]any{"name": "Null0", "num_blocks": 256, "block_size": 4096})
	call("vhost_create_blk_controller", map[string]any{"ctrlr": "vhost.0", "dev_name": "Malloc0"})
	vhost0 := filepath.Join(sockDir, "vhost.0")
	attach := func() {
		call("bdev_virtio_attach_controller", map[string]any{"name": "VirtioUser0", "trtype": "user",
			"traddr": vhost0, "dev_type": "blk"})
	}
	runLiveSteps(t, proxy, rec, []liveStep{
		{args: []string{"vhost_get_controllers"}},
		{args: []string{"vhost_get_controllers", "-n", "vhost.0"}},
		{args: []string{"vhost_get_controllers", "--name", "nosuch"}},
		{args: []string{"vhost_create_blk_controller", "vhost.1", "Null0"},
			cleanup: ignore("vhost_delete_controller", map[string]any{"ctrlr": "vhost.1"})},
		{args: []string{"vhost_create_blk_controller", "vhost.1", "Null0", "--cpumask", "0x1", "-r", "--transport", "vhost_user_blk"},
			cleanup: ignore("vhost_delete_controller", map[string]any{"ctrlr": "vhost.1"})},
		{args: []string{"vhost_create_blk_controller", "vhost.1", "NoSuch"}},
		{args: []string{"vhost_create_blk_controller", "vhost.0", "Null0"}},
		{args: []string{"vhost_create_blk_controller", "vhost.1", "Null0", "--packed-ring"},
			cleanup: ignore("vhost_delete_controller", map[string]any{"ctrlr": "vhost.1"})},
		{args: []string{"vhost_controller_set_coalescing", "vhost.0", "20", "40000"}},
		{args: []string{"vhost_get_controllers", "-n", "vhost.0"}},
		{args: []string{"vhost_controller_set_coalescing", "nosuch", "1", "1000"}},
		{args: []string{"vhost_delete_controller", "vhost.1"},
			setup: func() { call("vhost_create_blk_controller", map[string]any{"ctrlr": "vhost.1", "dev_name": "Null0"}) }},
		{args: []string{"vhost_delete_controller", "nosuch"}},

		{args: []string{"bdev_virtio_attach_controller", "VirtioUser0", "-t", "user", "-a", vhost0, "-d", "blk", "--vq-count", "1", "--vq-size", "128"},
			cleanup: ignore("bdev_virtio_detach_controller", map[string]any{"name": "VirtioUser0"})},
		{args: []string{"bdev_virtio_attach_controller", "Virtio1", "-t", "pci", "-a", "0000:00:04.0", "-d", "blk"}},
		{args: []string{"bdev_virtio_attach_controller", "Virtio1", "-t", "user", "-a", vhost0, "-d", "scsi"}},
		{args: []string{"bdev_virtio_attach_controller", "Virtio1", "-t", "user", "-a", filepath.Join(sockDir, "none"), "-d", "blk"}},
		{args: []string{"bdev_virtio_detach_controller", "VirtioUser0"}, setup: attach},
		{args: []string{"bdev_virtio_detach_controller", "Malloc0"}},
	})

	// bdev_virtio_get_controllers is ours (rpc.py has no such command).
	attach()
	got, rc := hpctl(t, "", "-s", sock, "bdev_virtio_get_controllers", "-n", "VirtioUser0")
	if rc != 0 || !strings.Contains(got, `"name": "VirtioUser0"`) || !strings.HasPrefix(got, "[\n  {\n") {
		t.Errorf("bdev_virtio_get_controllers: rc %d\n%s", rc, got)
	}
	if got, rc := hpctl(t, "", "-s", sock, "bdev_virtio_get_controllers", "--name", "nosuch"); rc != 1 || !strings.Contains(got, "\"code\": -19") {
		t.Errorf("bdev_virtio_get_controllers nosuch: rc %d\n%s", rc, got)
	}
	if got, rc := hpctl(t, "", "-s", sock, "bdev_virtio_get_controllers"); rc != 0 || !strings.Contains(got, `"name": "VirtioUser0"`) {
		t.Errorf("bdev_virtio_get_controllers: rc %d\n%s", rc, got)
	}

	// Our reconnect options (rpc.py has none for virtio).
	if got, rc := hpctl(t, "", "-s", sock, "bdev_virtio_attach_controller", "VirtioR", "-t", "user", "-a", vhost0, "-d", "blk",
		"--ctrlr-loss-timeout-sec", "-1", "--reconnect-delay-sec", "2", "--fast-io-fail-timeout-sec", "5"); rc != 0 {
		t.Fatalf("attach with reconnect options: rc %d\n%s", rc, got)
	}
	got, rc = hpctl(t, "", "-s", sock, "bdev_virtio_get_controllers", "-n", "VirtioR")
	for _, want := range []string{`"ctrlr_loss_timeout_sec": -1`, `"reconnect_delay_sec": 2`, `"fast_io_fail_timeout_sec": 5`} {
		if rc != 0 || !strings.Contains(got, want) {
			t.Errorf("bdev_virtio_get_controllers after attaching with reconnect options lacks %s: rc %d\n%s", want, rc, got)
		}
	}
	if got, rc := hpctl(t, "", "-s", sock, "bdev_virtio_attach_controller", "VirtioS", "-t", "user", "-a", vhost0, "-d", "blk",
		"--ctrlr-loss-timeout-sec", "5"); rc != 1 || !strings.Contains(got, "reconnect") {
		t.Errorf("ctrlr-loss-timeout-sec without reconnect-delay-sec: rc %d\n%s", rc, got)
	}
	hpctl(t, "", "-s", sock, "bdev_virtio_detach_controller", "VirtioR")
}
