package proto

import (
	"errors"
	"fmt"
)

// Sentinels wrapped by every decode error. They tell the caller what state
// the stream is in.
var (
	// ErrBadHeader: the header cannot be trusted (version, flags, or a size
	// larger than the request can carry). The stream is out of sync and the
	// connection must be closed.
	ErrBadHeader = errors.New("bad vhost-user header")
	// ErrMalformed: the message was read whole but its payload or its fds
	// are invalid; its fds have been closed. Msg.Hdr is valid, so the session
	// may answer (a non-zero ack if NEED_REPLY) and read on.
	ErrMalformed = errors.New("malformed vhost-user message")
	// ErrUnsupported: a request code this package does not decode. The
	// message was read whole and its fds closed; Msg.Hdr is valid.
	ErrUnsupported = errors.New("unsupported vhost-user request")
	// ErrTooManyFDs: more than MaxFDs descriptors arrived with one message.
	// Wrapped together with ErrMalformed.
	ErrTooManyFDs = errors.New("too many file descriptors")
)

// FieldError locates a decode failure in a message. Offset counts bytes from
// the start of the message: the header is at 0, the payload at HeaderSize.
// For descriptor-count errors Offset is that of the field that decides the
// count (or -1 when the request always takes a fixed number of fds).
type FieldError struct {
	Request Request
	Field   string
	Offset  int
	Reason  string
	Err     error // ErrBadHeader, ErrMalformed or ErrUnsupported
	extra   error // optional second sentinel (ErrTooManyFDs)
}

// Error implements error.
func (e *FieldError) Error() string {
	return fmt.Sprintf("vhost-user %v: field %s at offset %d: %s", e.Request, e.Field, e.Offset, e.Reason)
}

// Unwrap returns the sentinels the error wraps.
func (e *FieldError) Unwrap() []error {
	if e.extra != nil {
		return []error{e.Err, e.extra}
	}
	return []error{e.Err}
}

func fieldErr(req Request, field string, off int, kind error, format string, args ...any) *FieldError {
	return &FieldError{Request: req, Field: field, Offset: off, Reason: fmt.Sprintf(format, args...), Err: kind}
}
