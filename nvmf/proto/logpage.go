package proto

import "encoding/binary"

// Log Page Identifiers (NVMe Base 2.3 §5.2.12, Figure 206).
const (
	LIDSupportedLogPages       uint8 = 0x00
	LIDErrorInfo               uint8 = 0x01
	LIDHealth                  uint8 = 0x02 // SMART / Health Information
	LIDFirmwareSlot            uint8 = 0x03
	LIDChangedNSList           uint8 = 0x04 // Changed Attached Namespace List
	LIDCommandEffects          uint8 = 0x05
	LIDANA                     uint8 = 0x0c
	LIDDiscovery               uint8 = 0x70
	LIDReservationNotification uint8 = 0x80
)

// GetLogPageCmd is the Get Log Page command (NVMe Base 2.3 §5.2.12, Figure 205):
//
//	CDW10: NUMDL 31:16 | RAE 15 | LSP 14:8 | LID 7:0
//	CDW11: LSI 31:16 | NUMDU 15:0
//	CDW12: LPOL      CDW13: LPOU
//	CDW14: CSI 31:24 | OT 23 | UUID index 6:0
//
// NUMD is the 0's based number of dwords, split over NUMDL and NUMDU.
type GetLogPageCmd struct {
	CID       uint16
	NSID      uint32
	SGL       SGL
	LID       uint8
	LSP       uint8 // 7 bits
	RAE       bool  // retain asynchronous event
	NUMD      uint32
	LSI       uint16
	Offset    uint64 // byte offset (or index when OT is set)
	UUIDIndex uint8
	OT        bool
	CSI       uint8
}

// LenBytes returns the number of bytes the command asks for.
func (c *GetLogPageCmd) LenBytes() uint64 { return (uint64(c.NUMD) + 1) * 4 }

// NUMDForBytes returns the 0's based dword count for n bytes (n > 0,
// rounded up to a dword).
func NUMDForBytes(n uint32) uint32 { return uint32((uint64(n)+3)/4 - 1) }

// GetLogPage interprets s as a Get Log Page command.
func (s *SQE) GetLogPage() GetLogPageCmd {
	return GetLogPageCmd{
		CID:       s.CID,
		NSID:      s.NSID,
		SGL:       s.SGL(),
		LID:       uint8(s.CDW10),
		LSP:       uint8(s.CDW10>>8) & 0x7f,
		RAE:       s.CDW10&(1<<15) != 0,
		NUMD:      s.CDW10>>16 | (s.CDW11&0xffff)<<16,
		LSI:       uint16(s.CDW11 >> 16),
		Offset:    uint64(s.CDW12) | uint64(s.CDW13)<<32,
		UUIDIndex: uint8(s.CDW14) & 0x7f,
		OT:        s.CDW14&(1<<23) != 0,
		CSI:       uint8(s.CDW14 >> 24),
	}
}

// PutGetLogPage makes s a Get Log Page command.
func (s *SQE) PutGetLogPage(c *GetLogPageCmd) error {
	*s = SQE{Opcode: AdminGetLogPage, Flags: PSDTSGL << 6, CID: c.CID, NSID: c.NSID}
	s.CDW10 = uint32(c.LID) | uint32(c.LSP&0x7f)<<8 | c.NUMD<<16
	if c.RAE {
		s.CDW10 |= 1 << 15
	}
	s.CDW11 = c.NUMD>>16 | uint32(c.LSI)<<16
	s.CDW12 = uint32(c.Offset)
	s.CDW13 = uint32(c.Offset >> 32)
	s.CDW14 = uint32(c.UUIDIndex&0x7f) | uint32(c.CSI)<<24
	if c.OT {
		s.CDW14 |= 1 << 23
	}
	return s.SetSGL(c.SGL)
}

// ErrorLogEntrySize is the size of one Error Information log entry.
const ErrorLogEntrySize = 64

// ErrorLogEntry is one entry of the Error Information log page (LID 01h,
// NVMe Base 2.3 §5.2.12.1.2).
//
//	 0 ECNT(8)  8 SQID(2) 10 CID(2) 12 STS(2) 14 PEL(2)  16 LBA(8)
//	24 NSID(4)  28 VSIA  29 TRTYPE  30 CSI  31 OPC   32 CSINFO(8)
//	40 TTSI(2)  42 reserved  63 LPVER
type ErrorLogEntry struct {
	ErrorCount     uint64 // 0 marks an unused entry
	SQID           uint16
	CID            uint16 // FFFFh when not tied to a command
	Status         Status // Status Info bits 15:1
	Phase          bool   // Status Info bit 0
	ParamErrLoc    uint16 // byte (7:0) and bit (10:8) of the offending command field
	LBA            uint64
	NSID           uint32
	VSIA           uint8
	TRType         uint8
	CSI            uint8
	Opcode         uint8
	CSInfo         uint64
	TTSI           uint16
	LogPageVersion uint8
}

