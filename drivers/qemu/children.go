package qemu

import (
	"context"
	"errors"
	"fmt"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/power"
	"jsn.dev/jsn/drivers/serial"
	"jsn.dev/jsn/drivers/storage"
)

// errOrphan is returned by built-in child types configured on their own.
func errOrphan(typ string) error {
	return fmt.Errorf("%s is a built-in child of %s: configure a %s node instead", typ, Type, Type)
}

// powerChild is the board's `power`: on starts QEMU, off quits it, cycle resets the guest.
type powerChild struct {
	q *QEMU // nil when configured alone
}

func (p *powerChild) Open(ctx context.Context) error {
	if p.q == nil {
		return errOrphan(PowerType)
	}
	return nil
}

// Reset powers the board off.
func (p *powerChild) Reset(ctx context.Context) error {
	if p.q == nil {
		return nil
	}
	return p.q.off(ctx)
}

// Close powers the board off.
func (p *powerChild) Close() error {
	if p.q == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.q.StopTimeout+5*time.Second)
	defer cancel()
	return p.q.off(ctx)
}

func (p *powerChild) On(ctx context.Context) error  { return p.q.on(ctx) }
func (p *powerChild) Off(ctx context.Context) error { return p.q.off(ctx) }

// Status is "on", "off", or "off (<reason>)" after QEMU ended on its own (crash, guest
// poweroff) until the next on or off.
func (p *powerChild) Status(ctx context.Context) (power.State, error) {
	return power.State(p.q.status()), nil
}

// Read is UNIMPLEMENTED: a virtual board has no power meter.
func (p *powerChild) Read(ctx context.Context) (power.Reading, error) {
	return power.Reading{}, wire.Errorf(wire.Unimplemented, "a QEMU board has no power meter")
}

// Cycle resets the guest (paused for wait first), or powers an off board on.
func (p *powerChild) Cycle(ctx context.Context, wait time.Duration) error {
	return p.q.cycle(ctx, wait)
}

// Methods returns the jsn.power.v1 method table; cycle pauses the guest for 1s by default.
func (p *powerChild) Methods() []driver.Method { return power.Methods(p, power.Options{}) }

// console is the board's `console`: a serial.Port on QEMU's console socket, whose Connect says why
// the board stopped when QEMU's end closes.
type console struct {
	*serial.Port
	q *QEMU
}

// Open points the port at the board's console socket and starts it; it attaches whenever QEMU
// runs.
func (c *console) Open(ctx context.Context) error {
	if _, err := c.q.prepare(); err != nil {
		return err
	}
	c.Port.URL = "unix://" + c.q.consoleSock()
	c.Port.Reconnect = 50 * time.Millisecond
	if err := c.Port.Validate(); err != nil {
		return err
	}
	return c.Port.Open(ctx)
}

// Unavailable says the board is off, or why the console is not attached yet.
func (c *console) Unavailable() string {
	if c.q.running() == nil {
		return "the board is off: run `jsn power on` first"
	}
	return c.Port.Unavailable()
}

// Connect serves a console stream; one that QEMU's end closes fails saying why the board stopped.
func (c *console) Connect(ctx context.Context, s driver.Stream) error {
	p := c.q.running()
	err := c.Port.Connect(ctx, s)
	if err == nil || p == nil || ctx.Err() != nil {
		return err
	}
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		return err
	}
	c.q.mu.Lock()
	stopping := p.stopping
	c.q.mu.Unlock()
	if stopping {
		return wire.Errorf(wire.Unavailable, "console: the board was powered off")
	}
	return wire.Errorf(wire.Unavailable, "console: the board stopped: %s", p.exitReason())
}

// Methods returns the jsn.serial.v1 method table.
func (c *console) Methods() []driver.Method { return serial.Methods(c, serial.Options{}) }

// diskChild is the board's `storage`: the disk image as a storage.File that refuses writes while
// the board runs.
type diskChild struct {
	q    *QEMU
	file *storage.File
}

func (d *diskChild) Open(ctx context.Context) error {
	if err := d.file.Validate(); err != nil {
		return err
	}
	return d.file.Open(ctx)
}

func (d *diskChild) Reset(ctx context.Context) error { return d.file.Reset(ctx) }
func (d *diskChild) Close() error                    { return d.file.Close() }

// writers are the storage methods that change the image.
var writers = map[string]bool{"write": true, "write_url": true, "write_cached": true}

// Methods returns the jsn.storage.v1 methods; writes fail FAILED_PRECONDITION while the board
// is on, and the board cannot be powered on during a write.
func (d *diskChild) Methods() []driver.Method {
	ms := d.file.Methods()
	for i := range ms {
		m := &ms[i]
		if !writers[m.Name] {
			continue
		}
		name := m.Name
		switch {
		case m.Bytes != nil:
			inner := m.Bytes
			m.Bytes = func(ctx context.Context, args driver.Args, s driver.Stream) error {
				if err := d.q.beginFlash(name); err != nil {
					return err
				}
				defer d.q.endFlash()
				return inner(ctx, args, s)
			}
		case m.Stream != nil:
			inner := m.Stream
			m.Stream = func(ctx context.Context, args driver.Args, send func(any) error) error {
				if err := d.q.beginFlash(name); err != nil {
					return err
				}
				defer d.q.endFlash()
				return inner(ctx, args, send)
			}
		}
	}
	return ms
}

func (q *QEMU) beginFlash(op string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.proc != nil {
		return wire.Errorf(wire.FailedPrecondition, "%s: the board is on: power the board off first", op)
	}
	q.flashing++
	return nil
}

func (q *QEMU) endFlash() {
	q.mu.Lock()
	q.flashing--
	q.mu.Unlock()
}

var (
	_ power.Device        = (*powerChild)(nil)
	_ power.Cycler        = (*powerChild)(nil)
	_ driver.Methoder     = (*powerChild)(nil)
	_ serial.Device       = (*console)(nil)
	_ driver.Availability = (*console)(nil)
	_ driver.Methoder     = (*console)(nil)
	_ driver.Methoder     = (*diskChild)(nil)
	_                     = errors.New
)
