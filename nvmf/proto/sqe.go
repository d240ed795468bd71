package proto

import "encoding/binary"

// SQESize is the size of a submission queue entry (NVMe Base 2.3 §4.1.1).
const SQESize = 64

// SQE is a submission queue entry: the command part of an NVMe-oF command
// capsule (NVMe Base 2.3 §4.1.1 "Admin Command and I/O Command Common SQE",
// §4.1.2 "Fabrics Command Common SQE"). All multi-byte fields are little
// endian.
//
//	byte  0       1       2       3
//	    +-------+-------+-------+-------+
//	  0 |  OPC  | FLAGS |      CID      |  CDW0. FLAGS: FUSE bits 1:0, PSDT bits 7:6
//	    +-------+-------+-------+-------+
//	  4 |             NSID              |  Fabrics: byte 4 is FCTYPE
//	    +-------------------------------+
//	  8 |             CDW2              |
//	 12 |             CDW3              |
//	    +-------------------------------+
//	 16 |          MPTR (8 bytes)       |  metadata pointer
//	    +-------------------------------+
//	 24 |   DPTR / SGL1 (16 bytes)      |  one SGL descriptor on fabrics (type SGL)
//	    +-------------------------------+
//	 40 |            CDW10              |
//	 44 |            CDW11              |
//	 48 |            CDW12              |
//	 52 |            CDW13              |
//	 56 |            CDW14              |
//	 60 |            CDW15              |
//	    +-------------------------------+ 64
//
// Decode followed by Encode reproduces all 64 bytes: FLAGS keeps its reserved
// bits and DPTR is kept raw; SGL and the typed command views (Connect, RW,
// GetLogPage, ...) interpret it. SQE is a plain value: copy it freely.
type SQE struct {
	Opcode uint8
	Flags  uint8 // FUSE (bits 1:0) and PSDT (bits 7:6), reserved bits 5:2 kept verbatim
	CID    uint16
	NSID   uint32
	CDW2   uint32
	CDW3   uint32
	MPTR   uint64
	DPTR   [16]byte
	CDW10  uint32
	CDW11  uint32
	CDW12  uint32
	CDW13  uint32
	CDW14  uint32
	CDW15  uint32
}

// Fused operation values of the FUSE field (NVMe Base 2.3 Figure 91, §3.4.2).
const (
	FuseNone   = 0 // normal operation
	FuseFirst  = 1 // first command of a fused operation
	FuseSecond = 2 // second command of a fused operation
)

// PSDT values (NVMe Base 2.3 Figure 91). NVMe over Fabrics uses SGLs only.
// Linux and SPDK hosts send PSDTSGL for every command, Fabrics commands
// included; NVMe Base 2.3 §4.1.2 asks hosts for PSDTSGLSegment on Fabrics
// commands that move data, so a controller must accept all three.
const (
	PSDTPRP        = 0 // PRPs (NVMe over PCIe only)
	PSDTSGL        = 1 // SGLs; MPTR is the address of a contiguous metadata buffer
	PSDTSGLSegment = 2 // SGLs; MPTR is the address of an SGL segment
)

// Decode fills s from the first 64 bytes of b. On error s is zeroed.
func (s *SQE) Decode(b []byte) error {
	if len(b) < SQESize {
		*s = SQE{}
		return shortErr("SQE", SQESize, len(b))
	}
	b = b[:SQESize]
	s.Opcode = b[0]
	s.Flags = b[1]
	s.CID = binary.LittleEndian.Uint16(b[2:])
	s.NSID = binary.LittleEndian.Uint32(b[4:])
	s.CDW2 = binary.LittleEndian.Uint32(b[8:])
	s.CDW3 = binary.LittleEndian.Uint32(b[12:])
	s.MPTR = binary.LittleEndian.Uint64(b[16:])
	copy(s.DPTR[:], b[24:40])
	s.CDW10 = binary.LittleEndian.Uint32(b[40:])
	s.CDW11 = binary.LittleEndian.Uint32(b[44:])
	s.CDW12 = binary.LittleEndian.Uint32(b[48:])
	s.CDW13 = binary.LittleEndian.Uint32(b[52:])
	s.CDW14 = binary.LittleEndian.Uint32(b[56:])
	s.CDW15 = binary.LittleEndian.Uint32(b[60:])
	return nil
}

