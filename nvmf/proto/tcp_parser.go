package proto

import (
	"encoding/binary"
	"errors"
)

// Role says which end of an NVMe/TCP connection a Parser serves.
type Role uint8

const (
	// RoleController receives host to controller PDUs: ICReq, H2CTermReq,
	// CapsuleCmd, H2CData.
	RoleController Role = iota + 1
	// RoleHost receives controller to host PDUs: ICResp, C2HTermReq,
	// CapsuleResp, C2HData, R2T.
	RoleHost
)

// ParserOptions configures a Parser.
type ParserOptions struct {
	Role Role

	// MaxInCapsuleData is the most in-capsule data a controller accepts in
	// one CapsuleCmd: at least 8192 on the admin queue (NVMe/TCP 1.0 §3.3,
	// Figure 11; the Linux host sends Connect data in capsule), IOCCSZ*16-64
	// on I/O queues, but no less than the 1024 bytes of Connect data if the
	// host may send it in capsule. Controller only.
	MaxInCapsuleData uint32
	// MaxH2CData is the MAXH2CDATA the controller advertises in ICResp: a
	// multiple of 4, at least 4096. Controller only.
	MaxH2CData uint32

	// RequestedDigests are the digests the host asked for in its ICReq; an
	// ICResp enabling any other is an error (§3.3.1.1). Host only.
	RequestedDigests Digest
	// MaxC2HData bounds the data of one C2HData PDU; 0 means no bound (the
	// transport still checks it against the command). Host only.
	MaxC2HData uint32
}

// Parser validates NVMe/TCP PDU headers as they arrive on a byte stream.
// It checks the common header against the PDU type and the negotiated
// connection parameters as soon as its 8 bytes are present, tells how many
// header bytes are needed, then checks the header digest and the PDU
// specific header. It never touches PDU data: the caller places data
// wherever it belongs (zero copy) and verifies the data digest itself.
//
// A Parser belongs to one connection and is used by the one reactor that
// polls that connection; it is not safe for concurrent use. Parse allocates
// nothing unless it reports an error, which is fatal to the connection.
//
// Lifecycle:
//  1. NewParser. Until Negotiated, only ICReq (controller) or ICResp (host)
//     and termination requests are accepted.
//  2. Parse the ICReq/ICResp; the controller answers with its ICResp.
//  3. Negotiated with the digests both sides enabled and the PDA of the
//     receiving side (the CPDA the controller sent, or the HPDA the host
//     sent). From then on IC PDUs are sequence errors.
//  4. Parse every following PDU header; on error send a TermReq built from
//     the *PDUError (unless NoReply) and close.
type Parser struct {
	opts       ParserOptions
	negotiated bool
	digests    Digest
	align      uint32
}

// NewParser returns a Parser for one connection.
func NewParser(opts ParserOptions) (*Parser, error) {
	switch opts.Role {
	case RoleController:
		if opts.MaxH2CData < MinMaxH2CData || opts.MaxH2CData%4 != 0 {
			return nil, errors.New("nvmf/proto: ParserOptions.MaxH2CData must be a multiple of 4 and at least 4096")
		}
	case RoleHost:
		if opts.RequestedDigests&^(DigestHeader|DigestData) != 0 {
			return nil, errors.New("nvmf/proto: ParserOptions.RequestedDigests has undefined bits")
		}
	default:
		return nil, errors.New("nvmf/proto: ParserOptions.Role must be RoleController or RoleHost")
	}
	return &Parser{opts: opts, align: 4}, nil
}

// Negotiated ends connection setup: digests are those enabled in both ICReq
// and ICResp, pda the PDU data alignment this side asked for (0..31).
func (p *Parser) Negotiated(digests Digest, pda uint8) error {
	if digests&^(DigestHeader|DigestData) != 0 {
		return errors.New("nvmf/proto: undefined digest bits")
	}
	if pda > MaxPDA {
		return errors.New("nvmf/proto: PDA above 31")
	}
	p.negotiated, p.digests, p.align = true, digests, uint32(PDAAlign(pda))
	return nil
}

// SetMaxInCapsuleData changes the in-capsule data limit of a controller's
// parser, for example to IOCCSZ*16-64 once Connect has shown the connection
// is an I/O queue.
func (p *Parser) SetMaxInCapsuleData(n uint32) { p.opts.MaxInCapsuleData = n }

// IsNegotiated reports whether Negotiated has been called.
func (p *Parser) IsNegotiated() bool { return p.negotiated }

