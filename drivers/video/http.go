package video

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"jsn.dev/jsn/drivers/driver"
)

func init() {
	driver.MustRegister(driver.Info{
		Type:      "video.HTTP",
		Interface: Interface,
		Doc:       "an MJPEG camera or capture server over HTTP",
		New:       NewHTTP,
		Aliases:   []string{"jumpstarter_driver_video.driver.HttpVideo"},
	})
}

// HTTP is the video.HTTP driver: a screen or camera served as MJPEG over HTTP (an IP camera, a
// capture box, mjpg-streamer, ustreamer on another host).
//
// Config:
//
//	url: http://capture.lab:8080/stream      # required: the multipart/x-mixed-replace stream
//	snapshot_url: http://capture.lab:8080/snapshot  # optional: one JPEG or PNG; default: the stream's next frame
//	timeout: 10s                             # connecting and the headers of each request
type HTTP struct {
	URL         string        `yaml:"url" jsn:"required"`
	SnapshotURL string        `yaml:"snapshot_url"`
	Timeout     time.Duration `yaml:"timeout"`

	src *source
}

// NewHTTP is the video.HTTP constructor: defaults only, no side effects.
func NewHTTP(env driver.Env) driver.Driver { return &HTTP{Timeout: 10 * time.Second} }

// Validate checks the URLs and the timeout.
func (h *HTTP) Validate() error {
	var errs []error
	for _, f := range []struct{ key, val string }{{"url", h.URL}, {"snapshot_url", h.SnapshotURL}} {
		if f.val == "" {
			continue
		}
		u, err := url.Parse(f.val)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, driver.FieldErrorf(f.key, "want an http:// or https:// URL, got %q", f.val))
		}
	}
	if h.Timeout <= 0 {
		errs = append(errs, driver.FieldErrorf("timeout", "must be positive, got %s", h.Timeout))
	}
	return errors.Join(errs...)
}

// Open makes the HTTP client; nothing is fetched yet.
func (h *HTTP) Open(ctx context.Context) error {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = h.Timeout
	h.src = &source{client: &http.Client{Transport: tr}, streamURL: h.URL, snapshotURL: h.SnapshotURL, name: h.URL}
	return nil
}

// Reset does nothing: streams of the ended lease are closed by the framework.
func (h *HTTP) Reset(ctx context.Context) error { return nil }

// Close drops idle connections.
func (h *HTTP) Close() error {
	if h.src != nil {
		h.src.client.CloseIdleConnections()
	}
	return nil
}

// Snapshot returns the snapshot URL's image or the stream's next frame, as a PNG.
func (h *HTTP) Snapshot(ctx context.Context) ([]byte, error) { return h.src.Snapshot(ctx) }

// Frames relays the stream's frames.
func (h *HTTP) Frames(ctx context.Context, send func([]byte) error) error {
	return h.src.Frames(ctx, send)
}

// Methods returns the jsn.video.v1 method table.
func (h *HTTP) Methods() []driver.Method { return Methods(h, Options{}) }

var (
	_ Device           = (*HTTP)(nil)
	_ Streamer         = (*HTTP)(nil)
	_ driver.Validator = (*HTTP)(nil)
)
