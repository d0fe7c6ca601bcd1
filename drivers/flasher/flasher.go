package flasher

import (
	"context"
	"fmt"
	"io"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/fileserver"
)

// Interface is the name of the interface in describe.
const Interface = "jsn.flasher.v1"

// Progress is one step of a flash: Phase is "console", "setup", "load", "verify", "write" or
// "done"; Bytes/Total count the image's transfer to the board during "load"; Command is the
// U-Boot command being run.
type Progress struct {
	Phase   string
	Bytes   int64
	Total   int64
	Command string
}

// Map is the wire form {phase, bytes, total, command}.
func (p Progress) Map() map[string]any {
	return map[string]any{"phase": p.Phase, "bytes": p.Bytes, "total": p.Total, "command": p.Command}
}

// Request says what to flash.
type Request struct {
	Name   string // file on the file server child (see Upload)
	Target string // "" = the driver's default_target
	Reboot bool   // power-cycle into U-Boot first (else: interrupt whatever runs)
}

// Device is what a flasher implements.
type Device interface {
	// Upload stores the image on the flasher's file server.
	Upload(ctx context.Context, name string, r io.Reader) (fileserver.FileInfo, error)
	// Flash writes the uploaded image to the target, reporting progress.
	Flash(ctx context.Context, req Request, progress func(Progress)) error
	// HasPower reports whether the flasher can reboot the board (a power child).
	HasPower() bool
}

// Options tune the method table; none yet.
type Options struct{}

// Methods is the method table of jsn.flasher.v1:
//
//	upload(name string) <=> bytes     the image; reply one msgpack map {name, size, modified}
//	flash(name string, [target string], [reboot bool]) => {phase, bytes, total, command}…
func Methods(d Device, o Options) []driver.Method {
	return []driver.Method{
		{
			Name: "upload", Kind: driver.KindByteStream,
			Doc:  "upload an image to the flasher's file server; after the client half-closes, the reply is one msgpack map {name, size, modified}",
			Args: []driver.Arg{{Name: "name", Type: driver.TypeString, Doc: "file name on the server"}},
			Bytes: func(ctx context.Context, args driver.Args, s driver.Stream) error {
				fi, err := d.Upload(ctx, args.String(0), s)
				if err != nil {
					return err
				}
				b, err := wire.Marshal(fi.Map())
				if err != nil {
					return wire.Errorf(wire.Internal, "upload: %v", err)
				}
				_, err = s.Write(b)
				return err
			},
		},
		{
			Name: "flash", Kind: driver.KindServerStream, Returns: driver.TypeAny,
			Doc: "write an uploaded image through U-Boot; items {phase, bytes, total, command} until phase \"done\"",
			Args: []driver.Arg{
				{Name: "name", Type: driver.TypeString, Doc: "the uploaded image"},
				{Name: "target", Type: driver.TypeString, Optional: true, Doc: "\"mmc 0\", \"usb 0\", \"virtio 0\", a name from targets:, or the default_target"},
				{Name: "reboot", Type: driver.TypeBool, Optional: true, Doc: "power-cycle into U-Boot first (default: when there is a power child)"},
			},
			Stream: func(ctx context.Context, args driver.Args, send func(any) error) error {
				req := Request{Name: args.String(0), Target: args.String(1), Reboot: d.HasPower()}
				if args.Has(2) {
					req.Reboot = args.Bool(2)
				}
				if req.Reboot && !d.HasPower() {
					return wire.Errorf(wire.FailedPrecondition, "flash: reboot asked, but the flasher has no power child")
				}
				ctx, cancel := context.WithCancelCause(ctx)
				defer cancel(nil)
				err := d.Flash(ctx, req, func(p Progress) {
					if err := send(p.Map()); err != nil {
						cancel(err)
					}
				})
				if err != nil && ctx.Err() != nil {
					return fmt.Errorf("flash: %w", context.Cause(ctx))
				}
				return err
			},
		},
	}
}
