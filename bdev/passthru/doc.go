// Package passthru is the forwarding base of Hyperpath's stacked bdevs
// (bdev/errinject, bdev/delay) and, built on it, SPDK's passthru bdev: a
// device stacked on a base bdev that forwards every IO unchanged
// (bdev_passthru_create, bdev_passthru_delete).
//
// # The forwarding base
//
// A stacked module embeds Device in its device type and Channel in its
// channel type (the layout of gVisor's link/nested), and keeps only what
// is its own:
//
//   - Device.Open opens the base for writing, claims it under the module's
//     name and copies its geometry into the stacked bdev's Info. Info,
//     Supports (what the base supports), Base and Destroy (close the base
//     descriptor, which releases the claim) are promoted. When the base is
//     removed underneath, BaseEvent unregisters the stacked bdev.
//   - Device.NewChannel, called from the module's NewChannel, gets the
//     base's IOChannel on the same reactor, adds the channel to the
//     device's list (copy-on-write under a mutex: channel creation and
//     close, never per IO) and records the module's channel as the Owner.
//   - Channel.Forward sends an IO to the base as a child from the base
//     channel's pool: the child shares the parent's iovecs, points back
//     to it through Ctx, and the parent completes in the child's callback
//     (Owner.ChildDone decides how and when). An empty base pool bounces
//     the parent with StatusNoMem, which the generic layer retries.
//     Channel.Inflight counts the children at the base.
//   - Channel.Reset runs the module's abort on its own channel, sends it to
//     the other channels (Device.Broadcast), then resets the base or
//     succeeds when the base has no reset.
//   - Configs is the module's record of what its create RPC asked for, so
//     that a bdev whose base is missing appears when the base is
//     registered (Examine) and is forgotten when the bdev is destroyed.
//
// # Threading
//
// A Channel and its Owner belong to one reactor: Submit, ChildDone, the
// messages Broadcast sends and Close run there. Forwarding takes no lock,
// allocates nothing (the completion func is made once per channel;
// messages are package-level funcs with the channel as argument) and
// reads no clock; testing.AllocsPerRun checks it for this package, errinject
// and delay. Device's other methods and Configs are control plane.
//
// # Lifecycle
//
// New (or a module's own constructor) opens and claims the base; the
// stacked bdev is then registered with Device.Register, which also takes
// the callback that runs when the device is destroyed. Unregistering the
// stacked bdev destroys it once its last descriptor closes; channels are
// closed before that, each putting its base channel back by a message
// (Close may run inside the base's completion callback). The module
// (Module.Create, Module.Examine) creates the passthru bdev at once if
// its base exists, else when a bdev of that name is registered, as SPDK
// does.
package passthru
