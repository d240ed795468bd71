package main

import "testing"

// The requests hpctl builds, against rpc.py's dry run: every argument,
// including transports and device types no daemon here serves (pci,
// scsi). TestVhostCommandsLikeRPCPy covers the live server.
func TestVhostDryRunLikeRPCPy(t *testing.T) {
	dryRunSame(t, [][]string{
		{"vhost_create_blk_controller", "vhost.0", "Malloc0"},
		{"vhost_create_blk_controller", "vhost.0", "Malloc0", "--cpumask", "0x3", "--transport", "vhost_user_blk", "-r", "-p"},
		{"vhost_create_blk_controller", "--packed-ring", "vhost.1", "--readonly", "Malloc1"},
		{"vhost_get_controllers"},
		{"vhost_get_controllers", "-n", "vhost.0"},
		{"vhost_delete_controller", "vhost.0"},
		{"vhost_controller_set_coalescing", "vhost.0", "100", "60000"},
		{"bdev_virtio_attach_controller", "VirtioUser0", "-t", "user", "-a", "/tmp/vhost.0", "-d", "blk"},
		{"bdev_virtio_attach_controller", "Virtio1", "--trtype", "pci", "--traddr", "0000:00:04.0", "--dev-type", "scsi",
			"--vq-count", "2", "--vq-size", "256"},
		{"bdev_virtio_detach_controller", "VirtioUser0"},
	})
	usageSame(t, []usageCase{
		{[]string{"vhost_create_blk_controller", "vhost.0"}, 2, "the following arguments are required: dev_name"},
		{[]string{"vhost_controller_set_coalescing", "vhost.0", "1", "x"}, 2, "argument iops_threshold: invalid int value: 'x'"},
		{[]string{"bdev_virtio_attach_controller", "V", "-a", "x"}, 2, "the following arguments are required: -t/--trtype, -d/--dev-type"},
		{[]string{"bdev_virtio_attach_controller", "V", "-t", "tcp", "-a", "x", "-d", "blk"}, 2, "argument -t/--trtype: invalid choice: 'tcp' (choose from 'pci', 'user', 'vfio-user')"},
	})
}

// bdev_virtio_get_controllers is ours (rpc.py has no such command).
func TestVirtioGetControllersParams(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bdev_virtio_get_controllers"}, "Request:\n{\n  \"method\": \"bdev_virtio_get_controllers\",\n  \"params\": null\n}\n"},
		{[]string{"bdev_virtio_get_controllers", "-n", "VirtioUser0"}, "Request:\n{\n  \"method\": \"bdev_virtio_get_controllers\",\n  \"params\": {\n    \"name\": \"VirtioUser0\"\n  }\n}\n"},
	} {
		if got, rc := hpctl(t, "", append([]string{"--dry-run"}, c.args...)...); rc != 0 || got != c.want {
			t.Errorf("%v: rc %d\n%s", c.args, rc, got)
		}
	}
}
