package proto

import "encoding/binary"

// Payload sizes and limits.
const (
	U64Size          = 8
	VringStateSize   = 8
	VringAddrSize    = 40
	MemRegionSize    = 32
	MemRegionMsgSize = 8 + MemRegionSize // padding u64 + region
	memoryHdrSize    = 8                 // nregions u32 + padding u32
	LogSize          = 16
	ConfigHdrSize    = 12
	InflightSize     = 24 // 8+8+2+2, padded to 8 bytes as the C struct is

	// MaxMemRegions is the most regions one SET_MEM_TABLE carries
	// (VHOST_MEMORY_BASELINE_NREGIONS); more need CONFIGURE_MEM_SLOTS.
	MaxMemRegions = 8
	// MaxConfigSize is the largest virtio config space access.
	MaxConfigSize = 256
	// MaxFDs is the most descriptors accepted with one message.
	MaxFDs = 8
	// MaxPayloadSize is the largest payload of any request this package
	// decodes (GET_CONFIG/SET_CONFIG with 256 bytes of config space).
	MaxPayloadSize = ConfigHdrSize + MaxConfigSize
	// maxUnknownPayload bounds what is read and discarded for a request
	// this package does not decode, so the stream stays in sync.
	maxUnknownPayload = 4096
)

// VringState is the payload of SET_VRING_NUM, SET_VRING_BASE,
// GET_VRING_BASE (both ways), SET_VRING_ENABLE, SET_VRING_ENDIAN and
// VRING_KICK.
type VringState struct {
	Index uint32 // queue index
	Num   uint32 // size, base index, or enable flag, by request
}

// Encode writes s into b and returns VringStateSize.
// Precondition: len(b) >= VringStateSize.
func (s VringState) Encode(b []byte) int {
	_ = b[VringStateSize-1]
	binary.NativeEndian.PutUint32(b[0:], s.Index)
	binary.NativeEndian.PutUint32(b[4:], s.Num)
	return VringStateSize
}

func decodeVringState(b []byte) VringState {
	return VringState{Index: binary.NativeEndian.Uint32(b[0:]), Num: binary.NativeEndian.Uint32(b[4:])}
}

// VringFlagLog (VHOST_VRING_F_LOG) in VringAddr.Flags asks for used-ring
// dirty logging.
const VringFlagLog = 0x1

// VringAddr is the payload of SET_VRING_ADDR. Without an IOMMU the three
// ring addresses are front-end virtual (user) addresses, translated through
// the userspace_addr of the memory regions; Log is a guest physical address.
type VringAddr struct {
	Index uint32
	Flags uint32
	Desc  uint64 // descriptor table
	Used  uint64 // used ring
	Avail uint64 // available ring
	Log   uint64 // used ring log address
}

// Encode writes a into b and returns VringAddrSize.
// Precondition: len(b) >= VringAddrSize.
func (a VringAddr) Encode(b []byte) int {
	_ = b[VringAddrSize-1]
	binary.NativeEndian.PutUint32(b[0:], a.Index)
	binary.NativeEndian.PutUint32(b[4:], a.Flags)
	binary.NativeEndian.PutUint64(b[8:], a.Desc)
	binary.NativeEndian.PutUint64(b[16:], a.Used)
	binary.NativeEndian.PutUint64(b[24:], a.Avail)
	binary.NativeEndian.PutUint64(b[32:], a.Log)
	return VringAddrSize
}

func decodeVringAddr(b []byte) VringAddr {
	return VringAddr{
		Index: binary.NativeEndian.Uint32(b[0:]),
		Flags: binary.NativeEndian.Uint32(b[4:]),
		Desc:  binary.NativeEndian.Uint64(b[8:]),
		Used:  binary.NativeEndian.Uint64(b[16:]),
		Avail: binary.NativeEndian.Uint64(b[24:]),
		Log:   binary.NativeEndian.Uint64(b[32:]),
	}
}

// VringFile is the u64 payload of SET_VRING_KICK, SET_VRING_CALL and
// SET_VRING_ERR: the queue index in bits 0-7 and NOFD in bit 8 (set when no
// eventfd comes with the message: the queue is polled instead).
type VringFile uint64

const (
	VringIndexMask VringFile = 0xff
	VringNoFD      VringFile = 0x100
)

// NewVringFile builds a VringFile.
func NewVringFile(index uint8, noFD bool) VringFile {
	f := VringFile(index)
	if noFD {
		f |= VringNoFD
	}
	return f
}

// Index returns the queue index.
func (f VringFile) Index() uint32 { return uint32(f & VringIndexMask) }

// NoFD reports whether the message carries no eventfd.
func (f VringFile) NoFD() bool { return f&VringNoFD != 0 }

// MemRegion describes one region of front-end memory: GuestPhysAddr and
// MemorySize place it in guest physical space, UserspaceAddr is where the
// front-end has it mapped (the base for SET_VRING_ADDR addresses), and
// MmapOffset is where it starts in the file descriptor that comes with it.
type MemRegion struct {
	GuestPhysAddr uint64
	MemorySize    uint64
	UserspaceAddr uint64
	MmapOffset    uint64
}

// Encode writes r into b and returns MemRegionSize.
// Precondition: len(b) >= MemRegionSize.
func (r MemRegion) Encode(b []byte) int {
	_ = b[MemRegionSize-1]
	binary.NativeEndian.PutUint64(b[0:], r.GuestPhysAddr)
	binary.NativeEndian.PutUint64(b[8:], r.MemorySize)
	binary.NativeEndian.PutUint64(b[16:], r.UserspaceAddr)
	binary.NativeEndian.PutUint64(b[24:], r.MmapOffset)
	return MemRegionSize
}

