package gpio

import (
	"context"
	"fmt"
	"strings"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

// Interface is the name of the interface every GPIO line driver implements.
const Interface = "jsn.gpio.v1"

// Edge is a change of a line's logical value: rising (inactive to active) or falling.
type Edge string

const (
	Rising  Edge = "rising"
	Falling Edge = "falling"
	Both    Edge = "both" // a watch filter: either edge
)

// ParseEdge parses a watch filter: "rising", "falling", "both" or "" (both).
func ParseEdge(s string) (Edge, error) {
	switch Edge(strings.ToLower(strings.TrimSpace(s))) {
	case Rising:
		return Rising, nil
	case Falling:
		return Falling, nil
	case Both, "":
		return Both, nil
	}
	return "", fmt.Errorf(`edge: want "rising", "falling" or "both", got %q`, s)
}

// Matches reports whether an event of edge e passes the filter f.
func (f Edge) Matches(e Edge) bool { return f == Both || f == "" || f == e }

// Event is one edge seen on an input line.
type Event struct {
	Edge   Edge
	Active bool          // the logical value after the edge
	Time   time.Duration // the kernel's timestamp (CLOCK_MONOTONIC since boot)
	Seqno  uint32        // the line's event sequence number (gaps mean the kernel dropped events)
}

// Map returns the event as it travels on the wire: {edge, active, time_ns, seqno}.
func (e Event) Map() map[string]any {
	return map[string]any{"edge": string(e.Edge), "active": e.Active, "time_ns": int64(e.Time), "seqno": int64(e.Seqno)}
}

// ParseEvent converts a decoded wire item back into an Event.
func ParseEvent(item any) (Event, error) {
	m, ok := item.(map[string]any)
	if !ok {
		return Event{}, fmt.Errorf("parse event: want a map, got %T", item)
	}
	var ev Event
	s, ok := m["edge"].(string)
	if !ok || (Edge(s) != Rising && Edge(s) != Falling) {
		return Event{}, fmt.Errorf("parse event: edge: want \"rising\" or \"falling\", got %v", m["edge"])
	}
	ev.Edge = Edge(s)
	if ev.Active, ok = m["active"].(bool); !ok {
		return Event{}, fmt.Errorf("parse event: active: want a bool, got %T", m["active"])
	}
	t, err := intField(m, "time_ns")
	if err != nil {
		return Event{}, err
	}
	n, err := intField(m, "seqno")
	if err != nil {
		return Event{}, err
	}
	if n < 0 || n > 1<<32-1 {
		return Event{}, fmt.Errorf("parse event: seqno %d out of range", n)
	}
	ev.Time, ev.Seqno = time.Duration(t), uint32(n)
	return ev, nil
}

func intField(m map[string]any, key string) (int64, error) {
	switch v := m[key].(type) {
	case int64:
		return v, nil
	case int8:
		return int64(v), nil
	case int16:
		return int64(v), nil
	case int32:
		return int64(v), nil
	case int:
		return int64(v), nil
	case uint8:
		return int64(v), nil
	case uint16:
		return int64(v), nil
	case uint32:
		return int64(v), nil
	case uint64:
		if v > 1<<63-1 {
			return 0, fmt.Errorf("parse event: %s %d out of range", key, v)
		}
		return int64(v), nil
	}
	return 0, fmt.Errorf("parse event: %s: want an integer, got %T", key, m[key])
}

// ParseValue parses a logical line value as people write it: 1/0, active/inactive, on/off,
// true/false.
func ParseValue(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "active", "on", "true":
		return true, nil
	case "0", "inactive", "off", "false":
		return false, nil
	}
	return false, fmt.Errorf("value: want 1/0, active/inactive, on/off or true/false, got %q", s)
}

// Device is what every GPIO line driver implements: the line's logical value (active_low
// already applied).
type Device interface {
	Get(ctx context.Context) (bool, error)
}

// Setter is implemented by output lines.
type Setter interface {
	Set(ctx context.Context, active bool) error
}

// Watcher is implemented by input lines that report edges. Subscribe starts delivering the
// edges that pass filter to the returned channel until cancel is called; events that arrived
// before are not replayed. When the subscriber does not keep up, events are dropped (the gap
// shows in Event.Seqno); the channel is closed when the line closes (a lease end resets it).
type Watcher interface {
	Subscribe(filter Edge) (events <-chan Event, cancel func(), err error)
}

