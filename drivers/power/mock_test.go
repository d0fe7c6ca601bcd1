package power

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/drivertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// syncBuffer is a bytes.Buffer safe for a logger used from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newMock(t *testing.T) (*Mock, *syncBuffer) {
	t.Helper()
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	env := drivertest.Env("power")
	env.Log = log
	m := NewMock(env).(*Mock)
	m.Interval = time.Millisecond
	if err := m.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if err := m.Open(context.Background()); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m, &logs
}

func status(t *testing.T, d driver.Driver) string {
	t.Helper()
	got, err := drivertest.CallMethod(context.Background(), d, "status")
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	s, ok := got.(string)
	if !ok {
		t.Fatalf("status: got %T, want string", got)
	}
	return s
}

func TestRegistered(t *testing.T) {
	for _, name := range []string{"power.Mock", "jumpstarter_driver_power.driver.MockPower"} {
		info, ok := driver.Lookup(name)
		if !ok {
			t.Fatalf("Lookup(%q): not registered", name)
		}
		if info.Type != "power.Mock" || info.Interface != Interface {
			t.Errorf("Lookup(%q): got %s/%s, want power.Mock/%s", name, info.Type, info.Interface, Interface)
		}
	}
}

func TestMockOnOffStatus(t *testing.T) {
	ctx := context.Background()
	m, logs := newMock(t)
	steps := []struct {
		method string
		want   string
	}{
		{"status", "off"},
		{"on", "on"},
		{"on", "on"},
		{"off", "off"},
		{"on", "on"},
	}
	for i, st := range steps {
		if st.method != "status" {
			if _, err := drivertest.CallMethod(ctx, m, st.method); err != nil {
				t.Fatalf("step %d: %s: %v", i, st.method, err)
			}
		}
		if got := status(t, m); got != st.want {
			t.Fatalf("step %d: after %s: got %q, want %q", i, st.method, got, st.want)
		}
	}
	if err := m.Reset(ctx); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	if got := status(t, m); got != "off" {
		t.Fatalf("after Reset: got %q, want %q", got, "off")
	}
	// Three real changes (off→on, on→off, off→on) then Reset (on→off); the repeated "on" logs nothing.
	if got := strings.Count(logs.String(), "power state changed"); got != 4 {
		t.Fatalf("state change log lines: got %d, want 4; log:\n%s", got, logs)
	}
	if !strings.Contains(logs.String(), "level=INFO") {
		t.Fatalf("state changes not logged at INFO: %s", logs)
	}
}

// recorder is a Device that records the calls it gets.
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) add(s string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, s)
	return nil
}
func (r *recorder) On(context.Context) error  { return r.add("on") }
func (r *recorder) Off(context.Context) error { return r.add("off") }
func (r *recorder) Status(context.Context) (State, error) {
	return Off, r.add("status")
}
func (r *recorder) Read(context.Context) (Reading, error) { return Reading{}, r.add("read") }

// devDriver serves a Device's table for drivertest.
type devDriver struct {
	Device
	o Options
}

func (devDriver) Open(context.Context) error  { return nil }
func (devDriver) Reset(context.Context) error { return nil }
func (devDriver) Close() error                { return nil }
func (d devDriver) Methods() []driver.Method  { return Methods(d.Device, d.o) }

func TestCycle(t *testing.T) {
	tests := []struct {
		name     string
		args     []any
		cancel   bool // ctx cancelled before the call
		want     []string
		wantCode wire.Code
	}{
		{name: "default wait", args: nil, want: []string{"off", "on"}},
		{name: "explicit wait", args: []any{time.Millisecond}, want: []string{"off", "on"}},
		{name: "zero wait", args: []any{time.Duration(0)}, want: []string{"off", "on"}},
		{name: "negative wait", args: []any{-time.Second}, want: nil, wantCode: wire.InvalidArgument},
		{name: "cancelled during wait", args: []any{time.Hour}, cancel: true, want: []string{"off"},
			wantCode: wire.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				cancel()
			}
			r := &recorder{}
			d := devDriver{Device: r, o: Options{CycleWait: time.Millisecond}}
			_, err := drivertest.CallMethod(ctx, d, "cycle", tt.args...)
			if got := wire.CodeOf(err); got != tt.wantCode {
				t.Fatalf("cycle error: got %v (%v), want code %q", got, err, tt.wantCode)
			}
			if tt.cancel && !errors.Is(err, context.Canceled) {
				t.Fatalf("cycle error: got %v, want context.Canceled", err)
			}
			if strings.Join(r.calls, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("calls: got %v, want %v", r.calls, tt.want)
			}
		})
	}
}

