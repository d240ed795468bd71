package proto

import (
	"encoding/binary"
	"strconv"
)

// Sizes of the Discovery log page parts (NVMe Base 2.3 §5.2.12.3.3).
const (
	DiscoveryLogHeaderSize = 1024
	DiscoveryEntrySize     = 1024
)

// Transport Types (TRTYPE) of a Discovery Log Page Entry.
const (
	TRTypeRDMA      uint8 = 1
	TRTypeFC        uint8 = 2
	TRTypeTCP       uint8 = 3
	TRTypeIntraHost uint8 = 254 // loopback, host use
)

// Address Families (ADRFAM) of a Discovery Log Page Entry.
const (
	AdrFamIPv4      uint8 = 1
	AdrFamIPv6      uint8 = 2
	AdrFamIB        uint8 = 3
	AdrFamFC        uint8 = 4
	AdrFamIntraHost uint8 = 254
)

// Subsystem Types (SUBTYPE) of a Discovery Log Page Entry.
const (
	SubTypeReferral         uint8 = 1 // another discovery service
	SubTypeNVM              uint8 = 2 // an NVM subsystem
	SubTypeCurrentDiscovery uint8 = 3 // this discovery subsystem
)

// Transport Requirements (TREQ) of a Discovery Log Page Entry: secure
// channel in bits 1:0, SQ flow control disable support in bit 2.
const (
	TReqSecureChannelNotSpecified uint8 = 0
	TReqSecureChannelRequired     uint8 = 1
	TReqSecureChannelNotRequired  uint8 = 2
	TReqDisableSQFlowControl      uint8 = 1 << 2
)

// TSAS Security Types (SECTYPE, byte 0 of TSAS) for TCP (NVMe/TCP 1.0
// §3.6.1.1, Figure 17).
const (
	SecTypeNone  uint8 = 0
	SecTypeTLS12 uint8 = 1
	SecTypeTLS13 uint8 = 2
)

// TSAS field values for RDMA (NVMe/RDMA): QPTYPE byte 0, PRTYPE byte 1, CMS
// byte 2, PKEY bytes 9:8.
const (
	RDMAQPTypeConnected    uint8 = 1
	RDMAPRTypeNotSpecified uint8 = 1
	RDMAPRTypeIB           uint8 = 2
	RDMAPRTypeRoCE         uint8 = 3
	RDMAPRTypeRoCEv2       uint8 = 4
	RDMAPRTypeIWARP        uint8 = 5
	RDMACMSRDMACM          uint8 = 1
)

// Offsets of the text fields within a Discovery Log Page Entry.
const (
	discoveryEntryOffTRSvcID = 32
	discoveryEntryOffSubNQN  = 256
	discoveryEntryOffTRAddr  = 512
	discoveryEntryOffTSAS    = 768
)

// TSASTCP returns the TSAS of a TCP entry.
func TSASTCP(sectype uint8) (t [256]byte) {
	t[0] = sectype
	return t
}

// TSASRDMA returns the TSAS of an RDMA entry.
func TSASRDMA(qptype, prtype, cms uint8, pkey uint16) (t [256]byte) {
	t[0], t[1], t[2] = qptype, prtype, cms
	binary.LittleEndian.PutUint16(t[8:], pkey)
	return t
}

// DiscoveryLogHeader is the header of the Discovery log page (LID 70h, NVMe
// Base 2.3 §5.2.12.3.3).
//
//	   0            8            16       18
//	  +------------+------------+--------+---------------------+
//	  | GENCTR (8) | NUMREC (8) | RECFMT |  reserved ... 1023  |
//	  +------------+------------+--------+---------------------+
//	1024: entry 0, 2048: entry 1, ... (1024 bytes each)
type DiscoveryLogHeader struct {
	GenCtr uint64 // incremented on every change of the log
	NumRec uint64 // number of entries
	RecFmt uint16 // 0
}

// Encode writes h into b[:1024].
func (h *DiscoveryLogHeader) Encode(b []byte) error {
	if len(b) < DiscoveryLogHeaderSize {
		return shortErr("DiscoveryLogHeader", DiscoveryLogHeaderSize, len(b))
	}
	b = b[:DiscoveryLogHeaderSize]
	clear(b)
	binary.LittleEndian.PutUint64(b[0:], h.GenCtr)
	binary.LittleEndian.PutUint64(b[8:], h.NumRec)
	binary.LittleEndian.PutUint16(b[16:], h.RecFmt)
	return nil
}