// Options tune the method table built by Methods. Zero fields take the defaults.
type Options struct {
	PulseWidth time.Duration // pulse width when the caller gives none; DefaultPulseWidth
}

// DefaultPulseWidth is the width of pulse when neither caller nor config gives one.
const DefaultPulseWidth = 100 * time.Millisecond

// MaxPulse bounds pulse and wait durations, so a typo cannot hold a line for days.
const MaxPulse = time.Hour

// Methods returns the jsn.gpio.v1 method table served by d:
//
//	get() -> bool                       the logical value (true = active)
//	read_pin() -> int                   the same as 1 or 0 (Jumpstarter's name)
//	set(value bool)                     outputs: drive the line active or inactive
//	on() / off()                        outputs: set(true) / set(false) (Jumpstarter's names)
//	pulse([width duration])             outputs: active, wait, inactive
//	watch([edge string]) => event…      inputs: edges as they happen
//	wait_for_edge(edge string, [timeout duration]) -> event   inputs: the next such edge
//	wait_for_active([timeout]) / wait_for_inactive([timeout]) inputs: return once the line is so
func Methods(d Device, o Options) []driver.Method {
	if o.PulseWidth <= 0 {
		o.PulseWidth = DefaultPulseWidth
	}
	ms := []driver.Method{
		{
			Name: "get", Doc: "the line's logical value: true when active", Kind: driver.KindCall, Returns: driver.TypeBool,
			Call: func(ctx context.Context, _ driver.Args) (any, error) { return d.Get(ctx) },
		},
		{
			Name: "read_pin", Doc: "the line's logical value as 1 (active) or 0", Kind: driver.KindCall, Returns: driver.TypeInt,
			Call: func(ctx context.Context, _ driver.Args) (any, error) {
				v, err := d.Get(ctx)
				if v {
					return int64(1), err
				}
				return int64(0), err
			},
		},
	}
	if s, ok := d.(Setter); ok {
		ms = append(ms,
			driver.Method{
				Name: "set", Doc: "drive the line active (true) or inactive (false)", Kind: driver.KindCall,
				Args: []driver.Arg{{Name: "value", Type: driver.TypeBool, Doc: "true: active"}},
				Call: func(ctx context.Context, a driver.Args) (any, error) { return nil, s.Set(ctx, a.Bool(0)) },
			},
			driver.Method{
				Name: "on", Doc: "drive the line active", Kind: driver.KindCall,
				Call: func(ctx context.Context, _ driver.Args) (any, error) { return nil, s.Set(ctx, true) },
			},
			driver.Method{
				Name: "off", Doc: "drive the line inactive", Kind: driver.KindCall,
				Call: func(ctx context.Context, _ driver.Args) (any, error) { return nil, s.Set(ctx, false) },
			},
			driver.Method{
				Name: "pulse", Doc: "drive the line active, wait, then inactive", Kind: driver.KindCall,
				Args: []driver.Arg{{Name: "width", Type: driver.TypeDuration, Optional: true,
					Doc: "how long to stay active (default " + o.PulseWidth.String() + ")"}},
				Call: func(ctx context.Context, a driver.Args) (any, error) {
					w := o.PulseWidth
					if a.Has(0) {
						w = a.Duration(0)
					}
					if w <= 0 || w > MaxPulse {
						return nil, wire.Errorf(wire.InvalidArgument, "pulse: width must be in (0, %s], got %s", MaxPulse, w)
					}
					return nil, pulse(ctx, s, w)
				},
			},
		)
	}
	if w, ok := d.(Watcher); ok {
		timeoutArg := driver.Arg{Name: "timeout", Type: driver.TypeDuration, Optional: true, Doc: "give up after this long (default: wait until the caller stops)"}
		ms = append(ms,
			driver.Method{
				Name: "watch", Doc: "stream the line's edges as they happen", Kind: driver.KindServerStream, Returns: driver.TypeAny,
				Args: []driver.Arg{{Name: "edge", Type: driver.TypeString, Optional: true, Doc: `"rising", "falling" or "both" (default)`}},
				Stream: func(ctx context.Context, a driver.Args, send func(any) error) error {
					f, err := ParseEdge(a.String(0))
					if err != nil {
						return wire.Errorf(wire.InvalidArgument, "watch: %v", err)
					}
					return watch(ctx, w, f, send)
				},
			},
			driver.Method{
				Name: "wait_for_edge", Doc: "wait for the next edge of the given kind and return it", Kind: driver.KindCall, Returns: driver.TypeAny,
				Args: []driver.Arg{{Name: "edge", Type: driver.TypeString, Doc: `"rising", "falling" or "both"`}, timeoutArg},
				Call: func(ctx context.Context, a driver.Args) (any, error) {
					f, err := ParseEdge(a.String(0))
					if err != nil {
						return nil, wire.Errorf(wire.InvalidArgument, "wait_for_edge: %v", err)
					}
					ev, err := waitEdge(ctx, w, f, a.Duration(1))
					if err != nil {
						return nil, err
					}
					return ev.Map(), nil
				},
			},
			driver.Method{
				Name: "wait_for_active", Doc: "return once the line is active", Kind: driver.KindCall,
				Args: []driver.Arg{timeoutArg},
				Call: func(ctx context.Context, a driver.Args) (any, error) {
					return nil, waitLevel(ctx, d, w, true, a.Duration(0))
				},
			},
			driver.Method{
				Name: "wait_for_inactive", Doc: "return once the line is inactive", Kind: driver.KindCall,
				Args: []driver.Arg{timeoutArg},
				Call: func(ctx context.Context, a driver.Args) (any, error) {
					return nil, waitLevel(ctx, d, w, false, a.Duration(0))
				},
			},
		)
	}
	return ms
}

