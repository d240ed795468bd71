package virtio

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// virtio-blk feature bits (VIRTIO v1.2, 5.2.3).
const (
	FeatureSizeMax     uint64 = 1 << 1  // VIRTIO_BLK_F_SIZE_MAX: size_max is valid
	FeatureSegMax      uint64 = 1 << 2  // VIRTIO_BLK_F_SEG_MAX: seg_max is valid
	FeatureGeometry    uint64 = 1 << 4  // VIRTIO_BLK_F_GEOMETRY (not negotiated)
	FeatureRO          uint64 = 1 << 5  // VIRTIO_BLK_F_RO: the device is read-only
	FeatureBlkSize     uint64 = 1 << 6  // VIRTIO_BLK_F_BLK_SIZE: blk_size is valid
	FeatureFlush       uint64 = 1 << 9  // VIRTIO_BLK_F_FLUSH: VIRTIO_BLK_T_FLUSH works
	FeatureTopology    uint64 = 1 << 10 // VIRTIO_BLK_F_TOPOLOGY: topology fields valid
	FeatureConfigWCE   uint64 = 1 << 11 // VIRTIO_BLK_F_CONFIG_WCE: writeback is valid
	FeatureMQ          uint64 = 1 << 12 // VIRTIO_BLK_F_MQ: num_queues is valid
	FeatureDiscard     uint64 = 1 << 13 // VIRTIO_BLK_F_DISCARD
	FeatureWriteZeroes uint64 = 1 << 14 // VIRTIO_BLK_F_WRITE_ZEROES
)

// blkFeatures are the device features this front end understands and
// accepts when offered. Ring features (VERSION_1, EVENT_IDX) and
// VHOST_USER_F_PROTOCOL_FEATURES are added by the handshake.
const blkFeatures = FeatureSizeMax | FeatureSegMax | FeatureRO | FeatureBlkSize |
	FeatureFlush | FeatureTopology | FeatureConfigWCE | FeatureMQ |
	FeatureDiscard | FeatureWriteZeroes

// Request types (VIRTIO v1.2, 5.2.6).
const (
	reqIn          = 0  // VIRTIO_BLK_T_IN: read
	reqOut         = 1  // VIRTIO_BLK_T_OUT: write
	reqFlush       = 4  // VIRTIO_BLK_T_FLUSH
	reqDiscard     = 11 // VIRTIO_BLK_T_DISCARD
	reqWriteZeroes = 13 // VIRTIO_BLK_T_WRITE_ZEROES
)

// Request status byte values (VIRTIO v1.2, 5.2.6).
const (
	statusOK     = 0    // VIRTIO_BLK_S_OK
	statusIOErr  = 1    // VIRTIO_BLK_S_IOERR
	statusUnsupp = 2    // VIRTIO_BLK_S_UNSUPP
	statusUnset  = 0xff // written by us before submission: "device never answered"
)

// SectorSize is the unit of every sector number and count on the wire,
// whatever the device's blk_size (VIRTIO v1.2, 5.2.6).
const SectorSize = 512

// ConfigSize is how many bytes of the device's configuration space the front
// end reads with GET_CONFIG: the fields up to and including
// write_zeroes_may_unmap and its padding. Back ends built before the
// secure-erase fields existed refuse larger reads (qemu-storage-daemon 7.2
// answers an empty payload to a 72-byte read).
const ConfigSize = 60