// Decode fills h from b[:1024]. On error h is zeroed.
func (h *DiscoveryLogHeader) Decode(b []byte) error {
	if len(b) < DiscoveryLogHeaderSize {
		*h = DiscoveryLogHeader{}
		return shortErr("DiscoveryLogHeader", DiscoveryLogHeaderSize, len(b))
	}
	h.GenCtr = binary.LittleEndian.Uint64(b[0:])
	h.NumRec = binary.LittleEndian.Uint64(b[8:])
	h.RecFmt = binary.LittleEndian.Uint16(b[16:])
	return nil
}

// DiscoveryEntry is one Discovery Log Page Entry (NVMe Base 2.3
// §5.2.12.3.3, Figure 310).
//
//	 0      1      2       3     4      6      8      10     12
//	+------+------+-------+-----+------+------+------+------+-------------+
//	|TRTYPE|ADRFAM|SUBTYPE|TREQ |PORTID|CNTLID|ASQSZ |EFLAGS| reserved    |
//	+------+------+-------+-----+------+------+------+------+-------------+
//	32  TRSVCID (32, ASCII, space padded)   64 reserved
//	256 SUBNQN  (256, NUL terminated)
//	512 TRADDR  (256, ASCII, space padded)
//	768 TSAS    (256, transport specific)
//
// For TCP, TRSVCID is the port number in decimal (NVMe/TCP 1.0 §3.1.2).
type DiscoveryEntry struct {
	TRType  uint8
	AdrFam  uint8
	SubType uint8
	TReq    uint8
	PortID  uint16
	CNTLID  uint16 // FFFFh: dynamic controller model
	ASQSZ   uint16 // max admin SQ size, >= 32
	EFlags  uint16
	TRSvcID string // at most 32 bytes
	SubNQN  string // at most 255 bytes
	TRAddr  string // at most 256 bytes
	TSAS    [256]byte
}

// Encode writes e into b[:1024].
func (e *DiscoveryEntry) Encode(b []byte) error {
	const what = "DiscoveryEntry"
	if len(b) < DiscoveryEntrySize {
		return shortErr(what, DiscoveryEntrySize, len(b))
	}
	b = b[:DiscoveryEntrySize]
	clear(b[:discoveryEntryOffTRSvcID])
	b[0], b[1], b[2], b[3] = e.TRType, e.AdrFam, e.SubType, e.TReq
	binary.LittleEndian.PutUint16(b[4:], e.PortID)
	binary.LittleEndian.PutUint16(b[6:], e.CNTLID)
	binary.LittleEndian.PutUint16(b[8:], e.ASQSZ)
	binary.LittleEndian.PutUint16(b[10:], e.EFlags)
	if !putPadded(b[discoveryEntryOffTRSvcID:discoveryEntryOffTRSvcID+32], e.TRSvcID, ' ') {
		return fieldErr(what, "TRSVCID", discoveryEntryOffTRSvcID, "longer than 32 bytes")
	}
	clear(b[discoveryEntryOffTRSvcID+32 : discoveryEntryOffSubNQN])
	if !putNQN(b[discoveryEntryOffSubNQN:discoveryEntryOffTRAddr], e.SubNQN) {
		return fieldErr(what, "SUBNQN", discoveryEntryOffSubNQN, "longer than 255 bytes or contains NUL")
	}
	if !putPadded(b[discoveryEntryOffTRAddr:discoveryEntryOffTSAS], e.TRAddr, ' ') {
		return fieldErr(what, "TRADDR", discoveryEntryOffTRAddr, "longer than 256 bytes")
	}
	copy(b[discoveryEntryOffTSAS:], e.TSAS[:])
	return nil
}

