// Package nvmf holds the transport-neutral core of Hyperpath's NVMe over
// Fabrics target: the Transport, PollGroup and QPair interfaces that
// transports (nvmf/tcp, later nvmf/rdma) implement, the Handler interface the
// target (nvmf/target) implements, and the Request that travels between them.
// It follows SPDK's split between lib/nvmf's generic layer and its transport
// ops (spdk_nvmf_transport_ops).
//
// # Who owns what
//
//   - A Transport is shared; its control-plane methods (Listen, StopListen,
//     NewPollGroup, Close) may be called from any goroutine, never from a
//     reactor. Accept runs on one reactor, the acceptor, from a timed poller
//     the target registers.
//   - A PollGroup belongs to one reactor and is polled by one poller there.
//     It owns the connections (QPairs) handed to it; every QPair method is
//     called on that reactor only.
//   - A Request belongs to its QPair's pool. The transport fills it with a
//     command (and, for host-to-controller transfers, its data) and hands
//     it to Handler.Exec. From then on the target owns it until it calls
//     QPair.Complete; after Complete the transport owns it again and may
//     reuse it at once.
//
// # Request life cycle
//
//  1. The transport receives a command capsule, takes a free Request,
//     decodes the SQE, checks the SGL and gets a data buffer of the SGL
//     length (Data). For host-to-controller commands it receives the data
//     first (in-capsule, or R2T/H2CData on TCP).
//  2. Handler.Exec(req) runs on the QPair's reactor. It must not block.
//  3. The target fills req.Rsp (Status, DW0, DW1), sets req.Length to the
//     bytes to return for controller-to-host commands, and calls
//     req.QPair.Complete(req), inside Exec or later on the same reactor.
//  4. The transport sends the data (controller to host) and the response,
//     then recycles the Request.
//
// # QPair life cycle
//
// New connection -> Handler.Exec(Connect) -> QPair.Connected(qid, sqsize)
// and QPair.SetCtx (the target's per-queue state) -> commands -> either side
// closes: the transport stops receiving and calls Handler.QPairDisconnected
// once; the target then completes every request it still holds (responses
// are dropped) and forgets the QPair; the transport frees it when the last
// request is back.
package nvmf
