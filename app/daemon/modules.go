package daemon

import (
	"hyperpath/bdev/delay"
	"hyperpath/bdev/errinject"
	"hyperpath/bdev/local"
	"hyperpath/bdev/passthru"
	"hyperpath/bdev/remote"
	"hyperpath/bdev/virtio"
	"hyperpath/nvmf/target"
	"hyperpath/vhost"
)

// registerExtraModules wires the modules that live in their own packages
// beyond malloc and null.
func (d *Daemon) registerExtraModules() {
	d.reg.RegisterModule(local.Module{})
	local.RegisterRPC(d.rpc, d.reg)
	errinject.RegisterRPC(d.rpc, d.reg)
	delay.RegisterRPC(d.rpc, d.reg)
	passthru.RegisterRPC(d.rpc, d.reg)
	d.reg.RegisterModule(virtio.Module{})
	virtio.RegisterRPC(d.rpc, d.reg)
	d.remote = remote.RegisterRPC(d.rpc, d.reg, d.group.Reactors())
}

// registerTargets wires the vhost-user and NVMe-oF targets and their
// save_config sections (SPDK's subsystem names and dependencies).
func (d *Daemon) registerTargets() {
	d.vhost = vhost.NewTarget(vhost.Options{Registry: d.reg, Reactors: d.group.Reactors(),
		SockDir: d.opts.VhostSockDir, Logger: d.log})
	d.rpc.RegisterSubsystem("vhost_blk", []string{"bdev"}, d.vhost.RegisterRPC(d.rpc))
	t, err := target.New(target.Options{Registry: d.reg, Reactors: d.group.Reactors(), Logger: d.log})
	if err != nil {
		d.log.Error("NVMe-oF target disabled", "err", err)
		return
	}
	d.nvmf = t
	d.rpc.RegisterSubsystem("nvmf", []string{"bdev"}, t.RegisterRPC(d.rpc))
}

// stopServices stops the targets before the bdevs go away: guests and
// hosts see their connections close, in-flight IO drains.
func (d *Daemon) stopServices() {
	defer func() {
		if d.remote != nil {
			d.remote.Close() // after the targets: a loopback host drains first
		}
	}()
	if d.vhost != nil {
		d.vhost.Close()
	}
	if d.nvmf != nil {
		if err := d.nvmf.Close(); err != nil {
			d.log.Warn("NVMe-oF target close", "err", err)
		}
	}
}
