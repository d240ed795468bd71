package daemon

import (
	"hyperpath/bdev/delay"
	"hyperpath/bdev/errinject"
	"hyperpath/bdev/local"
)

// registerExtraModules wires the modules that live in their own packages
// beyond malloc and null.
func (d *Daemon) registerExtraModules() {
	d.reg.RegisterModule(local.Module{})
	local.RegisterRPC(d.rpc, d.reg)
	errinject.RegisterRPC(d.rpc, d.reg)
	delay.RegisterRPC(d.rpc, d.reg)
}

// registerTargets wires the vhost-user and NVMe-oF targets and their
// save_config sections.
func (d *Daemon) registerTargets() {}

// stopServices stops the targets before the bdevs go away.
func (d *Daemon) stopServices() {}
