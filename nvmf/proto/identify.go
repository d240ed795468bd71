package proto

import "encoding/binary"

// IdentifySize is the size of every Identify data structure.
const IdentifySize = 4096

// Controller or Namespace Structure (CNS) values of the Identify command
// (NVMe Base 2.3 §5.2.13).
const (
	CNSNamespace        uint8 = 0x00 // Identify Namespace (I/O command set specific: NVM)
	CNSController       uint8 = 0x01 // Identify Controller
	CNSActiveNSList     uint8 = 0x02 // Active Namespace ID list
	CNSNSDescriptorList uint8 = 0x03 // Namespace Identification Descriptor list
	CNSCSNamespace      uint8 = 0x05 // I/O command set specific Identify Namespace
	CNSCSController     uint8 = 0x06 // I/O command set specific Identify Controller
	CNSCSActiveNSList   uint8 = 0x07 // I/O command set specific Active Namespace ID list
	CNSCSIndepNamespace uint8 = 0x08 // I/O command set independent Identify Namespace
	CNSAllocatedNSList  uint8 = 0x10 // Allocated Namespace ID list
	CNSCommandSetStruct uint8 = 0x1c // Identify I/O Command Set data structure
)

// NSIDBroadcast is the broadcast namespace ID (NVMe Base 2.3 §3.2.1.2).
const NSIDBroadcast uint32 = 0xffffffff

const (
	nsListEntries         = IdentifySize / 4
	nsidBroadcastReserved = 0xfffffffe // FFFFFFFEh is never a valid NSID
)

// Command Set Identifiers (NVMe Base 2.3 Figure 327).
const (
	CSINVM uint8 = 0x00 // NVM Command Set
	CSIKV  uint8 = 0x01 // Key Value
	CSIZNS uint8 = 0x02 // Zoned Namespace
)

// IdentifyCmd is the Identify command (NVMe Base 2.3 §5.2.13):
// CNS in CDW10 bits 7:0, CNTID in CDW10 bits 31:16, CNSSID in CDW11 bits
// 15:0, CSI in CDW11 bits 31:24, UUID index in CDW14 bits 6:0.
type IdentifyCmd struct {
	CID       uint16
	NSID      uint32
	SGL       SGL
	CNS       uint8
	CNTID     uint16
	CNSSID    uint16
	CSI       uint8
	UUIDIndex uint8
}

// Identify interprets s as an Identify command.
func (s *SQE) Identify() IdentifyCmd {
	return IdentifyCmd{
		CID:       s.CID,
		NSID:      s.NSID,
		SGL:       s.SGL(),
		CNS:       uint8(s.CDW10),
		CNTID:     uint16(s.CDW10 >> 16),
		CNSSID:    uint16(s.CDW11),
		CSI:       uint8(s.CDW11 >> 24),
		UUIDIndex: uint8(s.CDW14) & 0x7f,
	}
}

// PutIdentify makes s an Identify command.
func (s *SQE) PutIdentify(c *IdentifyCmd) error {
	*s = SQE{Opcode: AdminIdentify, Flags: PSDTSGL << 6, CID: c.CID, NSID: c.NSID}
	s.CDW10 = uint32(c.CNS) | uint32(c.CNTID)<<16
	s.CDW11 = uint32(c.CNSSID) | uint32(c.CSI)<<24
	s.CDW14 = uint32(c.UUIDIndex & 0x7f)
	return s.SetSGL(c.SGL)
}

