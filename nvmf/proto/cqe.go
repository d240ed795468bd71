package proto

import (
	"encoding/binary"
	"fmt"
)

// CQESize is the size of a completion queue entry (NVMe Base 2.3 §4.2.1).
const CQESize = 16

// CQE is a completion queue entry: the response part of an NVMe-oF response
// capsule (NVMe Base 2.3 §4.2.1 "Admin Command and I/O Command Common CQE",
// §4.2.2 "Fabrics Command Common CQE").
//
//	byte  0       1       2       3
//	    +-------+-------+-------+-------+
//	  0 |              DW0              |  command specific (Connect: CNTLID; Property Get: value)
//	  4 |              DW1              |  command specific (Property Get: value bits 63:32)
//	    +---------------+---------------+
//	  8 |     SQHD      |     SQID      |  SQID is reserved on fabrics
//	    +---------------+---------------+
//	 12 |      CID      |  STATUS | P   |  bit 0 of bytes 14-15: phase tag (reserved on fabrics)
//	    +---------------+---------------+
//
// Bytes 14-15 (the Status Info word, NVMe Base 2.3 §4.2.3, Figure 100):
//
//	 15    14   13  12 11    9 8          1   0
//	+-----+----+------+-------+------------+---+
//	| DNR | M  | CRD  |  SCT  |     SC     | P |
//	+-----+----+------+-------+------------+---+
type CQE struct {
	DW0    uint32
	DW1    uint32
	SQHead uint16
	SQID   uint16
	CID    uint16
	Status Status // bits 15:1 of the Status Info word
	Phase  bool   // bit 0 of the Status Info word
}

// Decode fills c from the first 16 bytes of b. On error c is zeroed.
func (c *CQE) Decode(b []byte) error {
	if len(b) < CQESize {
		*c = CQE{}
		return shortErr("CQE", CQESize, len(b))
	}
	b = b[:CQESize]
	c.DW0 = binary.LittleEndian.Uint32(b[0:])
	c.DW1 = binary.LittleEndian.Uint32(b[4:])
	c.SQHead = binary.LittleEndian.Uint16(b[8:])
	c.SQID = binary.LittleEndian.Uint16(b[10:])
	c.CID = binary.LittleEndian.Uint16(b[12:])
	sts := binary.LittleEndian.Uint16(b[14:])
	c.Status = Status(sts >> 1)
	c.Phase = sts&1 != 0
	return nil
}

// Encode writes c into the first 16 bytes of b.
func (c *CQE) Encode(b []byte) error {
	if len(b) < CQESize {
		return shortErr("CQE", CQESize, len(b))
	}
	b = b[:CQESize]
	binary.LittleEndian.PutUint32(b[0:], c.DW0)
	binary.LittleEndian.PutUint32(b[4:], c.DW1)
	binary.LittleEndian.PutUint16(b[8:], c.SQHead)
	binary.LittleEndian.PutUint16(b[10:], c.SQID)
	binary.LittleEndian.PutUint16(b[12:], c.CID)
	sts := uint16(c.Status) << 1
	if c.Phase {
		sts |= 1
	}
	binary.LittleEndian.PutUint16(b[14:], sts)
	return nil
}

// Status is the Status field of a CQE (NVMe Base 2.3 §4.2.3), bits 15:1 of
// the Status Info word shifted down by one, so that the low 11 bits read as
// SCT<<8 | SC (the same numbering nvme-cli and the Linux kernel print):
//
//	 14    13   12 11  10    8 7          0
//	+-----+----+------+-------+------------+
//	| DNR | M  | CRD  |  SCT  |     SC     |
//	+-----+----+------+-------+------------+
//
// It is a small value type for the data path (never an error): compare with
// Code() to ignore DNR, M and CRD.
type Status uint16

// SCT is a Status Code Type (NVMe Base 2.3 §4.2.3, Figure 100).
type SCT uint8

const (
	SCTGeneric         SCT = 0 // Generic Command Status (§4.2.3.1)
	SCTCommandSpecific SCT = 1 // Command Specific Status (§4.2.3.2)
	SCTMedia           SCT = 2 // Media and Data Integrity Errors (§4.2.3.3)
	SCTPath            SCT = 3 // Path Related Status (§4.2.3.4)
	SCTVendor          SCT = 7 // Vendor Specific
)

const (
	statusDNR  Status = 1 << 14
	statusMore Status = 1 << 13
)