// Encode writes e into b[:64].
func (e *ErrorLogEntry) Encode(b []byte) error {
	if len(b) < ErrorLogEntrySize {
		return shortErr("ErrorLogEntry", ErrorLogEntrySize, len(b))
	}
	b = b[:ErrorLogEntrySize]
	clear(b)
	le := binary.LittleEndian
	le.PutUint64(b[0:], e.ErrorCount)
	le.PutUint16(b[8:], e.SQID)
	le.PutUint16(b[10:], e.CID)
	sts := uint16(e.Status) << 1
	if e.Phase {
		sts |= 1
	}
	le.PutUint16(b[12:], sts)
	le.PutUint16(b[14:], e.ParamErrLoc)
	le.PutUint64(b[16:], e.LBA)
	le.PutUint32(b[24:], e.NSID)
	b[28], b[29], b[30], b[31] = e.VSIA, e.TRType, e.CSI, e.Opcode
	le.PutUint64(b[32:], e.CSInfo)
	le.PutUint16(b[40:], e.TTSI)
	b[63] = e.LogPageVersion
	return nil
}

// Decode fills e from b[:64]. On error e is zeroed.
func (e *ErrorLogEntry) Decode(b []byte) error {
	if len(b) < ErrorLogEntrySize {
		*e = ErrorLogEntry{}
		return shortErr("ErrorLogEntry", ErrorLogEntrySize, len(b))
	}
	le := binary.LittleEndian
	sts := le.Uint16(b[12:])
	*e = ErrorLogEntry{
		ErrorCount:     le.Uint64(b[0:]),
		SQID:           le.Uint16(b[8:]),
		CID:            le.Uint16(b[10:]),
		Status:         Status(sts >> 1),
		Phase:          sts&1 != 0,
		ParamErrLoc:    le.Uint16(b[14:]),
		LBA:            le.Uint64(b[16:]),
		NSID:           le.Uint32(b[24:]),
		VSIA:           b[28],
		TRType:         b[29],
		CSI:            b[30],
		Opcode:         b[31],
		CSInfo:         le.Uint64(b[32:]),
		TTSI:           le.Uint16(b[40:]),
		LogPageVersion: b[63],
	}
	return nil
}

// HealthLogSize is the size of the SMART / Health Information log page.
const HealthLogSize = 512

// Critical Warning bits of the SMART / Health Information log page.
const (
	CritWarnSpare       uint8 = 1 << 0
	CritWarnTemperature uint8 = 1 << 1
	CritWarnReliability uint8 = 1 << 2
	CritWarnReadOnly    uint8 = 1 << 3
	CritWarnVolatileMem uint8 = 1 << 4
	CritWarnPMR         uint8 = 1 << 5
)

// HealthLog is the SMART / Health Information log page (LID 02h, NVMe Base
// 2.3 §5.2.12.1.3, Figure 210). Counters are 16-byte little-endian values;
// data units are thousands of 512-byte units.
//
//	  0 CW  1 CTEMP(2, kelvin)  3 AVSP  4 AVSPT  5 PUSED  6 EGCWS  7 reserved
//	 32 DUR  48 DUW  64 HRC  80 HWC  96 CBT  112 PWC  128 POH  144 UPL
//	160 MDE  176 NEILE (16 bytes each)
//	192 WCTT(4) 196 CCTT(4) 200 TSEN1..8 (2 each) 216 TMT1TC(4) 220 TMT2TC(4)
//	224 TTTMT1(4) 228 TTTMT2(4)  232 reserved
type HealthLog struct {
	CriticalWarning   uint8
	CompositeTempK    uint16
	AvailSpare        uint8 // percent
	AvailSpareThresh  uint8 // percent
	PercentUsed       uint8
	EGCritWarnSummary uint8
	DataUnitsRead     Uint128
	DataUnitsWritten  Uint128
	HostReads         Uint128
	HostWrites        Uint128
	CtrlBusyTime      Uint128 // minutes
	PowerCycles       Uint128
	PowerOnHours      Uint128
	UnsafeShutdowns   Uint128
	MediaErrors       Uint128
	ErrorLogEntries   Uint128
	WarnTempTime      uint32 // minutes
	CritTempTime      uint32 // minutes
	TempSensorK       [8]uint16
	TMT1Count         uint32
	TMT2Count         uint32
	TMT1Time          uint32
	TMT2Time          uint32
}

// Encode writes h into b[:512].
func (h *HealthLog) Encode(b []byte) error {
	if len(b) < HealthLogSize {
		return shortErr("HealthLog", HealthLogSize, len(b))
	}
	b = b[:HealthLogSize]
	clear(b)
	le := binary.LittleEndian
	b[0] = h.CriticalWarning
	le.PutUint16(b[1:], h.CompositeTempK)
	b[3], b[4], b[5], b[6] = h.AvailSpare, h.AvailSpareThresh, h.PercentUsed, h.EGCritWarnSummary
	for i, c := range h.counters() {
		c.put(b[32+16*i:])
	}
	le.PutUint32(b[192:], h.WarnTempTime)
	le.PutUint32(b[196:], h.CritTempTime)
	for i, t := range h.TempSensorK {
		le.PutUint16(b[200+2*i:], t)
	}
	le.PutUint32(b[216:], h.TMT1Count)
	le.PutUint32(b[220:], h.TMT2Count)
	le.PutUint32(b[224:], h.TMT1Time)
	le.PutUint32(b[228:], h.TMT2Time)
	return nil
}

