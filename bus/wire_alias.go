package bus

import (
	"io"

	"jsn.dev/jsn/bus/wire"
)

// The wire contract (error catalogue, codec, subject names, headers, stream frames) lives in the
// NATS-free package wire. These names let code written against bus keep compiling while it moves
// to wire; new code imports wire.

type (
	Code      = wire.Code
	Error     = wire.Error
	Header    = wire.Header
	Decoder   = wire.Decoder
	Frame     = wire.Frame
	FrameType = wire.FrameType
)

const (
	NotFound           = wire.NotFound
	InvalidArgument    = wire.InvalidArgument
	FailedPrecondition = wire.FailedPrecondition
	PermissionDenied   = wire.PermissionDenied
	DeadlineExceeded   = wire.DeadlineExceeded
	Unavailable        = wire.Unavailable
	Unimplemented      = wire.Unimplemented
	Internal           = wire.Internal

	HeaderLease        = wire.HeaderLease
	HeaderErrorCode    = wire.HeaderErrorCode
	HeaderError        = wire.HeaderError
	HeaderStream       = wire.HeaderStream
	HeaderStreamWindow = wire.HeaderStreamWindow

	MaxBody = wire.MaxBody
)

var (
	ErrNotFound           = wire.ErrNotFound
	ErrInvalidArgument    = wire.ErrInvalidArgument
	ErrFailedPrecondition = wire.ErrFailedPrecondition
	ErrPermissionDenied   = wire.ErrPermissionDenied
	ErrDeadlineExceeded   = wire.ErrDeadlineExceeded
	ErrUnavailable        = wire.ErrUnavailable
	ErrUnimplemented      = wire.ErrUnimplemented
	ErrInternal           = wire.ErrInternal
)

// Errorf is wire.Errorf.
func Errorf(code Code, format string, args ...any) error { return wire.Errorf(code, format, args...) }

// CodeOf is wire.CodeOf.
func CodeOf(err error) Code { return wire.CodeOf(err) }

// Marshal is wire.Marshal.
func Marshal(v any) ([]byte, error) { return wire.Marshal(v) }

// Unmarshal is wire.Unmarshal.
func Unmarshal(data []byte, v any) error { return wire.Unmarshal(data, v) }

// DecodeArgs is wire.DecodeArgs.
func DecodeArgs(data []byte) ([]any, error) { return wire.DecodeArgs(data) }

// EncodeArgs is wire.EncodeArgs.
func EncodeArgs(args []any) ([]byte, error) { return wire.EncodeArgs(args) }

// ValidName is wire.ValidName.
func ValidName(s string) bool { return wire.ValidName(s) }

// ValidPath is wire.ValidPath.
func ValidPath(p string) bool { return wire.ValidPath(p) }

// CheckName is wire.CheckName.
func CheckName(what, s string) error { return wire.CheckName(what, s) }

// DescribeSubject is wire.DescribeSubject.
func DescribeSubject(exporter string) string { return wire.DescribeSubject(exporter) }

// CallSubject is wire.CallSubject.
func CallSubject(exporter, path, method string) string {
	return wire.CallSubject(exporter, path, method)
}

// CallWildcard is wire.CallWildcard.
func CallWildcard(exporter string) string { return wire.CallWildcard(exporter) }

// ParseCall is wire.ParseCall.
func ParseCall(exporter, subject string) (path, method string, ok bool) {
	return wire.ParseCall(exporter, subject)
}

// TapSubject is wire.TapSubject.
func TapSubject(exporter, path string) string { return wire.TapSubject(exporter, path) }

// NewDecoder is wire.NewDecoder.
func NewDecoder(r io.Reader) *Decoder { return wire.NewDecoder(r) }
