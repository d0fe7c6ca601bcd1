package qemu

import (
	"context"

	"jsn.dev/jsn/client/remote"
)

// VideoClient is the typed client of a jsn.video.v1 driver.
type VideoClient struct{ d remote.Driver }

// NewVideoClient wraps a driver handle.
func NewVideoClient(d remote.Driver) *VideoClient { return &VideoClient{d: d} }

// Snapshot returns a PNG image of the screen.
func (c *VideoClient) Snapshot(ctx context.Context) ([]byte, error) {
	var b []byte
	if err := c.d.CallInto(ctx, "snapshot", &b); err != nil {
		return nil, err
	}
	return b, nil
}