func TestMockCycle(t *testing.T) {
	m, _ := newMock(t)
	if _, err := drivertest.CallMethod(context.Background(), m, "cycle", time.Millisecond); err != nil {
		t.Fatalf("cycle: %v", err)
	}
	if got := status(t, m); got != "on" {
		t.Fatalf("after cycle: got %q, want %q", got, "on")
	}
}

func TestMockReadCount(t *testing.T) {
	ctx := context.Background()
	m, _ := newMock(t)
	tests := []struct {
		on    bool
		count int64
	}{
		{false, 1},
		{false, 3},
		{true, 5},
		{true, 1},
	}
	for _, tt := range tests {
		if tt.on {
			m.On(ctx)
		} else {
			m.Off(ctx)
		}
		items, err := drivertest.CollectStream(ctx, m, "read", tt.count)
		if err != nil {
			t.Fatalf("read %d (on=%v): %v", tt.count, tt.on, err)
		}
		if int64(len(items)) != tt.count {
			t.Fatalf("read %d (on=%v): got %d items, want %d", tt.count, tt.on, len(items), tt.count)
		}
		seen := map[float64]bool{}
		for i, item := range items {
			r, err := ParseReading(item)
			if err != nil {
				t.Fatalf("item %d: %v", i, err)
			}
			wantV, wantI := 0.0, 0.0
			if tt.on {
				wantV, wantI = m.Voltage, m.Current
			}
			if math.Abs(float64(r.Voltage)-wantV) > 0.0101*wantV || math.Abs(float64(r.Current)-wantI) > 0.0201*wantI {
				t.Fatalf("item %d (on=%v): got %v, want about %v V %v A", i, tt.on, r, wantV, wantI)
			}
			seen[float64(r.Voltage)] = true
		}
		if tt.on && tt.count > 2 && len(seen) < 2 {
			t.Fatalf("readings do not vary: %v", items)
		}
	}
}

func TestMockReadUntilCancel(t *testing.T) {
	m, _ := newMock(t)
	m.On(context.Background())
	meth, err := drivertest.Method(m, "read")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	err = meth.Stream(ctx, nil, func(any) error {
		n++
		if n == 4 {
			cancel() // the client went away
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("read after cancel: got %v, want context.Canceled", err)
	}
	if n != 4 {
		t.Fatalf("items: got %d, want 4", n)
	}

	// A failing send stops the stream with its error.
	errGone := errors.New("client gone")
	err = meth.Stream(context.Background(), driver.Args{int64(0)}, func(any) error { return errGone })
	if !errors.Is(err, errGone) {
		t.Fatalf("read with failing send: got %v, want %v", err, errGone)
	}
}

func TestMockReadBadCount(t *testing.T) {
	m, _ := newMock(t)
	_, err := drivertest.CollectStream(context.Background(), m, "read", int64(-1))
	if !errors.Is(err, wire.ErrInvalidArgument) {
		t.Fatalf("read -1: got %v, want INVALID_ARGUMENT", err)
	}
}

func TestMockConfig(t *testing.T) {
	m := NewMock(drivertest.Env("")).(*Mock)
	if m.Voltage != 5 || m.Current != 2 || m.Interval != 100*time.Millisecond || m.CycleWait != time.Second {
		t.Fatalf("defaults: got %v V %v A %v %v, want 5 V 2 A 100ms 1s", m.Voltage, m.Current, m.Interval, m.CycleWait)
	}
	tests := []struct {
		name    string
		mod     func(*Mock)
		wantErr string // substring; "" means valid
	}{
		{"defaults", func(*Mock) {}, ""},
		{"zero voltage", func(m *Mock) { m.Voltage = 0 }, ""},
		{"negative voltage", func(m *Mock) { m.Voltage = -1 }, "voltage"},
		{"NaN voltage", func(m *Mock) { m.Voltage = math.NaN() }, "voltage"},
		{"negative current", func(m *Mock) { m.Current = -0.5 }, "current"},
		{"zero interval", func(m *Mock) { m.Interval = 0 }, "interval"},
		{"negative cycle_wait", func(m *Mock) { m.CycleWait = -time.Second }, "cycle_wait"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMock(drivertest.Env("")).(*Mock)
			tt.mod(m)
			err := m.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: got %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate: got %v, want an error about %q", err, tt.wantErr)
			}
		})
	}
}
