package gpio

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/power"
)

func init() {
	driver.MustRegister(driver.Info{
		Type: "gpio.Output", Interface: Interface, New: NewOutput,
		Doc:     "a GPIO output line (Linux GPIO character device)",
		Aliases: []string{"jumpstarter_driver_gpiod.driver.DigitalOutput", "jumpstarter_driver_gpiod.DigitalOutput"},
	})
	driver.MustRegister(driver.Info{
		Type: "gpio.Input", Interface: Interface, New: NewInput,
		Doc:     "a GPIO input line with edge events (Linux GPIO character device)",
		Aliases: []string{"jumpstarter_driver_gpiod.driver.DigitalInput", "jumpstarter_driver_gpiod.DigitalInput"},
	})
	driver.MustRegister(driver.Info{
		Type: "gpio.PowerSwitch", Interface: power.Interface, New: NewPowerSwitch,
		Doc:     "a power switch wired to a GPIO output line",
		Aliases: []string{"jumpstarter_driver_gpiod.driver.PowerSwitch", "jumpstarter_driver_gpiod.PowerSwitch"},
	})
}

// line holds one requested line and re-requests it when it was not available: a line driver
// whose chip is absent at Open reports itself unavailable instead of failing the exporter.
type line struct {
	log *slog.Logger

	mu     sync.Mutex
	fd     *lineFD
	reason string // why fd is nil
	open   func() (*lineFD, error)
	opened func(*lineFD) // after a (re-)request, under mu
}

// acquire returns the requested line, requesting it if needed.
func (l *line) acquire() (*lineFD, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acquireLocked()
}

func (l *line) acquireLocked() (*lineFD, error) {
	if l.fd != nil {
		return l.fd, nil
	}
	if l.open == nil {
		return nil, wire.Errorf(wire.Unavailable, "gpio line is closed")
	}
	fd, err := l.open()
	if err != nil {
		l.reason = err.Error()
		return nil, err
	}
	l.fd, l.reason = fd, ""
	if l.opened != nil {
		l.opened(fd)
	}
	return fd, nil
}

// Unavailable implements driver.Availability: it tries to request the line when it has none.
func (l *line) Unavailable() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.acquireLocked(); err != nil {
		return err.Error()
	}
	return ""
}

func (l *line) start(open func() (*lineFD, error)) {
	l.mu.Lock()
	l.open = open
	_, err := l.acquireLocked()
	l.mu.Unlock()
	if err != nil {
		l.log.Warn("gpio line unavailable", "err", err)
	}
}

func (l *line) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open = nil
	if l.fd == nil {
		return nil
	}
	err := l.fd.close()
	l.fd = nil
	return err
}

func (l *line) Get(ctx context.Context) (bool, error) {
	fd, err := l.acquire()
	if err != nil {
		return false, err
	}
	return fd.get()
}

// Output is an output line: gpio.Output, Jumpstarter's DigitalOutput.
type Output struct {
	OutputConfig `yaml:",inline"`
	ResetMode    string `yaml:"reset"`

	line
	r       resolved
	initial bool
}

// NewOutput is the gpio.Output constructor: defaults only, no side effects.
func NewOutput(env driver.Env) driver.Driver { return &Output{line: line{log: env.Log}} }

// Validate checks the config.
func (o *Output) Validate() error {
	var err error
	o.r, o.initial, err = o.resolveOutput()
	errs := []error{err}
	switch o.ResetMode {
	case "", "initial", "leave", "active", "inactive":
	default:
		errs = append(errs, driver.FieldErrorf("reset", `want "initial", "active", "inactive" or "leave", got %q`, o.ResetMode))
	}
	return errors.Join(errs...)
}

// Open requests the line as an output at its initial value.
func (o *Output) Open(ctx context.Context) error {
	o.start(func() (*lineFD, error) { return requestLine(o.r, o.r.flags, o.initial, 0) })
	return nil
}

// Reset drives the reset value: the initial value unless reset says otherwise.
func (o *Output) Reset(ctx context.Context) error {
	switch o.ResetMode {
	case "leave":
		return nil
	case "active":
		return o.Set(ctx, true)
	case "inactive":
		return o.Set(ctx, false)
	}
	return o.Set(ctx, o.initial)
}

// Set drives the line active or inactive.
func (o *Output) Set(ctx context.Context, active bool) error {
	fd, err := o.acquire()
	if err != nil {
		return err
	}
	return fd.set(active)
}

// Methods implements driver.Methoder.
func (o *Output) Methods() []driver.Method { return Methods(o, Options{PulseWidth: o.PulseWidth}) }

// Input is an input line with edge events: gpio.Input, Jumpstarter's DigitalInput.
//
//	debounce: 10ms   # the kernel's debounce period (rounded to microseconds); 0: none
type Input struct {
	Line     `yaml:",inline"`
	Debounce time.Duration `yaml:"debounce"`

	line
	r resolved

	smu  sync.Mutex
	subs map[*subscriber]struct{}
	done chan struct{} // the event reader of the current request ended
}

type subscriber struct {
	filter Edge
	ch     chan Event
}

// NewInput is the gpio.Input constructor.
func NewInput(env driver.Env) driver.Driver {
	return &Input{line: line{log: env.Log}, subs: map[*subscriber]struct{}{}}
}

// Validate checks the config.
func (in *Input) Validate() error {
	var err error
	in.r, err = in.resolve()
	errs := []error{err}
	if in.Debounce < 0 || in.Debounce > time.Second {
		errs = append(errs, driver.FieldErrorf("debounce", "must be in [0, 1s], got %s", in.Debounce))
	}
	return errors.Join(errs...)
}