// Identify Controller field bits (NVMe Base 2.3 §5.2.13.2.1, Figure 328).
const (
	CMICMultiPort       uint8 = 1 << 0
	CMICMultiController uint8 = 1 << 1
	CMICSRIOV           uint8 = 1 << 2
	CMICANA             uint8 = 1 << 3

	OAESNamespaceAttr      uint32 = 1 << 8
	OAESFirmwareActivate   uint32 = 1 << 9
	OAESANAChange          uint32 = 1 << 11
	OAESDiscoveryLogChange uint32 = 1 << 31

	CTRATTHostID128 uint32 = 1 << 0 // 128-bit host identifier
	CTRATTTBKAS     uint32 = 1 << 6 // traffic based keep alive

	LPASMARTPerNS     uint8 = 1 << 0
	LPACommandEffects uint8 = 1 << 1
	LPAExtendedData   uint8 = 1 << 2 // NUMDU, LPOL/LPOU supported in Get Log Page

	ONCSCompare              uint16 = 1 << 0
	ONCSWriteUncorrectable   uint16 = 1 << 1
	ONCSDatasetManagement    uint16 = 1 << 2
	ONCSWriteZeroes          uint16 = 1 << 3
	ONCSSaveSelect           uint16 = 1 << 4
	ONCSReservations         uint16 = 1 << 5
	ONCSTimestamp            uint16 = 1 << 6
	ONCSVerify               uint16 = 1 << 7
	ONCSCopy                 uint16 = 1 << 8
	FUSESCompareAndWrite     uint16 = 1 << 0
	VWCPresent               uint8  = 1 << 0
	VWCFlushBroadcastNotSupp uint8  = 2 << 1 // Flush with NSID FFFFFFFFh not supported
	VWCFlushBroadcastSupp    uint8  = 3 << 1 // Flush with NSID FFFFFFFFh supported

	SGLSSupported          uint32 = 1 << 0 // SGLs supported, byte aligned (bits 1:0 = 01b)
	SGLSDwordAligned       uint32 = 2 << 0 // SGLs supported, dword aligned (bits 1:0 = 10b)
	SGLSKeyedDataBlock     uint32 = 1 << 2
	SGLSBitBucket          uint32 = 1 << 16
	SGLSMetadataContig     uint32 = 1 << 17
	SGLSLongerThanData     uint32 = 1 << 18
	SGLSMetadataSGL        uint32 = 1 << 19
	SGLSAddressAsOffset    uint32 = 1 << 20 // SAOS: in-capsule data with the Offset subtype
	SGLSTransportDataBlock uint32 = 1 << 21

	FCATTStaticController uint8  = 1 << 0 // static controller model (clear: dynamic)
	OFCSDisconnect        uint16 = 1 << 0 // Disconnect command supported

	CtrlTypeIO        uint8 = 1
	CtrlTypeDiscovery uint8 = 2
	CtrlTypeAdmin     uint8 = 3
)

