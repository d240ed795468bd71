package nvmf

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"hyperpath/nvmf/proto"
	"hyperpath/reactor"
)

// Sentinel errors of the control plane.
var (
	// ErrListenerExists: the address is already listened on.
	ErrListenerExists = errors.New("nvmf: listener already exists")
	// ErrNoListener: the address is not listened on.
	ErrNoListener = errors.New("nvmf: no such listener")
	// ErrBadAddress: the listen address cannot be used.
	ErrBadAddress = errors.New("nvmf: bad listen address")
	// ErrClosed: the transport has been closed.
	ErrClosed = errors.New("nvmf: transport closed")
)

// ListenAddr is a transport ID as the RPCs and the discovery log carry it
// (SPDK's spdk_nvme_transport_id).
type ListenAddr struct {
	TrType  string // "TCP" (upper case, as nvmf_get_subsystems reports it)
	AdrFam  string // "IPv4" or "IPv6"
	TrAddr  string // numeric address
	TrSvcID string // port number in decimal
}

// NormalizeListenAddr validates a listen address given over RPC and returns
// it in canonical form: trtype and adrfam in SPDK's spelling, traddr and
// trsvcid checked (numeric IP address; port 0..65535).
func NormalizeListenAddr(trtype, adrfam, traddr, trsvcid string) (ListenAddr, error) {
	var a ListenAddr
	switch strings.ToUpper(trtype) {
	case "TCP":
		a.TrType = "TCP"
	case "RDMA":
		a.TrType = "RDMA"
	default:
		return a, fmt.Errorf("%w: trtype %q", ErrBadAddress, trtype)
	}
	ip := net.ParseIP(traddr)
	if ip == nil {
		return a, fmt.Errorf("%w: traddr %q is not a numeric IP address", ErrBadAddress, traddr)
	}
	switch strings.ToLower(adrfam) {
	case "", "ipv4":
		if ip.To4() == nil {
			if adrfam != "" {
				return a, fmt.Errorf("%w: traddr %q is not IPv4", ErrBadAddress, traddr)
			}
			a.AdrFam = "IPv6"
		} else {
			a.AdrFam = "IPv4"
		}
	case "ipv6":
		if ip.To4() != nil {
			return a, fmt.Errorf("%w: traddr %q is not IPv6", ErrBadAddress, traddr)
		}
		a.AdrFam = "IPv6"
	default:
		return a, fmt.Errorf("%w: adrfam %q", ErrBadAddress, adrfam)
	}
	a.TrAddr = ip.String()
	if trsvcid == "" {
		return a, fmt.Errorf("%w: trsvcid is required", ErrBadAddress)
	}
	port, err := strconv.ParseUint(trsvcid, 10, 16)
	if err != nil {
		return a, fmt.Errorf("%w: trsvcid %q is not a port number", ErrBadAddress, trsvcid)
	}
	a.TrSvcID = strconv.FormatUint(port, 10)
	return a, nil
}

// String renders a as "TCP 127.0.0.1:4420".
func (a ListenAddr) String() string {
	return a.TrType + " " + net.JoinHostPort(a.TrAddr, a.TrSvcID)
}

// AdrFamCode returns the discovery log ADRFAM of a.
func (a ListenAddr) AdrFamCode() uint8 {
	if a.AdrFam == "IPv6" {
		return proto.AdrFamIPv6
	}
	return proto.AdrFamIPv4
}

// TrTypeCode returns the discovery log TRTYPE of a.
func (a ListenAddr) TrTypeCode() uint8 {
	if a.TrType == "RDMA" {
		return proto.TRTypeRDMA
	}
	return proto.TRTypeTCP
}

// TransportOpts are the options of nvmf_create_transport that a transport
// honours (SPDK's spdk_nvmf_transport_opts). Zero fields take the
// defaults of DefaultTransportOpts when passed through WithDefaults.
type TransportOpts struct {
	MaxQueueDepth       uint16 // entries per I/O queue (CAP.MQES+1)
	MaxIOQPairsPerCtrlr uint16
	InCapsuleDataSize   uint32 // bytes of in-capsule data on I/O queues
	MaxIOSize           uint32 // largest data transfer of one command (MDTS)
	IOUnitSize          uint32
	MaxAQDepth          uint32 // entries of the admin queue
	IOBufSmallCacheSize uint32
	IOBufLargeCacheSize uint32
	DIFInsertOrStrip    bool
	Zcopy               bool
	C2HSuccess          bool // send C2HData with SUCCESS and no CapsuleResp (TCP)
	SockPriority        uint32
	AbortTimeoutSec     uint32
	AckTimeout          uint32
	DataWRPoolSize      uint32
	DisableCmdPassthru  bool
	KAS                 uint16 // keep alive granularity, 100 ms units
	MinKATOMs           uint32 // smallest keep alive timeout granted
	AcceptorPollRateUs  uint32 // acceptor poller period
}

// DefaultTransportOpts returns the defaults of SPDK's TCP transport.
func DefaultTransportOpts() TransportOpts {
	return TransportOpts{
		MaxQueueDepth:       128,
		MaxIOQPairsPerCtrlr: 127,
		InCapsuleDataSize:   4096,
		MaxIOSize:           131072,
		IOUnitSize:          131072,
		MaxAQDepth:          128,
		IOBufSmallCacheSize: 128,
		IOBufLargeCacheSize: 16,
		C2HSuccess:          true,
		AbortTimeoutSec:     1,
		KAS:                 10,
		MinKATOMs:           10000,
		AcceptorPollRateUs:  10000,
	}
}

