package storage

import (
	"context"
	"errors"
	"io"
	"net/url"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

// Interface names.
const (
	// Interface is implemented by every storage driver.
	Interface = "jsn.storage.v1"
	// MuxInterface is implemented by storage muxes: every jsn.storage.v1 method plus host, dut,
	// off and status.
	MuxInterface = "jsn.storagemux.v1"
)

// Result is what a successful write reports.
type Result struct {
	Written  int64  // bytes written to the storage (decompressed)
	Uploaded int64  // bytes received (as uploaded or downloaded, compressed)
	SHA256   string // hex SHA-256 of the received bytes
	Format   Format // compression found by magic number
	Cached   bool   // the received bytes are in the exporter's image cache
	// Note, when set, says something the client should know, e.g. that this flash replaced the
	// incomplete content an interrupted flash had left.
	Note string
}

// Map returns the result as it travels on the wire.
func (r Result) Map() map[string]any {
	m := map[string]any{"written": r.Written, "uploaded": r.Uploaded, "sha256": r.SHA256,
		"format": string(r.Format), "cached": r.Cached}
	if r.Note != "" {
		m["note"] = r.Note
	}
	return m
}

// ProgressFunc receives the bytes done so far and the total (-1 if unknown).
type ProgressFunc func(done, total int64)

// Upload describes an image a client uploads to Device.Write.
type Upload struct {
	SHA256 string // expected SHA-256 of the uploaded bytes, lower-case hex; "" = not checked
	Size   int64  // bytes the client will upload; -1 = unknown
	Cache  bool   // also keep the upload in the image cache
}

// Device is what a storage driver implements; Methods turns it into the jsn.storage.v1 method
// table. One operation runs at a time: the others fail FAILED_PRECONDITION ("storage busy").
// Writes report success only once the data is on stable storage.
type Device interface {
	// Write flashes the image read from r, raw or compressed (gzip, xz, zstd, bzip2: found by
	// magic number).
	Write(ctx context.Context, r io.Reader, u Upload) (Result, error)
	// WriteURL downloads the image at u (http or https) and flashes it; with sha256 the download
	// is verified, and skipped when the image cache holds that image. progress reports the
	// transfer, paced for a client to watch, and once more with the final count.
	WriteURL(ctx context.Context, u *url.URL, sha256 string, progress ProgressFunc) (Result, error)
	// WriteCached flashes the cached image with this SHA-256, reporting progress like WriteURL.
	WriteCached(ctx context.Context, sha256 string, progress ProgressFunc) (Result, error)
	// HasImage reports whether the image cache holds the image with this SHA-256, and keeps it
	// through eviction for a while: the client is about to use it.
	HasImage(ctx context.Context, sha256 string) (bool, error)
	// Read writes the storage's whole content to w.
	Read(ctx context.Context, w io.Writer) error
	// Size returns the storage's size in bytes.
	Size(ctx context.Context) (int64, error)
}

// Stater is a Device that can tell whether its content is what the last flash wrote: a block
// device written in place holds part of an image after a flash that did not finish (the exporter
// stopped, the upload broke). Methods adds state() for it.
type Stater interface {
	// State returns "complete", or "incomplete: " and what happened.
	State(ctx context.Context) (string, error)
}

// Side is where a mux connects its storage.
type Side string

// Mux sides. Off is reported only by muxes that can disconnect the card from both.
const (
	Host Side = "host"
	DUT  Side = "dut"
	Off  Side = "off"
)

// Mux is what a storage mux implements besides the Device of its storage; MuxMethods turns it
// into the jsn.storagemux.v1 switch methods. Host, DUT and Off fail FAILED_PRECONDITION while a
// transfer runs.
type Mux interface {
	Host(ctx context.Context) error // connect the storage to the exporter
	DUT(ctx context.Context) error  // connect the storage to the device under test
	Off(ctx context.Context) error  // disconnect the storage from the DUT
	Status(ctx context.Context) (Side, error)
}

// Options tune the method tables built by Methods and MuxMethods. There is nothing to tune yet;
// the parameter keeps the shape every capability package shares, so adding a knob changes no
// caller.
type Options struct{}

// Methods returns the jsn.storage.v1 method table served by d:
//
//	write([sha256 string], [size int], [cache bool]) <=> bytes
//	                                 upload an image; the reply is one msgpack Result map
//	write_url(url string, [sha256 string]) => progress…, result
//	write_cached(sha256 string) => progress…, result
//	has_image(sha256 string) -> bool
//	read() <=> bytes                 the storage's content
//	size() -> int                    bytes
//	state() -> string                "complete" or "incomplete: …" (a Stater only)
func Methods(d Device, o Options) []driver.Method {
	ms := []driver.Method{
		{
			Name: "write", Kind: driver.KindByteStream,
			Doc: "upload an image (raw, gzip, xz, zstd or bzip2, by magic number) and write it; " +
				"after the client half-closes, the reply is one msgpack map {written, uploaded, sha256, format, cached}",
			Args: []driver.Arg{
				{Name: "sha256", Type: driver.TypeString, Optional: true, Doc: "expected SHA-256 of the uploaded (compressed) bytes"},
				{Name: "size", Type: driver.TypeInt, Optional: true, Doc: "number of bytes the client will upload"},
				{Name: "cache", Type: driver.TypeBool, Optional: true, Doc: "also keep the upload in the exporter's image cache"},
			},
			Bytes: func(ctx context.Context, args driver.Args, s driver.Stream) error {
				u := Upload{Size: -1, Cache: args.Bool(2)}
				if args.Has(0) && args.String(0) != "" {
					sha, err := normSHA("write", args.String(0))
					if err != nil {
						return err
					}
					u.SHA256 = sha
				}
				if args.Has(1) {
					if u.Size = args.Int(1); u.Size < 0 {
						return wire.Errorf(wire.InvalidArgument, "write: size must not be negative, got %d", u.Size)
					}
				}
				res, err := d.Write(ctx, s, u)
				if err != nil {
					return err
				}
				b, err := wire.Marshal(res.Map())
				if err != nil {
					return wire.Errorf(wire.Internal, "write: %v", err)
				}
				_, err = s.Write(b)
				return err
			},
		},
		{
			Name: "write_url", Kind: driver.KindServerStream, Returns: driver.TypeAny,
			Doc: "download an image over HTTP(S) and write it, using the image cache when sha256 is given; " +
				"items {bytes, total} then {written, uploaded, sha256, format, cached}",
			Args: []driver.Arg{
				{Name: "url", Type: driver.TypeString, Doc: "http:// or https:// URL of the image"},
				{Name: "sha256", Type: driver.TypeString, Optional: true, Doc: "expected SHA-256 of the downloaded bytes"},
			},
			Stream: func(ctx context.Context, args driver.Args, send func(any) error) error {
				raw := args.String(0)
				u, err := url.Parse(raw)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return wire.Errorf(wire.InvalidArgument, "write_url: %q is not an http:// or https:// URL", raw)
				}
				var want string
				if args.Has(1) && args.String(1) != "" {
					if want, err = normSHA("write_url", args.String(1)); err != nil {
						return err
					}
				}
				return serverWrite(ctx, send, func(ctx context.Context, progress ProgressFunc) (Result, error) {
					return d.WriteURL(ctx, u, want, progress)
				})
			},
		},
		{
			Name: "write_cached", Kind: driver.KindServerStream, Returns: driver.TypeAny,
			Doc: "write an image from the exporter's cache; items {bytes, total} then {written, uploaded, sha256, format, cached}",
			Args: []driver.Arg{
				{Name: "sha256", Type: driver.TypeString, Doc: "SHA-256 of the cached image"},
			},
			Stream: func(ctx context.Context, args driver.Args, send func(any) error) error {
				sha, err := normSHA("write_cached", args.String(0))
				if err != nil {
					return err
				}
				return serverWrite(ctx, send, func(ctx context.Context, progress ProgressFunc) (Result, error) {
					return d.WriteCached(ctx, sha, progress)
				})
			},
		},
		{
			Name: "has_image", Kind: driver.KindCall, Returns: driver.TypeBool,
			Doc:  "whether the exporter's cache holds the image with this SHA-256",
			Args: []driver.Arg{{Name: "sha256", Type: driver.TypeString, Doc: "SHA-256 of the image as uploaded"}},
			Call: func(ctx context.Context, args driver.Args) (any, error) {
				sha, err := normSHA("has_image", args.String(0))
				if err != nil {
					return nil, err
				}
				return d.HasImage(ctx, sha)
			},
		},
		{
			Name: "read", Kind: driver.KindByteStream,
			Doc:   "stream the storage's whole content to the client",
			Bytes: func(ctx context.Context, _ driver.Args, s driver.Stream) error { return d.Read(ctx, s) },
		},
		{
			Name: "size", Kind: driver.KindCall, Returns: driver.TypeInt,
			Doc:  "size of the storage in bytes",
			Call: func(ctx context.Context, _ driver.Args) (any, error) { return d.Size(ctx) },
		},
	}
	if st, ok := d.(Stater); ok {
		ms = append(ms, driver.Method{
			Name: "state", Kind: driver.KindCall, Returns: driver.TypeString,
			Doc:  `"complete", or "incomplete: …" when a flash written in place did not finish`,
			Call: func(ctx context.Context, _ driver.Args) (any, error) { return st.State(ctx) },
		})
	}
	return ms
}

