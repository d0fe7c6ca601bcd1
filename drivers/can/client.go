package can

import (
	"context"
	"errors"
	"io"
	"time"

	"jsn.dev/jsn/client/remote"
)

// Client is the typed client of a jsn.can.v1 driver.
type Client struct{ d remote.Driver }

// NewClient returns a CAN client calling the driver d.
func NewClient(d remote.Driver) *Client { return &Client{d: d} }

// Send transmits one frame.
func (c *Client) Send(ctx context.Context, f Frame) error {
	m := f.Map()
	delete(m, "time_ns")
	_, err := c.d.Call(ctx, "send", m)
	return err
}

// Channel returns the bus's interface name.
func (c *Client) Channel(ctx context.Context) (string, error) {
	var s string
	err := c.d.CallInto(ctx, "channel", &s)
	return s, err
}

// Recv returns the next frame that passes filters (candump syntax, "" for all); a timeout of 0
// waits until ctx ends.
func (c *Client) Recv(ctx context.Context, timeout time.Duration, filters string) (Frame, error) {
	var item map[string]any
	if err := c.d.CallInto(ctx, "recv", &item, int64(timeout), filters); err != nil {
		return Frame{}, err
	}
	return ParseFrameMap(item)
}

// Dump calls fn for every received frame that passes filters, count of them or until ctx ends
// (count 0); it returns nil then, or fn's error. Frames sent before the stream is open may not
// arrive.
func (c *Client) Dump(ctx context.Context, filters string, count int64, fn func(Frame) error) error {
	items, err := c.d.Stream(ctx, "dump", filters, count)
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
		f, err := ParseFrameMap(item)
		if err != nil {
			return err
		}
		if err := fn(f); err != nil {
			return err
		}
	}
}

// IsoTPClient is the typed client of a jsn.isotp.v1 driver.
type IsoTPClient struct{ d remote.Driver }

// NewIsoTPClient returns an ISO-TP client calling the driver d.
func NewIsoTPClient(d remote.Driver) *IsoTPClient { return &IsoTPClient{d: d} }

// Send sends one message.
func (c *IsoTPClient) Send(ctx context.Context, data []byte) error {
	_, err := c.d.Call(ctx, "send", data)
	return err
}

// Recv returns the next message; a timeout of 0 waits until ctx ends.
func (c *IsoTPClient) Recv(ctx context.Context, timeout time.Duration) ([]byte, error) {
	var b []byte
	err := c.d.CallInto(ctx, "recv", &b, int64(timeout))
	return b, err
}
