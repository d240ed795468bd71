package proto

import "encoding/binary"

// Fabrics Command Types, byte 4 of a Fabrics command (NVMe Base 2.3 §6,
// Figure 574). Bits 1:0 give the data direction.
const (
	FCTypePropertySet uint8 = 0x00
	FCTypeConnect     uint8 = 0x01
	FCTypePropertyGet uint8 = 0x04
	FCTypeAuthSend    uint8 = 0x05
	FCTypeAuthReceive uint8 = 0x06
	FCTypeDisconnect  uint8 = 0x08 // I/O queues only
	FCTypeVendorStart uint8 = 0xc0
)

// fabricsFlagsWithSG is CDW0 byte 1 of a Fabrics command that moves data.
const fabricsFlagsWithSG uint8 = PSDTSGL << 6

// putFabrics starts a Fabrics command: everything zero except opcode, CID,
// FCTYPE and PSDT. PSDT is 01b, what Linux and SPDK hosts send (see PSDTSGL).
func (s *SQE) putFabrics(cid uint16, fctype uint8) {
	*s = SQE{Opcode: OpFabrics, Flags: fabricsFlagsWithSG, CID: cid, NSID: uint32(fctype)}
}

// Byte offsets of the Connect command fields within the SQE, for the Invalid
// Parameter Offset of a Connect Invalid Parameters completion (NVMe Base 2.3
// §6.3, Figure 579).
const (
	ConnectOffRecFmt = 40
	ConnectOffQID    = 42
	ConnectOffSQSize = 44
	ConnectOffCAttr  = 46
	ConnectOffKATO   = 48
)

// Connect Attributes (CATTR) bits (NVMe Base 2.3 §6.3, Figure 579).
const (
	CAttrPriorityClassMask  uint8 = 0x03 // PRIOCLASS, I/O queues with WRR arbitration only
	CAttrDisableSQFlow      uint8 = 0x04 // DISSQFC: host asks to disable SQ flow control
	CAttrIndividualIOQDel   uint8 = 0x08 // INDIVIQDELS
	CAttrDiscoveryConnector uint8 = 0x10 // CONNENT: the connecting entity is a discovery controller
)

// ConnectCmd is the Connect command (Fabrics type 01h, NVMe Base 2.3 §6.3,
// Figure 579). Its 1024-byte data (ConnectData) travels in capsule or by the
// transport's data mechanism as SGL describes.
//
//	 40       42       44       46      47     48            52
//	+--------+--------+--------+-------+------+-------------+---------+
//	| RECFMT |  QID   | SQSIZE | CATTR | rsvd | KATO (ms)   | NVMSETID|
//	+--------+--------+--------+-------+------+-------------+---------+
type ConnectCmd struct {
	CID    uint16
	SGL    SGL
	RecFmt uint16 // record format, 0
	QID    uint16 // 0 for the admin queue
	SQSize uint16 // 0's based submission queue size
	CAttr  uint8
	KATO   uint32 // keep alive timeout in ms (admin queue only)
}

// Connect interprets s as a Connect command. It does not check Opcode and
// FCType; the caller dispatched on them.
func (s *SQE) Connect() ConnectCmd {
	return ConnectCmd{
		CID:    s.CID,
		SGL:    s.SGL(),
		RecFmt: uint16(s.CDW10),
		QID:    uint16(s.CDW10 >> 16),
		SQSize: uint16(s.CDW11),
		CAttr:  uint8(s.CDW11 >> 16),
		KATO:   s.CDW12,
	}
}

// PutConnect makes s a Connect command.
func (s *SQE) PutConnect(c *ConnectCmd) error {
	s.putFabrics(c.CID, FCTypeConnect)
	s.CDW10 = uint32(c.RecFmt) | uint32(c.QID)<<16
	s.CDW11 = uint32(c.SQSize) | uint32(c.CAttr)<<16
	s.CDW12 = c.KATO
	return s.SetSGL(c.SGL)
}

// ConnectDataSize is the size of the Connect command data.
const ConnectDataSize = 1024

// Byte offsets of the Connect data fields, for the Invalid Parameter Offset
// of a Connect Invalid Parameters completion with IPS set (NVMe Base 2.3 §6.3,
// Figure 580).
const (
	ConnectDataOffHostID  = 0
	ConnectDataOffCNTLID  = 16
	ConnectDataOffSubNQN  = 256
	ConnectDataOffHostNQN = 512
)

// Controller ID values with special meaning in Connect (NVMe Base 2.3 §6.3).
const (
	CNTLIDDynamic uint16 = 0xffff // dynamic controller model: any controller
	CNTLIDAnyStat uint16 = 0xfffe // static controller model: any controller
	CNTLIDMax     uint16 = 0xffef // largest controller ID an NVM subsystem allocates
)

