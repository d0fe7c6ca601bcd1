package can

import (
	"context"
	"fmt"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

// Interface is the name of the interface of raw CAN bus drivers.
const Interface = "jsn.can.v1"

// IsoTPInterface is the name of the interface of ISO-TP (ISO 15765-2) drivers.
const IsoTPInterface = "jsn.isotp.v1"

// Receiver delivers received frames until closed.
type Receiver interface {
	// Recv returns the next frame; it fails when ctx ends or the receiver is closed.
	Recv(ctx context.Context) (Frame, error)
	Close() error
}

// Device is what a raw CAN bus driver implements; Methods turns it into the jsn.can.v1 method
// table.
type Device interface {
	// Send transmits one frame.
	Send(ctx context.Context, f Frame) error
	// Listen starts receiving the frames on the bus that pass filters (none: all), including the
	// ones Send transmits.
	Listen(filters []Filter) (Receiver, error)
	// Channel names the bus (the interface name, "vcan0"), for candump-like output.
	Channel() string
}

// Options tune the method table built by Methods. There is nothing to tune yet.
type Options struct{}

// MaxWait bounds recv's timeout.
const MaxWait = 24 * time.Hour

// Methods returns the jsn.can.v1 method table served by d:
//
//	send(frame)                                    transmit {id, data, ext, rtr, fd, brs, esi, len}
//	dump([filters string], [count int]) => frame…  received frames, candump's filter syntax
//	recv([timeout duration], [filters string]) -> frame   the next received frame
//	channel() -> string                            the interface name
func Methods(d Device, o Options) []driver.Method {
	filtersArg := driver.Arg{Name: "filters", Type: driver.TypeString, Optional: true, Doc: `candump filters, comma-separated: "123:7FF", "123~7FF", 8 hex digits for 29-bit ids`}
	return []driver.Method{
		{
			Name: "send", Doc: "transmit one frame {id, data, ext, rtr, fd, brs, esi, len}", Kind: driver.KindCall,
			Args: []driver.Arg{{Name: "frame", Type: driver.TypeAny, Doc: "the frame as a map"}},
			Call: func(ctx context.Context, a driver.Args) (any, error) {
				f, err := ParseFrameMap(a.Any(0))
				if err == nil {
					err = f.Validate()
				}
				if err != nil {
					return nil, wire.Errorf(wire.InvalidArgument, "send: %v", err)
				}
				return nil, d.Send(ctx, f)
			},
		},
		{
			Name: "dump", Doc: "stream the frames received on the bus", Kind: driver.KindServerStream, Returns: driver.TypeAny,
			Args: []driver.Arg{filtersArg, {Name: "count", Type: driver.TypeInt, Optional: true, Doc: "stop after this many frames; 0 or absent: until the client stops"}},
			Stream: func(ctx context.Context, a driver.Args, send func(any) error) error {
				fs, err := ParseFilters(a.String(0))
				if err != nil {
					return wire.Errorf(wire.InvalidArgument, "dump: %v", err)
				}
				count := a.Int(1)
				if count < 0 {
					return wire.Errorf(wire.InvalidArgument, "dump: count must not be negative, got %d", count)
				}
				r, err := d.Listen(fs)
				if err != nil {
					return fmt.Errorf("dump: %w", err)
				}
				defer r.Close()
				for i := int64(0); count == 0 || i < count; i++ {
					f, err := r.Recv(ctx)
					if err != nil {
						if ctx.Err() != nil {
							return nil
						}
						return fmt.Errorf("dump: %w", err)
					}
					if err := send(f.Map()); err != nil {
						return err
					}
				}
				return nil
			},
		},
		{
			Name: "recv", Doc: "wait for the next received frame and return it", Kind: driver.KindCall, Returns: driver.TypeAny,
			Args: []driver.Arg{{Name: "timeout", Type: driver.TypeDuration, Optional: true, Doc: "give up after this long (default: until the caller stops)"}, filtersArg},
			Call: func(ctx context.Context, a driver.Args) (any, error) {
				timeout := a.Duration(0)
				if timeout < 0 || timeout > MaxWait {
					return nil, wire.Errorf(wire.InvalidArgument, "recv: timeout must be in [0, %s], got %s", MaxWait, timeout)
				}
				fs, err := ParseFilters(a.String(1))
				if err != nil {
					return nil, wire.Errorf(wire.InvalidArgument, "recv: %v", err)
				}
				r, err := d.Listen(fs)
				if err != nil {
					return nil, fmt.Errorf("recv: %w", err)
				}
				defer r.Close()
				if timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, timeout)
					defer cancel()
				}
				f, err := r.Recv(ctx)
				if err != nil {
					if ctx.Err() == context.DeadlineExceeded {
						return nil, wire.Errorf(wire.DeadlineExceeded, "recv: no frame within %s", timeout)
					}
					return nil, fmt.Errorf("recv: %w", err)
				}
				return f.Map(), nil
			},
		},
		{
			Name: "channel", Doc: "the bus's interface name", Kind: driver.KindCall, Returns: driver.TypeString,
			Call: func(ctx context.Context, _ driver.Args) (any, error) { return d.Channel(), nil },
		},
	}
}