// Decode fills e from b[:1024]. TRSVCID and TRADDR are read up to the first
// NUL and trimmed of trailing spaces; SUBNQN must be NUL terminated. On
// error e is zeroed.
func (e *DiscoveryEntry) Decode(b []byte) error {
	*e = DiscoveryEntry{}
	if len(b) < DiscoveryEntrySize {
		return shortErr("DiscoveryEntry", DiscoveryEntrySize, len(b))
	}
	nqn, ok := getNQN(b[discoveryEntryOffSubNQN:discoveryEntryOffTRAddr])
	if !ok {
		return fieldErr("DiscoveryEntry", "SUBNQN", discoveryEntryOffSubNQN, "not NUL terminated")
	}
	e.TRType, e.AdrFam, e.SubType, e.TReq = b[0], b[1], b[2], b[3]
	e.PortID = binary.LittleEndian.Uint16(b[4:])
	e.CNTLID = binary.LittleEndian.Uint16(b[6:])
	e.ASQSZ = binary.LittleEndian.Uint16(b[8:])
	e.EFlags = binary.LittleEndian.Uint16(b[10:])
	e.TRSvcID = getPadded(b[discoveryEntryOffTRSvcID : discoveryEntryOffTRSvcID+32])
	e.SubNQN = nqn
	e.TRAddr = getPadded(b[discoveryEntryOffTRAddr:discoveryEntryOffTSAS])
	copy(e.TSAS[:], b[discoveryEntryOffTSAS:DiscoveryEntrySize])
	return nil
}

// DiscoveryLogSize returns the size of a Discovery log page with n entries.
func DiscoveryLogSize(n int) uint64 {
	return DiscoveryLogHeaderSize + uint64(n)*DiscoveryEntrySize
}

// EncodeDiscoveryLog renders the window [offset, offset+len(dst)) of the
// Discovery log page made of a header (GENCTR genctr, NUMREC len(entries),
// RECFMT 0) and entries, as a controller does for a Get Log Page command
// with a Log Page Offset. Bytes past the end of the log are zeroed. Only the
// entries overlapping the window are encoded, so a host paging through a
// large log costs O(window). It does not allocate.
func EncodeDiscoveryLog(dst []byte, offset uint64, genctr uint64, entries []DiscoveryEntry) error {
	var scratch [DiscoveryEntrySize]byte
	total := DiscoveryLogSize(len(entries))
	end := offset + uint64(len(dst))
	if end < offset { // overflow: treat as past the end
		end = ^uint64(0)
	}
	clear(dst)
	if offset >= total {
		return nil
	}
	// part writes record k (0 = header, i+1 = entry i), which occupies
	// [k*1024, (k+1)*1024), into its overlap with the window.
	part := func(k uint64) error {
		start := k * DiscoveryEntrySize
		lo, hi := max(start, offset), min(start+DiscoveryEntrySize, end)
		full := lo == start && hi == start+DiscoveryEntrySize
		buf := scratch[:]
		if full {
			buf = dst[lo-offset : hi-offset]
		}
		var err error
		if k == 0 {
			h := DiscoveryLogHeader{GenCtr: genctr, NumRec: uint64(len(entries))}
			err = h.Encode(buf)
		} else if err = entries[k-1].Encode(buf); err != nil {
			err = inLog(err, int(k-1))
		}
		if err == nil && !full {
			copy(dst[lo-offset:hi-offset], scratch[lo-start:hi-start])
		}
		return err
	}
	for k := offset / DiscoveryEntrySize; k*DiscoveryEntrySize < min(end, total); k++ {
		if err := part(k); err != nil {
			return err
		}
	}
	return nil
}

// DecodeDiscoveryLog decodes a complete Discovery log page: the header and
// NUMREC entries, which must all lie within b. It allocates the entries
// (control path). On error it returns zero values.
func DecodeDiscoveryLog(b []byte) (DiscoveryLogHeader, []DiscoveryEntry, error) {
	var h DiscoveryLogHeader
	if err := h.Decode(b); err != nil {
		return DiscoveryLogHeader{}, nil, err
	}
	if h.NumRec > uint64(len(b)-DiscoveryLogHeaderSize)/DiscoveryEntrySize {
		return DiscoveryLogHeader{}, nil, fieldErr("DiscoveryLogHeader", "NUMREC", 8,
			"more records than the "+strconv.Itoa(len(b))+"-byte log holds")
	}
	entries := make([]DiscoveryEntry, h.NumRec)
	for i := range entries {
		off := DiscoveryLogHeaderSize + i*DiscoveryEntrySize
		if err := entries[i].Decode(b[off:]); err != nil {
			return DiscoveryLogHeader{}, nil, inLog(err, i)
		}
	}
	return h, entries, nil
}

// inLog rewrites the FieldError of entry i so it names the field within the
// whole log page.
func inLog(err error, i int) error {
	fe, ok := err.(*FieldError)
	if !ok {
		return err
	}
	c := *fe
	c.Struct = "DiscoveryLog"
	c.Field = "entry[" + strconv.Itoa(i) + "]." + fe.Field
	c.Offset += DiscoveryLogHeaderSize + i*DiscoveryEntrySize
	return &c
}