// BlkConfig is the part of struct virtio_blk_config (VIRTIO v1.2, 5.2.4)
// the front end uses. Fields whose feature was not offered are zero.
//
// Layout of the configuration space (little-endian):
//
//	0  capacity u64 (512-byte sectors)   36 max_discard_sectors u32
//	8  size_max u32                      40 max_discard_seg u32
//	12 seg_max u32                       44 discard_sector_alignment u32
//	16 geometry (cyl u16, heads u8,      48 max_write_zeroes_sectors u32
//	   sectors u8)                       52 max_write_zeroes_seg u32
//	20 blk_size u32                      56 write_zeroes_may_unmap u8
//	24 physical_block_exp u8             57 unused[3]
//	25 alignment_offset u8               60 (secure erase fields, not read)
//	26 min_io_size u16
//	28 opt_io_size u32
//	32 writeback u8, 33 unused u8
//	34 num_queues u16
type BlkConfig struct {
	CapacitySectors       uint64
	SizeMax               uint32 // largest single segment in bytes; 0: no limit
	SegMax                uint32 // most data segments per request; 0: not given
	BlkSize               uint32 // logical block size in bytes
	PhysicalBlockExp      uint8
	MinIOSize             uint16 // in blocks
	OptIOSize             uint32 // in blocks
	Writeback             bool
	NumQueues             uint16
	MaxDiscardSectors     uint32
	MaxDiscardSeg         uint32
	DiscardAlignSectors   uint32
	MaxWriteZeroesSectors uint32
	MaxWriteZeroesSeg     uint32
	WriteZeroesMayUnmap   bool
}

// DecodeConfig parses the configuration space b read with GET_CONFIG,
// keeping the fields the negotiated features make valid. It checks every
// value the data path relies on and names the field and its offset when
// one is unusable. Peer bytes: it never panics.
func DecodeConfig(b []byte, features uint64) (BlkConfig, error) {
	if len(b) < ConfigSize {
		return BlkConfig{}, fmt.Errorf("virtio-blk config: %d bytes, want %d", len(b), ConfigSize)
	}
	le := binary.LittleEndian
	var c BlkConfig
	bad := func(field string, off int, v uint64, why string) (BlkConfig, error) {
		return BlkConfig{}, fmt.Errorf("virtio-blk config: %s (offset %d) = %d: %s", field, off, v, why)
	}
	c.CapacitySectors = le.Uint64(b[0:])
	if c.CapacitySectors == 0 {
		return bad("capacity", 0, 0, "the device is empty")
	}
	if c.CapacitySectors > (1<<63)/SectorSize {
		return bad("capacity", 0, c.CapacitySectors, "larger than 2^63 bytes")
	}
	c.BlkSize = SectorSize
	if features&FeatureBlkSize != 0 {
		v := le.Uint32(b[20:])
		if v < SectorSize || v > 1<<16 || bits.OnesCount32(v) != 1 {
			return bad("blk_size", 20, uint64(v), "not a power of two from 512 to 65536")
		}
		c.BlkSize = v
	}
	if features&FeatureSizeMax != 0 {
		c.SizeMax = le.Uint32(b[8:])
		if c.SizeMax != 0 && c.SizeMax < c.BlkSize {
			return bad("size_max", 8, uint64(c.SizeMax), "smaller than a block")
		}
	}
	if features&FeatureSegMax != 0 {
		c.SegMax = le.Uint32(b[12:])
		if c.SegMax == 0 {
			return bad("seg_max", 12, 0, "a request could carry no data")
		}
	}
	if features&FeatureTopology != 0 {
		c.PhysicalBlockExp = b[24]
		c.MinIOSize = le.Uint16(b[26:])
		c.OptIOSize = le.Uint32(b[28:])
		if c.PhysicalBlockExp > 16 {
			return bad("physical_block_exp", 24, uint64(c.PhysicalBlockExp), "more than 2^16 blocks")
		}
	}
	if features&FeatureConfigWCE != 0 {
		c.Writeback = b[32] != 0
	} else {
		// Without CONFIG_WCE a device that offers FLUSH has a volatile
		// cache (VIRTIO v1.2, 5.2.5.1).
		c.Writeback = features&FeatureFlush != 0
	}
	c.NumQueues = 1
	if features&FeatureMQ != 0 {
		c.NumQueues = le.Uint16(b[34:])
		if c.NumQueues == 0 {
			return bad("num_queues", 34, 0, "no request queue")
		}
	}
	if features&FeatureDiscard != 0 {
		c.MaxDiscardSectors = le.Uint32(b[36:])
		c.MaxDiscardSeg = le.Uint32(b[40:])
		c.DiscardAlignSectors = le.Uint32(b[44:])
		if c.MaxDiscardSectors == 0 {
			return bad("max_discard_sectors", 36, 0, "discard offered but no sector may be discarded")
		}
		if c.MaxDiscardSeg == 0 {
			return bad("max_discard_seg", 40, 0, "discard offered with no segment")
		}
	}
	if features&FeatureWriteZeroes != 0 {
		c.MaxWriteZeroesSectors = le.Uint32(b[48:])
		c.MaxWriteZeroesSeg = le.Uint32(b[52:])
		c.WriteZeroesMayUnmap = b[56] != 0
		if c.MaxWriteZeroesSectors == 0 {
			return bad("max_write_zeroes_sectors", 48, 0, "write zeroes offered but no sector may be zeroed")
		}
		if c.MaxWriteZeroesSeg == 0 {
			return bad("max_write_zeroes_seg", 52, 0, "write zeroes offered with no segment")
		}
	}
	return c, nil
}