// IdentifyController is the Identify Controller data structure (CNS 01h,
// NVMe Base 2.3 §5.2.13.2.1, Figure 328), the fields a fabrics controller
// reports. Fields not listed encode as zero and are ignored by Decode.
//
//	   0 VID(2) SSVID(2) SN(20) MN(40) FR(8)       72 RAB IEEE(3) CMIC MDTS CNTLID(2)
//	  80 VER(4) RTD3R(4) RTD3E(4) OAES(4) CTRATT(4) 100 RRLS(2) ... 111 CNTRLTYPE
//	 112 FGUID(16) 128 CRDT1(2) CRDT2(2) CRDT3(2) ...
//	 256 OACS(2) ACL AERL FRMW LPA ELPE NPSS AVSCC APSTA WCTEMP(2) CCTEMP(2) ... 320 KAS(2)
//	 512 SQES CQES MAXCMD(2) NN(4) ONCS(2) FUSES(2) FNA VWC AWUN(2) AWUPF(2)
//	 530 ICSVSCC NWPC ACWU(2) OCFS(2) SGLS(4) MNAN(4)
//	 768 SUBNQN(256)
//	1792 IOCCSZ(4) IORCSZ(4) ICDOFF(2) FCATT MSDBD OFCS(2) DCTYPE      (NVMe over Fabrics)
//	2048 PSD0..PSD31 (32 bytes each)   3072 vendor specific (1024)
//
// SN, MN and FR are ASCII padded with spaces; SUBNQN is NUL terminated.
type IdentifyController struct {
	VID       uint16
	SSVID     uint16
	SN        string // at most 20 bytes
	MN        string // at most 40 bytes
	FR        string // at most 8 bytes
	RAB       uint8
	IEEE      [3]byte
	CMIC      uint8
	MDTS      uint8 // max data transfer: 2^MDTS units of CAP.MPSMIN pages; 0 = no limit
	CNTLID    uint16
	VER       VS
	RTD3R     uint32
	RTD3E     uint32
	OAES      uint32
	CTRATT    uint32
	CNTRLTYPE uint8
	FGUID     [16]byte
	CRDT      [3]uint16 // CRDT1..CRDT3, 100 ms units
	OACS      uint16
	ACL       uint8 // 0's based
	AERL      uint8 // 0's based
	FRMW      uint8
	LPA       uint8
	ELPE      uint8 // 0's based
	NPSS      uint8 // 0's based
	WCTEMP    uint16
	CCTEMP    uint16
	KAS       uint16 // keep alive granularity, 100 ms units
	SQES      uint8  // max<<4 | required: 0x66 for 64-byte SQEs
	CQES      uint8  // max<<4 | required: 0x44 for 16-byte CQEs
	MAXCMD    uint16
	NN        uint32
	ONCS      uint16
	FUSES     uint16
	FNA       uint8
	VWC       uint8
	AWUN      uint16
	AWUPF     uint16
	ICSVSCC   uint8
	NWPC      uint8
	ACWU      uint16
	OCFS      uint16
	SGLS      uint32
	MNAN      uint32
	SubNQN    string // at most 255 bytes
	IOCCSZ    uint32 // I/O queue command capsule size in 16-byte units (>= 4)
	IORCSZ    uint32 // I/O queue response capsule size in 16-byte units (>= 1)
	ICDOFF    uint16 // in-capsule data offset in 16-byte units (0 for TCP)
	FCATT     uint8
	MSDBD     uint8 // max SGL data block descriptors per command (1 for TCP)
	OFCS      uint16
	DCTYPE    uint8
}

// Encode writes c into b[:4096], zeroing everything else.
func (c *IdentifyController) Encode(b []byte) error {
	const what = "IdentifyController"
	if len(b) < IdentifySize {
		return shortErr(what, IdentifySize, len(b))
	}
	b = b[:IdentifySize]
	clear(b)
	le := binary.LittleEndian
	le.PutUint16(b[0:], c.VID)
	le.PutUint16(b[2:], c.SSVID)
	if !putPadded(b[4:24], c.SN, ' ') {
		return fieldErr(what, "SN", 4, "longer than 20 bytes")
	}
	if !putPadded(b[24:64], c.MN, ' ') {
		return fieldErr(what, "MN", 24, "longer than 40 bytes")
	}
	if !putPadded(b[64:72], c.FR, ' ') {
		return fieldErr(what, "FR", 64, "longer than 8 bytes")
	}
	b[72] = c.RAB
	copy(b[73:76], c.IEEE[:])
	b[76] = c.CMIC
	b[77] = c.MDTS
	le.PutUint16(b[78:], c.CNTLID)
	le.PutUint32(b[80:], uint32(c.VER))
	le.PutUint32(b[84:], c.RTD3R)
	le.PutUint32(b[88:], c.RTD3E)
	le.PutUint32(b[92:], c.OAES)
	le.PutUint32(b[96:], c.CTRATT)
	b[111] = c.CNTRLTYPE
	copy(b[112:128], c.FGUID[:])
	le.PutUint16(b[128:], c.CRDT[0])
	le.PutUint16(b[130:], c.CRDT[1])
	le.PutUint16(b[132:], c.CRDT[2])
	le.PutUint16(b[256:], c.OACS)
	b[258] = c.ACL
	b[259] = c.AERL
	b[260] = c.FRMW
	b[261] = c.LPA
	b[262] = c.ELPE
	b[263] = c.NPSS
	le.PutUint16(b[266:], c.WCTEMP)
	le.PutUint16(b[268:], c.CCTEMP)
	le.PutUint16(b[320:], c.KAS)
	b[512] = c.SQES
	b[513] = c.CQES
	le.PutUint16(b[514:], c.MAXCMD)
	le.PutUint32(b[516:], c.NN)
	le.PutUint16(b[520:], c.ONCS)
	le.PutUint16(b[522:], c.FUSES)
	b[524] = c.FNA
	b[525] = c.VWC
	le.PutUint16(b[526:], c.AWUN)
	le.PutUint16(b[528:], c.AWUPF)
	b[530] = c.ICSVSCC
	b[531] = c.NWPC
	le.PutUint16(b[532:], c.ACWU)
	le.PutUint16(b[534:], c.OCFS)
	le.PutUint32(b[536:], c.SGLS)
	le.PutUint32(b[540:], c.MNAN)
	if !putNQN(b[768:1024], c.SubNQN) {
		return fieldErr(what, "SUBNQN", 768, "longer than 255 bytes or contains NUL")
	}
	le.PutUint32(b[1792:], c.IOCCSZ)
	le.PutUint32(b[1796:], c.IORCSZ)
	le.PutUint16(b[1800:], c.ICDOFF)
	b[1802] = c.FCATT
	b[1803] = c.MSDBD
	le.PutUint16(b[1804:], c.OFCS)
	b[1806] = c.DCTYPE
	return nil
}

