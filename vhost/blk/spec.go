package blk

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Request types (VIRTIO v1.2, 5.2.6).
const (
	TypeIn          uint32 = 0  // read sectors into the data buffers
	TypeOut         uint32 = 1  // write the data buffers to sectors
	TypeFlush       uint32 = 4  // make completed writes durable
	TypeGetID       uint32 = 8  // fetch the 20-byte device ID string
	TypeGetLifetime uint32 = 10 // storage lifetime (not offered)
	TypeDiscard     uint32 = 11 // deallocate ranges (segments in the data)
	TypeWriteZeroes uint32 = 13 // zero ranges (segments in the data)
	TypeSecureErase uint32 = 14 // not offered
)

// Status byte values (VIRTIO v1.2, 5.2.6).
const (
	StatusOK     byte = 0 // success
	StatusIOErr  byte = 1 // device or driver error
	StatusUnsupp byte = 2 // request not supported by the device
)

// Feature bits of the block device (VIRTIO v1.2, 5.2.3).
const (
	FeatureSizeMax     uint64 = 1 << 1  // size_max is valid
	FeatureSegMax      uint64 = 1 << 2  // seg_max is valid
	FeatureGeometry    uint64 = 1 << 4  // geometry is valid (not offered)
	FeatureRO          uint64 = 1 << 5  // the device is read-only
	FeatureBlkSize     uint64 = 1 << 6  // blk_size is valid
	FeatureFlush       uint64 = 1 << 9  // VIRTIO_BLK_T_FLUSH
	FeatureTopology    uint64 = 1 << 10 // topology is valid
	FeatureConfigWCE   uint64 = 1 << 11 // writeback is writable (not offered)
	FeatureMQ          uint64 = 1 << 12 // num_queues is valid
	FeatureDiscard     uint64 = 1 << 13 // VIRTIO_BLK_T_DISCARD
	FeatureWriteZeroes uint64 = 1 << 14 // VIRTIO_BLK_T_WRITE_ZEROES
)

// Sizes and limits of the request format.
const (
	// SectorSize is the unit of sector numbers and of capacity (5.2.4).
	SectorSize = 512
	// HeaderSize is the request header: type, reserved, sector (5.2.6).
	HeaderSize = 16
	// IDBytes is the length of the device ID string (VIRTIO_BLK_ID_BYTES).
	IDBytes = 20
	// SegmentSize is one discard / write-zeroes segment (5.2.6).
	SegmentSize = 16
	// SegmentFlagUnmap is the unmap flag of a write-zeroes segment.
	SegmentFlagUnmap uint32 = 1

	// MaxDataSegs is seg_max: the most data buffers one request may
	// carry. A descriptor may be split at a guest memory region boundary,
	// so chains get room for more segments than this (see Queue).
	MaxDataSegs = 126
	// MaxRangeSegs is max_discard_seg and max_write_zeroes_seg.
	MaxRangeSegs = 16
	// MaxRangeSectors is max_discard_sectors and max_write_zeroes_sectors
	// (2 GiB per segment; each segment is one bdev IO).
	MaxRangeSectors = 1 << 22
	// SizeMax is size_max, the largest single data buffer.
	SizeMax = 1 << 20
)

// ConfigSize is the size of struct virtio_blk_config as of VIRTIO v1.2
// (through the zoned characteristics).
const ConfigSize = 96

// Config is the device configuration space (VIRTIO v1.2, 5.2.4). It is
// encoded little-endian:
//
//	 0 capacity u64              (512-byte sectors)
//	 8 size_max u32             12 seg_max u32
//	16 geometry: cylinders u16, heads u8, sectors u8
//	20 blk_size u32
//	24 topology: physical_block_exp u8, alignment_offset u8,
//	             min_io_size u16, opt_io_size u32
//	32 writeback u8  33 unused0 u8  34 num_queues u16
//	36 max_discard_sectors u32  40 max_discard_seg u32
//	44 discard_sector_alignment u32
//	48 max_write_zeroes_sectors u32  52 max_write_zeroes_seg u32
//	56 write_zeroes_may_unmap u8  57 unused1[3]
//	60 max_secure_erase_sectors u32  64 max_secure_erase_seg u32
//	68 secure_erase_sector_alignment u32
//	72 zoned characteristics (24 bytes, all zero here)
type Config struct {
	Capacity               uint64
	SizeMax                uint32
	SegMax                 uint32
	BlkSize                uint32
	PhysicalBlockExp       uint8
	AlignmentOffset        uint8
	MinIOSize              uint16
	OptIOSize              uint32
	Writeback              uint8
	NumQueues              uint16
	MaxDiscardSectors      uint32
	MaxDiscardSeg          uint32
	DiscardSectorAlignment uint32
	MaxWriteZeroesSectors  uint32
	MaxWriteZeroesSeg      uint32
	WriteZeroesMayUnmap    uint8
}