// Open requests the line as an input reporting both edges, and starts reading its events.
func (in *Input) Open(ctx context.Context) error {
	in.opened = func(fd *lineFD) {
		done := make(chan struct{})
		in.done = done
		go func() {
			defer close(done)
			err := fd.readEvents(in.deliver)
			if err != nil {
				in.log.Warn("gpio events", "err", err)
			}
			in.closeSubs()
		}()
	}
	in.start(func() (*lineFD, error) {
		return requestLine(in.r, in.r.flags|flagInput|flagEdgeRising|flagEdgeFalling, false, in.Debounce)
	})
	return nil
}

func (in *Input) deliver(e Event) {
	in.smu.Lock()
	defer in.smu.Unlock()
	for s := range in.subs {
		if !s.filter.Matches(e.Edge) {
			continue
		}
		select {
		case s.ch <- e:
		default: // a slow subscriber loses events; the gap shows in Seqno
		}
	}
}

func (in *Input) closeSubs() {
	in.smu.Lock()
	defer in.smu.Unlock()
	for s := range in.subs {
		close(s.ch)
		delete(in.subs, s)
	}
}

// Subscribe implements Watcher.
func (in *Input) Subscribe(filter Edge) (<-chan Event, func(), error) {
	if _, err := in.acquire(); err != nil {
		return nil, nil, err
	}
	s := &subscriber{filter: filter, ch: make(chan Event, 256)}
	in.smu.Lock()
	in.subs[s] = struct{}{}
	in.smu.Unlock()
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			in.smu.Lock()
			if _, ok := in.subs[s]; ok {
				delete(in.subs, s)
				close(s.ch)
			}
			in.smu.Unlock()
		})
	}, nil
}

// Reset ends every watch of the ended lease.
func (in *Input) Reset(ctx context.Context) error {
	in.closeSubs()
	return nil
}

// Close releases the line and waits for its event reader.
func (in *Input) Close() error {
	err := in.line.Close()
	in.mu.Lock()
	done := in.done
	in.mu.Unlock()
	if done != nil {
		<-done
	}
	return err
}

// Methods implements driver.Methoder.
func (in *Input) Methods() []driver.Method { return Methods(in, Options{}) }

// PowerSwitch is a power switch wired to an output line: on = active. It implements
// jsn.power.v1 (Jumpstarter's gpiod PowerSwitch).
//
//	reset: off        # before and after each lease: off | on | leave
//	cycle_wait: 1s
type PowerSwitch struct {
	OutputConfig `yaml:",inline"`
	ResetMode    string        `yaml:"reset"`
	CycleWait    time.Duration `yaml:"cycle_wait"`

	line
	r       resolved
	initial bool
}

// NewPowerSwitch is the gpio.PowerSwitch constructor.
func NewPowerSwitch(env driver.Env) driver.Driver {
	return &PowerSwitch{line: line{log: env.Log}, CycleWait: power.DefaultCycleWait}
}

// Validate checks the config.
func (p *PowerSwitch) Validate() error {
	var err error
	p.r, p.initial, err = p.resolveOutput()
	errs := []error{err}
	switch p.ResetMode {
	case "", "off", "on", "leave":
	default:
		errs = append(errs, driver.FieldErrorf("reset", `want "off", "on" or "leave", got %q`, p.ResetMode))
	}
	if p.CycleWait < 0 {
		errs = append(errs, driver.FieldErrorf("cycle_wait", "must not be negative, got %s", p.CycleWait))
	}
	return errors.Join(errs...)
}

// Open requests the line as an output at its initial value.
func (p *PowerSwitch) Open(ctx context.Context) error {
	p.start(func() (*lineFD, error) { return requestLine(p.r, p.r.flags, p.initial, 0) })
	return nil
}

// Reset switches off (or on, or nothing, as reset says).
func (p *PowerSwitch) Reset(ctx context.Context) error {
	switch p.ResetMode {
	case "leave":
		return nil
	case "on":
		return p.On(ctx)
	}
	return p.Off(ctx)
}

func (p *PowerSwitch) set(active bool) error {
	fd, err := p.acquire()
	if err != nil {
		return err
	}
	return fd.set(active)
}

// On drives the line active.
func (p *PowerSwitch) On(ctx context.Context) error { return p.set(true) }

// Off drives the line inactive.
func (p *PowerSwitch) Off(ctx context.Context) error { return p.set(false) }

// Status reads the line: active is on.
func (p *PowerSwitch) Status(ctx context.Context) (power.State, error) {
	v, err := p.Get(ctx)
	if err != nil {
		return "", err
	}
	if v {
		return power.On, nil
	}
	return power.Off, nil
}

// Read fails: a GPIO line does not measure.
func (p *PowerSwitch) Read(ctx context.Context) (power.Reading, error) {
	return power.Reading{}, wire.Errorf(wire.Unimplemented, "read: a GPIO power switch cannot measure")
}

// Methods implements driver.Methoder.
func (p *PowerSwitch) Methods() []driver.Method {
	return power.Methods(p, power.Options{CycleWait: p.CycleWait})
}

var (
	_ Device              = (*Output)(nil)
	_ Setter              = (*Output)(nil)
	_ Watcher             = (*Input)(nil)
	_ power.Device        = (*PowerSwitch)(nil)
	_ driver.Validator    = (*Output)(nil)
	_ driver.Availability = (*Input)(nil)
)
