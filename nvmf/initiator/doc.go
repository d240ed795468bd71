// Package initiator is the host side of NVMe over Fabrics on TCP: it
// connects to a controller (Hyperpath's nvmf/target, SPDK, or the Linux
// kernel's nvmet), brings it up, keeps the association alive, and runs I/O
// queue pairs on reactors with no allocation, lock, goroutine or copy per
// command. bdev/remote builds block devices on it; this package knows
// nothing of bdev.
//
// # Objects and who owns them
//
//   - Ctrlr is one association with a controller. Its exported methods are
//     control plane (any goroutine). It owns a goroutine that waits for
//     connection losses and reconnects.
//   - QPair is one queue pair: the admin queue (on Options.AdminReactor,
//     polled every millisecond, with the keep-alive timer beside it) or an
//     I/O queue (one per reactor of Options.IOReactors, polled every
//     iteration, its socket watched so an adaptive reactor wakes for it).
//     A QPair belongs to its reactor: Submit, the poller and the DoneFunc
//     callbacks all run there. The control goroutine reaches it only
//     through reactor messages.
//   - conn is one TCP connection after ICReq/ICResp. The control goroutine
//     sets it up with blocking steps (connect, ICReq, Fabrics Connect; on
//     the admin queue also Property Get/Set, Identify, Set Features) on a
//     short-lived QPair it drives itself with poll(2), then hands it over
//     to the long-lived QPair on the reactor in a message. Ownership moves
//     with the message; nothing is shared.
//
// # Lifecycle
//
//  1. Connect(ctx, Options): admin queue Connect (host NQN and ID, subsystem
//     NQN, KATO), Property Get CAP and VS, Property Set CC.EN, wait for
//     CSTS.RDY, Identify Controller, the active namespace list, Identify
//     Namespace and the namespace descriptors of each, Set Features Number of
//     Queues; then one I/O queue Connect per reactor with the CNTLID the
//     admin Connect returned.
//  2. Per reactor: Ctrlr.IOQPair(r).Submit(&Cmd{...}); completions arrive in
//     Cmd.Done from the queue pair's poller.
//  3. A lost connection (socket error, C2HTermReq, protocol violation, a
//     Keep Alive unanswered for KATO) on any queue pair resets the whole
//     controller, SPDK style: every connection is dropped, outstanding and
//     new I/O is held, a reconnect runs at once and then every
//     ReconnectDelaySec; held I/O is started again, in order, on the new
//     connections. After FastIOFailTimeoutSec held and new I/O fail with
//     proto.StatusHostPathingError; after CtrlrLossTimeoutSec the controller
//     is given up (Options.OnLost). Reset forces the same sequence.
//  4. Close: CC.SHN normal shutdown, connections closed, everything still
//     held or outstanding fails with proto.StatusAbortedByHost.
//
// Discover reads a discovery controller's log page.
//
// # Data path and zero copy
//
// A command takes a slot of its QPair's pool; the slot index is the CID.
// Its CapsuleCmd header is built in the slot; writes send their data in
// capsule when it fits IOCCSZ, otherwise the controller's R2T is answered
// with H2CData PDUs of at most MAXH2CDATA. Every PDU goes out with writev
// straight from the caller's buffers (header, data iovecs, data digest).
// Reads get their C2HData with readv straight into the caller's buffers:
// between PDUs the receiver reads exactly one 24-byte header (28 with a
// header digest), and while inside a C2HData body it reads the rest of the
// body plus the next header in one readv, so no payload byte lands in an
// intermediate buffer. Only when no command can receive data does it read
// many headers at once (a stream of CapsuleResps and R2Ts).
//
// Bursts of reads are read speculatively: when only reads are outstanding
// and the controller has been answering them whole with SUCCESS set (as
// nvmf/tcp and SPDK do), the next PDUs are guessed to be the C2HData of the
// oldest reads, in the order their commands were sent, and one readv takes
// up to 8 headers with their data (at most 64 KiB) straight into the
// commands' buffers. Each guessed header is checked before its command
// completes; from the first wrong guess on (another order, a split
// C2HData, an error CapsuleResp) the bytes are put back in stream order and
// moved where they belong. Misses halve the guess and, at one PDU, stop
// guessing for the next 64 reads; reads longer than any the controller
// answered whole are not guessed (except at queue depth 1). QPairStats
// counts guessed PDUs, misses, and payload bytes copied (Copied: moved
// after a miss or sent before we asked; 0 with a controller that answers
// in order).
//
// Completion: a CapsuleResp, or the SUCCESS flag of the last C2HData (NVMe/TCP
// 1.0 §3.6.2.9). A command completes only after its own PDUs have left the
// tx queue, so a caller's buffer is never referenced after Done. A data
// digest mismatch fails the command (proto.StatusTransientTransportError),
// not the connection (NVMe/TCP 1.0 §3.5.2); a header digest mismatch or any
// other PDU error sends an H2CTermReq and drops the connection (§3.5.1).
//
// # Wire
//
// The PDUs of one command as this host exchanges them (NVMe/TCP 1.0 §3.6.2;
// the layouts are in nvmf/proto):
//
//	host                                    controller
//	CapsuleCmd [SQE | in-capsule data]  -->
//	                                    <-- R2T (R2TO, R2TL)          write, data not in capsule
//	H2CData (DATAO, DATAL, LAST) ...    -->
//	                                    <-- C2HData (DATAO, DATAL) ... read
//	                                    <-- CapsuleResp [CQE]         or SUCCESS on the last C2HData
package initiator
