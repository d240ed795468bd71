package proto

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package wraps exactly one of
// them, so callers branch with errors.Is and read details with errors.As.
var (
	// ErrShortBuffer means a buffer holds fewer bytes than the structure needs.
	ErrShortBuffer = errors.New("nvmf/proto: buffer too short")
	// ErrInvalidField means a field holds a value the specification forbids or
	// that does not fit its wire width.
	ErrInvalidField = errors.New("nvmf/proto: invalid field")
	// ErrPDU means an NVMe/TCP PDU header is a fatal transport error
	// (NVMe/TCP 1.0 §3.5.1); the error is a *PDUError.
	ErrPDU = errors.New("nvmf/proto: fatal NVMe/TCP PDU error")
)

// FieldError reports a structure that could not be encoded or decoded. It
// names the structure, the field and the byte offset of that field inside the
// structure, so a controller can, for example, answer a Connect command with
// the Invalid Parameter Offset of the bad field (NVMe Base 2.3 §6.3).
//
// FieldErrors are only built on failure; the success paths allocate nothing.
type FieldError struct {
	Struct string // e.g. "SQE", "ConnectData", "DiscoveryEntry[3]"
	Field  string // e.g. "SUBNQN"; empty for a whole-structure length problem
	Offset int    // byte offset of Field within Struct (the buffer length for ErrShortBuffer)
	Need   int    // for ErrShortBuffer: bytes needed
	Have   int    // for ErrShortBuffer: bytes available
	Reason string // human readable detail
	Err    error  // ErrShortBuffer or ErrInvalidField
}

func (e *FieldError) Error() string {
	if errors.Is(e.Err, ErrShortBuffer) {
		return fmt.Sprintf("nvmf/proto: %s: need %d bytes, have %d", e.Struct, e.Need, e.Have)
	}
	return fmt.Sprintf("nvmf/proto: %s.%s (offset %d): %s", e.Struct, e.Field, e.Offset, e.Reason)
}

// Unwrap returns the sentinel (ErrShortBuffer or ErrInvalidField).
func (e *FieldError) Unwrap() error { return e.Err }

func shortErr(what string, need, have int) error {
	return &FieldError{Struct: what, Offset: have, Need: need, Have: have, Err: ErrShortBuffer}
}

func fieldErr(what, field string, off int, reason string) error {
	return &FieldError{Struct: what, Field: field, Offset: off, Reason: reason, Err: ErrInvalidField}
}

// PDUError is a fatal NVMe/TCP transport error found in a received PDU
// header (NVMe/TCP 1.0 §3.5.1). A controller answers it with a C2HTermReq and
// a host with an H2CTermReq carrying FES and FEI and, as PDU data, the
// offending header (EncodeTermReq), then closes the connection. When NoReply
// is set the connection is closed without a termination request: the PDU in
// error was itself a termination request (§3.5.1 says to ignore a malformed
// one and terminate immediately; answering a well-formed one makes no sense
// either).
type PDUError struct {
	FES     FES     // Fatal Error Status for the TermReq; 0 when NoReply
	FEI     uint32  // Fatal Error Information: field offset (FES 01h, 06h), received HDGST (03h), else 0
	Type    PDUType // type byte of the PDU in error (as received)
	Field   string  // name of the offending field, e.g. "PLEN"
	Reason  string  // human readable detail
	NoReply bool    // close the connection without sending a TermReq
}

func (e *PDUError) Error() string {
	if e.NoReply {
		return fmt.Sprintf("nvmf/proto: %v PDU: %s: %s (closing without TermReq)", e.Type, e.Field, e.Reason)
	}
	if e.FES == FESInvalidHeaderField || e.FES == FESUnsupportedParameter {
		return fmt.Sprintf("nvmf/proto: %v PDU: %s (offset %d): %s (FES %v)", e.Type, e.Field, e.FEI, e.Reason, e.FES)
	}
	return fmt.Sprintf("nvmf/proto: %v PDU: %s: %s (FES %v, FEI %#x)", e.Type, e.Field, e.Reason, e.FES, e.FEI)
}

// Unwrap returns ErrPDU.
func (e *PDUError) Unwrap() error { return ErrPDU }

// NewPDUError builds the error a transport reports for a fatal condition the
// header parser cannot see (for example an unknown CCCID or TTAG, FES 01h with
// FEI = DataPDUOffCCCID, or data outside an R2T window, FES 04h).
func NewPDUError(t PDUType, fes FES, fei uint32, field, reason string) *PDUError {
	return &PDUError{FES: fes, FEI: fei, Type: t, Field: field, Reason: reason}
}

func pduInvalid(t PDUType, off uint32, field, reason string) error {
	return &PDUError{FES: FESInvalidHeaderField, FEI: off, Type: t, Field: field, Reason: reason}
}
