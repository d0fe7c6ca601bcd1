package power

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

// Interface is the name of the interface every power driver implements.
const Interface = "jsn.power.v1"

// State is a power output's state.
type State string

const (
	On  State = "on"
	Off State = "off"
)

// Volts is an electric potential in volts.
type Volts float64

func (v Volts) String() string { return fmt.Sprintf("%.2f V", float64(v)) }

// Amperes is an electric current in amperes.
type Amperes float64

func (a Amperes) String() string { return fmt.Sprintf("%.2f A", float64(a)) }

// Watts is a power in watts.
type Watts float64

func (w Watts) String() string { return fmt.Sprintf("%.2f W", float64(w)) }

// Reading is one measurement of a power output.
type Reading struct {
	Voltage Volts
	Current Amperes
}

// Power returns the power the reading represents.
func (r Reading) Power() Watts { return Watts(float64(r.Voltage) * float64(r.Current)) }

func (r Reading) String() string { return r.Voltage.String() + "  " + r.Current.String() }

// Map returns the reading as it travels on the wire (driver.TypeReading):
// {"voltage": float64 volts, "current": float64 amperes}.
func (r Reading) Map() map[string]any {
	return map[string]any{"voltage": float64(r.Voltage), "current": float64(r.Current)}
}

// ParseReading converts a decoded wire item (driver.TypeReading) back into a Reading. It accepts
// any numeric msgpack kind for both fields.
func ParseReading(item any) (Reading, error) {
	m, ok := item.(map[string]any)
	if !ok {
		return Reading{}, fmt.Errorf("parse reading: want a map, got %T", item)
	}
	v, err := number(m, "voltage")
	if err != nil {
		return Reading{}, err
	}
	c, err := number(m, "current")
	if err != nil {
		return Reading{}, err
	}
	return Reading{Voltage: Volts(v), Current: Amperes(c)}, nil
}

func number(m map[string]any, key string) (float64, error) {
	raw, ok := m[key]
	if !ok {
		return 0, fmt.Errorf("parse reading: missing %q", key)
	}
	rv := reflect.ValueOf(raw)
	var f float64
	switch rv.Kind() {
	case reflect.Float32, reflect.Float64:
		f = rv.Float()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		f = float64(rv.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		f = float64(rv.Uint())
	default:
		return 0, fmt.Errorf("parse reading: %q: want a number, got %T", key, raw)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("parse reading: %q: not a finite number", key)
	}
	return f, nil
}

// Device is what a power driver implements; Methods turns it into the jsn.power.v1 method table.
type Device interface {
	On(ctx context.Context) error
	Off(ctx context.Context) error
	Status(ctx context.Context) (State, error)
	// Read takes one measurement.
	Read(ctx context.Context) (Reading, error)
}

// Cycler is implemented by devices that can power-cycle natively (many PDUs can). Without it,
// cycle is Off, a wait, then On.
type Cycler interface {
	Cycle(ctx context.Context, wait time.Duration) error
}

// Default method options.
const (
	DefaultCycleWait    = time.Second
	DefaultReadInterval = time.Second
)

// Options tune the method table built by Methods. Zero fields take the defaults.
type Options struct {
	CycleWait    time.Duration // off time of cycle when the caller gives no wait; DefaultCycleWait
	ReadInterval time.Duration // time between two readings of read; DefaultReadInterval
}

// Methods returns the jsn.power.v1 method table served by p:
//
//	on()                      switch on
//	off()                     switch off
//	cycle([wait duration])    off, wait (default o.CycleWait), on
//	status() -> string        "on" or "off"
//	read([count int]) => reading…  one reading every o.ReadInterval; count readings, or until the
//	                          client stops when count is 0 or absent
func Methods(p Device, o Options) []driver.Method {
	if o.CycleWait <= 0 {
		o.CycleWait = DefaultCycleWait
	}
	if o.ReadInterval <= 0 {
		o.ReadInterval = DefaultReadInterval
	}
	return []driver.Method{
		{
			Name: "on", Doc: "switch the power on", Kind: driver.KindCall,
			Call: func(ctx context.Context, _ driver.Args) (any, error) { return nil, p.On(ctx) },
		},
		{
			Name: "off", Doc: "switch the power off", Kind: driver.KindCall,
			Call: func(ctx context.Context, _ driver.Args) (any, error) { return nil, p.Off(ctx) },
		},
		{
			Name: "cycle", Doc: "switch off, wait, switch on", Kind: driver.KindCall,
			Args: []driver.Arg{{Name: "wait", Type: driver.TypeDuration, Optional: true,
				Doc: "how long to stay off (default " + o.CycleWait.String() + ")"}},
			Call: func(ctx context.Context, args driver.Args) (any, error) {
				wait := o.CycleWait
				if args.Has(0) {
					wait = args.Duration(0)
				}
				if wait < 0 {
					return nil, wire.Errorf(wire.InvalidArgument, "cycle: wait must not be negative, got %s", wait)
				}
				return nil, cycle(ctx, p, wait)
			},
		},
		{
			Name: "status", Doc: `the power state, "on" or "off"`, Kind: driver.KindCall,
			Returns: driver.TypeString,
			Call: func(ctx context.Context, _ driver.Args) (any, error) {
				s, err := p.Status(ctx)
				return string(s), err
			},
		},
		{
			Name: "read", Doc: "stream voltage and current readings every " + o.ReadInterval.String(),
			Kind: driver.KindServerStream, Returns: driver.TypeReading,
			Args: []driver.Arg{{Name: "count", Type: driver.TypeInt, Optional: true,
				Doc: "number of readings; 0 or absent: until the client stops"}},
			Stream: func(ctx context.Context, args driver.Args, send func(any) error) error {
				count := args.Int(0)
				if count < 0 {
					return wire.Errorf(wire.InvalidArgument, "read: count must not be negative, got %d", count)
				}
				return stream(ctx, p, count, o.ReadInterval, send)
			},
		},
	}
}

func cycle(ctx context.Context, p Device, wait time.Duration) error {
	if c, ok := p.(Cycler); ok {
		return c.Cycle(ctx, wait)
	}
	if err := p.Off(ctx); err != nil {
		return fmt.Errorf("cycle: %w", err)
	}
	if err := sleep(ctx, wait); err != nil {
		return fmt.Errorf("cycle: %w", err)
	}
	if err := p.On(ctx); err != nil {
		return fmt.Errorf("cycle: %w", err)
	}
	return nil
}

func stream(ctx context.Context, p Device, count int64, every time.Duration, send func(any) error) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for i := int64(0); count == 0 || i < count; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
			}
		}
		r, err := p.Read(ctx)
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if err := send(r.Map()); err != nil {
			return err
		}
	}
	return nil
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