// MakeStatus returns the status with the given type and code.
func MakeStatus(sct SCT, sc uint8) Status { return Status(sct&7)<<8 | Status(sc) }

// SC returns the Status Code.
func (s Status) SC() uint8 { return uint8(s) }

// SCT returns the Status Code Type.
func (s Status) SCT() SCT { return SCT(s>>8) & 7 }

// CRD returns the Command Retry Delay selector (0-3).
func (s Status) CRD() uint8 { return uint8(s>>11) & 3 }

// More reports the M bit: more status is in the Error Information log page.
func (s Status) More() bool { return s&statusMore != 0 }

// DNR reports the Do Not Retry bit.
func (s Status) DNR() bool { return s&statusDNR != 0 }

// WithDNR returns s with the Do Not Retry bit set.
func (s Status) WithDNR() Status { return s | statusDNR }

// WithMore returns s with the More bit set.
func (s Status) WithMore() Status { return s | statusMore }

// WithCRD returns s with the Command Retry Delay selector set to crd (0-3).
func (s Status) WithCRD(crd uint8) Status { return s&^(3<<11) | Status(crd&3)<<11 }

// Code returns SCT and SC only, for comparisons against the Status constants.
func (s Status) Code() Status { return s & 0x7ff }

// Success reports whether SCT and SC are both zero.
func (s Status) Success() bool { return s.Code() == 0 }

// Generic Command Status values, SCT 0 (NVMe Base 2.3 §4.2.3.1). Codes 80h
// and above are I/O command set specific (NVM Command Set).
const (
	StatusSuccess                  Status = 0x000
	StatusInvalidOpcode            Status = 0x001
	StatusInvalidField             Status = 0x002
	StatusCIDConflict              Status = 0x003
	StatusDataTransferError        Status = 0x004
	StatusAbortedPowerLoss         Status = 0x005
	StatusInternalError            Status = 0x006
	StatusAbortRequested           Status = 0x007
	StatusAbortedSQDeletion        Status = 0x008
	StatusAbortedFailedFused       Status = 0x009
	StatusAbortedMissingFused      Status = 0x00a
	StatusInvalidNamespace         Status = 0x00b // Invalid Namespace or Format
	StatusCommandSequenceError     Status = 0x00c
	StatusInvalidSGLSegment        Status = 0x00d
	StatusInvalidSGLCount          Status = 0x00e
	StatusDataSGLLengthInvalid     Status = 0x00f
	StatusMetadataSGLLengthInvalid Status = 0x010
	StatusSGLTypeInvalid           Status = 0x011
	StatusInvalidCMBUse            Status = 0x012
	StatusPRPOffsetInvalid         Status = 0x013
	StatusAtomicWriteUnitExceeded  Status = 0x014
	StatusOperationDenied          Status = 0x015
	StatusSGLOffsetInvalid         Status = 0x016
	StatusHostIDInconsistent       Status = 0x018
	StatusKeepAliveExpired         Status = 0x019
	StatusKeepAliveInvalid         Status = 0x01a
	StatusAbortedPreempt           Status = 0x01b
	StatusSanitizeFailed           Status = 0x01c
	StatusSanitizeInProgress       Status = 0x01d
	StatusSGLGranularityInvalid    Status = 0x01e
	StatusNotSupportedCMBQueue     Status = 0x01f
	StatusNamespaceWriteProtected  Status = 0x020
	StatusCommandInterrupted       Status = 0x021
	StatusTransientTransportError  Status = 0x022 // e.g. NVMe/TCP data digest error (NVMe/TCP 1.0 §3.5.2)
	StatusProhibitedByLockdown     Status = 0x023
	StatusAdminMediaNotReady       Status = 0x024
	StatusLBAOutOfRange            Status = 0x080
	StatusCapacityExceeded         Status = 0x081
	StatusNamespaceNotReady        Status = 0x082
	StatusReservationConflict      Status = 0x083
	StatusFormatInProgress         Status = 0x084
)

