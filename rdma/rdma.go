// Package rdma is Hyperpath's verbs-shaped RDMA interface: the remote half
// of the data path (NVMe-oF over RDMA, claims 3-4 of the design: remote
// servers move data with one-sided READ/WRITE on the guest's registered
// hugepage memory).
//
// This package declares the contract the NVMe-oF RDMA transport is written
// against. The providers that implement it — rdma/verbs (cgo over
// libibverbs/librdmacm: real RoCE/InfiniBand NICs and the kernel's
// soft-RoCE rdma_rxe) and rdma/soft (pure Go, the same semantics over TCP)
// — are separate packages and are not part of the tree yet; NVMe-oF runs
// over TCP today (nvmf/tcp).
//
// Threading: a CQ is polled by exactly one reactor, and the QPs whose
// completions land on it are posted to from that reactor only. Memory
// regions are registered once, whole, on the control plane.
package rdma

import "errors"

// Access flags of a memory region.
type Access uint32

const (
	// AccessLocalWrite lets the local NIC write into the region (receives,
	// READ responses).
	AccessLocalWrite Access = 1 << iota
	// AccessRemoteRead lets peers RDMA READ the region with its rkey.
	AccessRemoteRead
	// AccessRemoteWrite lets peers RDMA WRITE the region with its rkey.
	AccessRemoteWrite
)

// Opcode is the kind of a work request or completion.
type Opcode uint8

const (
	// OpSend is a two-sided send (NVMe-oF capsules).
	OpSend Opcode = iota
	// OpRecv completes a posted receive.
	OpRecv
	// OpRead is a one-sided RDMA READ from a peer's region.
	OpRead
	// OpWrite is a one-sided RDMA WRITE into a peer's region.
	OpWrite
)

// Errors common to providers.
var (
	// ErrAccess: a remote key, bounds or access-flag check failed.
	ErrAccess = errors.New("rdma: remote access error")
	// ErrQueueFull: no room in the send or receive queue; retry after
	// polling completions.
	ErrQueueFull = errors.New("rdma: work queue full")
)

// Provider opens devices (verbs or soft).
type Provider interface {
	Name() string
	Devices() ([]string, error)
	Open(device string) (Device, error)
}

// Device is an opened RDMA device.
type Device interface {
	AllocPD() (PD, error)
	NewCQ(entries int) (CQ, error)
	Close() error
}

// PD is a protection domain: regions and QPs in one PD may be used together.
type PD interface {
	// Register registers buf (kept alive and unmoved by the caller until
	// Deregister) with the given access.
	Register(buf []byte, access Access) (MR, error)
	// NewQP creates a reliable-connected queue pair whose completions go
	// to cq.
	NewQP(cq CQ, sendDepth, recvDepth int) (QP, error)
	Close() error
}

// MR is a registered memory region.
type MR interface {
	Addr() uint64
	Len() int
	LKey() uint32
	RKey() uint32
	Deregister() error
}

// SGE is one local scatter-gather element.
type SGE struct {
	Addr uint64
	Len  uint32
	LKey uint32
}

// WorkRequest is one send-queue entry.
type WorkRequest struct {
	ID     uint64
	Op     Opcode
	Local  []SGE
	Remote struct {
		Addr uint64
		RKey uint32
	}
	Signaled bool
}

// Completion is one polled completion.
type Completion struct {
	ID     uint64
	Op     Opcode
	Len    uint32
	Status error // nil on success
}

// CQ is a completion queue, polled (never waited on) by its reactor.
type CQ interface {
	// Poll copies up to len(dst) completions and returns how many.
	Poll(dst []Completion) int
	Close() error
}

// QP is a reliable-connected queue pair.
type QP interface {
	PostSend(wr *WorkRequest) error
	PostRecv(id uint64, sge []SGE) error
	Close() error
}
