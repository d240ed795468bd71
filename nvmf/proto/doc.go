// Package proto is the NVMe over Fabrics wire layer of Hyperpath: the NVMe
// submission and completion queue entries and SGL descriptors, the Fabrics
// commands (Connect, Property Get/Set, Disconnect, Authentication), the
// controller properties, the Identify data structures, the log pages
// (Error, SMART/Health, Firmware Slot, Changed Namespace List, Discovery),
// Features and Dataset Management ranges, and the NVMe/TCP PDUs with an
// incremental header parser and CRC32C digests. nvmf/tcp, nvmf/rdma,
// nvmf/target and nvmf/initiator build on it; it imports nothing of the
// project.
//
// # Ownership and threading
//
// The package holds no state of its own (the CRC32C table is computed once
// and only read). Every Encode/Decode works on caller-owned buffers and
// keeps no reference to them after it returns; values such as SQE, CQE and
// PDUHeader are plain structs the caller owns and may copy. A Parser belongs
// to one NVMe/TCP connection and is used only by the reactor that polls that
// connection's socket; it is not safe for concurrent use and needs no lock.
//
// # Invariants
//
//   - Nothing on the I/O path allocates: SQE, CQE, SGL, RW/DSM command views,
//     DSM ranges, every NVMe/TCP PDU encoder, Parser.Parse on a valid header
//     and the CRC32C helpers (checked with testing.AllocsPerRun). Control
//     path decoders that return strings (Connect data, Identify, Discovery)
//     allocate those strings.
//   - Bytes from a peer never cause a panic: every decoder checks lengths
//     first. Errors name the structure, the field and its byte offset
//     (*FieldError), or carry the Fatal Error Status and Fatal Error
//     Information an NVMe/TCP TermReq needs (*PDUError). A failing decoder
//     leaves its result zeroed.
//   - Status values on the data path are the value type Status, never error.
//   - SQE and CQE Decode followed by Encode reproduce the input bytes.
//
// # Wire formats
//
// All multi-byte fields are little endian. Each type documents its layout
// next to its fields; the overview:
//
//	structure               size   type            specification
//	SQE (command)             64   SQE             NVMe Base 2.3 §4.1.1, §4.1.2
//	CQE (response)            16   CQE, Status     NVMe Base 2.3 §4.2.1-§4.2.3
//	SGL descriptor            16   SGL             NVMe Base 2.3 §4.3.2; NVMe/TCP 1.0 §3.3.2
//	Connect command           64   ConnectCmd      NVMe Base 2.3 §6.3, Figure 579
//	Connect data            1024   ConnectData     NVMe Base 2.3 §6.3, Figure 580
//	Property Get/Set          64   PropertyCmd     NVMe Base 2.3 §6.5, §6.6
//	CAP, VS, CC, CSTS        8/4   CAP, VS, CC...  NVMe Base 2.3 §3.1.4
//	Identify Controller     4096   IdentifyController  NVMe Base 2.3 §5.2.13.2.1
//	Identify Namespace      4096   IdentifyNamespace   NVM Command Set 1.0
//	Namespace List          4096   EncodeNSList    NVMe Base 2.3 §4.6.2, §5.2.13.2.2
//	NS Identification Desc  4096   NSDescriptors   NVMe Base 2.3 §5.2.13.2.3
//	Get Log Page              64   GetLogPageCmd   NVMe Base 2.3 §5.2.12
//	Error Information         64   ErrorLogEntry   NVMe Base 2.3 §5.2.12.1.2
//	SMART / Health           512   HealthLog       NVMe Base 2.3 §5.2.12.1.3
//	Firmware Slot            512   FirmwareSlotLog NVMe Base 2.3 §5.2.12.1.4
//	Changed NS List         4096   EncodeChangedNSList  NVMe Base 2.3 §5.2.12.1.5
//	Discovery log     1024+1024n   DiscoveryLogHeader, DiscoveryEntry  §5.2.12.3.3
//	Get/Set Features          64   FeaturesCmd     NVMe Base 2.3 §5.2.11, §5.2.26
//	DSM range                 16   DSMRange        NVM Command Set 1.0, Dataset Management command
//	NVMe/TCP PDUs              -   see below       NVMe/TCP 1.0 §3.6.2
//
// An NVMe/TCP PDU (NVMe/TCP 1.0 §2, Figure 3; §3.6.2.1, Figure 19):
//
//	+------------------------------------+--------+-----+------+--------+
//	| header: CH (8) + PSH (HLEN - 8)    | HDGST  | PAD | DATA | DDGST  |
//	+------------------------------------+--------+-----+------+--------+
//	0                                   HLEN           PDO            PLEN
//
//	CH:  0 PDU-Type | 1 FLAGS | 2 HLEN | 3 PDO | 4-7 PLEN
//
// HDGST and DDGST are present when negotiated in ICReq/ICResp (§3.3.1.1)
// and flagged by HDGSTF/DDGSTF; PAD aligns DATA to the receiver's PDA (§3.3).
//
// # Using the NVMe/TCP parser
//
//	p, _ := proto.NewParser(proto.ParserOptions{Role: proto.RoleController,
//		MaxInCapsuleData: 8192, MaxH2CData: 128 << 10})
//	var h proto.PDUHeader
//	n, err := p.Parse(rx[:have], &h)
//	switch {
//	case err != nil: // *PDUError: send a C2HTermReq (EncodeTermReq) unless NoReply, close
//	case n > have:   // read until n bytes are at hand, then Parse again
//	default:         // h is valid; skip h.PadLen(), place h.DataLen bytes, check DDGST
//	}
//
// After the ICReq/ICResp exchange, call p.Negotiated(digests, pda).
package proto
