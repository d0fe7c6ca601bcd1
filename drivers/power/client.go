package power

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"jsn.dev/jsn/client/remote"
)

// Client is the typed client of a jsn.power.v1 driver.
type Client struct {
	d remote.Driver
}

// NewClient returns a power client calling the driver d.
func NewClient(d remote.Driver) *Client { return &Client{d: d} }

// On switches the power on.
func (c *Client) On(ctx context.Context) error {
	_, err := c.d.Call(ctx, "on")
	return err
}

// Off switches the power off.
func (c *Client) Off(ctx context.Context) error {
	_, err := c.d.Call(ctx, "off")
	return err
}

// Status returns the power state.
func (c *Client) Status(ctx context.Context) (State, error) {
	var s string
	if err := c.d.CallInto(ctx, "status", &s); err != nil {
		return "", err
	}
	return State(s), nil
}

// Cycle switches the power off, waits, and switches it on. A wait of 0 uses the driver's
// default.
func (c *Client) Cycle(ctx context.Context, wait time.Duration) error {
	var err error
	if wait == 0 {
		_, err = c.d.Call(ctx, "cycle")
	} else {
		_, err = c.d.Call(ctx, "cycle", int64(wait))
	}
	return err
}

// Read streams readings to fn: count of them, or until ctx ends when count is 0. It returns nil
// after the last reading, and fn's error if fn fails (which stops the stream).
func (c *Client) Read(ctx context.Context, count int, fn func(Reading) error) error {
	if count < 0 {
		return fmt.Errorf("read: count must not be negative, got %d", count)
	}
	var args []any
	if count > 0 {
		args = append(args, int64(count))
	}
	items, err := c.d.Stream(ctx, "read", args...)
	if err != nil {
		return err
	}
	defer items.Close()
	for {
		var item map[string]any
		err := items.Next(&item)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		r, err := ParseReading(item)
		if err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
}