// Encode writes c into b[:ConfigSize]. Precondition: len(b) >= ConfigSize.
func (c *Config) Encode(b []byte) {
	b = b[:ConfigSize]
	clear(b)
	le := binary.LittleEndian
	le.PutUint64(b[0:], c.Capacity)
	le.PutUint32(b[8:], c.SizeMax)
	le.PutUint32(b[12:], c.SegMax)
	le.PutUint32(b[20:], c.BlkSize)
	b[24] = c.PhysicalBlockExp
	b[25] = c.AlignmentOffset
	le.PutUint16(b[26:], c.MinIOSize)
	le.PutUint32(b[28:], c.OptIOSize)
	b[32] = c.Writeback
	le.PutUint16(b[34:], c.NumQueues)
	le.PutUint32(b[36:], c.MaxDiscardSectors)
	le.PutUint32(b[40:], c.MaxDiscardSeg)
	le.PutUint32(b[44:], c.DiscardSectorAlignment)
	le.PutUint32(b[48:], c.MaxWriteZeroesSectors)
	le.PutUint32(b[52:], c.MaxWriteZeroesSeg)
	b[56] = c.WriteZeroesMayUnmap
}

// DecodeConfig parses a configuration space image (front-ends and tests).
// b must hold at least the fields up to write_zeroes_may_unmap (57 bytes).
func DecodeConfig(b []byte) (Config, error) {
	if len(b) < 57 {
		return Config{}, fmt.Errorf("virtio-blk config: %d bytes, need 57: %w", len(b), ErrShort)
	}
	le := binary.LittleEndian
	return Config{
		Capacity: le.Uint64(b[0:]), SizeMax: le.Uint32(b[8:]), SegMax: le.Uint32(b[12:]),
		BlkSize: le.Uint32(b[20:]), PhysicalBlockExp: b[24], AlignmentOffset: b[25],
		MinIOSize: le.Uint16(b[26:]), OptIOSize: le.Uint32(b[28:]), Writeback: b[32],
		NumQueues: le.Uint16(b[34:]), MaxDiscardSectors: le.Uint32(b[36:]),
		MaxDiscardSeg: le.Uint32(b[40:]), DiscardSectorAlignment: le.Uint32(b[44:]),
		MaxWriteZeroesSectors: le.Uint32(b[48:]), MaxWriteZeroesSeg: le.Uint32(b[52:]),
		WriteZeroesMayUnmap: b[56],
	}, nil
}

// ErrShort: a buffer is shorter than the structure it should hold.
var ErrShort = errors.New("virtio-blk: buffer too short")

// Header is a request header (struct virtio_blk_outhdr):
//
//	0 type u32   4 reserved u32 (was ioprio)   8 sector u64
type Header struct {
	Type     uint32
	Reserved uint32
	Sector   uint64
}

// DecodeHeader parses a header from b[:HeaderSize]. The caller copies the
// bytes out of guest memory first, so the guest cannot change them while
// they are checked.
func DecodeHeader(b *[HeaderSize]byte) Header {
	le := binary.LittleEndian
	return Header{Type: le.Uint32(b[0:]), Reserved: le.Uint32(b[4:]), Sector: le.Uint64(b[8:])}
}

// Encode writes h into b.
func (h Header) Encode(b *[HeaderSize]byte) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], h.Type)
	le.PutUint32(b[4:], h.Reserved)
	le.PutUint64(b[8:], h.Sector)
}

// Segment is one range of a discard or write-zeroes request
// (struct virtio_blk_discard_write_zeroes):
//
//	0 sector u64   8 num_sectors u32   12 flags u32 (bit 0 unmap)
type Segment struct {
	Sector     uint64
	NumSectors uint32
	Flags      uint32
}

// DecodeSegment parses a segment from b[:SegmentSize].
func DecodeSegment(b *[SegmentSize]byte) Segment {
	le := binary.LittleEndian
	return Segment{Sector: le.Uint64(b[0:]), NumSectors: le.Uint32(b[8:]), Flags: le.Uint32(b[12:])}
}

// Encode writes s into b.
func (s Segment) Encode(b *[SegmentSize]byte) {
	le := binary.LittleEndian
	le.PutUint64(b[0:], s.Sector)
	le.PutUint32(b[8:], s.NumSectors)
	le.PutUint32(b[12:], s.Flags)
}
