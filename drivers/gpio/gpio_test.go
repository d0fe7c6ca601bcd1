package gpio

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/drivertest"
)

// fakeLine is a Device, Setter and Watcher in memory: what Methods is tested on.
type fakeLine struct {
	mu    sync.Mutex
	value bool
	sets  []bool
	subs  []chan Event
	seq   uint32
}

func (f *fakeLine) Get(context.Context) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.value, nil
}

func (f *fakeLine) Set(_ context.Context, v bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.value = v
	f.sets = append(f.sets, v)
	return nil
}

func (f *fakeLine) Subscribe(filter Edge) (<-chan Event, func(), error) {
	ch := make(chan Event, 16)
	f.mu.Lock()
	f.subs = append(f.subs, ch)
	f.mu.Unlock()
	return ch, func() {}, nil
}

// edge changes the value and reports it to every subscriber.
func (f *fakeLine) edge(active bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.value = active
	f.seq++
	e := Event{Edge: Falling, Active: active, Time: time.Duration(f.seq), Seqno: f.seq}
	if active {
		e.Edge = Rising
	}
	for _, s := range f.subs {
		s <- e
	}
}

func (f *fakeLine) subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

func TestMethods(t *testing.T) {
	ctx := context.Background()
	f := &fakeLine{}
	d := methodsDriver{Methods(f, Options{PulseWidth: time.Millisecond})}
	names := map[string]bool{}
	for _, m := range d.ms {
		names[m.Name] = true
	}
	for _, n := range []string{"get", "read_pin", "set", "on", "off", "pulse", "watch", "wait_for_edge", "wait_for_active", "wait_for_inactive"} {
		if !names[n] {
			t.Errorf("method %s missing", n)
		}
	}
	if _, err := drivertest.CallMethod(ctx, d, "set", true); err != nil {
		t.Fatal(err)
	}
	if v, err := drivertest.CallMethod(ctx, d, "read_pin"); err != nil || v != int64(1) {
		t.Errorf("read_pin: got %v, %v, want 1", v, err)
	}
	if _, err := drivertest.CallMethod(ctx, d, "pulse"); err != nil {
		t.Fatal(err)
	}
	if got := f.sets; len(got) != 3 || !got[0] || !got[1] || got[2] {
		t.Errorf("set, pulse: got sets %v, want [true true false]", got)
	}
	if _, err := drivertest.CallMethod(ctx, d, "pulse", -time.Second); !errors.Is(err, wire.ErrInvalidArgument) {
		t.Errorf("pulse -1s: got %v, want INVALID_ARGUMENT", err)
	}
	if _, err := drivertest.CallMethod(ctx, d, "watch"); err == nil {
		t.Errorf("watch as a call: got nil error")
	}
	if _, err := drivertest.CallMethod(ctx, d, "wait_for_edge", "sideways"); !errors.Is(err, wire.ErrInvalidArgument) || !strings.Contains(err.Error(), "sideways") {
		t.Errorf("wait_for_edge sideways: got %v, want INVALID_ARGUMENT naming it", err)
	}
	if _, err := drivertest.CallMethod(ctx, d, "wait_for_edge", "rising", 5*time.Millisecond); !errors.Is(err, wire.ErrDeadlineExceeded) {
		t.Errorf("wait_for_edge without edge: got %v, want DEADLINE_EXCEEDED", err)
	}
	// wait_for_active on an active line returns at once; on an inactive one, at the edge.
	if _, err := drivertest.CallMethod(ctx, d, "wait_for_inactive"); err == nil {
		t.Log("line is inactive after pulse: wait_for_inactive returned at once")
	} else {
		t.Errorf("wait_for_inactive: %v", err)
	}
	n := f.subscribers()
	done := make(chan error, 1)
	go func() { _, err := drivertest.CallMethod(ctx, d, "wait_for_active", 10*time.Second); done <- err }()
	for f.subscribers() == n {
		time.Sleep(time.Millisecond)
	}
	f.edge(true)
	if err := <-done; err != nil {
		t.Errorf("wait_for_active: %v", err)
	}
}

// A read-only device gets no set/watch methods.
type readOnly struct{}

func (readOnly) Get(context.Context) (bool, error) { return true, nil }

func TestMethodsReadOnly(t *testing.T) {
	for _, m := range Methods(readOnly{}, Options{}) {
		if m.Name != "get" && m.Name != "read_pin" {
			t.Errorf("read-only device has method %s", m.Name)
		}
	}
}

type methodsDriver struct{ ms []driver.Method }

func (methodsDriver) Open(context.Context) error  { return nil }
func (methodsDriver) Reset(context.Context) error { return nil }
func (methodsDriver) Close() error                { return nil }
func (m methodsDriver) Methods() []driver.Method  { return m.ms }

func TestRegistered(t *testing.T) {
	for alias, typ := range map[string]string{
		"jumpstarter_driver_gpiod.driver.DigitalOutput": "gpio.Output",
		"jumpstarter_driver_gpiod.driver.DigitalInput":  "gpio.Input",
		"jumpstarter_driver_gpiod.driver.PowerSwitch":   "gpio.PowerSwitch",
	} {
		if info, ok := driver.Lookup(alias); !ok || info.Type != typ {
			t.Errorf("%s: got %q %v, want %s", alias, info.Type, ok, typ)
		}
	}
}

func build(src string) error {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("l:\n  "+strings.ReplaceAll(src, "\n", "\n  ")), &doc); err != nil {
		return err
	}
	_, err := driver.Build("exporter.yaml", doc.Content[0], driver.BuildOptions{})
	return err
}

