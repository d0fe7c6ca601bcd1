package wire

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/vmihailenco/msgpack/v5"
)

// MaxBody is the largest call body Decode accepts (the server's default maximum payload).
const MaxBody = 1 << 20

// Marshal encodes v as msgpack. Structs use their `msgpack` tags.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetCustomStructTag("msgpack")
	enc.UseCompactInts(true)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode msgpack: %w", err)
	}
	return buf.Bytes(), nil
}

// Unmarshal decodes msgpack data into v (a pointer). Generic values decode as nil, bool, int64,
// uint64, float64, string, []byte, []any and map[string]any.
func Unmarshal(data []byte, v any) error {
	if len(data) > MaxBody {
		return &Error{Code: InvalidArgument, Message: fmt.Sprintf("message of %d bytes exceeds the %d byte limit", len(data), MaxBody)}
	}
	if err := checkMsgpack(data); err != nil {
		return &Error{Code: InvalidArgument, Message: "decode msgpack: " + err.Error()}
	}
	r := bytes.NewReader(data)
	dec := msgpack.NewDecoder(r)
	dec.UseLooseInterfaceDecoding(true)
	dec.SetMapDecoder(decodeStringMap)
	if err := dec.Decode(v); err != nil {
		return &Error{Code: InvalidArgument, Message: fmt.Sprintf("decode msgpack: %v", err)}
	}
	if r.Len() > 0 {
		return &Error{Code: InvalidArgument, Message: fmt.Sprintf("decode msgpack: %d trailing bytes after the value", r.Len())}
	}
	return nil
}

// decodeStringMap decodes maps with string keys as map[string]any, others as map[any]any.
func decodeStringMap(d *msgpack.Decoder) (any, error) {
	n, err := d.DecodeMapLen()
	if err != nil {
		return nil, err
	}
	if n == -1 {
		return nil, nil
	}
	m := make(map[string]any, min(n, 64))
	for i := 0; i < n; i++ {
		k, err := d.DecodeInterfaceLoose()
		if err != nil {
			return nil, err
		}
		ks, ok := k.(string)
		if !ok {
			ks = fmt.Sprint(k)
		}
		v, err := d.DecodeInterfaceLoose()
		if err != nil {
			return nil, err
		}
		m[ks] = v
	}
	return m, nil
}

// DecodeArgs decodes a call body: empty means no arguments, otherwise a msgpack array (nil counts
// as no arguments). Anything else is an InvalidArgument error.
func DecodeArgs(data []byte) ([]any, error) {
	if len(data) == 0 {
		return nil, nil
	}
	var v any
	if err := Unmarshal(data, &v); err != nil {
		return nil, err
	}
	switch a := v.(type) {
	case nil:
		return nil, nil
	case []any:
		return a, nil
	default:
		return nil, &Error{Code: InvalidArgument, Message: fmt.Sprintf("call body must be a msgpack array of arguments, got %T", v)}
	}
}

// EncodeArgs encodes positional arguments as a call body (empty for none).
func EncodeArgs(args []any) ([]byte, error) {
	if len(args) == 0 {
		return nil, nil
	}
	return Marshal(args)
}

// Decoder reads consecutive msgpack values from a stream (the items of a server-streaming call).
type Decoder struct {
	dec *msgpack.Decoder
}

// NewDecoder returns a Decoder reading from r.
func NewDecoder(r io.Reader) *Decoder {
	dec := msgpack.NewDecoder(r)
	dec.UseLooseInterfaceDecoding(true)
	dec.SetMapDecoder(decodeStringMap)
	return &Decoder{dec: dec}
}

// Decode reads the next value into v. It returns io.EOF at a clean end of stream, and the
// stream's reset error (an *Error) if it was reset.
func (d *Decoder) Decode(v any) error {
	err := d.dec.Decode(v)
	if err == nil || err == io.EOF || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return &Error{Code: Internal, Message: "stream ended in the middle of an item"}
	}
	return &Error{Code: Internal, Message: fmt.Sprintf("decode stream item: %v", err)}
}
