package proto

// Controller property offsets (NVMe Base 2.3 §3.1.4). On fabrics
// they are read and written with Property Get/Set.
const (
	PropCAP   uint32 = 0x00 // Controller Capabilities, 8 bytes
	PropVS    uint32 = 0x08 // Version
	PropINTMS uint32 = 0x0c // PCIe only
	PropINTMC uint32 = 0x10 // PCIe only
	PropCC    uint32 = 0x14 // Controller Configuration
	PropCSTS  uint32 = 0x1c // Controller Status
	PropNSSR  uint32 = 0x20 // NVM Subsystem Reset
	PropAQA   uint32 = 0x24 // PCIe only
	PropASQ   uint32 = 0x28 // PCIe only, 8 bytes
	PropACQ   uint32 = 0x30 // PCIe only, 8 bytes
	PropNSSD  uint32 = 0x64 // NVM Subsystem Shutdown
	PropCRTO  uint32 = 0x68 // Controller Ready Timeouts
)

// NSSRReset is the value written to NSSR to start an NVM Subsystem Reset
// ("NVMe", NVMe Base 2.3 §3.1.4.7).
const NSSRReset uint32 = 0x4e564d65

// PropertySize returns the size in bytes of the property at off, or 0 if
// off is not the start of a property defined for fabrics controllers.
func PropertySize(off uint32) int {
	switch off {
	case PropCAP:
		return 8
	case PropVS, PropCC, PropCSTS, PropNSSR, PropNSSD, PropCRTO:
		return 4
	}
	return 0
}

// CAP is the Controller Capabilities property (NVMe Base 2.3 §3.1.4.1).
//
//	 63  61 60:59 58  57   56  55:52  51:48  47:46 45  44:37 36   35:32  31:24 23:19 18:17 16  15:0
//	+-----+-----+----+----+----+------+------+-----+---+-----+-----+------+-----+-----+-----+---+------+
//	| rsv |CRMS |NSSS|CMBS|PMRS|MPSMAX|MPSMIN| CPS |BPS| CSS |NSSRS|DSTRD |  TO | rsv | AMS |CQR| MQES |
//	+-----+-----+----+----+----+------+------+-----+---+-----+-----+------+-----+-----+-----+---+------+
type CAP uint64

// MQES is the 0's based maximum queue size.
func (c CAP) MQES() uint16 { return uint16(c) }

// CQR reports Contiguous Queues Required.
func (c CAP) CQR() bool { return c>>16&1 != 0 }

// AMS returns the Arbitration Mechanisms Supported bits.
func (c CAP) AMS() uint8 { return uint8(c>>17) & 3 }

// TO is the worst-case time, in 500 ms units, to wait for CSTS.RDY to follow CC.EN.
func (c CAP) TO() uint8 { return uint8(c >> 24) }

// DSTRD returns the doorbell stride exponent (PCIe).
func (c CAP) DSTRD() uint8 { return uint8(c>>32) & 0xf }

// NSSRS reports NVM Subsystem Reset Supported.
func (c CAP) NSSRS() bool { return c>>36&1 != 0 }

// CSS returns the Command Sets Supported bits (CAPCSSNVM, ...).
func (c CAP) CSS() uint8 { return uint8(c >> 37) }

// MPSMIN returns the minimum memory page size exponent: 2^(12+MPSMIN) bytes.
func (c CAP) MPSMIN() uint8 { return uint8(c>>48) & 0xf }

// MPSMAX returns the maximum memory page size exponent: 2^(12+MPSMAX) bytes.
func (c CAP) MPSMAX() uint8 { return uint8(c>>52) & 0xf }

// CRMS returns the Controller Ready Modes Supported bits.
func (c CAP) CRMS() uint8 { return uint8(c>>59) & 3 }

// CAP.CSS bits (NVMe Base 2.3 §3.1.4.1).
const (
	CAPCSSNVM  uint8 = 1 << 0 // NVM Command Set
	CAPCSSIOCS uint8 = 1 << 6 // one or more I/O command sets (CC.CSS = 110b)
	CAPCSSNoIO uint8 = 1 << 7 // no I/O command set (admin or discovery controllers)
)

// CAPFields builds a CAP value.
type CAPFields struct {
	MQES   uint16 // 0's based
	CQR    bool
	AMS    uint8
	TO     uint8 // 500 ms units
	DSTRD  uint8
	NSSRS  bool
	CSS    uint8
	MPSMIN uint8
	MPSMAX uint8
	CRMS   uint8
}

// CAP returns the property value.
func (f CAPFields) CAP() CAP {
	v := CAP(f.MQES) | CAP(f.AMS&3)<<17 | CAP(f.TO)<<24 | CAP(f.DSTRD&0xf)<<32 |
		CAP(f.CSS)<<37 | CAP(f.MPSMIN&0xf)<<48 | CAP(f.MPSMAX&0xf)<<52 | CAP(f.CRMS&3)<<59
	if f.CQR {
		v |= 1 << 16
	}
	if f.NSSRS {
		v |= 1 << 36
	}
	return v
}

