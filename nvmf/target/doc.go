// Package target is Hyperpath's NVMe over Fabrics target (SPDK's lib/nvmf
// generic layer): subsystems with namespaces backed by bdevs, host
// allow-lists, listeners and the discovery subsystem; controllers with
// dynamic IDs; the admin command set a fabrics controller needs; the
// Fabrics commands; and the NVM I/O commands mapped onto bdev IOs. It
// implements nvmf.Handler: transports (nvmf/tcp) hand it commands and it
// answers through nvmf.QPair.Complete. RPCs with SPDK's names and replies
// are in rpc.go.
//
// # Who owns what
//
//   - Target and Subsystem configuration (subsystems, namespaces, hosts,
//     listeners, transports) is control plane, guarded by Target.mu. The
//     RPC handlers change it; a Connect reads it.
//   - Each subsystem publishes its namespaces as an immutable table
//     through an atomic pointer: the I/O path loads it without a lock.
//     A namespace's bdev channel for reactor r is created on r on first
//     use and is touched only by r (ns.chans[r.ID()]).
//   - A Controller belongs to the reactor of its admin queue: properties
//     (CC, CSTS), features, Asynchronous Event Requests, the changed
//     namespace list and the keep-alive poller are touched only there;
//     CC and CSTS are atomics so that an I/O queue's Connect on another
//     reactor can check them. The set of I/O queues is guarded by
//     Controller.mu (Connect and disconnect only, never per I/O).
//   - The target's per-queue state (qpair) belongs to its queue's reactor.
//   - Each reactor has a wait list (reactorState) of I/O commands that
//     found their channel's IO pool empty; completions on that reactor
//     retry them.
//
// # Life cycles
//
// Controller: admin Connect (cntlid allocated in [min_cntlid,max_cntlid],
// keep-alive poller started) -> Property Set CC.EN=1 (CSTS.RDY=1) -> I/O
// queue Connects (CNTLID, host NQN and host ID must match) -> ... ->
// CC.EN=0 (reset: I/O queues disconnected, then RDY=0) or CC.SHN (shutdown:
// I/O queues disconnected, then SHST=complete) -> admin queue gone (host
// closed it, keep-alive timeout, subsystem or listener removed): held AERs
// completed, every I/O queue disconnected, cntlid freed.
//
// Namespace: nvmf_subsystem_add_ns opens the bdev (no claim, as SPDK) ->
// the new table is published and every controller gets a Changed Namespace
// notice -> nvmf_subsystem_remove_ns (or the bdev's removal) publishes a
// table without it, notifies, puts each reactor's channel back on that
// reactor and closes the descriptor.
package target
