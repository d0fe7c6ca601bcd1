package gpio

import (
	"context"
	"errors"
	"io"
	"time"

	"jsn.dev/jsn/client/remote"
)

// Client is the typed client of a jsn.gpio.v1 driver.
type Client struct{ d remote.Driver }

// NewClient returns a GPIO client calling the driver d.
func NewClient(d remote.Driver) *Client { return &Client{d: d} }

// Get returns the line's logical value (true = active).
func (c *Client) Get(ctx context.Context) (bool, error) {
	var v bool
	err := c.d.CallInto(ctx, "get", &v)
	return v, err
}

// Set drives an output line active or inactive.
func (c *Client) Set(ctx context.Context, active bool) error {
	_, err := c.d.Call(ctx, "set", active)
	return err
}

// Pulse drives an output active for width, then inactive; 0 uses the driver's default width.
func (c *Client) Pulse(ctx context.Context, width time.Duration) error {
	var err error
	if width == 0 {
		_, err = c.d.Call(ctx, "pulse")
	} else {
		_, err = c.d.Call(ctx, "pulse", int64(width))
	}
	return err
}

// WaitForEdge returns the next edge that passes filter; a timeout of 0 waits until ctx ends.
func (c *Client) WaitForEdge(ctx context.Context, filter Edge, timeout time.Duration) (Event, error) {
	args := []any{string(filter)}
	if timeout > 0 {
		args = append(args, int64(timeout))
	}
	var item map[string]any
	if err := c.d.CallInto(ctx, "wait_for_edge", &item, args...); err != nil {
		return Event{}, err
	}
	return ParseEvent(item)
}

// Watch calls fn for every edge of an input line that passes filter, until ctx ends (then it
// returns nil) or fn fails (then it returns fn's error).
func (c *Client) Watch(ctx context.Context, filter Edge, fn func(Event) error) error {
	items, err := c.d.Stream(ctx, "watch", string(filter))
	if err != nil {
		return err
	}
	defer items.Close()
	for {
		var item map[string]any
		err := items.Next(&item)
		if errors.Is(err, io.EOF) || (err != nil && ctx.Err() != nil) {
			return nil
		}
		if err != nil {
			return err
		}
		ev, err := ParseEvent(item)
		if err != nil {
			return err
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
}
