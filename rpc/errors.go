package rpc

import (
	"errors"
	"fmt"
	"strconv"
	"syscall"
	"unicode"
	"unicode/utf8"
)

// JSON-RPC error codes that SPDK sends (include/spdk/jsonrpc.h). Besides
// these, errno-backed failures use -errno (see Errno).
const (
	CodeParseError     = -32700 // invalid JSON or request too large; the connection is closed
	CodeInvalidRequest = -32600 // bad envelope, top level not an object or array, empty batch
	CodeMethodNotFound = -32601 // unknown method, or not in the allow-list
	CodeInvalidParams  = -32602
	CodeInternalError  = -32603
	CodeInvalidState   = -1 // method not callable in the current State (equals -EPERM)
)

// Error is a JSON-RPC error object: what a handler returns to send a
// specific code and message, and what package rpc/client returns for an
// error reply.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`

	cause error // detail for the server's debug log; never sent
}

// Error implements error.
func (e *Error) Error() string {
	return fmt.Sprintf("JSON-RPC error %d: %s", e.Code, e.Message)
}

// Unwrap returns the detail attached by WithCause or DecodeFailed, if any.
func (e *Error) Unwrap() error { return e.cause }

// WithCause returns a copy of e that carries cause. The cause is logged by
// the server (with the "rpc" log flag) but never sent to the client, the way
// SPDK logs a decoder's complaint and replies with a fixed text.
func (e *Error) WithCause(cause error) *Error {
	c := *e
	c.cause = cause
	return &c
}

// Errorf returns an Error with the given code and a formatted message.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ParseError returns a -32700 error. The server sends "Parse error" for bad
// framing itself; handlers use this only where SPDK misuses the code (the
// raid RPCs reply -32700 "spdk_json_decode_object failed").
func ParseError(msg string) *Error { return &Error{Code: CodeParseError, Message: msg} }

// InvalidParams returns a -32602 error with msg ("Invalid parameters" is
// SPDK's generic text).
func InvalidParams(msg string) *Error { return &Error{Code: CodeInvalidParams, Message: msg} }

// Internal returns a -32603 error with msg ("Internal error" is SPDK's
// generic text).
func Internal(msg string) *Error { return &Error{Code: CodeInternalError, Message: msg} }

// DecodeFailed is the reply most bdev_* RPCs send when their params do not
// decode: -32603 "spdk_json_decode_object failed". cause (typically the
// error from Decode) is kept for the debug log only.
func DecodeFailed(cause error) *Error {
	return &Error{Code: CodeInternalError, Message: "spdk_json_decode_object failed", cause: cause}
}

// Errno returns the error SPDK sends for an errno-backed failure: code
// -errno and glibc's strerror text, e.g. Errno(syscall.ENODEV) is
// {-19, "No such device"}.
func Errno(e syscall.Errno) *Error {
	return &Error{Code: -int(e), Message: Strerror(e)}
}

// Strerror returns glibc's strerror(3) text for e ("No such device",
// "Unknown error 41").
func Strerror(e syscall.Errno) string {
	switch e {
	case 0:
		return "Success"
	case 133: // EHWPOISON; missing from the standard library's table
		return "Memory page has hardware error"
	}
	s := e.Error()
	// The standard library's table is glibc's with the first letter
	// lower-cased; numbers it does not know come back as "errno N".
	if s == "errno "+strconv.Itoa(int(e)) {
		return "Unknown error " + strconv.Itoa(int(e))
	}
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}

// toError maps what a handler returned to the error object that is sent:
// an *Error as is; an error wrapping a syscall.Errno as Errno; anything else
// as -32603 with the error's text.
func toError(err error) *Error {
	var re *Error
	if errors.As(err, &re) {
		return re
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		return Errno(en).WithCause(err)
	}
	return &Error{Code: CodeInternalError, Message: err.Error(), cause: err}
}
