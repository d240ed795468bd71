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
// # Receive path
//
// Each PDU is received in stages: the 8-byte common header, then the rest
// of the header together with, for a CapsuleCmd, the padding, the
// in-capsule data (into the request slot's data buffer) and the data
// digest; for an H2CData PDU the padding, the data (into the request's
// buffer at DATAO, after the header was checked against its R2T: TTAG,
// CCCID, DATAO, DATAL) and the digest. proto.Parser validates every
// header.
//
// A stage is filled from the connection's 16 KiB receive pipe first; when
// the pipe is empty, one readv(2) takes the rest of the stage straight into
// place and then as much as the pipe holds. A burst of commands therefore
// costs one readv, not one per command. Payload bytes that arrive in the
// pipe behind an earlier PDU are copied out of it (counted per connection);
// payload that does not fit there is read in place, so only in-capsule
// data (at most in_capsule_data_size per command) is ever copied.
//
//	stage   segments filled by one readv (or from the pipe), then the pipe
//	rxCH    hdr[0:8]
//	rxHdr   hdr[8:HLEN+HDGST] [PAD] [in-capsule data] [DDGST]   (CapsuleCmd)
//	        hdr[8:HLEN+HDGST]                                   (H2CData, ICReq)
//	rxData  [PAD] data -> req.Data[DATAO:] [DDGST]              (H2CData)
//
// One poll of a connection starts at most 8 commands (the rest wait in the
// pipe, and the poll group vetoes the reactor's sleep), and Complete writes
// the queued responses as soon as 8 of them wait: small batches let the
// host work on the first responses of a burst while the target still
// executes the rest, rather than host and target taking turns.
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