// ConnectData is the data of a Connect command (NVMe Base 2.3 §6.3, Figure
// 580).
//
//	 0                16       18                       256
//	+----------------+--------+------------------------+
//	| HOSTID (16)    | CNTLID |   reserved (238)       |
//	+----------------+--------+------------------------+
//	| SUBNQN: 256 bytes, NUL terminated UTF-8          | 256
//	+--------------------------------------------------+
//	| HOSTNQN: 256 bytes, NUL terminated UTF-8         | 512
//	+--------------------------------------------------+
//	| reserved (256)                                   | 768
//	+--------------------------------------------------+ 1024
//
// Decode and Encode allocate (the NQN strings): Connect is control path.
type ConnectData struct {
	HostID  [16]byte
	CNTLID  uint16
	SubNQN  string
	HostNQN string
}

// Decode fills d from b[:1024]. The NQN fields must be NUL terminated; the
// FieldError of a malformed field carries its offset, ready for
// ConnectInvalidParamDW0(true, offset). Decode does not judge the NQN syntax:
// see ValidNQN. On error d is zeroed.
func (d *ConnectData) Decode(b []byte) error {
	*d = ConnectData{}
	if len(b) < ConnectDataSize {
		return shortErr("ConnectData", ConnectDataSize, len(b))
	}
	sub, ok := getNQN(b[ConnectDataOffSubNQN : ConnectDataOffSubNQN+256])
	if !ok {
		return fieldErr("ConnectData", "SUBNQN", ConnectDataOffSubNQN, "not NUL terminated")
	}
	host, ok := getNQN(b[ConnectDataOffHostNQN : ConnectDataOffHostNQN+256])
	if !ok {
		return fieldErr("ConnectData", "HOSTNQN", ConnectDataOffHostNQN, "not NUL terminated")
	}
	copy(d.HostID[:], b[0:16])
	d.CNTLID = binary.LittleEndian.Uint16(b[16:])
	d.SubNQN, d.HostNQN = sub, host
	return nil
}

// Encode writes d into b[:1024], zeroing the reserved bytes.
func (d *ConnectData) Encode(b []byte) error {
	if len(b) < ConnectDataSize {
		return shortErr("ConnectData", ConnectDataSize, len(b))
	}
	b = b[:ConnectDataSize]
	clear(b)
	copy(b[0:16], d.HostID[:])
	binary.LittleEndian.PutUint16(b[16:], d.CNTLID)
	if !putNQN(b[ConnectDataOffSubNQN:ConnectDataOffSubNQN+256], d.SubNQN) {
		return fieldErr("ConnectData", "SUBNQN", ConnectDataOffSubNQN, "longer than 255 bytes or contains NUL")
	}
	if !putNQN(b[ConnectDataOffHostNQN:ConnectDataOffHostNQN+256], d.HostNQN) {
		return fieldErr("ConnectData", "HOSTNQN", ConnectDataOffHostNQN, "longer than 255 bytes or contains NUL")
	}
	return nil
}

// AUTHREQ bits of a successful Connect response (NVMe Base 2.3 §6.3, Figure 581).
const (
	AuthReqATR  uint16 = 1 << 1 // authentication transaction required
	AuthReqASCR uint16 = 1 << 2 // authentication and secure channel required
)

// ConnectRespDW0 returns DW0 of a successful Connect response: CNTLID in
// bits 15:0 and AUTHREQ in bits 31:16 (NVMe Base 2.3 §6.3, Figure 581).
func ConnectRespDW0(cntlid, authreq uint16) uint32 { return uint32(cntlid) | uint32(authreq)<<16 }

// ConnectResp splits DW0 of a successful Connect response.
func ConnectResp(dw0 uint32) (cntlid, authreq uint16) { return uint16(dw0), uint16(dw0 >> 16) }

// ConnectInvalidParamDW0 returns DW0 of a Connect Invalid Parameters
// completion: IPO (the byte offset of the bad field) in bits 15:0 and IATTR
// in bits 23:16, whose bit 0 (IPS) says whether the offset counts from the
// start of the data (inData) or of the SQE (NVMe Base 2.3 §6.3, Figure 582).
func ConnectInvalidParamDW0(inData bool, offset uint16) uint32 {
	dw0 := uint32(offset)
	if inData {
		dw0 |= 1 << 16
	}
	return dw0
}

// ConnectInvalidParam splits DW0 of a Connect Invalid Parameters completion.
func ConnectInvalidParam(dw0 uint32) (inData bool, offset uint16) {
	return dw0&(1<<16) != 0, uint16(dw0)
}

// SQHDFlowControlDisabled is the SQHD a controller returns to a Connect that
// set CAttrDisableSQFlow when it agrees to disable SQ flow control (NVMe
// Base 2.3 §6.3).
const SQHDFlowControlDisabled uint16 = 0xffff

// Property sizes in the ATTRIB byte of Property Get/Set (byte 40, bits 2:0).
const (
	PropSize4 uint8 = 0 // 4-byte property
	PropSize8 uint8 = 1 // 8-byte property
)

