package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	pathpkg "path"
	"strings"
	"sync"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/client/remote"
)

// Sentinel errors: every error that crossed the bus matches exactly one of these with errors.Is.
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

// ErrNoSession is returned by OptionsFromEnv().Validate when no lab session is attached.
var ErrNoSession = errors.New("no jsn session: run this inside `jsn shell -c exporter.yaml` " +
	"(which sets JSN_HOST, JSN_EXPORTER and JSN_LEASE), or pass --lease")

// Environment variables set by `jsn shell`.
const (
	EnvHost     = "JSN_HOST"     // bus address: unix:///path/to/socket or nats://host:port
	EnvExporter = "JSN_EXPORTER" // exporter name
	EnvLease    = "JSN_LEASE"    // lease id
	EnvCA       = "JSN_CA"       // path of the PEM CA the bus's TLS certificate must chain to
	// EnvWSURL and EnvWSToken, in a `jsn shell --web` session, are the session's NATS WebSocket
	// URL (loopback) and the token it requires: how a client without a custom dialer (nats.js)
	// reaches the local bus. Empty without --web.
	EnvWSURL   = "JSN_WS_URL"
	EnvWSToken = "JSN_WS_TOKEN"
	// EnvDirectStreams set to "off" keeps byte streams on the bus even where the exporter offers
	// a direct connection (to compare, or to debug).
	EnvDirectStreams = "JSN_DIRECT_STREAMS"
)

// Options say where an exporter is and which lease to present.
type Options struct {
	Host     string // bus address, see EnvHost
	Exporter string
	Lease    string
	Name     string // who is calling, used in the private inbox prefix; defaults to "client"
	// Creds is the path of a NATS .creds file to authenticate with (a lease credential in a
	// remote session, see EnvCreds); "" means none. With credentials, Name is the JWT's user
	// name: the credential may only receive on that identity's inbox prefix.
	Creds string
	// CredsData is the content of a .creds file; it takes precedence over Creds.
	CredsData []byte
	// NoDirectStreams keeps byte streams on the bus (see EnvDirectStreams).
	NoDirectStreams bool
	// CAFile is the path of the PEM certificate authority the bus's TLS certificate must chain
	// to (see EnvCA); "" means the system's roots. CA, the PEM itself, takes precedence.
	CAFile string
	CA     []byte
}

// OptionsFromEnv reads JSN_HOST, JSN_EXPORTER, JSN_LEASE and JSN_CREDS.
func OptionsFromEnv() Options {
	return Options{Host: os.Getenv(EnvHost), Exporter: os.Getenv(EnvExporter), Lease: os.Getenv(EnvLease),
		Creds: os.Getenv(EnvCreds), CAFile: os.Getenv(EnvCA), NoDirectStreams: os.Getenv(EnvDirectStreams) == "off"}
}

// Validate reports ErrNoSession when Host or Exporter is missing.
func (o Options) Validate() error {
	if o.Host == "" || o.Exporter == "" {
		return ErrNoSession
	}
	return nil
}

// ByteStream is the client's end of a byte stream (a TCP tunnel, a console); see
// remote.ByteStream.
type ByteStream = remote.ByteStream

// Items is the client's end of a server-streaming call; see remote.Items.
type Items = remote.Items

// Client is a connection to a jsn bus.
type Client struct {
	conn *bus.Conn
}

// Connect opens a connection to the bus at host (unix:///path or nats://host:port). name
// identifies the caller (it appears in the private inbox prefix); "" means "client".
func Connect(ctx context.Context, host, name string) (*Client, error) {
	conn, err := bus.Connect(ctx, host, name)
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn}, nil
}

// ConnectWith opens a connection to the bus at o.Host authenticating with o's credentials, if
// any.
func ConnectWith(ctx context.Context, o Options) (*Client, error) {
	creds := o.CredsData
	if creds == nil && o.Creds != "" {
		b, err := os.ReadFile(o.Creds)
		if err != nil {
			return nil, fmt.Errorf("connect: credentials: %w", err)
		}
		creds = b
	}
	name, inbox := o.Name, ""
	if creds != nil {
		n, err := bus.CredsName(creds)
		if err != nil {
			return nil, fmt.Errorf("connect: %w", err)
		}
		name = n // the inbox is the one the credential may subscribe to
	} else if o.Lease != "" && wire.ValidName(o.Lease) && wire.ValidName(o.Exporter) {
		inbox = bus.LeaseInbox(o.Exporter, o.Lease) // what a lease credential would have
	}
	ca := o.CA
	if ca == nil && o.CAFile != "" {
		b, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("connect: CA: %w", err)
		}
		ca = b
	}
	conn, err := bus.ConnectWith(ctx, o.Host, bus.ConnectOptions{Name: name, Creds: creds, Inbox: inbox, CA: ca})
	if err != nil {
		return nil, authError(err)
	}
	if o.NoDirectStreams {
		conn.DisableDirectStreams()
	}
	return &Client{conn: conn}, nil
}