func TestConfig(t *testing.T) {
	tests := []struct {
		src     string
		wantErr string
	}{
		{"type: jumpstarter_driver_gpiod.driver.DigitalOutput\nconfig: {device: /dev/gpiochip0, line: 18, drive: push_pull, active_low: false, bias: pull_up, initial_value: inactive}", ""},
		{"type: jumpstarter_driver_gpiod.driver.DigitalInput\nconfig: {line: 17, active_low: false, bias: pull_up}", ""},
		{"type: jumpstarter_driver_gpiod.driver.PowerSwitch\nconfig: {line: 18, mode: push_pull, active_low: false, bias: pull_up, initial_value: inactive}", ""},
		{"type: gpio.Output\nconfig: {device: 1, line: reset_n, initial_value: 1, reset: leave}", ""},
		{"type: gpio.Input\nconfig: {device: gpiochip2, line: 3, debounce: 5ms}", ""},
		{"type: gpio.Output", `missing required field "line"`},
		{"type: gpio.Output\nconfig: {line: -1}", "line: offset -1 out of range"},
		{"type: gpio.Output\nconfig: {line: 3, drive: tristate}", `drive: want "push_pull", "open_drain" or "open_source", got "tristate"`},
		{"type: gpio.PowerSwitch\nconfig: {line: 3, drive: open_drain, mode: push_pull}", "give either drive or mode"},
		{"type: gpio.Output\nconfig: {line: 3, bias: sideways}", `bias: want "as_is"`},
		{"type: gpio.Output\nconfig: {line: 3, initial_value: maybe}", `initial_value: want "active" or "inactive", got "maybe"`},
		{"type: gpio.Output\nconfig: {line: 3, reset: random}", "reset"},
		{"type: gpio.PowerSwitch\nconfig: {line: 3, reset: initial}", "reset"},
		{"type: gpio.Input\nconfig: {line: 3, debounce: 2s}", "debounce: must be in [0, 1s]"},
		{"type: gpio.Input\nconfig: {line: 3, drive: open_drain}", `unknown field "drive"`},
		{"type: gpio.Output\nconfig: {line: 3, device: this-label-is-far-too-long-for-a-gpio-chip}", "device: want a path"},
	}
	for _, tt := range tests {
		err := build(tt.src)
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("%s:\ngot %v", tt.src, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "exporter.yaml:") {
			t.Errorf("%s:\ngot %v, want a positioned error containing %q", tt.src, err, tt.wantErr)
		}
	}
}

func TestParse(t *testing.T) {
	for in, want := range map[string]chipRef{
		"": {path: DefaultDevice}, "0": {path: "/dev/gpiochip0"}, "gpiochip12": {path: "/dev/gpiochip12"},
		"/dev/gpiochip3": {path: "/dev/gpiochip3"}, "jsn-sim": {label: "jsn-sim"}, "gpiochipX": {label: "gpiochipX"},
	} {
		if got, err := parseDevice(in); err != nil || got != want {
			t.Errorf("parseDevice(%q): got %+v, %v, want %+v", in, got, err, want)
		}
	}
	for in, want := range map[string]lineRef{"18": {offset: 18}, "reset_n": {name: "reset_n"}, " 7 ": {offset: 7}} {
		if got, err := parseLine(in); err != nil || got != want {
			t.Errorf("parseLine(%q): got %+v, %v, want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "70000", "-3"} {
		if _, err := parseLine(in); err == nil {
			t.Errorf("parseLine(%q): got nil error", in)
		}
	}
	ev := Event{Edge: Rising, Active: true, Time: 5 * time.Second, Seqno: 9}
	if got, err := ParseEvent(ev.Map()); err != nil || got != ev {
		t.Errorf("ParseEvent(Map): got %+v, %v, want %+v", got, err, ev)
	}
	if _, err := ParseEvent(map[string]any{"edge": "up"}); err == nil || !strings.Contains(err.Error(), "edge") {
		t.Errorf("ParseEvent bad edge: got %v", err)
	}
}

func FuzzConfig(f *testing.F) {
	f.Add("/dev/gpiochip0", "18", "pull_up", "push_pull", "inactive", "")
	f.Add("jsn-sim", "sim1", "as_is", "open_drain", "1", "reset_n")
	f.Add("0", "-1", "", "", "maybe", "\x00")
	f.Fuzz(func(t *testing.T, device, line, bias, drive, initial, consumer string) {
		o := OutputConfig{Line: Line{Device: device, Line: line, Bias: bias, Consumer: consumer}, Drive: drive, InitialValue: initial}
		r, _, err := o.resolveOutput()
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if r.flags&flagOutput == 0 || (r.chip.path == "") == (r.chip.label == "") || len(r.consumer) > 31 {
			t.Fatalf("resolved %+v from %q %q", r, device, line)
		}
	})
}

func FuzzParseEvent(f *testing.F) {
	f.Add("rising", true, int64(5), int64(1))
	f.Add("falling", false, int64(-1), int64(1<<40))
	f.Fuzz(func(t *testing.T, edge string, active bool, ns, seq int64) {
		ev, err := ParseEvent(map[string]any{"edge": edge, "active": active, "time_ns": ns, "seqno": seq})
		if err != nil {
			return
		}
		if (ev.Edge != Rising && ev.Edge != Falling) || int64(ev.Seqno) != seq {
			t.Fatalf("got %+v from %q %d", ev, edge, seq)
		}
	})
}