// Decode fills c from b[:4096]. Text fields are trimmed of trailing spaces;
// SUBNQN is read up to its NUL (or all 256 bytes, as some controllers fill
// the field). On error c is zeroed.
func (c *IdentifyController) Decode(b []byte) error {
	*c = IdentifyController{}
	if len(b) < IdentifySize {
		return shortErr("IdentifyController", IdentifySize, len(b))
	}
	le := binary.LittleEndian
	c.VID = le.Uint16(b[0:])
	c.SSVID = le.Uint16(b[2:])
	c.SN = getPadded(b[4:24])
	c.MN = getPadded(b[24:64])
	c.FR = getPadded(b[64:72])
	c.RAB = b[72]
	copy(c.IEEE[:], b[73:76])
	c.CMIC = b[76]
	c.MDTS = b[77]
	c.CNTLID = le.Uint16(b[78:])
	c.VER = VS(le.Uint32(b[80:]))
	c.RTD3R = le.Uint32(b[84:])
	c.RTD3E = le.Uint32(b[88:])
	c.OAES = le.Uint32(b[92:])
	c.CTRATT = le.Uint32(b[96:])
	c.CNTRLTYPE = b[111]
	copy(c.FGUID[:], b[112:128])
	c.CRDT = [3]uint16{le.Uint16(b[128:]), le.Uint16(b[130:]), le.Uint16(b[132:])}
	c.OACS = le.Uint16(b[256:])
	c.ACL = b[258]
	c.AERL = b[259]
	c.FRMW = b[260]
	c.LPA = b[261]
	c.ELPE = b[262]
	c.NPSS = b[263]
	c.WCTEMP = le.Uint16(b[266:])
	c.CCTEMP = le.Uint16(b[268:])
	c.KAS = le.Uint16(b[320:])
	c.SQES = b[512]
	c.CQES = b[513]
	c.MAXCMD = le.Uint16(b[514:])
	c.NN = le.Uint32(b[516:])
	c.ONCS = le.Uint16(b[520:])
	c.FUSES = le.Uint16(b[522:])
	c.FNA = b[524]
	c.VWC = b[525]
	c.AWUN = le.Uint16(b[526:])
	c.AWUPF = le.Uint16(b[528:])
	c.ICSVSCC = b[530]
	c.NWPC = b[531]
	c.ACWU = le.Uint16(b[532:])
	c.OCFS = le.Uint16(b[534:])
	c.SGLS = le.Uint32(b[536:])
	c.MNAN = le.Uint32(b[540:])
	c.SubNQN, _ = getNQN(b[768:1024])
	c.IOCCSZ = le.Uint32(b[1792:])
	c.IORCSZ = le.Uint32(b[1796:])
	c.ICDOFF = le.Uint16(b[1800:])
	c.FCATT = b[1802]
	c.MSDBD = b[1803]
	c.OFCS = le.Uint16(b[1804:])
	c.DCTYPE = b[1806]
	return nil
}