func decodeMemRegion(b []byte) MemRegion {
	return MemRegion{
		GuestPhysAddr: binary.NativeEndian.Uint64(b[0:]),
		MemorySize:    binary.NativeEndian.Uint64(b[8:]),
		UserspaceAddr: binary.NativeEndian.Uint64(b[16:]),
		MmapOffset:    binary.NativeEndian.Uint64(b[24:]),
	}
}

// check validates a region found at message offset off: it must be
// non-empty and none of its three ranges may wrap around 2^64.
func (r MemRegion) check(req Request, off int) error {
	if r.MemorySize == 0 {
		return fieldErr(req, "memory_size", off+8, ErrMalformed, "zero-sized region")
	}
	if r.GuestPhysAddr+r.MemorySize < r.GuestPhysAddr {
		return fieldErr(req, "guest_phys_addr", off, ErrMalformed,
			"range 0x%x+0x%x wraps", r.GuestPhysAddr, r.MemorySize)
	}
	if r.UserspaceAddr+r.MemorySize < r.UserspaceAddr {
		return fieldErr(req, "userspace_addr", off+16, ErrMalformed,
			"range 0x%x+0x%x wraps", r.UserspaceAddr, r.MemorySize)
	}
	if r.MmapOffset+r.MemorySize < r.MmapOffset {
		return fieldErr(req, "mmap_offset", off+24, ErrMalformed,
			"range 0x%x+0x%x wraps", r.MmapOffset, r.MemorySize)
	}
	return nil
}

// Memory is the payload of SET_MEM_TABLE. One fd per region comes with it,
// in region order.
type Memory struct {
	NRegions uint32
	Regions  [MaxMemRegions]MemRegion
}

// Used returns the regions in use.
func (m *Memory) Used() []MemRegion {
	n := min(int(m.NRegions), MaxMemRegions)
	return m.Regions[:n]
}

// EncodedLen is the payload size of m on the wire.
func (m *Memory) EncodedLen() int {
	return memoryHdrSize + int(min(m.NRegions, MaxMemRegions))*MemRegionSize
}

// Encode writes m into b and returns its size.
// Precondition: len(b) >= m.EncodedLen().
func (m *Memory) Encode(b []byte) int {
	n := m.EncodedLen()
	_ = b[n-1]
	binary.NativeEndian.PutUint32(b[0:], uint32(len(m.Used())))
	binary.NativeEndian.PutUint32(b[4:], 0)
	for i, r := range m.Used() {
		r.Encode(b[memoryHdrSize+i*MemRegionSize:])
	}
	return n
}

// Log is the payload of SET_LOG_BASE.
type Log struct {
	MmapSize   uint64
	MmapOffset uint64
}

// Encode writes l into b and returns LogSize.
// Precondition: len(b) >= LogSize.
func (l Log) Encode(b []byte) int {
	_ = b[LogSize-1]
	binary.NativeEndian.PutUint64(b[0:], l.MmapSize)
	binary.NativeEndian.PutUint64(b[8:], l.MmapOffset)
	return LogSize
}

// Config flags.
const (
	ConfigFlagWritable  = 0 // the front-end writes writable fields
	ConfigFlagMigration = 1 // the front-end restores config for live migration
)

// Config is the payload of GET_CONFIG and SET_CONFIG (request and reply).
type Config struct {
	Offset uint32 // offset in the device's config space
	Size   uint32 // bytes accessed, <= MaxConfigSize
	Flags  uint32
	Data   [MaxConfigSize]byte
}

// Bytes returns the config bytes carried, Data[:Size].
func (c *Config) Bytes() []byte { return c.Data[:min(c.Size, MaxConfigSize)] }

// EncodedLen is the payload size of c on the wire.
func (c *Config) EncodedLen() int { return ConfigHdrSize + len(c.Bytes()) }

// Encode writes c into b and returns its size.
// Precondition: len(b) >= c.EncodedLen().
func (c *Config) Encode(b []byte) int {
	n := c.EncodedLen()
	_ = b[n-1]
	binary.NativeEndian.PutUint32(b[0:], c.Offset)
	binary.NativeEndian.PutUint32(b[4:], uint32(len(c.Bytes())))
	binary.NativeEndian.PutUint32(b[8:], c.Flags)
	copy(b[ConfigHdrSize:], c.Bytes())
	return n
}

// Inflight is the payload of GET_INFLIGHT_FD (both ways) and
// SET_INFLIGHT_FD. In the GET request only NumQueues and QueueSize mean
// anything; the back-end answers with the size and offset of the shared
// area in the fd it sends.
type Inflight struct {
	MmapSize   uint64
	MmapOffset uint64
	NumQueues  uint16
	QueueSize  uint16
}

// Encode writes f into b and returns InflightSize.
// Precondition: len(b) >= InflightSize.
func (f Inflight) Encode(b []byte) int {
	_ = b[InflightSize-1]
	binary.NativeEndian.PutUint64(b[0:], f.MmapSize)
	binary.NativeEndian.PutUint64(b[8:], f.MmapOffset)
	binary.NativeEndian.PutUint16(b[16:], f.NumQueues)
	binary.NativeEndian.PutUint16(b[18:], f.QueueSize)
	binary.NativeEndian.PutUint32(b[20:], 0)
	return InflightSize
}