// IsoTP is what an ISO-TP driver implements: whole messages (up to 4095 bytes, or more with CAN
// FD) segmented and reassembled by the transport.
type IsoTP interface {
	SendMessage(ctx context.Context, data []byte) error
	// RecvMessage returns the next message; it fails when ctx ends.
	RecvMessage(ctx context.Context) ([]byte, error)
}

// IsoTPMethods returns the jsn.isotp.v1 method table served by d:
//
//	send(data bytes)                    send one message
//	recv([timeout duration]) -> bytes   the next message
//	messages([count int]) => bytes…     received messages as they come
func IsoTPMethods(d IsoTP, o Options) []driver.Method {
	return []driver.Method{
		{
			Name: "send", Doc: "send one message", Kind: driver.KindCall,
			Args: []driver.Arg{{Name: "data", Type: driver.TypeBytes}},
			Call: func(ctx context.Context, a driver.Args) (any, error) {
				if len(a.Bytes(0)) == 0 {
					return nil, wire.Errorf(wire.InvalidArgument, "send: an empty message")
				}
				return nil, d.SendMessage(ctx, a.Bytes(0))
			},
		},
		{
			Name: "recv", Doc: "wait for the next message and return it", Kind: driver.KindCall, Returns: driver.TypeBytes,
			Args: []driver.Arg{{Name: "timeout", Type: driver.TypeDuration, Optional: true, Doc: "give up after this long (default: until the caller stops)"}},
			Call: func(ctx context.Context, a driver.Args) (any, error) {
				timeout := a.Duration(0)
				if timeout < 0 || timeout > MaxWait {
					return nil, wire.Errorf(wire.InvalidArgument, "recv: timeout must be in [0, %s], got %s", MaxWait, timeout)
				}
				if timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, timeout)
					defer cancel()
				}
				b, err := d.RecvMessage(ctx)
				if err != nil && ctx.Err() == context.DeadlineExceeded {
					return nil, wire.Errorf(wire.DeadlineExceeded, "recv: no message within %s", timeout)
				}
				return b, err
			},
		},
		{
			Name: "messages", Doc: "stream received messages as they come", Kind: driver.KindServerStream, Returns: driver.TypeBytes,
			Args: []driver.Arg{{Name: "count", Type: driver.TypeInt, Optional: true, Doc: "stop after this many; 0 or absent: until the client stops"}},
			Stream: func(ctx context.Context, a driver.Args, send func(any) error) error {
				count := a.Int(0)
				if count < 0 {
					return wire.Errorf(wire.InvalidArgument, "messages: count must not be negative, got %d", count)
				}
				for i := int64(0); count == 0 || i < count; i++ {
					b, err := d.RecvMessage(ctx)
					if err != nil {
						if ctx.Err() != nil {
							return nil
						}
						return err
					}
					if err := send(b); err != nil {
						return err
					}
				}
				return nil
			},
		},
	}
}