// LBAFormat is one LBA Format descriptor of Identify Namespace (NVM Command
// Set 1.0, Identify Namespace, LBAF0..LBAF63):
//
//	 31:26  25:24  23:16   15:0
//	+-----+------+-------+------+
//	| rsv |  RP  | LBADS |  MS  |
//	+-----+------+-------+------+
type LBAFormat struct {
	MS    uint16 // metadata bytes per logical block
	LBADS uint8  // logical block size is 2^LBADS bytes (>= 9)
	RP    uint8  // relative performance, 2 bits
}

// NSFEAT bits of Identify Namespace.
const (
	NSFEATThinProvisioning uint8 = 1 << 0
	NSFEATAtomicFields     uint8 = 1 << 1 // NAWUN, NAWUPF, NACWU valid
	NSFEATDeallocError     uint8 = 1 << 2
	NSFEATUIDReuse         uint8 = 1 << 3
	NSFEATOptPerf          uint8 = 1 << 4 // NPWG, NPWA, NPDG, NPDA, NOWS valid
)

// DLFEAT fields of Identify Namespace.
const (
	DLFEATReadMask         uint8 = 7      // what a read of a deallocated block returns
	DLFEATReadNotReported  uint8 = 0      // not reported
	DLFEATReadZeroes       uint8 = 1      // all bytes 00h
	DLFEATReadOnes         uint8 = 2      // all bytes FFh
	DLFEATWriteZeroesDeall uint8 = 1 << 3 // Write Zeroes supports the Deallocate bit
	DLFEATGuardCRC         uint8 = 1 << 4
)

// NMIC bits of Identify Namespace.
const NMICShared uint8 = 1 << 0

// IdentifyNamespace is the NVM Command Set Identify Namespace data structure
// (CNS 00h; NVM Command Set 1.0, "Identify Namespace data structure").
//
//	  0 NSZE(8)  8 NCAP(8)  16 NUSE(8)  24 NSFEAT NLBAF FLBAS MC DPC DPS NMIC RESCAP
//	 32 FPI DLFEAT NAWUN(2) NAWUPF(2) NACWU(2) NABSN(2) NABO(2) NABSPF(2) NOIOB(2)
//	 48 NVMCAP(16)  64 NPWG(2) NPWA(2) NPDG(2) NPDA(2) NOWS(2)
//	 92 ANAGRPID(4) 99 NSATTR 100 NVMSETID(2) ENDGID(2)
//	104 NGUID(16)  120 EUI64(8)
//	128 LBAF0..LBAF63 (4 bytes each)   384 reserved   3712 vendor specific
//
// NLBAF is 0's based. FLBAS bits 3:0 and 6:5 select the format in use (see
// FormatIndex), bit 4 says metadata is transferred at the end of the LBA.
type IdentifyNamespace struct {
	NSZE     uint64 // size in logical blocks
	NCAP     uint64 // capacity in logical blocks
	NUSE     uint64 // utilization in logical blocks
	NSFEAT   uint8
	NLBAF    uint8 // 0's based number of LBA formats
	FLBAS    uint8
	MC       uint8
	DPC      uint8
	DPS      uint8
	NMIC     uint8
	RESCAP   uint8
	FPI      uint8
	DLFEAT   uint8
	NAWUN    uint16
	NAWUPF   uint16
	NACWU    uint16
	NABSN    uint16
	NABO     uint16
	NABSPF   uint16
	NOIOB    uint16
	NVMCAP   Uint128
	NPWG     uint16
	NPWA     uint16
	NPDG     uint16
	NPDA     uint16
	NOWS     uint16
	ANAGRPID uint32
	NSATTR   uint8
	NVMSETID uint16
	ENDGID   uint16
	NGUID    [16]byte
	EUI64    [8]byte
	LBAF     [64]LBAFormat
}

// FormatIndex returns the LBA format in use: FLBAS bits 3:0, plus bits 6:5
// as the high bits when more than 16 formats exist.
func (n *IdentifyNamespace) FormatIndex() int {
	return int(n.FLBAS&0xf) | int(n.FLBAS>>5&3)<<4
}