// Encode writes c into b[:ConfigSize] in the wire layout, for tests and
// for back ends. Precondition: len(b) >= ConfigSize.
func (c *BlkConfig) Encode(b []byte) {
	le := binary.LittleEndian
	clear(b[:ConfigSize])
	le.PutUint64(b[0:], c.CapacitySectors)
	le.PutUint32(b[8:], c.SizeMax)
	le.PutUint32(b[12:], c.SegMax)
	le.PutUint32(b[20:], c.BlkSize)
	b[24] = c.PhysicalBlockExp
	le.PutUint16(b[26:], c.MinIOSize)
	le.PutUint32(b[28:], c.OptIOSize)
	if c.Writeback {
		b[32] = 1
	}
	le.PutUint16(b[34:], c.NumQueues)
	le.PutUint32(b[36:], c.MaxDiscardSectors)
	le.PutUint32(b[40:], c.MaxDiscardSeg)
	le.PutUint32(b[44:], c.DiscardAlignSectors)
	le.PutUint32(b[48:], c.MaxWriteZeroesSectors)
	le.PutUint32(b[52:], c.MaxWriteZeroesSeg)
	if c.WriteZeroesMayUnmap {
		b[56] = 1
	}
}

// Request slot layout in shared memory. Each slot holds what a request
// needs besides its data, at fixed offsets the device reads or writes:
//
//	0  struct virtio_blk_outhdr   type u32, reserved u32, sector u64 (device-readable)
//	16 discard/write-zeroes seg   sector u64, num_sectors u32, flags u32 (device-readable)
//	32 status u8                  (device-writable)
//	33 .. 63 unused (slots are a cache line apart)
const (
	slotHdrOff    = 0
	slotHdrLen    = 16
	slotSegOff    = 16
	slotSegLen    = 16
	slotStatusOff = 32
	slotSize      = 64
)

// putHeader writes a request header into a slot.
func putHeader(s []byte, typ uint32, sector uint64) {
	le := binary.LittleEndian
	le.PutUint32(s[slotHdrOff:], typ)
	le.PutUint32(s[slotHdrOff+4:], 0)
	le.PutUint64(s[slotHdrOff+8:], sector)
}

// putRangeSeg writes a discard / write-zeroes segment (VIRTIO v1.2, 5.2.6:
// struct virtio_blk_discard_write_zeroes) into a slot.
func putRangeSeg(s []byte, sector uint64, num uint32, flags uint32) {
	le := binary.LittleEndian
	le.PutUint64(s[slotSegOff:], sector)
	le.PutUint32(s[slotSegOff+8:], num)
	le.PutUint32(s[slotSegOff+12:], flags)
}
