package uboot

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/power"
	"jsn.dev/jsn/drivers/serial"
)

func init() {
	driver.MustRegister(driver.Info{
		Type: "uboot.Console", Interface: Interface,
		Doc:     "U-Boot console on a serial child: interrupt autoboot, run commands, read and set the environment",
		New:     NewConsole,
		Aliases: []string{"jumpstarter_driver_uboot.driver.UbootConsole"},
	})
}

// Console drives U-Boot through its `serial` child (any jsn.serial.v1 driver) and, to reboot
// into U-Boot, its `power` child (any jsn.power.v1 driver; optional).
//
// Config (Jumpstarter's UbootConsole key prompt, plus jsn's):
//
//	prompt: "=>"             # what U-Boot prints when it waits for a command
//	interrupt: "\x03"        # typed, again and again, to stop autoboot (Ctrl-C stops it and is harmless at the prompt)
//	boot_timeout: 2m         # default timeout of reboot_to_console and interrupt
//	command_timeout: 1m      # default timeout of run
//	power_off_wait: 1s       # off time when rebooting
type Console struct {
	PromptText     string        `yaml:"prompt"`
	InterruptKeys  string        `yaml:"interrupt"`
	BootTimeout    time.Duration `yaml:"boot_timeout"`
	CommandTimeout time.Duration `yaml:"command_timeout"`
	PowerOffWait   time.Duration `yaml:"power_off_wait"`

	log *slog.Logger

	serial serial.Device // the serial child; set by UseChildren
	power  power.Device  // the power child, nil without one

	mu    sync.Mutex // one console operation at a time
	dirty bool       // a command was interrupted: resynchronise before the next; guarded by mu
}

// NewConsole is the uboot.Console constructor: defaults only, no side effects.
func NewConsole(env driver.Env) driver.Driver {
	return &Console{PromptText: "=>", InterruptKeys: "\x03", BootTimeout: 2 * time.Minute, CommandTimeout: time.Minute,
		PowerOffWait: time.Second, log: env.Log}
}

// New returns a Console on a serial device (and optionally a power device), for drivers built on
// U-Boot (the flasher) that make their own.
func New(log *slog.Logger, s serial.Device, p power.Device) *Console {
	c := NewConsole(driver.Env{Log: log}).(*Console)
	c.serial, c.power = s, p
	return c
}

// Validate checks the config.
func (c *Console) Validate() error {
	var errs []error
	if strings.TrimSpace(c.PromptText) == "" {
		errs = append(errs, driver.FieldErrorf("prompt", "must not be empty or white space"))
	}
	if c.InterruptKeys == "" || strings.Contains(c.InterruptKeys, "\n") {
		errs = append(errs, driver.FieldErrorf("interrupt", "want the keys that stop autoboot (not empty, no newline), got %q", c.InterruptKeys))
	}
	for _, f := range []struct {
		key string
		d   time.Duration
	}{{"boot_timeout", c.BootTimeout}, {"command_timeout", c.CommandTimeout}} {
		if f.d <= 0 {
			errs = append(errs, driver.FieldErrorf(f.key, "must be more than 0, got %s", f.d))
		}
	}
	if c.PowerOffWait < 0 {
		errs = append(errs, driver.FieldErrorf("power_off_wait", "must not be negative, got %s", c.PowerOffWait))
	}
	return errors.Join(errs...)
}

// UseChildren takes the serial child (required) and the power child (optional).
func (c *Console) UseChildren(children map[string]driver.Driver) error {
	var errs []error
	for name, d := range children {
		switch name {
		case "serial":
			s, ok := d.(serial.Device)
			if !ok {
				errs = append(errs, fmt.Errorf("child \"serial\" must be a %s driver (serial.Port, a QEMU board's console), got %T", serial.Interface, d))
				continue
			}
			c.serial = s
		case "power":
			p, ok := d.(power.Device)
			if !ok {
				errs = append(errs, fmt.Errorf("child \"power\" must be a %s driver, got %T", power.Interface, d))
				continue
			}
			c.power = p
		}
	}
	if _, ok := children["serial"]; !ok {
		errs = append(errs, errors.New(`child "serial" is required: the console U-Boot talks on (children: {serial: {ref: console}})`))
	}
	return errors.Join(errs...)
}

// Open does nothing: the children are used at each call.
func (c *Console) Open(ctx context.Context) error { return nil }

// Reset does nothing: what U-Boot runs is the board's state, which its power resets.
func (c *Console) Reset(ctx context.Context) error { return nil }

// Close does nothing.
func (c *Console) Close() error { return nil }

// CanReboot reports whether the console has a power child to reboot the board with.
func (c *Console) CanReboot() bool { return c.power != nil }

// Prompt is the prompt waited for.
func (c *Console) Prompt() string { return c.PromptText }

// Methods serves jsn.uboot.v1.
func (c *Console) Methods() []driver.Method {
	return Methods(c, Options{BootTimeout: c.BootTimeout, CommandTimeout: c.CommandTimeout})
}

func (c *Console) open(ctx context.Context) (*session, error) {
	if c.serial == nil {
		return nil, wire.Errorf(wire.FailedPrecondition, "no serial child")
	}
	return open(ctx, c.serial, nil), nil
}

