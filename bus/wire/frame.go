package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// FrameType is the first byte of every stream frame.
type FrameType byte

// Stream frame types. Every frame is one NATS message: the type byte, an 8-byte big-endian
// offset, then a payload that depends on the type.
const (
	// FrameData carries bytes; Offset is the stream offset of its first byte. A receiver that
	// sees an offset other than the next one it expects resets the stream (data was lost).
	FrameData FrameType = 1
	// FrameCredit grants the peer the right to send up to Offset bytes in total (cumulative, so a
	// lost or repeated credit frame is harmless). Also sent periodically as a keepalive.
	FrameCredit FrameType = 2
	// FrameFin half-closes: the sender will send nothing more; Offset is the total it sent.
	FrameFin FrameType = 3
	// FrameReset aborts the stream. The payload is "<CODE>\x00<message>".
	FrameReset FrameType = 4
)

// FrameHeaderLen is the size of a frame's type byte and offset.
const FrameHeaderLen = 9

// Frame is a decoded stream frame.
type Frame struct {
	Type    FrameType
	Offset  uint64
	Data    []byte // FrameData only; aliases the input
	Code    Code   // FrameReset only
	Message string // FrameReset only
}

// DecodeFrame parses a stream frame. Errors are InvalidArgument *Errors.
func DecodeFrame(b []byte) (Frame, error) {
	if len(b) < FrameHeaderLen {
		return Frame{}, &Error{Code: InvalidArgument, Message: fmt.Sprintf("stream frame of %d bytes is shorter than its %d byte header", len(b), FrameHeaderLen)}
	}
	f := Frame{Type: FrameType(b[0]), Offset: binary.BigEndian.Uint64(b[1:9])}
	rest := b[FrameHeaderLen:]
	switch f.Type {
	case FrameData:
		f.Data = rest
	case FrameCredit, FrameFin:
		if len(rest) != 0 {
			return Frame{}, &Error{Code: InvalidArgument, Message: fmt.Sprintf("stream frame type %d carries %d unexpected payload bytes", f.Type, len(rest))}
		}
	case FrameReset:
		code, msg, ok := bytes.Cut(rest, []byte{0})
		if !ok {
			return Frame{}, &Error{Code: InvalidArgument, Message: "stream reset frame has no code separator"}
		}
		f.Code = Code(code)
		if !ValidCode(f.Code) {
			f.Code = Internal
		}
		f.Message = string(msg)
	default:
		return Frame{}, &Error{Code: InvalidArgument, Message: fmt.Sprintf("unknown stream frame type %d", b[0])}
	}
	return f, nil
}

// AppendFrame appends the encoding of f to b.
func AppendFrame(b []byte, f Frame) []byte {
	b = append(b, byte(f.Type))
	b = binary.BigEndian.AppendUint64(b, f.Offset)
	switch f.Type {
	case FrameData:
		b = append(b, f.Data...)
	case FrameReset:
		b = append(b, f.Code...)
		b = append(b, 0)
		b = append(b, f.Message...)
	}
	return b
}