// PDUHeader is a validated PDU header. The common header fields are always
// set; of the PDU specific fields only those of Type are.
//
// A PDU occupies PLen bytes of the stream: HeaderLen bytes of header and
// header digest, PadLen() bytes of padding, DataLen bytes of data starting
// at DataOffset, and a 4-byte data digest if DataDigest.
type PDUHeader struct {
	Type  PDUType
	Flags PDUFlags
	HLen  uint8
	PDO   uint8
	PLen  uint32

	HeaderLen  int  // HLEN plus the header digest: what Parse consumed
	DataOffset int  // offset of the data from the PDU start (PDO; HLEN for TermReqs); 0 without data
	DataLen    int  // data bytes, without padding and data digest
	DataDigest bool // a DDGST follows the data

	// ICReq and ICResp.
	PFV     uint16
	PDA     uint8  // HPDA (ICReq) or CPDA (ICResp)
	Digests Digest // DGST
	MaxData uint32 // MAXR2T (ICReq, 0's based) or MAXH2CDATA (ICResp)

	// H2CTermReq and C2HTermReq; the data is the offending PDU header.
	FES FES
	FEI uint32

	// CapsuleCmd and CapsuleResp.
	SQE SQE
	CQE CQE

	// H2CData, C2HData (DATAO, DATAL) and R2T (R2TO, R2TL).
	CCCID  uint16
	TTag   uint16 // H2CData, R2T
	Offset uint32
	Length uint32
}

// PadLen returns the number of padding bytes between the header (and its
// digest) and the data.
func (h *PDUHeader) PadLen() int {
	if h.DataLen == 0 {
		return 0
	}
	return h.DataOffset - h.HeaderLen
}

// Last reports LAST_PDU of an H2CData or C2HData PDU (false for other
// types, where the bit is reserved).
func (h *PDUHeader) Last() bool {
	return (h.Type == PDUH2CData || h.Type == PDUC2HData) && h.Flags&FlagLastPDU != 0
}

// Success reports SUCCESS of a C2HData PDU.
func (h *PDUHeader) Success() bool { return h.Type == PDUC2HData && h.Flags&FlagSuccess != 0 }

// pduKind describes what a PDU type may carry.
type pduKind struct {
	hlen    uint8
	hdgst   bool // defines HDGSTF
	data    bool // may carry data: defines PDO and DDGSTF
	ic      bool
	termReq bool
}

var pduKinds = [...]pduKind{
	PDUICReq:       {hlen: ICLen, ic: true},
	PDUICResp:      {hlen: ICLen, ic: true},
	PDUH2CTermReq:  {hlen: TermReqHLen, termReq: true},
	PDUC2HTermReq:  {hlen: TermReqHLen, termReq: true},
	PDUCapsuleCmd:  {hlen: CapsuleCmdHLen, hdgst: true, data: true},
	PDUCapsuleResp: {hlen: CapsuleRespHLen, hdgst: true},
	PDUH2CData:     {hlen: DataHLen, hdgst: true, data: true},
	PDUC2HData:     {hlen: DataHLen, hdgst: true, data: true},
	PDUR2T:         {hlen: R2THLen, hdgst: true},
}

// Byte offsets of the common header fields (NVMe/TCP 1.0 §3.6.2.1).
const (
	chOffType  = 0
	chOffFlags = 1
	chOffHLen  = 2
	chOffPDO   = 3
	chOffPLen  = 4
)

// layout is what the common header says about a PDU.
type layout struct {
	t          PDUType
	flags      PDUFlags
	hlen, pdo  uint8
	plen       uint32
	headerLen  int
	dataOffset int
	dataLen    int
	ddgst      bool
}

// Parse looks at b, which starts at a PDU boundary and holds the bytes
// received so far. It returns:
//
//   - n > len(b), nil: at least n bytes are needed before the header can
//     be parsed (8 until the common header is complete, then HLEN plus the
//     header digest). h is zeroed.
//   - n <= len(b), nil: h holds the validated header, which is b[:n]
//     (n == h.HeaderLen); padding, data and data digest follow.
//   - 0, *PDUError: a fatal transport error. h is zeroed.
//
// Fields are checked in order of their offsets, so FEI names the lowest
// offending field as the specification asks (NVMe/TCP 1.0 §3.6.2.4).
func (p *Parser) Parse(b []byte, h *PDUHeader) (int, error) {
	*h = PDUHeader{}
	if len(b) < CommonHeaderLen {
		return CommonHeaderLen, nil
	}
	var l layout
	if err := p.checkCommon(b, &l); err != nil {
		return 0, err
	}
	if len(b) < l.headerLen {
		return l.headerLen, nil
	}
	if err := p.checkSpecific(b, &l, h); err != nil {
		*h = PDUHeader{}
		return 0, err
	}
	return l.headerLen, nil
}