// Command Specific Status values, SCT 1 (NVMe Base 2.3 §4.2.3.2). Codes 80h
// to BFh mean different things for Fabrics commands and for NVM commands;
// both sets are listed, so the same number appears twice.
const (
	StatusCQInvalid                   Status = 0x100
	StatusInvalidQueueID              Status = 0x101
	StatusInvalidQueueSize            Status = 0x102
	StatusAbortLimitExceeded          Status = 0x103
	StatusAERLimitExceeded            Status = 0x105
	StatusInvalidFirmwareSlot         Status = 0x106
	StatusInvalidFirmwareImage        Status = 0x107
	StatusInvalidInterruptVector      Status = 0x108
	StatusInvalidLogPage              Status = 0x109
	StatusInvalidFormat               Status = 0x10a
	StatusInvalidQueueDeletion        Status = 0x10c
	StatusFeatureNotSaveable          Status = 0x10d
	StatusFeatureNotChangeable        Status = 0x10e
	StatusFeatureNotNamespaceSpecific Status = 0x10f
	StatusOverlappingRange            Status = 0x114
	StatusInvalidIOCommandSet         Status = 0x12c

	// Fabrics commands (NVMe Base 2.3 §4.2.3.2).
	StatusIncompatibleFormat       Status = 0x180 // Connect, Disconnect: RECFMT not supported
	StatusControllerBusy           Status = 0x181
	StatusConnectInvalidParameters Status = 0x182 // DW0 carries IPO/IATTR: ConnectInvalidParamDW0
	StatusConnectRestartDiscovery  Status = 0x183
	StatusConnectInvalidHost       Status = 0x184
	StatusInvalidQueueType         Status = 0x185
	StatusDiscoverRestart          Status = 0x190 // Get Log Page of the Discovery log
	StatusAuthenticationRequired   Status = 0x191
	StatusConflictingAttributes    Status = 0x180 // NVM: Dataset Management, Read, Write
	StatusInvalidProtectionInfo    Status = 0x181 // NVM
	StatusWriteToReadOnlyRange     Status = 0x182 // NVM
	StatusCommandSizeLimitExceeded Status = 0x183 // NVM
)

// statusCommandSpecificIOSetStart is the first command specific code whose
// meaning differs between Fabrics and NVM commands.
const statusCommandSpecificIOSetStart Status = 0x180

// Media and Data Integrity Errors, SCT 2 (NVMe Base 2.3 §4.2.3.3).
const (
	StatusWriteFault             Status = 0x280
	StatusUnrecoveredReadError   Status = 0x281
	StatusGuardCheckError        Status = 0x282
	StatusAppTagCheckError       Status = 0x283
	StatusRefTagCheckError       Status = 0x284
	StatusCompareFailure         Status = 0x285
	StatusAccessDenied           Status = 0x286
	StatusDeallocatedOrUnwritten Status = 0x287
	StatusStorageTagCheckError   Status = 0x288
)

// Path Related Status, SCT 3 (NVMe Base 2.3 §4.2.3.4).
const (
	StatusInternalPathError      Status = 0x300
	StatusANAPersistentLoss      Status = 0x301
	StatusANAInaccessible        Status = 0x302
	StatusANATransition          Status = 0x303
	StatusControllerPathingError Status = 0x360
	StatusHostPathingError       Status = 0x370
	StatusAbortedByHost          Status = 0x371
)

