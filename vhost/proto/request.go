package proto

import (
	"encoding/binary"
	"strconv"
)

// Request is the request code in a message header. Front-end requests and
// their replies share the code.
type Request uint32

// Front-end request codes (QEMU docs/interop/vhost-user.rst, "Front-end
// message types").
const (
	ReqNone             Request = 0
	GetFeatures         Request = 1  // reply: u64 virtio features
	SetFeatures         Request = 2  // u64 virtio features
	SetOwner            Request = 3  // no payload; starts a session
	ResetOwner          Request = 4  // no payload; deprecated
	SetMemTable         Request = 5  // Memory + one fd per region
	SetLogBase          Request = 6  // Log + log fd (dirty logging; a blk target rejects it)
	SetLogFD            Request = 7  // no payload + eventfd (rejected likewise)
	SetVringNum         Request = 8  // VringState: queue size
	SetVringAddr        Request = 9  // VringAddr
	SetVringBase        Request = 10 // VringState: next avail index
	GetVringBase        Request = 11 // VringState; reply: VringState; stops the ring
	SetVringKick        Request = 12 // VringFile + kick eventfd unless NOFD
	SetVringCall        Request = 13 // VringFile + call eventfd unless NOFD
	SetVringErr         Request = 14 // VringFile + error eventfd unless NOFD
	GetProtocolFeatures Request = 15 // reply: u64 protocol features
	SetProtocolFeatures Request = 16 // u64 protocol features
	GetQueueNum         Request = 17 // reply: u64 number of queues
	SetVringEnable      Request = 18 // VringState: num 1 enables, 0 disables
	SendRARP            Request = 19 // u64 (net only)
	NetSetMTU           Request = 20 // u64 (net only)
	SetBackendReqFD     Request = 21 // no payload + socket fd
	IOTLBMsg            Request = 22 // not supported by this package
	SetVringEndian      Request = 23 // VringState (legacy cross-endian)
	GetConfig           Request = 24 // Config; reply: Config
	SetConfig           Request = 25 // Config
	CreateCryptoSession Request = 26 // not supported by this package
	CloseCryptoSession  Request = 27 // not supported by this package
	PostcopyAdvise      Request = 28 // not supported by this package
	PostcopyListen      Request = 29 // not supported by this package
	PostcopyEnd         Request = 30 // not supported by this package
	GetInflightFD       Request = 31 // Inflight; reply: Inflight + fd
	SetInflightFD       Request = 32 // Inflight + fd
	GPUSetSocket        Request = 33 // not supported by this package
	ResetDevice         Request = 34 // no payload
	VringKick           Request = 35 // VringState (in-band kick)
	GetMaxMemSlots      Request = 36 // reply: u64
	AddMemReg           Request = 37 // MemRegionMsg + one fd
	RemMemReg           Request = 38 // MemRegionMsg; an fd, if sent, is closed unused
	SetStatus           Request = 39 // u64 virtio device status
	GetStatus           Request = 40 // reply: u64 virtio device status
	GetSharedObject     Request = 41 // not supported by this package
	SetDeviceStateFD    Request = 42 // not supported by this package
	CheckDeviceState    Request = 43 // not supported by this package
)

var requestNames = [...]string{
	ReqNone:             "NONE",
	GetFeatures:         "GET_FEATURES",
	SetFeatures:         "SET_FEATURES",
	SetOwner:            "SET_OWNER",
	ResetOwner:          "RESET_OWNER",
	SetMemTable:         "SET_MEM_TABLE",
	SetLogBase:          "SET_LOG_BASE",
	SetLogFD:            "SET_LOG_FD",
	SetVringNum:         "SET_VRING_NUM",
	SetVringAddr:        "SET_VRING_ADDR",
	SetVringBase:        "SET_VRING_BASE",
	GetVringBase:        "GET_VRING_BASE",
	SetVringKick:        "SET_VRING_KICK",
	SetVringCall:        "SET_VRING_CALL",
	SetVringErr:         "SET_VRING_ERR",
	GetProtocolFeatures: "GET_PROTOCOL_FEATURES",
	SetProtocolFeatures: "SET_PROTOCOL_FEATURES",
	GetQueueNum:         "GET_QUEUE_NUM",
	SetVringEnable:      "SET_VRING_ENABLE",
	SendRARP:            "SEND_RARP",
	NetSetMTU:           "NET_SET_MTU",
	SetBackendReqFD:     "SET_BACKEND_REQ_FD",
	IOTLBMsg:            "IOTLB_MSG",
	SetVringEndian:      "SET_VRING_ENDIAN",
	GetConfig:           "GET_CONFIG",
	SetConfig:           "SET_CONFIG",
	CreateCryptoSession: "CREATE_CRYPTO_SESSION",
	CloseCryptoSession:  "CLOSE_CRYPTO_SESSION",
	PostcopyAdvise:      "POSTCOPY_ADVISE",
	PostcopyListen:      "POSTCOPY_LISTEN",
	PostcopyEnd:         "POSTCOPY_END",
	GetInflightFD:       "GET_INFLIGHT_FD",
	SetInflightFD:       "SET_INFLIGHT_FD",
	GPUSetSocket:        "GPU_SET_SOCKET",
	ResetDevice:         "RESET_DEVICE",
	VringKick:           "VRING_KICK",
	GetMaxMemSlots:      "GET_MAX_MEM_SLOTS",
	AddMemReg:           "ADD_MEM_REG",
	RemMemReg:           "REM_MEM_REG",
	SetStatus:           "SET_STATUS",
	GetStatus:           "GET_STATUS",
	GetSharedObject:     "GET_SHARED_OBJECT",
	SetDeviceStateFD:    "SET_DEVICE_STATE_FD",
	CheckDeviceState:    "CHECK_DEVICE_STATE",
}