// checkCommon validates the 8-byte common header (NVMe/TCP 1.0 §3.6.2.1)
// against the PDU type, the connection phase and the negotiated parameters.
func (p *Parser) checkCommon(b []byte, l *layout) error {
	l.t = PDUType(b[chOffType])
	l.flags = PDUFlags(b[chOffFlags])
	l.hlen = b[chOffHLen]
	l.pdo = b[chOffPDO]
	l.plen = binary.LittleEndian.Uint32(b[chOffPLen:])
	t := l.t

	// PDU-Type: known, and travelling in our receive direction (§3.3,
	// Figure 10: a PDU in the wrong direction is a fatal error).
	if int(t) >= len(pduKinds) || pduKinds[t].hlen == 0 {
		return pduInvalid(t, chOffType, "PDU-Type", "unknown PDU type")
	}
	k := pduKinds[t]
	if t.C2H() != (p.opts.Role == RoleHost) {
		return pduInvalid(t, chOffType, "PDU-Type", "PDU type of the opposite direction")
	}

	// Termination requests: no digests, HLEN 24, PLEN 24..152 (§3.6.2.4,
	// §3.6.2.5). A malformed one is ignored and the connection terminated
	// immediately (§3.5.1); a valid one ends the connection too, so no
	// TermReq is ever sent back.
	if k.termReq {
		if l.hlen != TermReqHLen {
			return &PDUError{Type: t, Field: "HLEN", Reason: "termination request with HLEN other than 24", NoReply: true}
		}
		if l.plen < TermReqHLen || l.plen > MaxTermReqPLen {
			return &PDUError{Type: t, Field: "PLEN", Reason: "termination request PLEN outside 24..152", NoReply: true}
		}
		l.headerLen = TermReqHLen
		l.dataLen = int(l.plen) - TermReqHLen
		if l.dataLen > 0 {
			l.dataOffset = TermReqHLen
		}
		return nil
	}

	// Connection phase: ICReq/ICResp first, and only once (§3.1).
	if k.ic == p.negotiated {
		reason := "PDU before connection initialization"
		if k.ic {
			reason = "initialize connection PDU after initialization"
		}
		return &PDUError{FES: FESSequenceError, Type: t, Field: "PDU-Type", Reason: reason}
	}

	// FLAGS (§3.3.1.1): HDGSTF exactly when header digests are enabled,
	// DDGSTF never when data digests are disabled, SUCCESS only with
	// LAST_PDU (§3.3.2.1). Reserved bits are not checked (NVMe Base 2.3
	// §1.4.1.6 allows the recipient to ignore them).
	hdgst := false
	if k.hdgst {
		hdgst = l.flags&FlagHDGST != 0
		if hdgst != (p.digests&DigestHeader != 0) {
			return pduInvalid(t, chOffFlags, "FLAGS", "HDGSTF does not match the negotiated header digest")
		}
	}
	if k.data {
		l.ddgst = l.flags&FlagDDGST != 0
		if l.ddgst && p.digests&DigestData == 0 {
			return pduInvalid(t, chOffFlags, "FLAGS", "DDGSTF set but data digests are disabled")
		}
	}
	if t == PDUC2HData && l.flags&(FlagSuccess|FlagLastPDU) == FlagSuccess {
		return pduInvalid(t, chOffFlags, "FLAGS", "SUCCESS without LAST_PDU")
	}

	// HLEN is fixed per type.
	if l.hlen != k.hlen {
		return pduInvalid(t, chOffHLen, "HLEN", "wrong header length for the PDU type")
	}
	l.headerLen = int(l.hlen)
	if hdgst {
		l.headerLen += DigestLen
	}

	// PDO (data carrying types only; reserved elsewhere): 0 or PLEN without
	// data, otherwise past the header digest, within PLEN and a multiple of
	// the PDA this side asked for (§3.3, §3.6.2.6, §3.6.2.8, §3.6.2.9).
	hasData := l.plen > uint32(l.headerLen)
	if k.data {
		pdo := uint32(l.pdo)
		if hasData {
			if pdo < uint32(l.headerLen) || pdo > l.plen || pdo%p.align != 0 {
				return pduInvalid(t, chOffPDO, "PDO", "data offset not past the header, beyond PLEN or misaligned")
			}
		} else if pdo != 0 && pdo != l.plen {
			return pduInvalid(t, chOffPDO, "PDO", "data offset set on a PDU without data")
		}
	}

	// PLEN.
	switch {
	case k.ic:
		if l.plen != ICLen {
			return pduInvalid(t, chOffPLen, "PLEN", "initialize connection PDU length is not 128")
		}
	case !k.data:
		if l.plen != uint32(l.headerLen) {
			return pduInvalid(t, chOffPLen, "PLEN", "length differs from header plus header digest")
		}
	case !hasData:
		if l.plen < uint32(l.headerLen) {
			return pduInvalid(t, chOffPLen, "PLEN", "shorter than the header")
		}
		if l.ddgst {
			return pduInvalid(t, chOffPLen, "PLEN", "DDGSTF set on a PDU without data")
		}
	default:
		room := l.plen - uint32(l.pdo)
		dd := uint32(0)
		if l.ddgst {
			dd = DigestLen
		}
		if room <= dd {
			return pduInvalid(t, chOffPLen, "PLEN", "no data between PDO and the end of the PDU")
		}
		if !l.ddgst && p.digests&DigestData != 0 {
			return pduInvalid(t, chOffFlags, "FLAGS", "DDGSTF clear on a PDU with data while data digests are enabled")
		}
		n := room - dd
		switch t {
		case PDUCapsuleCmd:
			if n > p.opts.MaxInCapsuleData {
				return pduInvalid(t, chOffPLen, "PLEN", "in-capsule data exceeds the capsule size")
			}
		case PDUH2CData:
			// §3.3.2.2: longer than MAXH2CDATA is "Data Transfer Limit Exceeded".
			if n > p.opts.MaxH2CData {
				return &PDUError{FES: FESDataLimitExceeded, Type: t, Field: "PLEN", Reason: "H2CData longer than MAXH2CDATA"}
			}
		case PDUC2HData:
			if p.opts.MaxC2HData != 0 && n > p.opts.MaxC2HData {
				return pduInvalid(t, chOffPLen, "PLEN", "C2HData longer than this host accepts")
			}
		}
		l.dataOffset = int(l.pdo)
		l.dataLen = int(n)
	}
	return nil
}