// serverWrite runs write, sending its progress as {bytes, total} items and then its result. A
// failed send (the client is gone) ends the write and is what serverWrite returns.
func serverWrite(ctx context.Context, send func(any) error, write func(ctx context.Context, progress ProgressFunc) (Result, error)) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	progress := func(n, total int64) {
		if err := send(map[string]any{"bytes": n, "total": total}); err != nil {
			cancel(err)
		}
	}
	res, err := write(ctx, progress)
	if err != nil {
		if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
			return c // the progress send failed: the client is gone
		}
		return err
	}
	return send(res.Map())
}

// MuxMethods returns the switch methods of jsn.storagemux.v1 served by m; a mux serves them
// followed by the Methods of its storage:
//
//	host(), dut(), off()       switch the storage; FAILED_PRECONDITION while a transfer runs
//	status() -> string         "host", "dut" or "off"
func MuxMethods(m Mux, o Options) []driver.Method {
	sw := func(name, doc string, fn func(context.Context) error) driver.Method {
		return driver.Method{Name: name, Doc: doc, Kind: driver.KindCall,
			Call: func(ctx context.Context, _ driver.Args) (any, error) { return nil, fn(ctx) }}
	}
	return []driver.Method{
		sw("host", "connect the storage to the exporter (needed to write or read it)", m.Host),
		sw("dut", "connect the storage to the device under test", m.DUT),
		sw("off", "disconnect the storage from the DUT", m.Off),
		{
			Name: "status", Kind: driver.KindCall, Returns: driver.TypeString,
			Doc: `where the storage is connected: "host", "dut" or "off"`,
			Call: func(ctx context.Context, _ driver.Args) (any, error) {
				s, err := m.Status(ctx)
				return string(s), err
			},
		},
	}
}
