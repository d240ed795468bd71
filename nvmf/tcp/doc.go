// Package tcp is the NVMe/TCP transport of Hyperpath's NVMe-oF target
// (NVMe/TCP 1.0): listeners, per-reactor poll groups and one connection
// state machine per queue pair, all on non-blocking sockets driven by
// syscalls from the reactors. There is no goroutine per connection and no
// allocation per command.
//
// # Threading
//
// Listen, StopListen and Close are control plane (any goroutine). Accept
// runs on the acceptor reactor (a timed poller the target registers): it
// accepts every pending socket and hands each, by a message, to the next
// poll group in round-robin order. A PollGroup belongs to one reactor: it
// keeps an edge-triggered epoll instance over its sockets (the reactor
// watches that epoll fd, so an adaptive reactor sleeps until a socket is
// ready) and polls its connections every iteration. A connection, its
// request slots and their buffers are touched only by that reactor.
//
// # Receive path (no payload copy)
//
// Each PDU is read in stages with readv(2) straight into where its bytes
// belong: the 8-byte common header, then the rest of the header; for a
// CapsuleCmd the padding, the in-capsule data (into the request slot's data
// buffer) and the data digest come in the same readv, and so do the first 8
// bytes of the next PDU, so a stream of commands costs about one readv per
// command. proto.Parser validates every header; an H2CData header is
// checked against its R2T (TTAG, CCCID, DATAO, DATAL) before its data is
// read into the request's buffer at DATAO.
//
//	stage   segments read by one readv
//	rxCH    hdr[k:8]
//	rxHdr   hdr[8:HLEN+HDGST] [PAD] [in-capsule data] [DDGST] [next CH]   (CapsuleCmd)
//	        hdr[8:HLEN+HDGST]                                             (H2CData, ICReq)
//	rxData  [PAD] data -> req.Data[DATAO:] [DDGST] [next CH]              (H2CData)
//
// # Transmit path
//
// Responses are queued as txItems whose segments point at the request's
// header buffers and its data buffer; flush gathers up to 64 segments into
// one writev. A read completes as one C2HData PDU (with SUCCESS and no
// CapsuleResp when c2h_success is set). Writes larger than the in-capsule
// size get one R2T for the whole transfer.
//
// # Errors
//
// A malformed PDU header is answered with a C2HTermReq carrying the FES and
// FEI from the parser (or the transport's own checks), after which the
// connection closes; only that connection is affected. A data digest
// mismatch fails the command with Transient Transport Error (NVMe/TCP 1.0
// §3.5.2). SGL problems fail the command with the matching NVMe status.
//
// # Request slots
//
// Each connection has max(max_queue_depth, max_aq_depth) slots; a slot's
// data buffer grows to the largest transfer it has carried and is then
// reused, so the steady state allocates nothing. When the host has more
// commands in flight than slots, reading stops until a slot frees.
package tcp
