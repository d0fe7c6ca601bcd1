package uboot

import (
	"context"
	"fmt"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

// Interface is the name of the interface in describe.
const Interface = "jsn.uboot.v1"

// Result is what a command run at the U-Boot prompt did.
type Result struct {
	Output string // what it printed, without the echo of the command line; \r removed
	Status int    // its exit status ($?); -1 when U-Boot has no hush shell to tell
}

// Map is the wire form {output, status}.
func (r Result) Map() map[string]any {
	return map[string]any{"output": r.Output, "status": int64(r.Status)}
}

// ParseResult decodes the wire form of a Result.
func ParseResult(v any) (Result, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return Result{}, fmt.Errorf("parse result: want a map, got %T", v)
	}
	out, ok := m["output"].(string)
	if !ok {
		return Result{}, fmt.Errorf("parse result: output: want a string, got %T", m["output"])
	}
	var st int64
	switch n := m["status"].(type) {
	case int64:
		st = n
	case int8:
		st = int64(n)
	case int16:
		st = int64(n)
	case int32:
		st = int64(n)
	case uint8:
		st = int64(n)
	case uint16:
		st = int64(n)
	case uint32:
		st = int64(n)
	case uint64:
		if n > 1<<31 {
			return Result{}, fmt.Errorf("parse result: status %d out of range", n)
		}
		st = int64(n)
	default:
		return Result{}, fmt.Errorf("parse result: status: want an integer, got %T", m["status"])
	}
	if st < -1 || st > 1<<31 {
		return Result{}, fmt.Errorf("parse result: status %d out of range", st)
	}
	return Result{Output: out, Status: int(st)}, nil
}

// Device is what a U-Boot console driver implements.
type Device interface {
	// RebootToConsole switches the board off and on and interrupts autoboot: it returns at the prompt.
	RebootToConsole(ctx context.Context) error
	// Interrupt stops autoboot (or a running command) and returns at the prompt.
	Interrupt(ctx context.Context) error
	// Run types command at the prompt and waits for the prompt again. out, if not nil, gets the
	// console's output as it comes.
	Run(ctx context.Context, command string, out func([]byte)) (Result, error)
	// GetEnv reads an environment variable (NOT_FOUND when it is not set).
	GetEnv(ctx context.Context, name string) (string, error)
	// SetEnv sets an environment variable (until reboot; saveenv makes it stay).
	SetEnv(ctx context.Context, name, value string) error
	// Prompt is the prompt the driver waits for.
	Prompt() string
}

// Options tune the method table: the timeouts used when a caller gives none.
type Options struct {
	BootTimeout    time.Duration // reboot_to_console, interrupt; default 2m
	CommandTimeout time.Duration // run, get_env, set_env; default 1m
}

func timeout(args driver.Args, i int, def time.Duration) (time.Duration, error) {
	if !args.Has(i) {
		return def, nil
	}
	d := args.Duration(i)
	if d <= 0 {
		return 0, wire.Errorf(wire.InvalidArgument, "timeout must be more than 0, got %s", d)
	}
	return d, nil
}

