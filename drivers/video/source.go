package video

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"jsn.dev/jsn/bus/wire"
)

// source reads an MJPEG-over-HTTP server: the stream (multipart/x-mixed-replace of JPEGs) and an
// optional snapshot URL (a JPEG or a PNG). HTTP and UStreamer are made of one.
type source struct {
	client      *http.Client
	streamURL   string
	snapshotURL string // "" = the first frame of the stream
	name        string // for messages: the URL or "ustreamer"
}

// Frames sends every frame of the stream until ctx ends or the server ends the stream.
func (s *source) Frames(ctx context.Context, send func(jpeg []byte) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.streamURL, nil)
	if err != nil {
		return wire.Errorf(wire.Internal, "stream: %v", err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return wire.Errorf(wire.Unavailable, "stream: %s: %v", s.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return wire.Errorf(wire.Unavailable, "stream: %s: %s", s.name, resp.Status)
	}
	boundary, err := BoundaryOf(resp.Header.Get("Content-Type"))
	if err != nil {
		return wire.Errorf(wire.Unavailable, "stream: %s: %v", s.name, err)
	}
	body := bufio.NewReaderSize(resp.Body, 64<<10)
	fr := NewFrameReader(body, sniffBoundary(body, boundary))
	for {
		f, err := fr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return wire.Errorf(wire.Unavailable, "stream: %s: %v", s.name, err)
		}
		if err := send(f); err != nil {
			return nil
		}
	}
}

// sniffBoundary returns the boundary the body really uses: many MJPEG servers announce
// boundary=--x and then separate parts with "--x" instead of "----x".
func sniffBoundary(body *bufio.Reader, boundary string) string {
	head, _ := body.Peek(512)
	for _, line := range bytes.Split(head, []byte("\n")) {
		line = bytes.TrimRight(line, "\r")
		if !bytes.HasPrefix(line, []byte("--")) {
			continue
		}
		if string(line) == "--"+boundary {
			return boundary
		}
		if string(line) == boundary && strings.HasPrefix(boundary, "--") {
			return strings.TrimPrefix(boundary, "--")
		}
	}
	return boundary
}

// Snapshot returns the snapshot URL's image, or the stream's next frame, as a PNG.
func (s *source) Snapshot(ctx context.Context) ([]byte, error) {
	var img []byte
	if s.snapshotURL != "" {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.snapshotURL, nil)
		if err != nil {
			return nil, wire.Errorf(wire.Internal, "snapshot: %v", err)
		}
		resp, err := s.client.Do(req)
		if err != nil {
			return nil, wire.Errorf(wire.Unavailable, "snapshot: %s: %v", s.name, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, wire.Errorf(wire.Unavailable, "snapshot: %s: %s", s.name, resp.Status)
		}
		if img, err = io.ReadAll(io.LimitReader(resp.Body, MaxFrame+1)); err != nil {
			return nil, wire.Errorf(wire.Unavailable, "snapshot: %s: %v", s.name, err)
		}
		if len(img) > MaxFrame {
			return nil, wire.Errorf(wire.Unavailable, "snapshot: %s: more than %d bytes", s.name, MaxFrame)
		}
	} else {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		errFirst := fmt.Errorf("first frame")
		err := s.Frames(ctx, func(f []byte) error { img = f; return errFirst })
		if err != nil {
			return nil, err
		}
		if img == nil {
			return nil, wire.Errorf(wire.Unavailable, "snapshot: %s: the stream ended before its first frame", s.name)
		}
	}
	if bytes.HasPrefix(img, []byte("\x89PNG")) {
		if len(img) > MaxSnapshot {
			return nil, wire.Errorf(wire.Internal, "snapshot: a PNG of %d bytes, more than %d", len(img), MaxSnapshot)
		}
		return img, nil
	}
	png, err := JPEGToPNG(img)
	if err != nil {
		return nil, wire.Errorf(wire.Internal, "snapshot: %s: %v", s.name, err)
	}
	return png, nil
}