// PropertyCmd is a Property Get (Fabrics type 04h, NVMe Base 2.3 §6.5) or
// Property Set (type 00h, §6.6) command.
//
//	 40       41      44          48                    56
//	+--------+-------+-----------+---------------------+--------+
//	| ATTRIB | rsvd  | OFST (4)  | VALUE (8, Set only) |  rsvd  |
//	+--------+-------+-----------+---------------------+--------+
//
// The Property Get response carries the value in DW0 (4-byte properties) or
// DW0 and DW1 (8-byte properties): PropertyGetValue.
type PropertyCmd struct {
	CID    uint16
	Attrib uint8  // bits 2:0: PropSize4 or PropSize8
	Offset uint32 // PropCAP, PropCC, ...
	Value  uint64 // Property Set only
}

// Size returns the property size in bytes the command asks for: 4, 8, or 0
// for a reserved ATTRIB value.
func (c *PropertyCmd) Size() int {
	switch c.Attrib & 7 {
	case PropSize4:
		return 4
	case PropSize8:
		return 8
	}
	return 0
}

// Property interprets s as a Property Get or Property Set command.
func (s *SQE) Property() PropertyCmd {
	return PropertyCmd{
		CID:    s.CID,
		Attrib: uint8(s.CDW10),
		Offset: s.CDW11,
		Value:  uint64(s.CDW12) | uint64(s.CDW13)<<32,
	}
}

// PutPropertyGet makes s a Property Get command.
func (s *SQE) PutPropertyGet(c *PropertyCmd) {
	s.putFabrics(c.CID, FCTypePropertyGet)
	s.Flags = 0 // no data
	s.CDW10 = uint32(c.Attrib)
	s.CDW11 = c.Offset
}

// PutPropertySet makes s a Property Set command.
func (s *SQE) PutPropertySet(c *PropertyCmd) {
	s.putFabrics(c.CID, FCTypePropertySet)
	s.Flags = 0 // no data
	s.CDW10 = uint32(c.Attrib)
	s.CDW11 = c.Offset
	s.CDW12 = uint32(c.Value)
	s.CDW13 = uint32(c.Value >> 32)
}

// PropertyGetValue returns the property value of a Property Get response.
func PropertyGetValue(c *CQE) uint64 { return uint64(c.DW0) | uint64(c.DW1)<<32 }

// PutPropertyGetValue stores v in a Property Get response.
func PutPropertyGetValue(c *CQE, v uint64) { c.DW0, c.DW1 = uint32(v), uint32(v>>32) }

// DisconnectCmd is the Disconnect command (Fabrics type 08h, NVMe Base 2.3
// §6.4): RECFMT in bytes 41:40. It deletes the I/O queue it is sent on.
type DisconnectCmd struct {
	CID    uint16
	RecFmt uint16
}

// Disconnect interprets s as a Disconnect command.
func (s *SQE) Disconnect() DisconnectCmd {
	return DisconnectCmd{CID: s.CID, RecFmt: uint16(s.CDW10)}
}

// PutDisconnect makes s a Disconnect command.
func (s *SQE) PutDisconnect(c *DisconnectCmd) {
	s.putFabrics(c.CID, FCTypeDisconnect)
	s.Flags = 0
	s.CDW10 = uint32(c.RecFmt)
}

// AuthCmd is an Authentication Send (Fabrics type 05h, NVMe Base 2.3 §6.2)
// or Authentication Receive (type 06h, §6.1) command.
//
//	 40     41      42      43     44
//	+------+-------+-------+------+-------------------------+
//	| rsvd | SPSP0 | SPSP1 | SECP | TL (Send) / AL (Receive)|
//	+------+-------+-------+------+-------------------------+
type AuthCmd struct {
	CID   uint16
	SGL   SGL
	SPSP0 uint8
	SPSP1 uint8
	SECP  uint8  // security protocol; E9h for NVMe in-band authentication
	Len   uint32 // Transfer Length (Send) or Allocation Length (Receive)
}

// SECPNVMeAuth is the Security Protocol of NVMe over Fabrics in-band
// authentication (DH-HMAC-CHAP).
const SECPNVMeAuth uint8 = 0xe9

// Auth interprets s as an Authentication Send or Receive command.
func (s *SQE) Auth() AuthCmd {
	return AuthCmd{
		CID:   s.CID,
		SGL:   s.SGL(),
		SPSP0: uint8(s.CDW10 >> 8),
		SPSP1: uint8(s.CDW10 >> 16),
		SECP:  uint8(s.CDW10 >> 24),
		Len:   s.CDW11,
	}
}

// PutAuth makes s an Authentication Send (send true) or Receive command.
func (s *SQE) PutAuth(c *AuthCmd, send bool) error {
	t := FCTypeAuthReceive
	if send {
		t = FCTypeAuthSend
	}
	s.putFabrics(c.CID, t)
	s.CDW10 = uint32(c.SPSP0)<<8 | uint32(c.SPSP1)<<16 | uint32(c.SECP)<<24
	s.CDW11 = c.Len
	return s.SetSGL(c.SGL)
}