// VS is the Version property (NVMe Base 2.3 §3.1.4.2): MJR 31:16, MNR 15:8, TER 7:0.
type VS uint32

// MakeVS returns the version major.minor.tertiary.
func MakeVS(major uint16, minor, tertiary uint8) VS {
	return VS(major)<<16 | VS(minor)<<8 | VS(tertiary)
}

// Major returns MJR.
func (v VS) Major() uint16 { return uint16(v >> 16) }

// Minor returns MNR.
func (v VS) Minor() uint8 { return uint8(v >> 8) }

// Tertiary returns TER.
func (v VS) Tertiary() uint8 { return uint8(v) }

// CC is the Controller Configuration property (NVMe Base 2.3 §3.1.4.5).
//
//	 31:25  24    23:20   19:16  15:14 13:11 10:7  6:4  3:1  0
//	+-----+-----+-------+------+-----+-----+-----+-----+----+----+
//	| rsv |CRIME|IOCQES |IOSQES| SHN | AMS | MPS | CSS | rsv| EN |
//	+-----+-----+-------+------+-----+-----+-----+-----+----+----+
type CC uint32

// EN reports Enable.
func (c CC) EN() bool { return c&1 != 0 }

// CSS returns the I/O Command Set Selected.
func (c CC) CSS() uint8 { return uint8(c>>4) & 7 }

// MPS returns the memory page size exponent: 2^(12+MPS) bytes.
func (c CC) MPS() uint8 { return uint8(c>>7) & 0xf }

// AMS returns the Arbitration Mechanism Selected.
func (c CC) AMS() uint8 { return uint8(c>>11) & 7 }

// SHN returns Shutdown Notification (ShutdownNone, ShutdownNormal, ShutdownAbrupt).
func (c CC) SHN() uint8 { return uint8(c>>14) & 3 }

// IOSQES returns the I/O SQ entry size exponent (6 for 64 bytes).
func (c CC) IOSQES() uint8 { return uint8(c>>16) & 0xf }

// IOCQES returns the I/O CQ entry size exponent (4 for 16 bytes).
func (c CC) IOCQES() uint8 { return uint8(c>>20) & 0xf }

// CRIME reports Controller Ready Independent of Media Enable.
func (c CC) CRIME() bool { return c>>24&1 != 0 }

// CC.SHN values.
const (
	ShutdownNone   uint8 = 0
	ShutdownNormal uint8 = 1
	ShutdownAbrupt uint8 = 2
)

// CC.CSS values.
const (
	CCCSSNVM  uint8 = 0 // NVM Command Set
	CCCSSIOCS uint8 = 6 // all supported I/O command sets
	CCCSSNoIO uint8 = 7 // admin command set only
)

// CCFields builds a CC value.
type CCFields struct {
	EN     bool
	CSS    uint8
	MPS    uint8
	AMS    uint8
	SHN    uint8
	IOSQES uint8
	IOCQES uint8
	CRIME  bool
}

// CC returns the property value.
func (f CCFields) CC() CC {
	v := CC(f.CSS&7)<<4 | CC(f.MPS&0xf)<<7 | CC(f.AMS&7)<<11 | CC(f.SHN&3)<<14 |
		CC(f.IOSQES&0xf)<<16 | CC(f.IOCQES&0xf)<<20
	if f.EN {
		v |= 1
	}
	if f.CRIME {
		v |= 1 << 24
	}
	return v
}

// CSTS is the Controller Status property (NVMe Base 2.3 §3.1.4.6).
//
//	 31:7  6    5     4      3:2   1    0
//	+-----+----+----+------+------+-----+-----+
//	| rsv | ST | PP |NSSRO | SHST | CFS | RDY |
//	+-----+----+----+------+------+-----+-----+
type CSTS uint32

// RDY reports Ready.
func (c CSTS) RDY() bool { return c&1 != 0 }

// CFS reports Controller Fatal Status.
func (c CSTS) CFS() bool { return c&2 != 0 }

// SHST returns Shutdown Status (ShutdownStatusNormal, ...Occurring, ...Complete).
func (c CSTS) SHST() uint8 { return uint8(c>>2) & 3 }

// NSSRO reports NVM Subsystem Reset Occurred.
func (c CSTS) NSSRO() bool { return c&(1<<4) != 0 }

// PP reports Processing Paused.
func (c CSTS) PP() bool { return c&(1<<5) != 0 }

// CSTS.SHST values.
const (
	ShutdownStatusNormal    uint8 = 0 // normal operation, no shutdown requested
	ShutdownStatusOccurring uint8 = 1 // shutdown processing occurring
	ShutdownStatusComplete  uint8 = 2 // shutdown processing complete
)

// MakeCSTS returns a CSTS value.
func MakeCSTS(rdy, cfs bool, shst uint8) CSTS {
	v := CSTS(shst&3) << 2
	if rdy {
		v |= 1
	}
	if cfs {
		v |= 2
	}
	return v
}
