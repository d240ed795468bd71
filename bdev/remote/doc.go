// Package remote is the NVMe-oF bdev module (SPDK's bdev_nvme for fabrics):
// bdev_nvme_attach_controller connects to a controller over NVMe/TCP with
// nvmf/initiator and registers one bdev per active namespace, named
// <controller>n<nsid> (Nvme0n1), with the block size and count of Identify
// Namespace, the UUID of the namespace descriptors (or one derived from the
// subsystem, serial number and NSID, stable across restarts), and a
// MaxTransferBlocks that respects the controller's MDTS and the 65536-block
// limit of one command.
//
// # Who owns what
//
//   - Module holds the attached controllers (control plane, a mutex). The
//     RPC handlers, OnLost and Destroy are its only callers.
//   - A Controller wraps one initiator.Ctrlr and the Disks built on it.
//     The initiator runs one I/O queue pair per reactor (the shared qpair
//     set): every namespace bdev of the controller that has a channel on
//     reactor r submits to the controller's queue pair on r, so a reactor
//     talks to a controller over exactly one TCP connection however many
//     namespaces it uses. A reactor beyond the I/O queues the controller
//     granted (or num_io_queues) cannot open a channel.
//   - A channel (per Disk and reactor) is touched only by its reactor. It
//     turns bdev IOs into initiator commands and NVMe completions into bdev
//     statuses; it allocates nothing per IO. Write zeroes and unmaps larger
//     than one command are sent as consecutive commands (io.DriverCtx counts
//     the blocks done); reads, writes and compares are split beforehand by
//     the generic layer on MaxTransferBlocks.
//
// # Status mapping
//
// NVMe success is StatusSuccess; Compare Failure is StatusMiscompare;
// commands aborted by the host (controller detached or lost) or by SQ
// deletion are StatusAborted; everything else, path errors included, is
// StatusFailed. A full queue pair is StatusNoMem, which the generic layer
// retries. While the controller reconnects, IO is held by the initiator
// (reconnect_delay_sec, fast_io_fail_timeout_sec, ctrlr_loss_timeout_sec as
// SPDK); a controller given up after ctrlr_loss_timeout_sec has its bdevs
// unregistered, as SPDK deletes them.
//
// # Lifecycle
//
// Attach: connect (blocking, on the RPC goroutine) -> register the bdevs ->
// save_config writes one bdev_nvme_attach_controller per controller (from
// the bdev of its first namespace). Detach: unregister the bdevs, wait for
// their last descriptors, then close the controller (CC.SHN shutdown). A
// controller whose bdevs all went away by other means (daemon shutdown) is
// closed too; Module.Close closes whatever is left.
//
// bdev IOReset resets the controller (every connection dropped and
// re-established; held IO is started again) and completes when the first
// reconnect attempt finished.
package remote