// Methods is the method table of jsn.uboot.v1:
//
//	reboot_to_console([timeout duration])   power off, on, interrupt autoboot
//	interrupt([timeout duration])           interrupt autoboot (or a command) without power
//	run(command string, [timeout duration]) -> {output, status}
//	run_stream(command string, [timeout duration]) => output chunks (bytes)…, then {output, status}
//	get_env(name string) -> string
//	set_env(name string, value string)
//	get_prompt() -> string
func Methods(d Device, o Options) []driver.Method {
	if o.BootTimeout <= 0 {
		o.BootTimeout = 2 * time.Minute
	}
	if o.CommandTimeout <= 0 {
		o.CommandTimeout = time.Minute
	}
	to := func(def time.Duration) driver.Arg {
		return driver.Arg{Name: "timeout", Type: driver.TypeDuration, Optional: true, Doc: "default " + def.String()}
	}
	withTimeout := func(ctx context.Context, args driver.Args, i int, def time.Duration) (context.Context, context.CancelFunc, error) {
		t, err := timeout(args, i, def)
		if err != nil {
			return nil, nil, err
		}
		c, cancel := context.WithTimeout(ctx, t)
		return c, cancel, nil
	}
	return []driver.Method{
		{
			Name: "reboot_to_console", Kind: driver.KindCall, Args: []driver.Arg{to(o.BootTimeout)},
			Doc: "switch the board off and on (power child) and interrupt autoboot; returns at the U-Boot prompt",
			Call: func(ctx context.Context, args driver.Args) (any, error) {
				ctx, cancel, err := withTimeout(ctx, args, 0, o.BootTimeout)
				if err != nil {
					return nil, err
				}
				defer cancel()
				return nil, d.RebootToConsole(ctx)
			},
		},
		{
			Name: "interrupt", Kind: driver.KindCall, Args: []driver.Arg{to(o.BootTimeout)},
			Doc: "interrupt autoboot (or a running command) and wait for the U-Boot prompt",
			Call: func(ctx context.Context, args driver.Args) (any, error) {
				ctx, cancel, err := withTimeout(ctx, args, 0, o.BootTimeout)
				if err != nil {
					return nil, err
				}
				defer cancel()
				return nil, d.Interrupt(ctx)
			},
		},
		{
			Name: "run", Kind: driver.KindCall, Returns: driver.TypeAny,
			Args: []driver.Arg{{Name: "command", Type: driver.TypeString, Doc: "a U-Boot command line"}, to(o.CommandTimeout)},
			Doc:  "run a command at the U-Boot prompt and wait for the prompt: {output, status}",
			Call: func(ctx context.Context, args driver.Args) (any, error) {
				ctx, cancel, err := withTimeout(ctx, args, 1, o.CommandTimeout)
				if err != nil {
					return nil, err
				}
				defer cancel()
				r, err := d.Run(ctx, args.String(0), nil)
				if err != nil {
					return nil, err
				}
				return r.Map(), nil
			},
		},
		{
			Name: "run_stream", Kind: driver.KindServerStream, Returns: driver.TypeAny,
			Args: []driver.Arg{{Name: "command", Type: driver.TypeString, Doc: "a U-Boot command line"}, to(o.CommandTimeout)},
			Doc:  "run a command, streaming its output as byte chunks as it comes, then {output, status}",
			Stream: func(ctx context.Context, args driver.Args, send func(any) error) error {
				ctx, cancel, err := withTimeout(ctx, args, 1, o.CommandTimeout)
				if err != nil {
					return err
				}
				defer cancel()
				ctx, stop := context.WithCancelCause(ctx)
				defer stop(nil)
				r, err := d.Run(ctx, args.String(0), func(b []byte) {
					if err := send(append([]byte(nil), b...)); err != nil {
						stop(err)
					}
				})
				if err != nil {
					return err
				}
				return send(r.Map())
			},
		},
		{
			Name: "get_env", Kind: driver.KindCall, Returns: driver.TypeString,
			Args: []driver.Arg{{Name: "name", Type: driver.TypeString}},
			Doc:  "the value of a U-Boot environment variable",
			Call: func(ctx context.Context, args driver.Args) (any, error) {
				ctx, cancel := context.WithTimeout(ctx, o.CommandTimeout)
				defer cancel()
				return d.GetEnv(ctx, args.String(0))
			},
		},
		{
			Name: "set_env", Kind: driver.KindCall,
			Args: []driver.Arg{{Name: "name", Type: driver.TypeString}, {Name: "value", Type: driver.TypeString, Doc: "\"\" deletes the variable"}},
			Doc:  "set a U-Boot environment variable (not saved: run saveenv for that)",
			Call: func(ctx context.Context, args driver.Args) (any, error) {
				ctx, cancel := context.WithTimeout(ctx, o.CommandTimeout)
				defer cancel()
				return nil, d.SetEnv(ctx, args.String(0), args.String(1))
			},
		},
		{
			Name: "get_prompt", Kind: driver.KindCall, Returns: driver.TypeString,
			Doc:  "the U-Boot prompt the driver waits for",
			Call: func(ctx context.Context, _ driver.Args) (any, error) { return d.Prompt(), nil },
		},
	}
}
