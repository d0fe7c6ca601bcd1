package video

import (
	"context"
	"errors"
	"io"

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

// Stream opens the screen's MJPEG stream (fps 0: the driver's default) and calls frame with
// each JPEG until frame returns an error (returned, unless it is ErrStop), ctx ends (nil) or
// the driver ends the stream.
func (c *Client) Stream(ctx context.Context, fps float64, frame func(jpeg []byte) error) error {
	var args []any
	if fps > 0 {
		args = append(args, fps)
	}
	s, err := c.d.Open(ctx, "stream", args...)
	if err != nil {
		return err
	}
	defer s.Close()
	fr := NewFrameReader(s, Boundary)
	for {
		f, err := fr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := frame(f); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
	}
}

// ErrStop, returned by a Stream callback, ends the stream without an error.
var ErrStop = errors.New("stop the stream")
