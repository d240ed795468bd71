package proto

import "encoding/binary"

// RWCmd is the shared layout of the NVM Command Set Read, Write, Compare,
// Write Zeroes, Write Uncorrectable and Verify commands (NVM Command Set
// 1.0, I/O commands):
//
//	CDW10-11: SLBA (64 bits)
//	CDW12:    NLB 15:0 (0's based) | DTYPE 23:20 | DEAC 25 (Write Zeroes) | PRINFO 29:26 | FUA 30 | LR 31
//	CDW13:    DSM 7:0 | DSPEC 31:16
//	CDW14:    reference tag   CDW15: application tag and mask
//
// NLB is held here 1-based (1..65536) as the number of blocks to transfer.
type RWCmd struct {
	Opcode     uint8 // IORead, IOWrite, IOCompare, IOWriteZeroes, IOVerify, IOWriteUncorrectable
	CID        uint16
	NSID       uint32
	SGL        SGL
	SLBA       uint64
	NLB        uint32 // number of logical blocks, 1..65536
	FUA        bool
	LR         bool // limited retry
	Deallocate bool // Write Zeroes only (DEAC)
	DSM        uint8
}

// MaxNLB is the largest block count one Read or Write command can carry.
const MaxNLB = 1 << 16

// RW interprets s as a read/write-class command. The NLB it returns is
// 1-based, so it cannot be 0.
func (s *SQE) RW() RWCmd {
	return RWCmd{
		Opcode:     s.Opcode,
		CID:        s.CID,
		NSID:       s.NSID,
		SGL:        s.SGL(),
		SLBA:       uint64(s.CDW10) | uint64(s.CDW11)<<32,
		NLB:        s.CDW12&0xffff + 1,
		FUA:        s.CDW12&(1<<30) != 0,
		LR:         s.CDW12&(1<<31) != 0,
		Deallocate: s.CDW12&(1<<25) != 0,
		DSM:        uint8(s.CDW13),
	}
}

// PutRW makes s a read/write-class command. It fails when NLB is not in
// 1..65536 or the SGL does not fit.
func (s *SQE) PutRW(c *RWCmd) error {
	if c.NLB == 0 || c.NLB > MaxNLB {
		return fieldErr("RWCmd", "NLB", 48, "block count outside 1..65536")
	}
	*s = SQE{Opcode: c.Opcode, Flags: PSDTSGL << 6, CID: c.CID, NSID: c.NSID}
	s.CDW10 = uint32(c.SLBA)
	s.CDW11 = uint32(c.SLBA >> 32)
	s.CDW12 = c.NLB - 1
	if c.Deallocate {
		s.CDW12 |= 1 << 25
	}
	if c.FUA {
		s.CDW12 |= 1 << 30
	}
	if c.LR {
		s.CDW12 |= 1 << 31
	}
	s.CDW13 = uint32(c.DSM)
	return s.SetSGL(c.SGL)
}

// PutFlush makes s a Flush command (NVMe Base 2.3 §7.2) for nsid
// (NSIDBroadcast flushes every namespace when the controller supports it).
func (s *SQE) PutFlush(cid uint16, nsid uint32) {
	*s = SQE{Opcode: IOFlush, CID: cid, NSID: nsid}
}

// Dataset Management attribute bits (CDW11, NVM Command Set 1.0, Dataset Management command).
const (
	DSMAttrIDR        uint32 = 1 << 0 // integral dataset for read
	DSMAttrIDW        uint32 = 1 << 1 // integral dataset for write
	DSMAttrDeallocate uint32 = 1 << 2 // AD: deallocate (unmap/trim)
)

// MaxDSMRanges is the largest number of ranges one Dataset Management
// command carries (NR is 8 bits, 0's based).
const MaxDSMRanges = 256

// DSMCmd is the Dataset Management command (NVM Command Set 1.0, Dataset Management command):
// NR (0's based number of ranges) in CDW10 bits 7:0, attributes in CDW11.
// The ranges (DSMRange) are the command's data, 16 bytes each.
type DSMCmd struct {
	CID    uint16
	NSID   uint32
	SGL    SGL
	Ranges int // number of ranges, 1..256
	Attrs  uint32
}

// DSM interprets s as a Dataset Management command.
func (s *SQE) DSM() DSMCmd {
	return DSMCmd{CID: s.CID, NSID: s.NSID, SGL: s.SGL(), Ranges: int(s.CDW10&0xff) + 1, Attrs: s.CDW11}
}

// PutDSM makes s a Dataset Management command.
func (s *SQE) PutDSM(c *DSMCmd) error {
	if c.Ranges < 1 || c.Ranges > MaxDSMRanges {
		return fieldErr("DSMCmd", "NR", 40, "range count outside 1..256")
	}
	*s = SQE{Opcode: IODatasetManagement, Flags: PSDTSGL << 6, CID: c.CID, NSID: c.NSID}
	s.CDW10 = uint32(c.Ranges - 1)
	s.CDW11 = c.Attrs
	return s.SetSGL(c.SGL)
}

// DSMRangeSize is the size of one Dataset Management range.
const DSMRangeSize = 16

// DSMRange is one Dataset Management range (NVM Command Set 1.0, Dataset Management command,
// "Dataset Management - Range Definition"):
//
//	 0                 4                8                    16
//	+-----------------+----------------+--------------------+
//	| context attrs   | length (blocks)| starting LBA       |
//	+-----------------+----------------+--------------------+
type DSMRange struct {
	ContextAttrs uint32
	NLB          uint32 // length in logical blocks (1-based; 0 is an empty range)
	SLBA         uint64
}

// Encode writes r into b[:16].
func (r *DSMRange) Encode(b []byte) error {
	if len(b) < DSMRangeSize {
		return shortErr("DSMRange", DSMRangeSize, len(b))
	}
	binary.LittleEndian.PutUint32(b[0:], r.ContextAttrs)
	binary.LittleEndian.PutUint32(b[4:], r.NLB)
	binary.LittleEndian.PutUint64(b[8:], r.SLBA)
	return nil
}

// Decode fills r from b[:16]. On error r is zeroed.
func (r *DSMRange) Decode(b []byte) error {
	if len(b) < DSMRangeSize {
		*r = DSMRange{}
		return shortErr("DSMRange", DSMRangeSize, len(b))
	}
	r.ContextAttrs = binary.LittleEndian.Uint32(b[0:])
	r.NLB = binary.LittleEndian.Uint32(b[4:])
	r.SLBA = binary.LittleEndian.Uint64(b[8:])
	return nil
}

// DecodeDSMRanges appends the n ranges in b to dst and returns it. It does
// not allocate when cap(dst)-len(dst) >= n. On error dst is returned unchanged.
func DecodeDSMRanges(b []byte, n int, dst []DSMRange) ([]DSMRange, error) {
	if n < 1 || n > MaxDSMRanges {
		return dst, fieldErr("DSMRanges", "NR", 0, "range count outside 1..256")
	}
	if len(b) < n*DSMRangeSize {
		return dst, shortErr("DSMRanges", n*DSMRangeSize, len(b))
	}
	for i := 0; i < n; i++ {
		var r DSMRange
		_ = r.Decode(b[i*DSMRangeSize:])
		dst = append(dst, r)
	}
	return dst, nil
}