// Encode writes s into the first 64 bytes of b.
func (s *SQE) Encode(b []byte) error {
	if len(b) < SQESize {
		return shortErr("SQE", SQESize, len(b))
	}
	b = b[:SQESize]
	b[0] = s.Opcode
	b[1] = s.Flags
	binary.LittleEndian.PutUint16(b[2:], s.CID)
	binary.LittleEndian.PutUint32(b[4:], s.NSID)
	binary.LittleEndian.PutUint32(b[8:], s.CDW2)
	binary.LittleEndian.PutUint32(b[12:], s.CDW3)
	binary.LittleEndian.PutUint64(b[16:], s.MPTR)
	copy(b[24:40], s.DPTR[:])
	binary.LittleEndian.PutUint32(b[40:], s.CDW10)
	binary.LittleEndian.PutUint32(b[44:], s.CDW11)
	binary.LittleEndian.PutUint32(b[48:], s.CDW12)
	binary.LittleEndian.PutUint32(b[52:], s.CDW13)
	binary.LittleEndian.PutUint32(b[56:], s.CDW14)
	binary.LittleEndian.PutUint32(b[60:], s.CDW15)
	return nil
}

// Fuse returns the FUSE field.
func (s *SQE) Fuse() uint8 { return s.Flags & 3 }

// PSDT returns the PSDT field.
func (s *SQE) PSDT() uint8 { return s.Flags >> 6 }

// SetPSDT sets the PSDT field.
func (s *SQE) SetPSDT(v uint8) { s.Flags = s.Flags&0x3f | v<<6 }

// FCType returns the Fabrics Command Type, byte 4 of a Fabrics command
// (Opcode OpFabrics; NVMe Base 2.3 §4.1.2). It is meaningless otherwise.
func (s *SQE) FCType() uint8 { return uint8(s.NSID) }

// SGL decodes DPTR as an SGL descriptor.
func (s *SQE) SGL() SGL {
	var d SGL
	d.decode(&s.DPTR)
	return d
}

// SetSGL encodes d into DPTR. It fails only when d does not fit its wire
// format (a keyed length above MaxKeyedSGLLen).
func (s *SQE) SetSGL(d SGL) error { return d.encode(&s.DPTR) }

// SGLSize is the size of an SGL descriptor.
const SGLSize = 16

// SGLType is the SGL Descriptor Type, bits 7:4 of the SGL Identifier (NVMe
// Base 2.3 §4.3.2, Figure 116).
type SGLType uint8

const (
	SGLTypeDataBlock          SGLType = 0x0 // SGL Data Block
	SGLTypeBitBucket          SGLType = 0x1 // SGL Bit Bucket
	SGLTypeSegment            SGLType = 0x2 // SGL Segment
	SGLTypeLastSegment        SGLType = 0x3 // SGL Last Segment
	SGLTypeKeyedDataBlock     SGLType = 0x4 // Keyed SGL Data Block (RDMA: host address + rkey)
	SGLTypeTransportDataBlock SGLType = 0x5 // Transport SGL Data Block (TCP: command data buffer)
	SGLTypeVendor             SGLType = 0xf // vendor specific
)

// SGLSubtype is the SGL Descriptor Sub Type, bits 3:0 of the SGL Identifier
// (NVMe Base 2.3 §4.3.2, Figure 117).
type SGLSubtype uint8

const (
	SGLSubAddress SGLSubtype = 0x0 // Address is a memory address
	SGLSubOffset  SGLSubtype = 0x1 // Address is an offset: in-capsule data on fabrics (§3.3.2.1.3.1)
	// SGLSubTransport is the NVMe/TCP Command Data Buffer subtype Ah, used with
	// SGLTypeTransportDataBlock (NVMe/TCP 1.0 §3.3.2).
	SGLSubTransport SGLSubtype = 0xa
	// SGLSubInvalidate is the NVMe/RDMA subtype Fh of a keyed data block: the
	// controller invalidates the key with SEND with Invalidate.
	SGLSubInvalidate SGLSubtype = 0xf
)

// MaxKeyedSGLLen is the largest length a Keyed SGL Data Block descriptor can
// carry, 16 MiB - 1 (NVMe Base 2.3 §4.3.2).
const MaxKeyedSGLLen = 1<<24 - 1

// SGL is one SGL descriptor (NVMe Base 2.3 §4.3.2). Fabrics commands carry
// exactly one in SGL1 (bytes 24-39 of the SQE).
//
// Data Block, Segment, Last Segment, Bit Bucket, Transport Data Block:
//
//	0         8         12         15
//	+---------+---------+----------+----+
//	| ADDR(8) | LEN (4) | rsvd (3) | ID |   ID = Type<<4 | Subtype
//	+---------+---------+----------+----+
//
// Keyed Data Block (NVMe/RDMA: host virtual address and rkey):
//
//	0         8         11         15
//	+---------+---------+----------+----+
//	| ADDR(8) | LEN (3) | KEY (4)  | ID |
//	+---------+---------+----------+----+
//
// NVMe/TCP uses {DataBlock, Offset} for in-capsule data (Addr = offset into
// the capsule data, 0 for TCP since ICDOFF is 0) and {TransportDataBlock,
// Transport} with Addr 0 for data moved by R2T/H2CData and C2HData (NVMe/TCP
// 1.0 §3.3.2). NVMe/RDMA uses {KeyedDataBlock, Address or Invalidate}.
// Decoding drops the reserved bytes 12-14 of unkeyed descriptors.
type SGL struct {
	Type    SGLType
	Subtype SGLSubtype
	Addr    uint64
	Len     uint32 // at most MaxKeyedSGLLen for keyed descriptors
	Key     uint32 // keyed descriptors only
}