func (h *HealthLog) counters() [10]*Uint128 {
	return [10]*Uint128{&h.DataUnitsRead, &h.DataUnitsWritten, &h.HostReads, &h.HostWrites,
		&h.CtrlBusyTime, &h.PowerCycles, &h.PowerOnHours, &h.UnsafeShutdowns, &h.MediaErrors, &h.ErrorLogEntries}
}

// Decode fills h from b[:512]. On error h is zeroed.
func (h *HealthLog) Decode(b []byte) error {
	*h = HealthLog{}
	if len(b) < HealthLogSize {
		return shortErr("HealthLog", HealthLogSize, len(b))
	}
	le := binary.LittleEndian
	h.CriticalWarning = b[0]
	h.CompositeTempK = le.Uint16(b[1:])
	h.AvailSpare, h.AvailSpareThresh, h.PercentUsed, h.EGCritWarnSummary = b[3], b[4], b[5], b[6]
	for i, c := range h.counters() {
		*c = getUint128(b[32+16*i:])
	}
	h.WarnTempTime = le.Uint32(b[192:])
	h.CritTempTime = le.Uint32(b[196:])
	for i := range h.TempSensorK {
		h.TempSensorK[i] = le.Uint16(b[200+2*i:])
	}
	h.TMT1Count = le.Uint32(b[216:])
	h.TMT2Count = le.Uint32(b[220:])
	h.TMT1Time = le.Uint32(b[224:])
	h.TMT2Time = le.Uint32(b[228:])
	return nil
}

// FirmwareSlotLogSize is the size of the Firmware Slot Information log page.
const FirmwareSlotLogSize = 512

// FirmwareSlotLog is the Firmware Slot Information log page (LID 03h, NVMe
// Base 2.3 §5.2.12.1.4): AFI at byte 0 (active slot in bits 2:0,
// next slot in bits 6:4) and the revisions of slots 1-7 as 8-byte ASCII
// strings at bytes 8, 16, ... 56.
type FirmwareSlotLog struct {
	AFI uint8
	FRS [7]string // at most 8 bytes each; "" for an empty slot
}

// Encode writes f into b[:512]. Empty slots are zero filled.
func (f *FirmwareSlotLog) Encode(b []byte) error {
	if len(b) < FirmwareSlotLogSize {
		return shortErr("FirmwareSlotLog", FirmwareSlotLogSize, len(b))
	}
	b = b[:FirmwareSlotLogSize]
	clear(b)
	b[0] = f.AFI
	for i, r := range f.FRS {
		if r == "" {
			continue
		}
		if !putPadded(b[8+8*i:16+8*i], r, ' ') {
			return fieldErr("FirmwareSlotLog", "FRS", 8+8*i, "longer than 8 bytes")
		}
	}
	return nil
}

// Decode fills f from b[:512]. On error f is zeroed.
func (f *FirmwareSlotLog) Decode(b []byte) error {
	*f = FirmwareSlotLog{}
	if len(b) < FirmwareSlotLogSize {
		return shortErr("FirmwareSlotLog", FirmwareSlotLogSize, len(b))
	}
	f.AFI = b[0]
	for i := range f.FRS {
		f.FRS[i] = getPadded(b[8+8*i : 16+8*i])
	}
	return nil
}

// ChangedNSListSize is the size of the Changed Attached Namespace List log page.
const ChangedNSListSize = 4096

// EncodeChangedNSList writes the Changed Attached Namespace List log page
// (LID 04h, NVMe Base 2.3 §5.2.12.1.5): a Namespace List of the changed
// NSIDs, or, when more than 1024 changed, FFFFFFFFh followed by zeroes.
func EncodeChangedNSList(b []byte, ids []uint32) error {
	if len(ids) > nsListEntries {
		if len(b) < ChangedNSListSize {
			return shortErr("ChangedNSList", ChangedNSListSize, len(b))
		}
		clear(b[:ChangedNSListSize])
		binary.LittleEndian.PutUint32(b, NSIDBroadcast)
		return nil
	}
	return EncodeNSList(b, ids)
}

// DecodeChangedNSList appends the NSIDs of a Changed Attached Namespace List
// to dst. overflow reports the FFFFFFFFh marker: more than 1024 namespaces
// changed and the host must rescan them all.
func DecodeChangedNSList(b []byte, dst []uint32) (ids []uint32, overflow bool, err error) {
	if len(b) >= 4 && binary.LittleEndian.Uint32(b) == NSIDBroadcast {
		if len(b) < ChangedNSListSize {
			return dst, false, shortErr("ChangedNSList", ChangedNSListSize, len(b))
		}
		return dst, true, nil
	}
	ids, err = DecodeNSList(b, dst)
	return ids, false, err
}