func pulse(ctx context.Context, s Setter, width time.Duration) error {
	if err := s.Set(ctx, true); err != nil {
		return fmt.Errorf("pulse: %w", err)
	}
	t := time.NewTimer(width)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	// Always leave the line inactive, even when the caller went away mid-pulse.
	if err := s.Set(context.WithoutCancel(ctx), false); err != nil {
		return fmt.Errorf("pulse: %w", err)
	}
	return ctx.Err()
}

func watch(ctx context.Context, w Watcher, f Edge, send func(any) error) error {
	events, cancel, err := w.Subscribe(f)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-events:
			if !ok {
				return wire.Errorf(wire.Unavailable, "watch: the line was closed")
			}
			if err := send(e.Map()); err != nil {
				return err
			}
		}
	}
}

func withTimeout(ctx context.Context, timeout time.Duration, what string) (context.Context, context.CancelFunc, error) {
	if timeout < 0 || timeout > 24*time.Hour {
		return nil, nil, wire.Errorf(wire.InvalidArgument, "%s: timeout must be in [0, 24h], got %s", what, timeout)
	}
	if timeout == 0 {
		c, cancel := context.WithCancel(ctx)
		return c, cancel, nil
	}
	c, cancel := context.WithTimeout(ctx, timeout)
	return c, cancel, nil
}

// next returns the next event of events that satisfies ok.
func next(ctx context.Context, events <-chan Event, ok func(Event) bool, what string, timeout time.Duration) (Event, error) {
	for {
		select {
		case <-ctx.Done():
			return Event{}, wire.Errorf(wire.DeadlineExceeded, "%s: nothing within %s", what, timeout)
		case e, open := <-events:
			if !open {
				return Event{}, wire.Errorf(wire.Unavailable, "%s: the line was closed", what)
			}
			if ok(e) {
				return e, nil
			}
		}
	}
}

func waitEdge(ctx context.Context, w Watcher, f Edge, timeout time.Duration) (Event, error) {
	ctx, cancel, err := withTimeout(ctx, timeout, "wait_for_edge")
	if err != nil {
		return Event{}, err
	}
	defer cancel()
	events, stop, err := w.Subscribe(f)
	if err != nil {
		return Event{}, fmt.Errorf("wait_for_edge: %w", err)
	}
	defer stop()
	return next(ctx, events, func(Event) bool { return true }, "wait_for_edge: no "+string(f)+" edge", timeout)
}

// waitLevel returns once the line's value is want. It subscribes before it reads the value, so
// an edge between the two is not missed.
func waitLevel(ctx context.Context, d Device, w Watcher, want bool, timeout time.Duration) error {
	what := "wait_for_inactive"
	if want {
		what = "wait_for_active"
	}
	ctx, cancel, err := withTimeout(ctx, timeout, what)
	if err != nil {
		return err
	}
	defer cancel()
	events, stop, err := w.Subscribe(Both)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer stop()
	v, err := d.Get(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if v == want {
		return nil
	}
	_, err = next(ctx, events, func(e Event) bool { return e.Active == want }, what, timeout)
	return err
}
