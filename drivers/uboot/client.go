package uboot

import (
	"context"
	"time"

	"jsn.dev/jsn/client/remote"
)

// Client is the typed client of a jsn.uboot.v1 driver.
type Client struct{ d remote.Driver }

// NewClient returns a U-Boot console client calling the driver d.
func NewClient(d remote.Driver) *Client { return &Client{d: d} }

func opt(d time.Duration) any {
	if d <= 0 {
		return nil
	}
	return d
}

// RebootToConsole power-cycles the board and interrupts autoboot (timeout 0: the driver's).
func (c *Client) RebootToConsole(ctx context.Context, timeout time.Duration) error {
	_, err := c.d.Call(ctx, "reboot_to_console", opt(timeout))
	return err
}

// Interrupt interrupts autoboot or a running command.
func (c *Client) Interrupt(ctx context.Context, timeout time.Duration) error {
	_, err := c.d.Call(ctx, "interrupt", opt(timeout))
	return err
}

// Run runs a command at the U-Boot prompt.
func (c *Client) Run(ctx context.Context, command string, timeout time.Duration) (Result, error) {
	v, err := c.d.Call(ctx, "run", command, opt(timeout))
	if err != nil {
		return Result{}, err
	}
	return ParseResult(v)
}

// RunStream runs a command, calling out with its output as it comes.
func (c *Client) RunStream(ctx context.Context, command string, timeout time.Duration, out func([]byte)) (Result, error) {
	items, err := c.d.Stream(ctx, "run_stream", command, opt(timeout))
	if err != nil {
		return Result{}, err
	}
	defer items.Close()
	for {
		var v any
		if err := items.Next(&v); err != nil {
			return Result{}, err
		}
		switch x := v.(type) {
		case []byte:
			out(x)
		case string:
			out([]byte(x))
		default:
			return ParseResult(v)
		}
	}
}

// GetEnv reads a U-Boot environment variable.
func (c *Client) GetEnv(ctx context.Context, name string) (string, error) {
	var s string
	err := c.d.CallInto(ctx, "get_env", &s, name)
	return s, err
}

// SetEnv sets a U-Boot environment variable ("" deletes it).
func (c *Client) SetEnv(ctx context.Context, name, value string) error {
	_, err := c.d.Call(ctx, "set_env", name, value)
	return err
}
