package client

import (
	"context"
	"errors"
	"io"
	"os"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/drivers/driver"
)

// Sentinel errors: every error that crossed the bus matches exactly one of these with errors.Is.
var (
	ErrNotFound           = bus.ErrNotFound
	ErrInvalidArgument    = bus.ErrInvalidArgument
	ErrFailedPrecondition = bus.ErrFailedPrecondition
	ErrPermissionDenied   = bus.ErrPermissionDenied
	ErrDeadlineExceeded   = bus.ErrDeadlineExceeded
	ErrUnavailable        = bus.ErrUnavailable
	ErrUnimplemented      = bus.ErrUnimplemented
	ErrInternal           = bus.ErrInternal
)

// ErrNoSession is returned by OptionsFromEnv().Validate when no lab session is attached.
var ErrNoSession = errors.New("no jsn session: run this inside `jsn shell -c exporter.yaml` " +
	"(which sets JSN_HOST, JSN_EXPORTER and JSN_LEASE), or pass --lease")

// Environment variables set by `jsn shell`.
const (
	EnvHost     = "JSN_HOST"     // bus address: unix:///path/to/socket or nats://host:port
	EnvExporter = "JSN_EXPORTER" // exporter name
	EnvLease    = "JSN_LEASE"    // lease id
)

// Options say where an exporter is and which lease to present.
type Options struct {
	Host     string // bus address, see EnvHost
	Exporter string
	Lease    string
	Name     string // who is calling, used in the private inbox prefix; defaults to "client"
}

// OptionsFromEnv reads JSN_HOST, JSN_EXPORTER and JSN_LEASE.
func OptionsFromEnv() Options {
	return Options{Host: os.Getenv(EnvHost), Exporter: os.Getenv(EnvExporter), Lease: os.Getenv(EnvLease)}
}

// Validate reports ErrNoSession when Host or Exporter is missing.
func (o Options) Validate() error {
	if o.Host == "" || o.Exporter == "" {
		return ErrNoSession
	}
	return nil
}

// ByteStream is the client's end of a byte stream (a TCP tunnel, a console).
// CloseWrite half-closes: the driver reads EOF. Read returns io.EOF when the driver half-closes,
// and an error matching ErrUnavailable/ErrFailedPrecondition/... when the stream is reset.
type ByteStream interface {
	io.Reader
	io.Writer
	CloseWrite() error
	Close() error
}

// Client is a connection to a jsn bus.
type Client struct {
	conn any // *bus.Conn once bus has it
}

// Connect opens a connection to the bus at host (unix:///path or nats://host:port).
func Connect(ctx context.Context, host, name string) (*Client, error) {
	return nil, errors.New("client: not implemented yet")
}

// Close closes the connection; every stream on it is reset.
func (c *Client) Close() error { return nil }

// Exporter returns a handle on the named exporter presenting lease. No round trip.
func (c *Client) Exporter(name, lease string) *Exporter {
	return &Exporter{c: c, name: name, lease: lease}
}

// Dial connects with o and returns the exporter handle; closing it closes the connection.
func Dial(ctx context.Context, o Options) (*Exporter, error) {
	return nil, errors.New("client: not implemented yet")
}

// Exporter is a handle on one exporter.
type Exporter struct {
	c     *Client
	name  string
	lease string
	owned bool // Close closes c
}

// Name returns the exporter's name.
func (e *Exporter) Name() string { return e.name }

// Close closes the connection if Dial made it.
func (e *Exporter) Close() error { return nil }

// Describe fetches the driver tree.
func (e *Exporter) Describe(ctx context.Context) (*driver.Description, error) {
	return nil, errors.New("client: not implemented yet")
}

// Driver returns a handle on the driver at the dotted path. No round trip.
func (e *Exporter) Driver(path string) *Driver { return &Driver{e: e, path: path} }

// Driver is a handle on one driver of an exporter.
type Driver struct {
	e    *Exporter
	path string
}

// Path returns the driver's dotted path.
func (d *Driver) Path() string { return d.path }

// Call invokes a call-kind method and returns its result decoded as a generic msgpack value
// (nil, bool, int64, uint64, float64, string, []byte, []any, map[string]any).
func (d *Driver) Call(ctx context.Context, method string, args ...any) (any, error) {
	var out any
	err := d.CallInto(ctx, method, &out, args...)
	return out, err
}

// CallInto invokes a call-kind method and decodes its result into out (a pointer, or nil to
// discard it).
func (d *Driver) CallInto(ctx context.Context, method string, out any, args ...any) error {
	return errors.New("client: not implemented yet")
}

// Stream invokes a server-streaming method. Read items with Next until it returns io.EOF.
func (d *Driver) Stream(ctx context.Context, method string, args ...any) (*Items, error) {
	return nil, errors.New("client: not implemented yet")
}

// Items is the client's end of a server-streaming call.
type Items struct{}

// Next decodes the next item into out (a pointer). It returns io.EOF after the last item, or the
// error the driver ended the stream with (matching the sentinels above).
func (it *Items) Next(out any) error { return io.EOF }

// Close stops the stream early.
func (it *Items) Close() error { return nil }

// Open invokes a byte-stream method and returns the client's end of the stream.
func (d *Driver) Open(ctx context.Context, method string, args ...any) (ByteStream, error) {
	return nil, errors.New("client: not implemented yet")
}