var statusNames = map[Status]string{
	StatusSuccess:                     "success",
	StatusInvalidOpcode:               "invalid command opcode",
	StatusInvalidField:                "invalid field in command",
	StatusCIDConflict:                 "command ID conflict",
	StatusDataTransferError:           "data transfer error",
	StatusAbortedPowerLoss:            "commands aborted due to power loss notification",
	StatusInternalError:               "internal error",
	StatusAbortRequested:              "command abort requested",
	StatusAbortedSQDeletion:           "command aborted due to SQ deletion",
	StatusAbortedFailedFused:          "command aborted due to failed fused command",
	StatusAbortedMissingFused:         "command aborted due to missing fused command",
	StatusInvalidNamespace:            "invalid namespace or format",
	StatusCommandSequenceError:        "command sequence error",
	StatusInvalidSGLSegment:           "invalid SGL segment descriptor",
	StatusInvalidSGLCount:             "invalid number of SGL descriptors",
	StatusDataSGLLengthInvalid:        "data SGL length invalid",
	StatusMetadataSGLLengthInvalid:    "metadata SGL length invalid",
	StatusSGLTypeInvalid:              "SGL descriptor type invalid",
	StatusInvalidCMBUse:               "invalid use of controller memory buffer",
	StatusPRPOffsetInvalid:            "PRP offset invalid",
	StatusAtomicWriteUnitExceeded:     "atomic write unit exceeded",
	StatusOperationDenied:             "operation denied",
	StatusSGLOffsetInvalid:            "SGL offset invalid",
	StatusHostIDInconsistent:          "host identifier inconsistent format",
	StatusKeepAliveExpired:            "keep alive timer expired",
	StatusKeepAliveInvalid:            "keep alive timeout invalid",
	StatusAbortedPreempt:              "command aborted due to preempt and abort",
	StatusSanitizeFailed:              "sanitize failed",
	StatusSanitizeInProgress:          "sanitize in progress",
	StatusSGLGranularityInvalid:       "SGL data block granularity invalid",
	StatusNotSupportedCMBQueue:        "command not supported for queue in CMB",
	StatusNamespaceWriteProtected:     "namespace is write protected",
	StatusCommandInterrupted:          "command interrupted",
	StatusTransientTransportError:     "transient transport error",
	StatusProhibitedByLockdown:        "command prohibited by command and feature lockdown",
	StatusAdminMediaNotReady:          "admin command media not ready",
	StatusLBAOutOfRange:               "LBA out of range",
	StatusCapacityExceeded:            "capacity exceeded",
	StatusNamespaceNotReady:           "namespace not ready",
	StatusReservationConflict:         "reservation conflict",
	StatusFormatInProgress:            "format in progress",
	StatusCQInvalid:                   "completion queue invalid",
	StatusInvalidQueueID:              "invalid queue identifier",
	StatusInvalidQueueSize:            "invalid queue size",
	StatusAbortLimitExceeded:          "abort command limit exceeded",
	StatusAERLimitExceeded:            "asynchronous event request limit exceeded",
	StatusInvalidFirmwareSlot:         "invalid firmware slot",
	StatusInvalidFirmwareImage:        "invalid firmware image",
	StatusInvalidInterruptVector:      "invalid interrupt vector",
	StatusInvalidLogPage:              "invalid log page",
	StatusInvalidFormat:               "invalid format",
	StatusInvalidQueueDeletion:        "invalid queue deletion",
	StatusFeatureNotSaveable:          "feature identifier not saveable",
	StatusFeatureNotChangeable:        "feature not changeable",
	StatusFeatureNotNamespaceSpecific: "feature not namespace specific",
	StatusOverlappingRange:            "overlapping range",
	StatusInvalidIOCommandSet:         "invalid I/O command set",
	StatusDiscoverRestart:             "discover restart",
	StatusAuthenticationRequired:      "authentication required",
	StatusWriteFault:                  "write fault",
	StatusUnrecoveredReadError:        "unrecovered read error",
	StatusGuardCheckError:             "end-to-end guard check error",
	StatusAppTagCheckError:            "end-to-end application tag check error",
	StatusRefTagCheckError:            "end-to-end reference tag check error",
	StatusCompareFailure:              "compare failure",
	StatusAccessDenied:                "access denied",
	StatusDeallocatedOrUnwritten:      "deallocated or unwritten logical block",
	StatusStorageTagCheckError:        "end-to-end storage tag check error",
	StatusInternalPathError:           "internal path error",
	StatusANAPersistentLoss:           "asymmetric access persistent loss",
	StatusANAInaccessible:             "asymmetric access inaccessible",
	StatusANATransition:               "asymmetric access transition",
	StatusControllerPathingError:      "controller pathing error",
	StatusHostPathingError:            "host pathing error",
	StatusAbortedByHost:               "command aborted by host",
}

// fabricsNVMNames names the command specific codes 80h-83h, whose meaning
// depends on the command (Fabrics versus NVM).
var fabricsNVMNames = [...]string{
	"incompatible format / conflicting attributes",
	"controller busy / invalid protection information",
	"connect invalid parameters / attempted write to read only range",
	"connect restart discovery / command size limit exceeded",
	"connect invalid host",
	"invalid queue type",
}

// String returns a readable form such as "invalid field in command (sct 0 sc 0x02) DNR".
// It allocates; use it for logs, not per IO.
func (s Status) String() string {
	code := s.Code()
	name, ok := statusNames[code]
	if !ok && code >= statusCommandSpecificIOSetStart && code < statusCommandSpecificIOSetStart+Status(len(fabricsNVMNames)) {
		name, ok = fabricsNVMNames[code-statusCommandSpecificIOSetStart], true
	}
	if !ok {
		name = "unknown status"
	}
	out := fmt.Sprintf("%s (sct %d sc %#02x)", name, s.SCT(), s.SC())
	if s.CRD() != 0 {
		out += fmt.Sprintf(" CRD%d", s.CRD())
	}
	if s.More() {
		out += " M"
	}
	if s.DNR() {
		out += " DNR"
	}
	return out
}
