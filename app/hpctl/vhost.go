package main

// The vhost and virtio initiator commands of rpc.py's
// python/spdk/cli/vhost.py (arguments declared with pyArgs, see bdev.go).
func init() {
	register(
		cmd("vhost_controller_set_coalescing", "Set vhost controller coalescing", nil, func(p *pyArgs) func() (any, error) {
			p.pos("ctrlr", argStr, "Name of the vhost controller")
			p.pos("delay_base_us", argInt, "Base coalescing delay in microseconds")
			p.pos("iops_threshold", argInt, "IOPS threshold above which coalescing kicks in (must be > 0)")
			return func() (any, error) { return p.params("ctrlr", "delay_base_us", "iops_threshold"), nil }
		}),
		cmd("vhost_create_blk_controller", "Add a new vhost block controller", nil, func(p *pyArgs) func() (any, error) {
			p.pos("ctrlr", argStr, "Name of the vhost controller")
			p.pos("dev_name", argStr, "Name of the bdev to expose as the block device")
			p.flag("cpumask", "cpumask", argStr, "CPU mask for the controller's threads")
			p.flag("transport", "transport", argStr, "virtio blk transport name (default: vhost_user_blk)")
			p.flag("readonly", "r,readonly", argStoreTrue, "Expose the block device as read-only. Default: false")
			p.flag("packed_ring", "p,packed-ring", argStoreTrue, "Set controller as packed ring supported")
			// rpc.py sends strip_globals(vars(args)): every argument, in
			// declaration order.
			return func() (any, error) { return finish(p.all()), nil }
		}),
		cmd("vhost_get_controllers", "List all or specific vhost controller(s)", PrintDict, func(p *pyArgs) func() (any, error) {
			p.flag("name", "n,name", argStr, "Name of a specific vhost controller to query. Default: list all")
			return func() (any, error) { return p.params("name"), nil }
		}),
		nameOnly("vhost_delete_controller", "Delete a vhost controller", "ctrlr", "Name of the vhost controller"),

		cmd("bdev_virtio_attach_controller", "Attach virtio controller using provided transport type and device type; creates bdevs for the block devices behind it and prints their names", PrintArray, func(p *pyArgs) func() (any, error) {
			p.pos("name", argStr, "Prefix used to name the resulting bdev(s)")
			p.choice("trtype", "t,trtype", argStr, "Virtio transport type", "pci", "user", "vfio-user").req()
			p.flag("traddr", "a,traddr", argStr, "Transport-specific address (PCI BDF for pci; UNIX socket path for user and vfio-user)").req()
			p.choice("dev_type", "d,dev-type", argStr, "Virtio device type", "blk", "scsi").req()
			p.flag("vq_count", "vq-count", argInt, "Number of virtqueues (user transport only). Default: 1")
			p.flag("vq_size", "vq-size", argInt, "Entries per virtqueue, must be a power of 2 (user transport only). Default: 512")
			// Hyperpath's: rpc.py has no reconnect options for virtio.
			p.flag("ctrlr_loss_timeout_sec", "ctrlr-loss-timeout-sec", argInt, "Seconds to keep reconnecting after the back end is lost before deleting the bdev. -1 means for ever, 0 (default) means no reconnect (Hyperpath)").extension()
			p.flag("reconnect_delay_sec", "reconnect-delay-sec", argInt, "Seconds between reconnect attempts; required with ctrlr-loss-timeout-sec (Hyperpath)").extension()
			p.flag("fast_io_fail_timeout_sec", "fast-io-fail-timeout-sec", argInt, "Seconds after the loss until held IO fails while reconnecting goes on; 0 (default) holds IO until the controller is back or deleted (Hyperpath)").extension()
			return func() (any, error) {
				return p.params("name", "trtype", "traddr", "dev_type", "vq_count", "vq_size",
					"ctrlr_loss_timeout_sec", "reconnect_delay_sec", "fast_io_fail_timeout_sec"), nil
			}
		}),
		nameOnly("bdev_virtio_detach_controller", "Remove a Virtio device; this deletes all bdevs exposed by this device", "name", `Name of the virtio bdev (e.g. "VirtioUser0")`),
		// rpc.py has no command to list virtio initiator controllers; this
		// one is Hyperpath's, shaped like bdev_nvme_get_controllers.
		cmd("bdev_virtio_get_controllers", "Display the virtio initiator controllers, or the named one (Hyperpath; not in rpc.py)", PrintDict, func(p *pyArgs) func() (any, error) {
			p.flag("name", "n,name", argStr, "Name of the virtio controller. Example: VirtioUser0")
			return func() (any, error) { return p.params("name"), nil }
		}),
	)
}