// DisableDirectStreams keeps byte streams opened from now on on the bus, even where the exporter
// offers a direct connection.
func (c *Client) DisableDirectStreams() { c.conn.DisableDirectStreams() }

// Close closes the connection; every stream on it is reset.
func (c *Client) Close() error {
	c.conn.Close()
	return nil
}

// Exporter returns a handle on the named exporter presenting lease. No round trip.
func (c *Client) Exporter(name, lease string) *Exporter {
	return &Exporter{c: c, name: name, lease: lease}
}

// Dial connects with o and returns the exporter handle; closing it closes the connection.
func Dial(ctx context.Context, o Options) (*Exporter, error) {
	return DialWith(ctx, o, Retry{For: -1})
}

// DialWith is Dial, trying to connect again as r says while the bus cannot be reached (a lab
// whose NATS server restarts); a refused credential fails at once.
func DialWith(ctx context.Context, o Options, r Retry) (*Exporter, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if err := wire.CheckName("exporter", o.Exporter); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	var c *Client
	err := r.retry(ctx, "connect to "+o.Host, unreachable, func() (err error) {
		c, err = ConnectWith(ctx, o)
		return err
	})
	if err != nil {
		return nil, err
	}
	e := c.Exporter(o.Exporter, o.Lease)
	e.owned = true
	if r.bound() >= 0 {
		e.retry = &r
	}
	return e, nil
}

// Exporter is a handle on one exporter.
type Exporter struct {
	allow     []string // RestrictDrivers; nil allows every driver
	allowFrom string
	descMu    sync.Mutex
	desc      *wire.Description // cached for the allowlist check
	c         *Client
	name      string
	lease     string
	owned     bool   // Close closes c
	retry     *Retry // DialWith's: requests nobody received (the exporter reconnecting) are sent again; nil: never
}

// request sends a request to the exporter; with a retry policy, one that reached nobody (the
// exporter is reconnecting after a server restart) is sent again: it did nothing, so this is
// safe for any call.
func (e *Exporter) request(ctx context.Context, subject string, hdr wire.Header, body []byte) (*bus.Msg, error) {
	if e.retry == nil {
		return e.c.conn.Request(ctx, subject, hdr, body)
	}
	var m *bus.Msg
	err := e.retry.retry(ctx, subject, bus.NoResponders, func() (err error) {
		m, err = e.c.conn.Request(ctx, subject, hdr, body)
		return err
	})
	return m, err
}

// Name returns the exporter's name.
func (e *Exporter) Name() string { return e.name }

// RestrictDrivers makes the handle refuse, before sending anything, every call and stream to a
// driver whose type and interface match none of allow (names or globs: "power.*",
// "jsn.power.v1"). from names where the list came from, for the error ("drivers.allow of
// client config lab.yaml"). The driver's type is learnt from describe, once. Call it before
// using the handle; an empty allow restricts nothing.
func (e *Exporter) RestrictDrivers(allow []string, from string) {
	e.allow, e.allowFrom = append([]string(nil), allow...), from
}

// checkDriver applies RestrictDrivers to the driver at path.
func (e *Exporter) checkDriver(ctx context.Context, path string) error {
	if len(e.allow) == 0 {
		return nil
	}
	e.descMu.Lock()
	defer e.descMu.Unlock()
	for attempt := 0; ; attempt++ {
		if e.desc == nil || attempt == 1 {
			d, err := e.Describe(ctx)
			if err != nil {
				return err
			}
			e.desc = d
		}
		n := e.desc.Find(path)
		for i := 0; n != nil && n.Ref != "" && i < 100; i++ {
			n = e.desc.Find(n.Ref)
		}
		if n == nil {
			if attempt == 0 {
				continue // the tree may have changed: describe again
			}
			return nil // the exporter answers NOT_FOUND itself
		}
		if allowedDriver(e.allow, n.Type, n.Interface) {
			return nil
		}
		iface := n.Interface
		if iface == "" {
			iface = "none"
		}
		return wire.Errorf(wire.PermissionDenied, "driver %s is of type %s (interface %s), which %s does not allow (%s); nothing was sent",
			path, n.Type, iface, e.allowFrom, strings.Join(e.allow, ", "))
	}
}

func allowedDriver(allow []string, typ, iface string) bool {
	for _, a := range allow {
		for _, n := range []string{typ, iface} {
			if n == "" {
				continue
			}
			if ok, _ := pathpkg.Match(a, n); ok || a == n {
				return true
			}
		}
	}
	return false
}