// RebootToConsole switches the power off and on, then interrupts autoboot.
func (c *Console) RebootToConsole(ctx context.Context) error {
	if c.power == nil {
		return wire.Errorf(wire.FailedPrecondition, "reboot_to_console: no power child to reboot the board with (use interrupt, or add children: {power: …})")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.power.Off(ctx); err != nil {
		return fmt.Errorf("reboot_to_console: power off: %w", err)
	}
	t := time.NewTimer(c.PowerOffWait)
	select {
	case <-ctx.Done():
		t.Stop()
		return ctx.Err()
	case <-t.C:
	}
	if err := c.power.On(ctx); err != nil {
		return fmt.Errorf("reboot_to_console: power on: %w", err)
	}
	return c.interrupt(ctx, "reboot_to_console")
}

// Interrupt stops autoboot or a running command and returns at the prompt.
func (c *Console) Interrupt(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.interrupt(ctx, "interrupt")
}

// interrupt types the interrupt keys until the prompt shows, then makes sure the console is in
// step (an echo of a fresh token comes back before the prompt).
func (c *Console) interrupt(ctx context.Context, op string) error {
	for {
		s, err := c.open(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		err = c.interruptOn(ctx, s)
		s.close()
		// The console may not be there yet (a board being switched on): try again while it is
		// unavailable.
		if err != nil && wire.CodeOf(err) == wire.Unavailable && ctx.Err() == nil {
			t := time.NewTimer(200 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		c.log.Info("at the U-Boot prompt")
		c.dirty = false
		return nil
	}
}

func (c *Console) interruptOn(ctx context.Context, s *session) error {
	spam, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if err := s.send(spam, []byte(c.InterruptKeys)); err != nil {
				return
			}
			select {
			case <-spam.Done():
				return
			case <-t.C:
			}
		}
	}()
	if _, err := s.wait(ctx, 0, "U-Boot prompt "+strconv.Quote(c.PromptText), index([]byte(c.PromptText))); err != nil {
		return err
	}
	stop()
	return c.sync(ctx, s)
}

// sync types `echo TOKEN` until the token comes back followed by the prompt, so that no stray
// interrupt key or half-typed line is left.
func (c *Console) sync(ctx context.Context, s *session) error {
	for try := 0; ; try++ {
		// Let interrupt keys still on their way arrive before typing (they would cancel the line).
		t := time.NewTimer(300 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return waitErr(ctx, "U-Boot prompt", tail(s.since(0), 300))
		case <-t.C:
		}
		tok := token()
		from := s.len()
		if err := s.send(ctx, []byte("echo jsn-sync-"+tok+"\n")); err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		end, err := s.wait(wctx, from, "echo", index([]byte("\njsn-sync-"+tok)))
		if err == nil {
			_, err = s.wait(wctx, end, "prompt", index([]byte(c.PromptText)))
		}
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || wire.CodeOf(err) != wire.DeadlineExceeded || try >= 10 {
			return fmt.Errorf("the console does not answer like U-Boot at its prompt: %w", err)
		}
	}
}

func token() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Run types command and waits for it to end.
func (c *Console) Run(ctx context.Context, command string, out func([]byte)) (Result, error) {
	if command == "" || strings.ContainsAny(command, "\r\n") {
		return Result{}, wire.Errorf(wire.InvalidArgument, "run: want one command line, got %q", command)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := c.open(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("run: %w", err)
	}
	defer s.close()
	if c.dirty {
		if err := c.sync(ctx, s); err != nil {
			return Result{}, fmt.Errorf("run: after an interrupted command: %w", err)
		}
		c.dirty = false
	}
	r, err := c.run(ctx, s, command, out)
	if wire.CodeOf(err) == wire.DeadlineExceeded {
		c.dirty = true
	}
	return r, err
}

var rcRE = regexp.MustCompile(`\njsn-rc-([0-9a-f]{12})=(-?[0-9]+|\$\?)\r?\n`)

func (c *Console) run(ctx context.Context, s *session, command string, out func([]byte)) (Result, error) {
	tok := token()
	from := s.len()
	marker := "jsn-rc-" + tok
	if out != nil {
		// Stream the command's output line by line: not the echo of the typed line, not the
		// marker line, \r removed.
		done, finished := make(chan struct{}), make(chan struct{})
		defer func() { close(done); <-finished }()
		go func() {
			defer close(finished)
			at, echoed := from, false
			var pending []byte
			flush := func() {
				s.mu.Lock()
				b := s.buf
				s.mu.Unlock()
				if len(b) > at {
					pending = append(pending, b[at:]...)
					at = len(b)
				}
				for {
					i := bytes.IndexByte(pending, '\n')
					if i < 0 {
						return
					}
					line := bytes.ReplaceAll(pending[:i+1], []byte("\r"), nil)
					pending = pending[i+1:]
					if !echoed {
						echoed = true
						continue
					}
					if bytes.Contains(line, []byte(marker+"=")) {
						continue
					}
					out(line)
				}
			}
			for {
				s.mu.Lock()
				ch := s.changed
				s.mu.Unlock()
				flush()
				select {
				case <-ch:
				case <-done:
					flush()
					return
				}
			}
		}()
	}
	if err := s.send(ctx, []byte(command+"; echo "+marker+"=$?\n")); err != nil {
		return Result{}, fmt.Errorf("run %q: %w", command, err)
	}
	var status int
	end, err := s.wait(ctx, from, "end of "+strconv.Quote(command), func(b []byte) int {
		for _, m := range rcRE.FindAllSubmatchIndex(b, -1) {
			if string(b[m[2]:m[3]]) != tok {
				continue
			}
			v := string(b[m[4]:m[5]])
			status = -1
			if v != "$?" {
				n, err := strconv.Atoi(v)
				if err != nil {
					continue
				}
				status = n
			}
			return m[1]
		}
		return -1
	})
	if err != nil {
		if wire.CodeOf(err) == wire.DeadlineExceeded {
			// Stop the command so the console is usable again.
			actx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = s.send(actx, []byte(c.InterruptKeys))
			cancel()
			return Result{}, wire.Errorf(wire.DeadlineExceeded, "U-Boot command %q did not end in time (interrupted); last output: %q", command, tail(s.since(from), 300))
		}
		return Result{}, fmt.Errorf("run %q: %w", command, err)
	}
	if _, err := s.wait(ctx, end, "U-Boot prompt after "+strconv.Quote(command), index([]byte(c.PromptText))); err != nil {
		return Result{}, fmt.Errorf("run %q: %w", command, err)
	}
	return Result{Output: commandOutput(s.since(from)[:end-from], tok), Status: status}, nil
}

// commandOutput is what a command printed: the output after the echoed command line, up to the
// marker line, with \r removed.
func commandOutput(b []byte, tok string) string {
	b = bytes.ReplaceAll(b, []byte("\r"), nil)
	// The echo of the typed line ends at the first newline after the marker text typed.
	typed := []byte("jsn-rc-" + tok + "=$?")
	if i := bytes.Index(b, typed); i >= 0 {
		if j := bytes.IndexByte(b[i:], '\n'); j >= 0 {
			b = b[i+j+1:]
		}
	}
	if i := bytes.LastIndex(b, []byte("jsn-rc-"+tok+"=")); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

var envNameRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,128}$`)

// GetEnv reads a variable with printenv.
func (c *Console) GetEnv(ctx context.Context, name string) (string, error) {
	if !envNameRE.MatchString(name) {
		return "", wire.Errorf(wire.InvalidArgument, "get_env: invalid variable name %q (letters, digits, _ . : -)", name)
	}
	r, err := c.Run(ctx, "printenv "+name, nil)
	if err != nil {
		return "", fmt.Errorf("get_env: %w", err)
	}
	return parsePrintenv(name, r)
}

// parsePrintenv reads printenv's answer for one variable.
func parsePrintenv(name string, r Result) (string, error) {
	if strings.Contains(r.Output, "not defined") || r.Status > 0 {
		return "", wire.Errorf(wire.NotFound, "get_env: %s is not set", name)
	}
	for _, line := range strings.Split(r.Output, "\n") {
		if v, ok := strings.CutPrefix(line, name+"="); ok {
			return v, nil
		}
	}
	return "", wire.Errorf(wire.FailedPrecondition, "get_env: printenv %s printed no %s=…: %q", name, name, r.Output)
}

// SetEnv sets a variable with setenv (value in single quotes: taken literally by hush).
func (c *Console) SetEnv(ctx context.Context, name, value string) error {
	if !envNameRE.MatchString(name) {
		return wire.Errorf(wire.InvalidArgument, "set_env: invalid variable name %q (letters, digits, _ . : -)", name)
	}
	if strings.ContainsAny(value, "'\r\n") {
		return wire.Errorf(wire.InvalidArgument, "set_env %s: the value must not contain a quote (') or a newline", name)
	}
	cmd := "setenv " + name
	if value != "" {
		cmd += " '" + value + "'"
	}
	r, err := c.Run(ctx, cmd, nil)
	if err != nil {
		return fmt.Errorf("set_env: %w", err)
	}
	if r.Status > 0 {
		return wire.Errorf(wire.FailedPrecondition, "set_env: %q failed (status %d): %s", cmd, r.Status, strings.TrimSpace(r.Output))
	}
	return nil
}

// RunChecked runs command and fails, naming it, when its status is not 0.
func (c *Console) RunChecked(ctx context.Context, command string, out func([]byte)) (Result, error) {
	r, err := c.Run(ctx, command, out)
	if err != nil {
		return r, err
	}
	if r.Status > 0 {
		return r, wire.Errorf(wire.FailedPrecondition, "U-Boot command %q failed (status %d): %s", command, r.Status, tail([]byte(strings.TrimSpace(r.Output)), 500))
	}
	return r, nil
}

var (
	_ Device           = (*Console)(nil)
	_ driver.Validator = (*Console)(nil)
	_ driver.ChildUser = (*Console)(nil)
	_ driver.Methoder  = (*Console)(nil)
)
