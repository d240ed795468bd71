package proto

// Feature Identifiers (NVMe Base 2.3 §5.2.26).
const (
	FeatArbitration          uint8 = 0x01
	FeatPowerManagement      uint8 = 0x02
	FeatTemperatureThreshold uint8 = 0x04
	FeatErrorRecovery        uint8 = 0x05 // NVM Command Set
	FeatVolatileWriteCache   uint8 = 0x06
	FeatNumberOfQueues       uint8 = 0x07
	FeatInterruptCoalescing  uint8 = 0x08
	FeatInterruptVectorCfg   uint8 = 0x09
	FeatWriteAtomicity       uint8 = 0x0a // NVM Command Set
	FeatAsyncEventConfig     uint8 = 0x0b
	FeatAutonomousPowerState uint8 = 0x0c
	FeatHostMemoryBuffer     uint8 = 0x0d
	FeatTimestamp            uint8 = 0x0e
	FeatKeepAliveTimer       uint8 = 0x0f
	FeatHostBehavior         uint8 = 0x16
	FeatSoftwareProgress     uint8 = 0x80
	FeatHostIdentifier       uint8 = 0x81
	FeatReservationMask      uint8 = 0x82
	FeatReservationPersist   uint8 = 0x83
)

// Get Features Select values (CDW10 bits 10:8, NVMe Base 2.3 §5.2.11.1).
const (
	FeatSelCurrent   uint8 = 0
	FeatSelDefault   uint8 = 1
	FeatSelSaved     uint8 = 2
	FeatSelSupported uint8 = 3 // capabilities
)

// FeaturesCmd is a Get Features (NVMe Base 2.3 §5.2.11) or Set Features
// (§5.2.26) command: FID in CDW10 bits 7:0, SEL in CDW10 bits 10:8 (Get),
// SV in CDW10 bit 31 (Set), feature specific CDW11-CDW13 and CDW15, UUID
// index in CDW14 bits 6:0. Dword 0 of the completion carries the feature
// value of a Get Features.
type FeaturesCmd struct {
	CID       uint16
	NSID      uint32
	SGL       SGL
	FID       uint8
	Sel       uint8 // Get only
	Save      bool  // Set only
	CDW11     uint32
	CDW12     uint32
	CDW13     uint32
	CDW15     uint32
	UUIDIndex uint8
}

// Features interprets s as a Get Features or Set Features command.
func (s *SQE) Features() FeaturesCmd {
	return FeaturesCmd{
		CID:       s.CID,
		NSID:      s.NSID,
		SGL:       s.SGL(),
		FID:       uint8(s.CDW10),
		Sel:       uint8(s.CDW10>>8) & 7,
		Save:      s.CDW10&(1<<31) != 0,
		CDW11:     s.CDW11,
		CDW12:     s.CDW12,
		CDW13:     s.CDW13,
		CDW15:     s.CDW15,
		UUIDIndex: uint8(s.CDW14) & 0x7f,
	}
}

func (s *SQE) putFeatures(op uint8, c *FeaturesCmd, cdw10 uint32) error {
	*s = SQE{Opcode: op, Flags: PSDTSGL << 6, CID: c.CID, NSID: c.NSID}
	s.CDW10 = cdw10
	s.CDW11, s.CDW12, s.CDW13, s.CDW15 = c.CDW11, c.CDW12, c.CDW13, c.CDW15
	s.CDW14 = uint32(c.UUIDIndex & 0x7f)
	return s.SetSGL(c.SGL)
}

// PutGetFeatures makes s a Get Features command.
func (s *SQE) PutGetFeatures(c *FeaturesCmd) error {
	return s.putFeatures(AdminGetFeatures, c, uint32(c.FID)|uint32(c.Sel&7)<<8)
}

// PutSetFeatures makes s a Set Features command.
func (s *SQE) PutSetFeatures(c *FeaturesCmd) error {
	cdw10 := uint32(c.FID)
	if c.Save {
		cdw10 |= 1 << 31
	}
	return s.putFeatures(AdminSetFeatures, c, cdw10)
}

// NumQueues builds the Number of Queues value (Set Features CDW11 and the
// completion DW0, NVMe Base 2.3 §5.2.26.2.1): NSQ in bits 15:0, NCQ in bits
// 31:16, both 0's based counts of I/O queues.
func NumQueues(nsq, ncq uint16) uint32 { return uint32(nsq) | uint32(ncq)<<16 }

// ParseNumQueues splits a Number of Queues value into its 0's based counts.
func ParseNumQueues(v uint32) (nsq, ncq uint16) { return uint16(v), uint16(v >> 16) }

// Asynchronous Event Configuration bits (Set Features CDW11, NVMe Base 2.3
// §5.2.26.1.5); bits 7:0 enable the SMART critical warnings.
const (
	AECSMARTMask       uint32 = 0xff
	AECNamespaceAttr   uint32 = 1 << 8
	AECFirmwareActive  uint32 = 1 << 9
	AECTelemetryLog    uint32 = 1 << 10
	AECANAChange       uint32 = 1 << 11
	AECDiscoveryChange uint32 = 1 << 31 // discovery controllers
)

// VWCEnable is bit 0 (WCE) of the Volatile Write Cache feature value.
const VWCEnable uint32 = 1 << 0

// Asynchronous Event Types (NVMe Base 2.3 §5.2.2.1).
const (
	AETypeError      uint8 = 0
	AETypeSMART      uint8 = 1
	AETypeNotice     uint8 = 2
	AETypeImmediate  uint8 = 3
	AETypeOneShot    uint8 = 4
	AETypeIOSet      uint8 = 6
	AETypeVendorSpec uint8 = 7
)

// Notice event information values (AETypeNotice, NVMe Base 2.3 §5.2.2.1).
const (
	AENNamespaceAttrChanged uint8 = 0x00 // read LIDChangedNSList to clear
	AENFirmwareActivation   uint8 = 0x01
	AENTelemetryLogChanged  uint8 = 0x02
	AENANAChange            uint8 = 0x03
	AENDiscoveryLogChange   uint8 = 0xf0 // discovery controllers: read LIDDiscovery
)

// AsyncEvent is the completion Dword 0 of an Asynchronous Event Request
// (NVMe Base 2.3 §5.2.2.1): type in bits 2:0, information in
// bits 15:8, associated log page in bits 23:16.
type AsyncEvent struct {
	Type uint8
	Info uint8
	LID  uint8
}

// DW0 returns the completion Dword 0 for e.
func (e AsyncEvent) DW0() uint32 {
	return uint32(e.Type&7) | uint32(e.Info)<<8 | uint32(e.LID)<<16
}

// ParseAsyncEvent splits an Asynchronous Event Request completion Dword 0.
func ParseAsyncEvent(dw0 uint32) AsyncEvent {
	return AsyncEvent{Type: uint8(dw0) & 7, Info: uint8(dw0 >> 8), LID: uint8(dw0 >> 16)}
}
