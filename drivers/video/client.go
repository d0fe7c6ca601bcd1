package video

import (
	"context"

	"jsn.dev/jsn/client/remote"
)

// Client is the typed client of a jsn.video.v1 driver.
type Client struct{ d remote.Driver }

// NewClient returns a video client calling the driver d.
func NewClient(d remote.Driver) *Client { return &Client{d: d} }

// Snapshot returns a PNG image of the screen.
func (c *Client) Snapshot(ctx context.Context) ([]byte, error) {
	var b []byte
	if err := c.d.CallInto(ctx, "snapshot", &b); err != nil {
		return nil, err
	}
	return b, nil
}