// BlockSize returns the logical block size in bytes of the format in use.
func (n *IdentifyNamespace) BlockSize() uint32 {
	ds := n.LBAF[n.FormatIndex()].LBADS
	if ds >= 32 {
		return 0
	}
	return 1 << ds
}

// Encode writes n into b[:4096], zeroing everything else.
func (n *IdentifyNamespace) Encode(b []byte) error {
	if len(b) < IdentifySize {
		return shortErr("IdentifyNamespace", IdentifySize, len(b))
	}
	if n.NLBAF > 63 {
		return fieldErr("IdentifyNamespace", "NLBAF", 25, "more than 64 LBA formats")
	}
	b = b[:IdentifySize]
	clear(b)
	le := binary.LittleEndian
	le.PutUint64(b[0:], n.NSZE)
	le.PutUint64(b[8:], n.NCAP)
	le.PutUint64(b[16:], n.NUSE)
	b[24], b[25], b[26], b[27] = n.NSFEAT, n.NLBAF, n.FLBAS, n.MC
	b[28], b[29], b[30], b[31] = n.DPC, n.DPS, n.NMIC, n.RESCAP
	b[32], b[33] = n.FPI, n.DLFEAT
	le.PutUint16(b[34:], n.NAWUN)
	le.PutUint16(b[36:], n.NAWUPF)
	le.PutUint16(b[38:], n.NACWU)
	le.PutUint16(b[40:], n.NABSN)
	le.PutUint16(b[42:], n.NABO)
	le.PutUint16(b[44:], n.NABSPF)
	le.PutUint16(b[46:], n.NOIOB)
	n.NVMCAP.put(b[48:64])
	le.PutUint16(b[64:], n.NPWG)
	le.PutUint16(b[66:], n.NPWA)
	le.PutUint16(b[68:], n.NPDG)
	le.PutUint16(b[70:], n.NPDA)
	le.PutUint16(b[72:], n.NOWS)
	le.PutUint32(b[92:], n.ANAGRPID)
	b[99] = n.NSATTR
	le.PutUint16(b[100:], n.NVMSETID)
	le.PutUint16(b[102:], n.ENDGID)
	copy(b[104:120], n.NGUID[:])
	copy(b[120:128], n.EUI64[:])
	for i, f := range n.LBAF {
		le.PutUint32(b[128+4*i:], uint32(f.MS)|uint32(f.LBADS)<<16|uint32(f.RP&3)<<24)
	}
	return nil
}

