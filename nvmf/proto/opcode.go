package proto

// Admin command opcodes (NVMe Base 2.3 §5). Bits 1:0 of every
// opcode give its data direction (see SQE.Dir).
const (
	AdminDeleteIOSQ          uint8 = 0x00 // PCIe only
	AdminCreateIOSQ          uint8 = 0x01 // PCIe only
	AdminGetLogPage          uint8 = 0x02
	AdminDeleteIOCQ          uint8 = 0x04 // PCIe only
	AdminCreateIOCQ          uint8 = 0x05 // PCIe only
	AdminIdentify            uint8 = 0x06
	AdminAbort               uint8 = 0x08
	AdminSetFeatures         uint8 = 0x09
	AdminGetFeatures         uint8 = 0x0a
	AdminAsyncEventRequest   uint8 = 0x0c
	AdminNamespaceManagement uint8 = 0x0d
	AdminFirmwareCommit      uint8 = 0x10
	AdminFirmwareDownload    uint8 = 0x11
	AdminDeviceSelfTest      uint8 = 0x14
	AdminNamespaceAttachment uint8 = 0x15
	AdminKeepAlive           uint8 = 0x18
	AdminDirectiveSend       uint8 = 0x19
	AdminDirectiveReceive    uint8 = 0x1a
	AdminVirtualizationMgmt  uint8 = 0x1c
	AdminNVMeMISend          uint8 = 0x1d
	AdminNVMeMIReceive       uint8 = 0x1e
	AdminDoorbellBufferCfg   uint8 = 0x7c // PCIe only
	AdminFormatNVM           uint8 = 0x80
	AdminSecuritySend        uint8 = 0x81
	AdminSecurityReceive     uint8 = 0x82
	AdminSanitize            uint8 = 0x84
	AdminGetLBAStatus        uint8 = 0x86
)

// OpFabrics is the opcode of every Fabrics command, on the admin queue and
// on I/O queues alike; FCTYPE (byte 4) says which (NVMe Base 2.3 §6).
const OpFabrics uint8 = 0x7f

// I/O command opcodes of the NVM Command Set (NVM Command Set 1.0; Flush
// and the reservation commands are in NVMe Base 2.3 §7).
const (
	IOFlush               uint8 = 0x00
	IOWrite               uint8 = 0x01
	IORead                uint8 = 0x02
	IOWriteUncorrectable  uint8 = 0x04
	IOCompare             uint8 = 0x05
	IOWriteZeroes         uint8 = 0x08
	IODatasetManagement   uint8 = 0x09
	IOVerify              uint8 = 0x0c
	IOReservationRegister uint8 = 0x0d
	IOReservationReport   uint8 = 0x0e
	IOReservationAcquire  uint8 = 0x11
	IOReservationRelease  uint8 = 0x15
	IOCopy                uint8 = 0x19
)