// checkSpecific verifies the header digest and validates the PDU specific
// header; b holds at least l.headerLen bytes.
func (p *Parser) checkSpecific(b []byte, l *layout, h *PDUHeader) error {
	t := l.t
	hlen := int(l.hlen)
	if l.headerLen > hlen {
		got := GetDigest(b[hlen:])
		if CRC32C(b[:hlen]) != got {
			return &PDUError{FES: FESHeaderDigestError, FEI: got, Type: t, Field: "HDGST", Reason: "header digest mismatch"}
		}
	}
	le := binary.LittleEndian
	switch t {
	case PDUICReq, PDUICResp:
		h.PFV = le.Uint16(b[ICOffPFV:])
		h.PDA = b[ICOffPDA]
		h.Digests = Digest(b[ICOffDGST]) & (DigestHeader | DigestData) // bits 7:2 reserved
		h.MaxData = le.Uint32(b[ICOffMaxData:])
		if h.PFV != PFV10 {
			return pduInvalid(t, ICOffPFV, "PFV", "unknown PDU format version")
		}
		if h.PDA > MaxPDA {
			return pduInvalid(t, ICOffPDA, "PDA", "PDU data alignment above 31")
		}
		if t == PDUICResp {
			if h.Digests&^p.opts.RequestedDigests != 0 {
				return pduInvalid(t, ICOffDGST, "DGST", "digest enabled that the host did not request")
			}
			if h.MaxData < MinMaxH2CData || h.MaxData%4 != 0 {
				return pduInvalid(t, ICOffMaxData, "MAXH2CDATA", "not a multiple of 4 of at least 4096")
			}
		}
	case PDUH2CTermReq, PDUC2HTermReq:
		h.FES = FES(le.Uint16(b[8:]))
		h.FEI = le.Uint32(b[10:])
	case PDUCapsuleCmd:
		_ = h.SQE.Decode(b[CommonHeaderLen:])
	case PDUCapsuleResp:
		_ = h.CQE.Decode(b[CommonHeaderLen:])
	case PDUH2CData, PDUC2HData, PDUR2T:
		h.CCCID = le.Uint16(b[DataPDUOffCCCID:])
		if t != PDUC2HData {
			h.TTag = le.Uint16(b[DataPDUOffTTAG:])
		}
		h.Offset = le.Uint32(b[DataPDUOffDATAO:])
		h.Length = le.Uint32(b[DataPDUOffDATAL:])
		if h.Length == 0 {
			return pduInvalid(t, DataPDUOffDATAL, "DATAL", "zero length")
		}
		if t != PDUR2T && h.Length != uint32(l.dataLen) {
			return pduInvalid(t, DataPDUOffDATAL, "DATAL", "differs from the data length PLEN and PDO give")
		}
	}
	h.Type, h.Flags, h.HLen, h.PDO, h.PLen = t, l.flags, l.hlen, l.pdo, l.plen
	h.HeaderLen, h.DataOffset, h.DataLen = l.headerLen, l.dataOffset, l.dataLen
	h.DataDigest = l.ddgst && l.dataLen > 0
	return nil
}