// ID returns the SGL Identifier byte.
func (d SGL) ID() uint8 { return uint8(d.Type)<<4 | uint8(d.Subtype)&0xf }

// Decode fills d from b[:16]. On error d is zeroed.
func (d *SGL) Decode(b []byte) error {
	if len(b) < SGLSize {
		*d = SGL{}
		return shortErr("SGL", SGLSize, len(b))
	}
	d.decode((*[SGLSize]byte)(b))
	return nil
}

// Encode writes d into b[:16].
func (d *SGL) Encode(b []byte) error {
	if len(b) < SGLSize {
		return shortErr("SGL", SGLSize, len(b))
	}
	return d.encode((*[SGLSize]byte)(b))
}

func (d *SGL) decode(b *[SGLSize]byte) {
	id := b[15]
	d.Type = SGLType(id >> 4)
	d.Subtype = SGLSubtype(id & 0xf)
	d.Addr = binary.LittleEndian.Uint64(b[0:])
	if d.Type == SGLTypeKeyedDataBlock {
		d.Len = uint32(b[8]) | uint32(b[9])<<8 | uint32(b[10])<<16
		d.Key = binary.LittleEndian.Uint32(b[11:])
	} else {
		d.Len = binary.LittleEndian.Uint32(b[8:])
		d.Key = 0
	}
}

func (d *SGL) encode(b *[SGLSize]byte) error {
	binary.LittleEndian.PutUint64(b[0:], d.Addr)
	if d.Type == SGLTypeKeyedDataBlock {
		if d.Len > MaxKeyedSGLLen {
			return fieldErr("SGL", "LEN", 8, "keyed data block length exceeds 24 bits")
		}
		b[8], b[9], b[10] = byte(d.Len), byte(d.Len>>8), byte(d.Len>>16)
		binary.LittleEndian.PutUint32(b[11:], d.Key)
	} else {
		binary.LittleEndian.PutUint32(b[8:], d.Len)
		b[12], b[13], b[14] = 0, 0, 0
	}
	b[15] = d.ID()
	return nil
}

// KeyedSGL returns a Keyed SGL Data Block descriptor for NVMe/RDMA. With
// invalidate the controller is asked to invalidate key when it completes.
func KeyedSGL(addr uint64, length, key uint32, invalidate bool) SGL {
	d := SGL{Type: SGLTypeKeyedDataBlock, Subtype: SGLSubAddress, Addr: addr, Len: length, Key: key}
	if invalidate {
		d.Subtype = SGLSubInvalidate
	}
	return d
}

// InCapsuleSGL returns the SGL Data Block descriptor with the Offset subtype
// that announces length bytes of in-capsule data starting at offset bytes
// into the capsule data (NVMe Base 2.3 §3.3.2.1.3.1; offset is 0 for TCP).
func InCapsuleSGL(offset uint64, length uint32) SGL {
	return SGL{Type: SGLTypeDataBlock, Subtype: SGLSubOffset, Addr: offset, Len: length}
}

// TCPDataSGL returns the NVMe/TCP Command Data Buffer descriptor (Transport
// SGL Data Block, subtype Ah, address 0) for length bytes moved by
// R2T/H2CData or C2HData PDUs (NVMe/TCP 1.0 §3.3.2, Figure 14).
func TCPDataSGL(length uint32) SGL {
	return SGL{Type: SGLTypeTransportDataBlock, Subtype: SGLSubTransport, Len: length}
}

// Xfer is the data transfer direction encoded in bits 1:0 of an opcode or of
// a Fabrics Command Type (NVMe Base 2.3 Figure 91, §4.1.2).
type Xfer uint8

const (
	XferNone          Xfer = 0 // no data
	XferHostToCtrl    Xfer = 1 // host to controller (write-like)
	XferCtrlToHost    Xfer = 2 // controller to host (read-like)
	XferBidirectional Xfer = 3 // both directions (reserved for Fabrics commands)
)

// Dir returns the data transfer direction of the command: from the Fabrics
// Command Type for Fabrics commands, from the opcode otherwise.
func (s *SQE) Dir() Xfer {
	if s.Opcode == OpFabrics {
		return Xfer(s.FCType() & 3)
	}
	return Xfer(s.Opcode & 3)
}
