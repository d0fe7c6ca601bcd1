package serial

import (
	"context"
	"fmt"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

// Interface is the name of the interface serial drivers implement.
const Interface = "jsn.serial.v1"

// Defaults and limits of the config.
const (
	DefaultBaudrate  = 115200
	MaxBaudrate      = 4_000_000
	DefaultBuffer    = 1 << 20
	MaxBuffer        = 64 << 20
	MinBuffer        = 4 << 10
	DefaultReconnect = time.Second
	DefaultBreak     = 250 * time.Millisecond
	MaxBreak         = 10 * time.Second
)

// MaxLog is the most `log` returns: the newest bytes of the ring buffer that fit in one bus
// message (the default maximum payload is 1 MiB).
const MaxLog = 896 << 10

// MaxBacklog is how many bytes of output a console stream may fall behind (beyond the bus
// stream's own window) before it is dropped rather than let it stall the port.
const MaxBacklog = 1 << 20

// Status is what info reports: the state of a serial driver.
type Status struct {
	URL         string `msgpack:"url"`
	Baudrate    int    `msgpack:"baudrate"`
	State       string `msgpack:"state"`  // "open" or "absent"
	Reason      string `msgpack:"reason"` // why absent; "" when open
	Buffered    int    `msgpack:"buffered"`
	Received    int64  `msgpack:"received"` // bytes ever received
	Connections int    `msgpack:"connections"`
}

// Map returns the status as it travels on the wire: a map of the msgpack names above, integers
// as int64.
func (s Status) Map() map[string]any {
	return map[string]any{
		"url": s.URL, "baudrate": int64(s.Baudrate), "state": s.State, "reason": s.Reason,
		"buffered": int64(s.Buffered), "received": s.Received, "connections": int64(s.Connections),
	}
}

// Device is what a serial driver implements; Methods turns it into the jsn.serial.v1 method
// table. Errors carry wire codes: UNAVAILABLE while the device is absent, UNIMPLEMENTED for what
// the device cannot do (modem lines of a socket://).
type Device interface {
	// Connect serves one console stream s: device output to it, its bytes to the device, until
	// either side ends.
	Connect(ctx context.Context, s driver.Stream) error
	// SetBaudrate changes the baud rate until the next reset; INVALID_ARGUMENT outside
	// 1..MaxBaudrate.
	SetBaudrate(ctx context.Context, rate int64) error
	// SetDTR and SetRTS set the modem control lines.
	SetDTR(ctx context.Context, on bool) error
	SetRTS(ctx context.Context, on bool) error
	// SendBreak holds the line in break for d (Methods passes 0 < d ≤ MaxBreak).
	SendBreak(ctx context.Context, d time.Duration) error
	// Log returns the recorded output newer than since (everything for the zero time), at most
	// the newest MaxLog bytes.
	Log(since time.Time) []byte
	// Info reports the driver's state.
	Info() Status
}

// Options tune the method table built by Methods. There is nothing to tune yet; the parameter
// keeps the shape every capability package shares, so adding a knob changes no caller.
type Options struct{}

// Methods returns the jsn.serial.v1 method table served by p:
//
//	connect() <=> bytes              the console: device output to every stream, input to the device
//	set_baudrate(rate int)           until the next reset; INVALID_ARGUMENT outside 1..4000000
//	set_dtr(on bool), set_rts(on bool)
//	send_break([duration])           default 250ms, at most 10s; UNIMPLEMENTED for socket://
//	log([since duration]) -> bytes   recorded output newer than since (all of it when omitted)
//	info() -> any                    url, baudrate, state, reason, buffered, received, connections
func Methods(p Device, o Options) []driver.Method {
	none := func(err error) (any, error) { return nil, err }
	return []driver.Method{
		{
			Name: "connect", Doc: "open the console: output of the device, input to it", Kind: driver.KindByteStream,
			Bytes: func(ctx context.Context, _ driver.Args, s driver.Stream) error { return p.Connect(ctx, s) },
		},
		{
			Name: "set_baudrate", Doc: fmt.Sprintf("set the baud rate (1..%d) until the next reset", MaxBaudrate), Kind: driver.KindCall,
			Args: []driver.Arg{{Name: "rate", Type: driver.TypeInt, Doc: "bits per second"}},
			Call: func(ctx context.Context, a driver.Args) (any, error) { return none(p.SetBaudrate(ctx, a.Int(0))) },
		},
		{
			Name: "set_dtr", Doc: "set the DTR line", Kind: driver.KindCall,
			Args: []driver.Arg{{Name: "on", Type: driver.TypeBool}},
			Call: func(ctx context.Context, a driver.Args) (any, error) { return none(p.SetDTR(ctx, a.Bool(0))) },
		},
		{
			Name: "set_rts", Doc: "set the RTS line", Kind: driver.KindCall,
			Args: []driver.Arg{{Name: "on", Type: driver.TypeBool}},
			Call: func(ctx context.Context, a driver.Args) (any, error) { return none(p.SetRTS(ctx, a.Bool(0))) },
		},
		{
			Name: "send_break", Doc: "hold the line in break (default 250ms, at most 10s)", Kind: driver.KindCall,
			Args: []driver.Arg{{Name: "duration", Type: driver.TypeDuration, Optional: true}},
			Call: func(ctx context.Context, a driver.Args) (any, error) {
				d := DefaultBreak
				if a.Has(0) {
					d = a.Duration(0)
				}
				if d <= 0 || d > MaxBreak {
					return nil, wire.Errorf(wire.InvalidArgument, "send_break: duration must be more than 0 and at most %s, got %s", MaxBreak, d)
				}
				return none(p.SendBreak(ctx, d))
			},
		},
		{
			Name: "log", Doc: "recorded output newer than since (all of it when omitted), at most the newest 896 KiB",
			Kind: driver.KindCall, Returns: driver.TypeBytes,
			Args: []driver.Arg{{Name: "since", Type: driver.TypeDuration, Optional: true}},
			Call: func(ctx context.Context, a driver.Args) (any, error) {
				var since time.Time
				if a.Has(0) {
					d := a.Duration(0)
					if d < 0 {
						return nil, wire.Errorf(wire.InvalidArgument, "log: since must not be negative, got %s", d)
					}
					if d > 0 {
						since = time.Now().Add(-d)
					}
				}
				return p.Log(since), nil
			},
		},
		{
			Name: "info", Doc: "url, baudrate, state (open|absent), reason, buffered, received, connections",
			Kind: driver.KindCall, Returns: driver.TypeAny,
			Call: func(ctx context.Context, _ driver.Args) (any, error) { return p.Info().Map(), nil },
		},
	}
}
