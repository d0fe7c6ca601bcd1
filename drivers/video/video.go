package video

import (
	"context"

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

// Methods returns the jsn.video.v1 method table served by d:
//
//	snapshot() -> bytes    a PNG of the screen
func Methods(d Device, o Options) []driver.Method {
	return []driver.Method{{
		Name: "snapshot", Doc: "a PNG image of the screen", Kind: driver.KindCall, Returns: driver.TypeBytes,
		Call: func(ctx context.Context, _ driver.Args) (any, error) { return d.Snapshot(ctx) },
	}}
}
