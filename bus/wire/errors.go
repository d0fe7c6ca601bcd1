package wire

import (
	"context"
	"errors"
	"fmt"
)

// Code is a wire error code. The catalogue is closed: every error that crosses the bus carries
// one of these codes in the Nats-Service-Error-Code header (the header names nats.go's micro
// package uses) and a human message in Nats-Service-Error.
type Code string

const (
	NotFound           Code = "NOT_FOUND"           // no such exporter, driver, method or stream
	InvalidArgument    Code = "INVALID_ARGUMENT"    // wrong argument count or type, bad body
	FailedPrecondition Code = "FAILED_PRECONDITION" // the device is not in a state that allows it
	PermissionDenied   Code = "PERMISSION_DENIED"   // wrong or missing lease
	DeadlineExceeded   Code = "DEADLINE_EXCEEDED"   // the operation timed out
	Unavailable        Code = "UNAVAILABLE"         // device or exporter absent or unreachable
	Unimplemented      Code = "UNIMPLEMENTED"       // the driver does not support this
	Internal           Code = "INTERNAL"            // a bug or an unexpected device failure
	// Cancelled is the code of the RST a side sends to stop a stream before its end (a client
	// that closes a console, an interrupted download): nothing failed.
	Cancelled Code = "CANCELLED"
)

// Codes lists the catalogue in documentation order.
var Codes = []Code{NotFound, InvalidArgument, FailedPrecondition, PermissionDenied,
	DeadlineExceeded, Unavailable, Unimplemented, Internal, Cancelled}

// Error is an error that crosses the bus with a code.
type Error struct {
	Code    Code
	Message string
	cause   error // what Errorf wrapped with %w; never sent
}

// Unwrap returns the error wrapped by Errorf, if any.
func (e *Error) Unwrap() error { return e.cause }

func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Code)
	}
	return e.Message
}

// Is makes errors.Is(err, wire.ErrNotFound) true for every *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Code == e.Code
}

// Sentinels, one per code, for errors.Is.
var (
	ErrNotFound           = &Error{Code: NotFound}
	ErrInvalidArgument    = &Error{Code: InvalidArgument}
	ErrFailedPrecondition = &Error{Code: FailedPrecondition}
	ErrPermissionDenied   = &Error{Code: PermissionDenied}
	ErrDeadlineExceeded   = &Error{Code: DeadlineExceeded}
	ErrUnavailable        = &Error{Code: Unavailable}
	ErrUnimplemented      = &Error{Code: Unimplemented}
	ErrInternal           = &Error{Code: Internal}
	ErrCancelled          = &Error{Code: Cancelled}
)

// Errorf returns an *Error with the given code and a formatted message. A %w verb keeps the
// wrapped error reachable with errors.Is/As on this side of the bus.
func Errorf(code Code, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &Error{Code: code, Message: err.Error(), cause: errors.Unwrap(err)}
}

// NewError returns an *Error with code and message whose Unwrap gives cause (nil for none): the
// cause stays reachable with errors.Is/As on this side of the bus and is never sent.
func NewError(code Code, message string, cause error) *Error {
	return &Error{Code: code, Message: message, cause: cause}
}

// CodeOf returns the code of err: its own if it (or anything it wraps) is an *Error, otherwise
// DeadlineExceeded for context deadlines and Internal for everything else.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if errors.Is(err, contextDeadline) {
		return DeadlineExceeded
	}
	return Internal
}

// ValidCode reports whether c is in the catalogue.
func ValidCode(c Code) bool {
	for _, k := range Codes {
		if k == c {
			return true
		}
	}
	return false
}

var contextDeadline = context.DeadlineExceeded
