package power

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"time"

	"jsn.dev/jsn/drivers/driver"
)

func init() {
	driver.MustRegister(driver.Info{
		Type:      "power.Mock",
		Interface: Interface,
		Doc:       "in-memory power switch with simulated readings",
		New:       NewMock,
		Aliases:   []string{"jumpstarter_driver_power.driver.MockPower", "jumpstarter_driver_power.driver.SyncMockPower"},
	})
}

// Mock is a power switch that lives in memory. Its readings are the configured voltage and
// current while on (with a small deterministic ripple) and 0 V, 0 A while off.
//
// Config:
//
//	voltage: 5.0        # volts while on
//	current: 2.0        # amperes while on
//	interval: 100ms     # time between two readings of read
//	cycle_wait: 1s      # off time of cycle when the caller gives none
type Mock struct {
	Voltage   float64       `yaml:"voltage"`
	Current   float64       `yaml:"current"`
	Interval  time.Duration `yaml:"interval"`
	CycleWait time.Duration `yaml:"cycle_wait"`

	log *slog.Logger

	mu    sync.Mutex
	state State  // guarded by mu
	n     uint64 // readings taken, drives the ripple; guarded by mu
}

// NewMock is the power.Mock constructor: defaults only, no side effects.
func NewMock(env driver.Env) driver.Driver {
	return &Mock{
		Voltage:   5.0,
		Current:   2.0,
		Interval:  100 * time.Millisecond,
		CycleWait: time.Second,
		log:       env.Log,
		state:     Off,
	}
}

// Validate checks the config.
func (m *Mock) Validate() error {
	var errs []error
	if m.Voltage < 0 || math.IsNaN(m.Voltage) || math.IsInf(m.Voltage, 0) {
		errs = append(errs, driver.FieldErrorf("voltage", "must be a number ≥ 0, got %v", m.Voltage))
	}
	if m.Current < 0 || math.IsNaN(m.Current) || math.IsInf(m.Current, 0) {
		errs = append(errs, driver.FieldErrorf("current", "must be a number ≥ 0, got %v", m.Current))
	}
	if m.Interval <= 0 {
		errs = append(errs, driver.FieldErrorf("interval", "must be positive, got %s", m.Interval))
	}
	if m.CycleWait < 0 {
		errs = append(errs, driver.FieldErrorf("cycle_wait", "must not be negative, got %s", m.CycleWait))
	}
	return errors.Join(errs...)
}

// Open does nothing: the mock has no resources.
func (m *Mock) Open(ctx context.Context) error { return nil }

// Reset switches the mock off.
func (m *Mock) Reset(ctx context.Context) error { return m.Off(ctx) }

// Close does nothing.
func (m *Mock) Close() error { return nil }

// Methods returns the jsn.power.v1 method table.
func (m *Mock) Methods() []driver.Method {
	return Methods(m, Options{CycleWait: m.CycleWait, ReadInterval: m.Interval})
}

// On switches the mock on.
func (m *Mock) On(ctx context.Context) error { m.set(On); return nil }

// Off switches the mock off.
func (m *Mock) Off(ctx context.Context) error { m.set(Off); return nil }

func (m *Mock) set(s State) {
	m.mu.Lock()
	old := m.state
	m.state = s
	m.mu.Unlock()
	if old != s {
		m.log.Info("power state changed", "from", string(old), "to", string(s))
	}
}

// Status returns the current state.
func (m *Mock) Status(ctx context.Context) (State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state, nil
}

// Read returns a reading reflecting the state: 0 V and 0 A while off; the configured voltage
// (±1 %) and current (±2 %) while on, varying deterministically from one reading to the next.
func (m *Mock) Read(ctx context.Context) (Reading, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := float64(m.n)
	m.n++
	if m.state != On {
		return Reading{}, nil
	}
	return Reading{
		Voltage: Volts(m.Voltage * (1 + 0.01*math.Sin(0.7*n))),
		Current: Amperes(m.Current * (1 + 0.02*math.Sin(1.3*n))),
	}, nil
}

var (
	_ Device           = (*Mock)(nil)
	_ driver.Driver    = (*Mock)(nil)
	_ driver.Validator = (*Mock)(nil)
	_ driver.Methoder  = (*Mock)(nil)
)
