package remote

import (
	"context"
	"io"

	"jsn.dev/jsn/bus/wire"
)

// Driver is a handle on one driver of an exporter: what a typed client calls. Errors that crossed
// the bus match wire's sentinels (wire.ErrNotFound, wire.ErrUnavailable, …) with errors.Is.
type Driver interface {
	// Path returns the driver's dotted path.
	Path() string
	// Call invokes a call-kind method and returns its result decoded as a generic msgpack value
	// (nil, bool, int64, uint64, float64, string, []byte, []any, map[string]any).
	Call(ctx context.Context, method string, args ...any) (any, error)
	// CallInto invokes a call-kind method and decodes its result into out (a pointer, or nil to
	// discard it).
	CallInto(ctx context.Context, method string, out any, args ...any) error
	// Stream invokes a server-streaming method. The stream lives as long as ctx.
	Stream(ctx context.Context, method string, args ...any) (Items, error)
	// Open invokes a byte-stream method and returns the client's end of the stream.
	Open(ctx context.Context, method string, args ...any) (ByteStream, error)
}

// Items is the client's end of a server-streaming call.
type Items interface {
	// Next decodes the next item into out (a pointer). It returns io.EOF after the last item,
	// the error the driver ended the stream with, or the context's error once the context given
	// to Stream is done.
	Next(out any) error
	// Close stops the stream early.
	Close() error
}

// ByteStream is the client's end of a byte stream (a TCP tunnel, a console).
// CloseWrite half-closes: the driver reads EOF. Read returns io.EOF when the driver half-closes,
// and an error matching wire.ErrUnavailable, wire.ErrFailedPrecondition, … when the stream is
// reset.
type ByteStream interface {
	io.Reader
	io.Writer
	CloseWrite() error
	Close() error
}

// Exporter is a handle on one exporter: its driver tree and handles on its drivers.
type Exporter interface {
	// Name returns the exporter's name.
	Name() string
	// Describe fetches the driver tree.
	Describe(ctx context.Context) (*wire.Description, error)
	// Driver returns a handle on the driver at the dotted path. No round trip.
	Driver(path string) Driver
	// Close closes the connection to the exporter, if the handle owns it.
	Close() error
}