// Lease returns the lease id the handle presents.
func (e *Exporter) Lease() string { return e.lease }

// Close closes the connection if Dial made it.
func (e *Exporter) Close() error {
	if e.owned {
		return e.c.Close()
	}
	return nil
}

// Describe fetches the driver tree.
func (e *Exporter) Describe(ctx context.Context) (*wire.Description, error) {
	m, err := e.request(ctx, wire.DescribeSubject(e.name), nil, nil)
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			return nil, wire.Errorf(wire.Unavailable, "exporter %s is not answering (is it running, and is JSN_HOST right?): %v", e.name, err)
		}
		return nil, err
	}
	var d wire.Description
	if err := wire.Unmarshal(m.Data, &d); err != nil {
		return nil, fmt.Errorf("describe %s: %w", e.name, err)
	}
	return &d, nil
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

func (d *Driver) request(method string, args []any) (subject string, hdr wire.Header, body []byte, err error) {
	if !wire.ValidPath(d.path) {
		return "", nil, nil, wire.Errorf(wire.NotFound, "driver path %q is not valid (dotted names of letters, digits, - and _)", d.path)
	}
	if !wire.ValidName(method) {
		return "", nil, nil, wire.Errorf(wire.NotFound, "method name %q is not valid", method)
	}
	body, err = wire.EncodeArgs(args)
	if err != nil {
		return "", nil, nil, wire.Errorf(wire.InvalidArgument, "%s.%s: %v", d.path, method, err)
	}
	hdr = wire.Header{}
	if d.e.lease != "" {
		hdr.Set(wire.HeaderLease, d.e.lease)
	}
	return wire.CallSubject(d.e.name, d.path, method), hdr, body, nil
}

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
	if err := d.e.checkDriver(ctx, d.path); err != nil {
		return err
	}
	subject, hdr, body, err := d.request(method, args)
	if err != nil {
		return err
	}
	m, err := d.e.request(ctx, subject, hdr, body)
	if err != nil {
		return err
	}
	if out == nil || len(m.Data) == 0 {
		return nil
	}
	if err := wire.Unmarshal(m.Data, out); err != nil {
		return fmt.Errorf("%s.%s: result: %w", d.path, method, err)
	}
	return nil
}

// Stream invokes a server-streaming method. Read items with Next until it returns io.EOF.
func (d *Driver) Stream(ctx context.Context, method string, args ...any) (Items, error) {
	s, err := d.open(ctx, method, args)
	if err != nil {
		return nil, err
	}
	// Nothing goes the other way: half-close now so the exporter can end the stream cleanly.
	_ = s.CloseWrite()
	// The stream lives as long as ctx: cancelling it stops the driver and unblocks Next.
	stop := context.AfterFunc(ctx, func() { s.Reset(context.Cause(ctx)) })
	return &items{s: s, dec: wire.NewDecoder(s), stop: stop}, nil
}

// items reads the items of a server-streaming call from its stream.
type items struct {
	s    *bus.Stream
	dec  *wire.Decoder
	stop func() bool
}

// Next decodes the next item into out (a pointer). It returns io.EOF after the last item, the
// error the driver ended the stream with (matching the sentinels above), or the context's error
// once the context given to Stream is done.
func (it *items) Next(out any) error { return it.dec.Decode(out) }

// Close stops the stream early.
func (it *items) Close() error {
	it.stop()
	return it.s.Close()
}

// Open invokes a byte-stream method and returns the client's end of the stream.
func (d *Driver) Open(ctx context.Context, method string, args ...any) (ByteStream, error) {
	return d.open(ctx, method, args)
}

func (d *Driver) open(ctx context.Context, method string, args []any) (*bus.Stream, error) {
	if err := d.e.checkDriver(ctx, d.path); err != nil {
		return nil, err
	}
	subject, hdr, body, err := d.request(method, args)
	if err != nil {
		return nil, err
	}
	if d.e.retry == nil {
		return d.e.c.conn.OpenStream(ctx, d.e.name, subject, hdr, body)
	}
	var st *bus.Stream
	err = d.e.retry.retry(ctx, subject, bus.NoResponders, func() (err error) {
		st, err = d.e.c.conn.OpenStream(ctx, d.e.name, subject, hdr, body)
		return err
	})
	return st, err
}

// Tap calls fn with each chunk of output the driver at path of exporter broadcasts on its
// read-only tap subject (console bytes, readings), until ctx ends. It needs no lease: taps are for
// observers. fn runs in one goroutine, in order.
func (c *Client) Tap(ctx context.Context, exporter, path string, fn func(data []byte)) error {
	return watchTap(ctx, c.conn, exporter, path, TapOptions{}, fn)
}

var _ remote.Driver = (*Driver)(nil)
