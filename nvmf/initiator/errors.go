package initiator

import (
	"errors"
	"fmt"

	"hyperpath/nvmf/proto"
)

// Sentinel errors. Submit returns the data-path ones as values, so a
// rejected command allocates nothing.
var (
	// ErrInvalidOptions wraps every Options validation failure.
	ErrInvalidOptions = errors.New("nvmf/initiator: invalid options")
	// ErrTimeout: a connection step or an admin command did not finish in
	// time.
	ErrTimeout = errors.New("nvmf/initiator: timed out")
	// ErrConnClosed: the controller closed the TCP connection.
	ErrConnClosed = errors.New("nvmf/initiator: connection closed by the controller")
	// ErrQueueFull: every command slot of the queue pair is in use; retry
	// after a completion (the bdev layer turns it into NoMem).
	ErrQueueFull = errors.New("nvmf/initiator: queue pair full")
	// ErrPathFailed: the queue pair has no connection and does not hold
	// commands (fast_io_fail_timeout_sec expired, or no reconnect is
	// configured and the last attempt failed).
	ErrPathFailed = errors.New("nvmf/initiator: no path to the controller")
	// ErrClosed: the controller was detached or given up.
	ErrClosed = errors.New("nvmf/initiator: controller closed")
	// ErrBadCommand: a Cmd that cannot be encoded (block count, buffers
	// shorter than the transfer, too many ranges, unknown op).
	ErrBadCommand = errors.New("nvmf/initiator: malformed command")
	// ErrProtocol: the controller broke the NVMe/TCP protocol; the
	// connection was terminated.
	ErrProtocol = errors.New("nvmf/initiator: protocol error")
	// ErrKeepAlive: a Keep Alive was not answered within KATO, or failed.
	ErrKeepAlive = errors.New("nvmf/initiator: keep alive failed")
	// ErrReset: the connection was dropped on purpose to reset the
	// controller.
	ErrReset = errors.New("nvmf/initiator: controller reset")
	// ErrNoQueue: the reactor has no I/O queue pair of this controller.
	ErrNoQueue = errors.New("nvmf/initiator: no I/O queue pair on this reactor")
	// ErrReactor: a reactor did not run a control message in time.
	ErrReactor = errors.New("nvmf/initiator: reactor did not answer")
)

// StatusError is an admin or Fabrics command that completed with an error
// status during connection setup or a control-plane request.
type StatusError struct {
	Cmd    string       // "Connect", "Identify Controller", ...
	Status proto.Status // the completion status
	DW0    uint32       // completion dword 0 (Connect: IPO/IATTR)
}

func (e *StatusError) Error() string {
	if e.Status.Code() == proto.StatusConnectInvalidParameters {
		inData, off := proto.ConnectInvalidParam(e.DW0)
		where := "command"
		if inData {
			where = "data"
		}
		return fmt.Sprintf("nvmf/initiator: %s: %v (invalid parameter at %s offset %d)", e.Cmd, e.Status, where, off)
	}
	return fmt.Sprintf("nvmf/initiator: %s: %v", e.Cmd, e.Status)
}

// TermReqError is a C2HTermReq received from the controller (NVMe/TCP 1.0
// §3.6.2.5).
type TermReqError struct {
	FES proto.FES
	FEI uint32
}

func (e *TermReqError) Error() string {
	return fmt.Sprintf("nvmf/initiator: controller terminated the connection: %v (FEI %#x)", e.FES, e.FEI)
}

// Unwrap returns ErrProtocol.
func (e *TermReqError) Unwrap() error { return ErrProtocol }
