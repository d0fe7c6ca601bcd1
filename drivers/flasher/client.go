package flasher

import (
	"context"
	"fmt"
	"io"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/client/remote"
	"jsn.dev/jsn/drivers/fileserver"
)

// Client is the typed client of a jsn.flasher.v1 driver.
type Client struct{ d remote.Driver }

// NewClient returns a flasher client calling the driver d.
func NewClient(d remote.Driver) *Client { return &Client{d: d} }

// Upload stores the image r yields on the flasher's file server as name.
func (c *Client) Upload(ctx context.Context, name string, r io.Reader) (fileserver.FileInfo, error) {
	s, err := c.d.Open(ctx, "upload", name)
	if err != nil {
		return fileserver.FileInfo{}, err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	if _, err := io.Copy(s, r); err != nil {
		return fileserver.FileInfo{}, ctxErr(ctx, err)
	}
	if err := s.CloseWrite(); err != nil {
		return fileserver.FileInfo{}, ctxErr(ctx, err)
	}
	b, err := io.ReadAll(io.LimitReader(s, 64<<10))
	if err != nil {
		return fileserver.FileInfo{}, ctxErr(ctx, err)
	}
	var m map[string]any
	if err := wire.Unmarshal(b, &m); err != nil {
		return fileserver.FileInfo{}, fmt.Errorf("upload: bad reply from the exporter: %w", err)
	}
	return fileserver.ParseFileInfo(m)
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("upload: %w", context.Cause(ctx))
	}
	return err
}

// Flash writes the uploaded image name to target ("" = the default), calling progress with
// each step. reboot: nil = the driver's choice (reboot when it has power).
func (c *Client) Flash(ctx context.Context, name, target string, reboot *bool, progress func(Progress)) error {
	args := []any{name, nil, nil}
	if target != "" {
		args[1] = target
	}
	if reboot != nil {
		args[2] = *reboot
	}
	items, err := c.d.Stream(ctx, "flash", args...)
	if err != nil {
		return err
	}
	defer items.Close()
	for {
		var m map[string]any
		if err := items.Next(&m); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		p, err := ParseProgress(m)
		if err != nil {
			return err
		}
		if progress != nil {
			progress(p)
		}
	}
}

// ParseProgress decodes the wire form of a Progress.
func ParseProgress(m map[string]any) (Progress, error) {
	var p Progress
	var ok bool
	if p.Phase, ok = m["phase"].(string); !ok {
		return p, fmt.Errorf("parse progress: phase: want a string, got %T", m["phase"])
	}
	p.Command, _ = m["command"].(string)
	for key, dst := range map[string]*int64{"bytes": &p.Bytes, "total": &p.Total} {
		switch n := m[key].(type) {
		case int64:
			*dst = n
		case uint64:
			*dst = int64(n)
		case int8:
			*dst = int64(n)
		case int16:
			*dst = int64(n)
		case int32:
			*dst = int64(n)
		case uint8:
			*dst = int64(n)
		case uint16:
			*dst = int64(n)
		case uint32:
			*dst = int64(n)
		case nil:
		default:
			return p, fmt.Errorf("parse progress: %s: want an integer, got %T", key, m[key])
		}
		if *dst < 0 {
			return p, fmt.Errorf("parse progress: %s: negative", key)
		}
	}
	return p, nil
}