// Decode fills n from b[:4096]. An inactive namespace reads as all zeroes
// (NSZE 0) and decodes without error; for an active one (NSZE > 0) Decode
// checks what a host relies on: NLBAF <= 63, the format in use exists and
// has a block size from 512 bytes to 2 GiB, and NUSE <= NCAP <= NSZE.
// On error n is zeroed.
func (n *IdentifyNamespace) Decode(b []byte) error {
	const what = "IdentifyNamespace"
	*n = IdentifyNamespace{}
	if len(b) < IdentifySize {
		return shortErr(what, IdentifySize, len(b))
	}
	le := binary.LittleEndian
	var v IdentifyNamespace
	v.NSZE = le.Uint64(b[0:])
	v.NCAP = le.Uint64(b[8:])
	v.NUSE = le.Uint64(b[16:])
	v.NSFEAT, v.NLBAF, v.FLBAS, v.MC = b[24], b[25], b[26], b[27]
	v.DPC, v.DPS, v.NMIC, v.RESCAP = b[28], b[29], b[30], b[31]
	v.FPI, v.DLFEAT = b[32], b[33]
	v.NAWUN = le.Uint16(b[34:])
	v.NAWUPF = le.Uint16(b[36:])
	v.NACWU = le.Uint16(b[38:])
	v.NABSN = le.Uint16(b[40:])
	v.NABO = le.Uint16(b[42:])
	v.NABSPF = le.Uint16(b[44:])
	v.NOIOB = le.Uint16(b[46:])
	v.NVMCAP = getUint128(b[48:64])
	v.NPWG = le.Uint16(b[64:])
	v.NPWA = le.Uint16(b[66:])
	v.NPDG = le.Uint16(b[68:])
	v.NPDA = le.Uint16(b[70:])
	v.NOWS = le.Uint16(b[72:])
	v.ANAGRPID = le.Uint32(b[92:])
	v.NSATTR = b[99]
	v.NVMSETID = le.Uint16(b[100:])
	v.ENDGID = le.Uint16(b[102:])
	copy(v.NGUID[:], b[104:120])
	copy(v.EUI64[:], b[120:128])
	for i := range v.LBAF {
		w := le.Uint32(b[128+4*i:])
		v.LBAF[i] = LBAFormat{MS: uint16(w), LBADS: uint8(w >> 16), RP: uint8(w>>24) & 3}
	}
	if v.NLBAF > 63 {
		return fieldErr(what, "NLBAF", 25, "more than 64 LBA formats")
	}
	if v.NSZE != 0 {
		if v.FormatIndex() > int(v.NLBAF) {
			return fieldErr(what, "FLBAS", 26, "selects an LBA format beyond NLBAF")
		}
		if ds := v.LBAF[v.FormatIndex()].LBADS; ds < 9 || ds > 31 {
			return fieldErr(what, "LBAF.LBADS", 128+4*v.FormatIndex()+2, "block size outside 512 B to 2 GiB")
		}
		if v.NCAP > v.NSZE {
			return fieldErr(what, "NCAP", 8, "capacity larger than size")
		}
		if v.NUSE > v.NCAP {
			return fieldErr(what, "NUSE", 16, "utilization larger than capacity")
		}
	}
	*n = v
	return nil
}

// Uint128 is a 16-byte little-endian counter (log page and Identify fields).
type Uint128 struct{ Lo, Hi uint64 }

func (u Uint128) put(b []byte) {
	binary.LittleEndian.PutUint64(b[0:], u.Lo)
	binary.LittleEndian.PutUint64(b[8:], u.Hi)
}

func getUint128(b []byte) Uint128 {
	return Uint128{Lo: binary.LittleEndian.Uint64(b[0:]), Hi: binary.LittleEndian.Uint64(b[8:])}
}

// EncodeNSList writes a Namespace List (NVMe Base 2.3 §4.6.2, Figure 139),
// the data of Identify CNS 02h (Active Namespace ID list, §5.2.13.2.2): up to
// 1024 NSIDs, nonzero and strictly increasing, zero filled to 4096 bytes.
func EncodeNSList(b []byte, ids []uint32) error {
	const what = "NSList"
	if len(b) < IdentifySize {
		return shortErr(what, IdentifySize, len(b))
	}
	if len(ids) > nsListEntries {
		return fieldErr(what, "NSID", IdentifySize, "more than 1024 namespace IDs")
	}
	var prev uint32
	for i, id := range ids {
		if id == 0 || id >= nsidBroadcastReserved || id <= prev {
			return fieldErr(what, "NSID", 4*i, "zero, broadcast or not increasing")
		}
		prev = id
	}
	b = b[:IdentifySize]
	clear(b)
	for i, id := range ids {
		binary.LittleEndian.PutUint32(b[4*i:], id)
	}
	return nil
}

// DecodeNSList appends the NSIDs of a Namespace List in b[:4096] to dst and
// returns it; the list ends at the first zero entry. The IDs must be strictly
// increasing and below FFFFFFFEh. Nothing is allocated when dst has room for
// 1024 entries. On error dst is returned unchanged.
func DecodeNSList(b []byte, dst []uint32) ([]uint32, error) {
	const what = "NSList"
	if len(b) < IdentifySize {
		return dst, shortErr(what, IdentifySize, len(b))
	}
	start := len(dst)
	var prev uint32
	for i := 0; i < nsListEntries; i++ {
		id := binary.LittleEndian.Uint32(b[4*i:])
		if id == 0 {
			break
		}
		if id >= nsidBroadcastReserved || id <= prev {
			return dst[:start], fieldErr(what, "NSID", 4*i, "broadcast or not increasing")
		}
		dst = append(dst, id)
		prev = id
	}
	return dst, nil
}

