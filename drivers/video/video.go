package video

import (
	"context"
	"fmt"
	"io"
	"time"

	"jsn.dev/jsn/bus/wire"

	"jsn.dev/jsn/drivers/driver"
)

// Interface is the name of the interface every video driver implements.
const Interface = "jsn.video.v1"

// MaxSnapshot bounds a snapshot so that it fits in one bus message.
const MaxSnapshot = 896 << 10

// Device is what a video driver implements; Methods turns it into the jsn.video.v1 method table.
type Device interface {
	// Snapshot returns a PNG image of the screen, at most MaxSnapshot bytes.
	Snapshot(ctx context.Context) ([]byte, error)
}

// Options tune the method table built by Methods. There is nothing to tune yet; the parameter
// keeps the shape every capability package shares, so adding a knob changes no caller.
type Options struct{}

// Streamer is implemented by devices with a frame stream of their own (an MJPEG source such as
// ustreamer or an IP camera). Frames calls send with each JPEG frame as it arrives, until ctx
// ends, send fails or the source ends. The others are streamed by taking snapshots.
type Streamer interface {
	Frames(ctx context.Context, send func(jpeg []byte) error) error
}

// Stream rates: a device without a stream of its own is snapshotted DefaultFPS times a second
// unless the client asks otherwise, at most MaxFPS.
const (
	DefaultFPS = 5
	MaxFPS     = 30
)

// Methods returns the jsn.video.v1 method table served by d:
//
//	snapshot() -> bytes          a PNG of the screen
//	stream([fps float]) <=> bytes  the screen as MJPEG: multipart parts (see WriteFrame)
func Methods(d Device, o Options) []driver.Method {
	return []driver.Method{{
		Name: "snapshot", Doc: "a PNG image of the screen", Kind: driver.KindCall, Returns: driver.TypeBytes,
		Call: func(ctx context.Context, _ driver.Args) (any, error) { return d.Snapshot(ctx) },
	}, {
		Name: "stream", Kind: driver.KindByteStream,
		Doc: "the screen as an MJPEG stream (multipart/x-mixed-replace parts, boundary " + Boundary + ")",
		Args: []driver.Arg{{Name: "fps", Type: driver.TypeFloat, Optional: true,
			Doc: fmt.Sprintf("frames a second when the device is snapshotted (default %d, at most %d); a native stream keeps its own rate", DefaultFPS, MaxFPS)}},
		Bytes: func(ctx context.Context, a driver.Args, s driver.Stream) error {
			fps := float64(DefaultFPS)
			if a.Has(0) {
				fps = a.Float(0)
				if !(fps > 0 && fps <= MaxFPS) {
					return wire.Errorf(wire.InvalidArgument, "stream: fps must be more than 0 and at most %d, got %v", MaxFPS, fps)
				}
			}
			return stream(ctx, d, fps, s)
		},
	}}
}

// stream writes d's frames to w as multipart parts until ctx ends or a write fails.
func stream(ctx context.Context, d Device, fps float64, w io.Writer) error {
	send := func(jpeg []byte) error { return WriteFrame(w, jpeg) }
	if st, ok := d.(Streamer); ok {
		err := st.Frames(ctx, send)
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / fps))
	defer tick.Stop()
	for {
		png, err := d.Snapshot(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		jpeg, err := PNGToJPEG(png)
		if err != nil {
			return wire.Errorf(wire.Internal, "stream: %v", err)
		}
		if err := send(jpeg); err != nil {
			return nil // the client went away
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