// Validate checks the options a transport relies on.
func (o *TransportOpts) Validate() error {
	switch {
	case o.MaxQueueDepth < 2:
		return errors.New("nvmf: max_queue_depth must be at least 2")
	case o.MaxAQDepth < 2 || o.MaxAQDepth > 4096:
		return errors.New("nvmf: max_aq_depth must be in 2..4096")
	case o.MaxIOQPairsPerCtrlr == 0:
		return errors.New("nvmf: max_io_qpairs_per_ctrlr must be at least 1")
	case o.MaxIOSize < 4096 || o.MaxIOSize > 16<<20 || o.MaxIOSize&(o.MaxIOSize-1) != 0:
		return errors.New("nvmf: max_io_size must be a power of two from 4096 to 16 MiB")
	case o.InCapsuleDataSize%16 != 0 || o.InCapsuleDataSize > o.MaxIOSize || o.InCapsuleDataSize > 1<<20:
		return errors.New("nvmf: in_capsule_data_size must be a multiple of 16, at most max_io_size and 1 MiB")
	case o.KAS == 0:
		return errors.New("nvmf: kas must be at least 1")
	}
	return nil
}

// QPairInfo describes a queue pair for nvmf_subsystem_get_qpairs.
type QPairInfo struct {
	Listen ListenAddr
	Peer   ListenAddr
}

// Request is one command in flight between a transport and the target.
// See the package doc for who owns it when.
type Request struct {
	// SQE is the command as received.
	SQE proto.SQE
	// Rsp is the response: the target sets Status, DW0 and DW1; the
	// transport fills CID and SQHead.
	Rsp proto.CQE
	// Xfer is the command's data direction (SQE.Dir()).
	Xfer proto.Xfer
	// Data is the command's data buffer, len(Data) = the SGL length: the
	// received bytes for host-to-controller commands, space to fill for
	// controller-to-host ones. nil without data.
	Data []byte
	// Length is the number of bytes to return to the host for a
	// controller-to-host command; the transport sets it to len(Data) and
	// the target may lower it.
	Length uint32
	// QPair is the queue the command arrived on.
	QPair QPair
	// Slot is the transport's index of the request in its pool.
	Slot int

	// Fields below belong to the target between Exec and Complete; the
	// transport never reads them and zeroes them before Exec.

	// Iov holds Data as the iovec list of a bdev IO.
	Iov [1][]byte
	// Next links requests in the target's wait queues.
	Next *Request
	// Ctx is the target's per-command state.
	Ctx any
	// Aux is target scratch: range index, pending count.
	Aux, Aux2 int
}

// QPair is one NVMe-oF queue pair (one connection on TCP) as the target
// sees it. Every method runs on the QPair's reactor (Reactor()), except
// Reactor, Info and ID which are safe anywhere.
type QPair interface {
	// Complete returns req's data and response to the host and recycles
	// req. Called once per request handed to Handler.Exec.
	Complete(req *Request)
	// Connected tells the transport that a Connect succeeded on this
	// queue: qid 0 is the admin queue; sqsize is 0's based.
	Connected(qid, sqsize uint16)
	// Disconnect closes the queue from the target side: the transport
	// stops receiving, sends what it has queued, closes the connection and
	// then calls Handler.QPairDisconnected. Idempotent.
	Disconnect()
	// Ctx and SetCtx hold the target's per-queue state.
	Ctx() any
	SetCtx(v any)
	// Reactor is the reactor that owns the queue.
	Reactor() *reactor.Reactor
	// Info reports the addresses of the queue.
	Info() QPairInfo
	// ID is unique among the transport's queues.
	ID() uint64
}

// Handler is what a transport delivers commands to: the target.
type Handler interface {
	// Exec runs a command. The target answers with req.QPair.Complete.
	Exec(req *Request)
	// QPairDisconnected is called once when a queue starts closing, on its
	// reactor. The target completes the requests it holds for it (held
	// Asynchronous Event Requests, queued commands) and drops its state.
	QPairDisconnected(qp QPair)
}

// PollGroup is a transport's per-reactor state: it owns the queues handed
// to that reactor and drives them from one poller.
type PollGroup interface {
	// Poll does one round of work on every queue of the group.
	Poll(now reactor.Ticks) reactor.Status
	// Arm runs before the reactor sleeps; it returns true when work is
	// pending (the reactor must not sleep).
	Arm() bool
	// Close disconnects every queue of the group and releases the group.
	// On its reactor.
	Close()
}

// Transport is one NVMe-oF transport (SPDK's spdk_nvmf_transport_ops).
type Transport interface {
	// Type is "TCP" or "RDMA".
	Type() string
	// Opts returns the options in force.
	Opts() TransportOpts
	// Listen starts accepting connections on a. Control plane.
	Listen(a ListenAddr) error
	// StopListen stops accepting on a; established queues stay.
	StopListen(a ListenAddr) error
	// NewPollGroup creates the group of reactor r. Called on r.
	NewPollGroup(r *reactor.Reactor) (PollGroup, error)
	// Accept takes the pending connections of every listener and hands
	// each to a poll group. Called on the acceptor reactor; it returns
	// the number of connections taken.
	Accept() int
	// Close stops listening. Poll groups are closed by their reactors.
	Close() error
}