// Namespace Identifier Types of the Namespace Identification Descriptor list
// (NVMe Base 2.3 §5.2.13.2.3, Figure 331) with their NID lengths.
const (
	NIDTEUI64 uint8 = 1 // 8 bytes
	NIDTNGUID uint8 = 2 // 16 bytes
	NIDTUUID  uint8 = 3 // 16 bytes
	NIDTCSI   uint8 = 4 // 1 byte
)

var nidLen = [...]int{NIDTEUI64: 8, NIDTNGUID: 16, NIDTUUID: 16, NIDTCSI: 1}

// NSDescriptors is the Namespace Identification Descriptor list (Identify
// CNS 03h, NVMe Base 2.3 §5.2.13.2.3). Each descriptor is
//
//	  0      1      2       4
//	+------+------+-------+-------------+
//	| NIDT | NIDL | rsvd  | NID (NIDL)  |
//	+------+------+-------+-------------+
//
// back to back; a NIDL of 0 ends the list. Only the descriptors with Has*
// set are present.
type NSDescriptors struct {
	EUI64    [8]byte
	NGUID    [16]byte
	UUID     [16]byte
	CSI      uint8
	HasEUI64 bool
	HasNGUID bool
	HasUUID  bool
	HasCSI   bool
}

// Encode writes the present descriptors, in NIDT order, into b[:4096] and
// zero fills the rest.
func (d *NSDescriptors) Encode(b []byte) error {
	if len(b) < IdentifySize {
		return shortErr("NSDescriptors", IdentifySize, len(b))
	}
	b = b[:IdentifySize]
	clear(b)
	off := 0
	put := func(t uint8, id []byte) {
		b[off], b[off+1] = t, uint8(len(id))
		copy(b[off+4:], id)
		off += 4 + len(id)
	}
	if d.HasEUI64 {
		put(NIDTEUI64, d.EUI64[:])
	}
	if d.HasNGUID {
		put(NIDTNGUID, d.NGUID[:])
	}
	if d.HasUUID {
		put(NIDTUUID, d.UUID[:])
	}
	if d.HasCSI {
		put(NIDTCSI, []byte{d.CSI})
	}
	return nil
}

// Decode reads a descriptor list from b[:4096]. Descriptors of unknown types
// are skipped (a host ignores them, §5.2.13.2.3); a known type with the wrong
// NIDL, a repeated type, or a descriptor running past 4096 bytes is an error.
// On error d is zeroed.
func (d *NSDescriptors) Decode(b []byte) error {
	const what = "NSDescriptors"
	*d = NSDescriptors{}
	if len(b) < IdentifySize {
		return shortErr(what, IdentifySize, len(b))
	}
	b = b[:IdentifySize]
	var v NSDescriptors
	for off := 0; off+4 <= len(b); {
		t, l := b[off], int(b[off+1])
		if l == 0 {
			break
		}
		if off+4+l > len(b) {
			return fieldErr(what, "NIDL", off+1, "descriptor runs past the end of the list")
		}
		id := b[off+4 : off+4+l]
		if int(t) < len(nidLen) && t != 0 {
			if l != nidLen[t] {
				return fieldErr(what, "NIDL", off+1, "length does not match the identifier type")
			}
			var dup bool
			switch t {
			case NIDTEUI64:
				dup, v.HasEUI64 = v.HasEUI64, true
				copy(v.EUI64[:], id)
			case NIDTNGUID:
				dup, v.HasNGUID = v.HasNGUID, true
				copy(v.NGUID[:], id)
			case NIDTUUID:
				dup, v.HasUUID = v.HasUUID, true
				copy(v.UUID[:], id)
			case NIDTCSI:
				dup, v.HasCSI = v.HasCSI, true
				v.CSI = id[0]
			}
			if dup {
				return fieldErr(what, "NIDT", off, "identifier type repeated")
			}
		}
		off += 4 + l
	}
	*d = v
	return nil
}