// String returns the request's name without the VHOST_USER_ prefix.
func (r Request) String() string {
	if int(r) < len(requestNames) {
		return requestNames[r]
	}
	return "REQUEST_" + strconv.FormatUint(uint64(r), 10)
}

// Flags is the flags word of a message header.
type Flags uint32

const (
	// Version is the only protocol version (flags bits 0-1).
	Version Flags = 0x1
	// VersionMask selects the version bits.
	VersionMask Flags = 0x3
	// FlagReply marks a message sent by the back-end in answer to a request.
	FlagReply Flags = 0x4
	// FlagNeedReply asks the back-end for a u64 ack (0 success, non-zero
	// failure) to a request that has no reply of its own (REPLY_ACK).
	FlagNeedReply Flags = 0x8
	// flagsKnown are the bits a valid header may have set.
	flagsKnown = VersionMask | FlagReply | FlagNeedReply
)

// HeaderSize is the size of a message header on the wire.
const HeaderSize = 12

// Header is a message header.
type Header struct {
	Request Request
	Flags   Flags
	Size    uint32 // payload size in bytes
}

// Encode writes h into b[:HeaderSize].
// Precondition: len(b) >= HeaderSize.
func (h Header) Encode(b []byte) {
	_ = b[HeaderSize-1]
	binary.NativeEndian.PutUint32(b[0:], uint32(h.Request))
	binary.NativeEndian.PutUint32(b[4:], uint32(h.Flags))
	binary.NativeEndian.PutUint32(b[8:], h.Size)
}

// DecodeHeader reads a header from b without validating it.
func DecodeHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fieldErr(ReqNone, "header", len(b), ErrBadHeader,
			"short header: %d bytes, want %d", len(b), HeaderSize)
	}
	return Header{
		Request: Request(binary.NativeEndian.Uint32(b[0:])),
		Flags:   Flags(binary.NativeEndian.Uint32(b[4:])),
		Size:    binary.NativeEndian.Uint32(b[8:]),
	}, nil
}

// IsReply reports whether the REPLY bit is set.
func (h Header) IsReply() bool { return h.Flags&FlagReply != 0 }

// NeedsReply reports whether the NEED_REPLY bit is set.
func (h Header) NeedsReply() bool { return h.Flags&FlagNeedReply != 0 }

// String formats the header for logs.
func (h Header) String() string {
	s := h.Request.String() + " flags=0x" + strconv.FormatUint(uint64(h.Flags), 16) +
		" size=" + strconv.FormatUint(uint64(h.Size), 10)
	return s
}

// Virtio feature bits that vhost-user gives a meaning of its own
// (GET_FEATURES / SET_FEATURES).
const (
	// FeatureLogAll (VHOST_F_LOG_ALL, bit 26): dirty logging for migration.
	FeatureLogAll uint64 = 1 << 26
	// FeatureProtocolFeatures (VHOST_USER_F_PROTOCOL_FEATURES, bit 30): the
	// back-end understands GET/SET_PROTOCOL_FEATURES; once negotiated, rings
	// start disabled and SET_VRING_ENABLE enables them.
	FeatureProtocolFeatures uint64 = 1 << 30
)

// Protocol feature bits (GET/SET_PROTOCOL_FEATURES).
const (
	ProtocolMQ                  uint64 = 1 << 0  // GET_QUEUE_NUM
	ProtocolLogSHMFD            uint64 = 1 << 1  // dirty log in shared memory
	ProtocolRARP                uint64 = 1 << 2  // SEND_RARP
	ProtocolReplyAck            uint64 = 1 << 3  // NEED_REPLY honoured on every request
	ProtocolMTU                 uint64 = 1 << 4  // NET_SET_MTU
	ProtocolBackendReq          uint64 = 1 << 5  // SET_BACKEND_REQ_FD channel
	ProtocolCrossEndian         uint64 = 1 << 6  // SET_VRING_ENDIAN
	ProtocolCryptoSession       uint64 = 1 << 7  // crypto sessions
	ProtocolPagefault           uint64 = 1 << 8  // postcopy
	ProtocolConfig              uint64 = 1 << 9  // GET_CONFIG / SET_CONFIG
	ProtocolBackendSendFD       uint64 = 1 << 10 // fds on the back-end channel
	ProtocolHostNotifier        uint64 = 1 << 11 // host notifier areas
	ProtocolInflightSHMFD       uint64 = 1 << 12 // GET/SET_INFLIGHT_FD
	ProtocolResetDevice         uint64 = 1 << 13 // RESET_DEVICE
	ProtocolInbandNotifications uint64 = 1 << 14 // VRING_KICK and back-end VRING_CALL messages
	ProtocolConfigureMemSlots   uint64 = 1 << 15 // GET_MAX_MEM_SLOTS, ADD/REM_MEM_REG
	ProtocolStatus              uint64 = 1 << 16 // SET_STATUS / GET_STATUS
	ProtocolXenMmap             uint64 = 1 << 17 // Xen memory region fields
	ProtocolSharedObject        uint64 = 1 << 18 // GET_SHARED_OBJECT
	ProtocolDeviceState         uint64 = 1 << 19 // SET_DEVICE_STATE_FD / CHECK_DEVICE_STATE
)
