package fileserver

import (
	"context"
	"fmt"
	"io"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/client/remote"
)

// Client is the typed client of a jsn.fileserver.v1 driver.
type Client struct{ d remote.Driver }

// NewClient returns a file server client calling the driver d.
func NewClient(d remote.Driver) *Client { return &Client{d: d} }

// Put uploads what r yields as name and returns once the exporter has stored it.
func (c *Client) Put(ctx context.Context, name string, r io.Reader) (FileInfo, error) {
	s, err := c.d.Open(ctx, "put", name)
	if err != nil {
		return FileInfo{}, err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	if _, err := io.Copy(s, r); err != nil {
		return FileInfo{}, c.ctxErr(ctx, "put", err)
	}
	if err := s.CloseWrite(); err != nil {
		return FileInfo{}, c.ctxErr(ctx, "put", err)
	}
	b, err := io.ReadAll(io.LimitReader(s, 64<<10))
	if err != nil {
		return FileInfo{}, c.ctxErr(ctx, "put", err)
	}
	var m map[string]any
	if err := wire.Unmarshal(b, &m); err != nil {
		return FileInfo{}, fmt.Errorf("put: bad reply from the exporter: %w", err)
	}
	return ParseFileInfo(m)
}

func (c *Client) ctxErr(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", op, context.Cause(ctx))
	}
	return err
}

// Get writes the file's content to w and returns the bytes written.
func (c *Client) Get(ctx context.Context, name string, w io.Writer) (int64, error) {
	s, err := c.d.Open(ctx, "get", name)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	_ = s.CloseWrite()
	n, err := io.Copy(w, s)
	if err != nil {
		return n, c.ctxErr(ctx, "get", err)
	}
	return n, nil
}

// List returns the served files.
func (c *Client) List(ctx context.Context) ([]FileInfo, error) {
	v, err := c.d.Call(ctx, "list")
	if err != nil {
		return nil, err
	}
	items, ok := v.([]any)
	if !ok && v != nil {
		return nil, fmt.Errorf("list: want a list, got %T", v)
	}
	out := make([]FileInfo, 0, len(items))
	for _, it := range items {
		f, err := ParseFileInfo(it)
		if err != nil {
			return nil, fmt.Errorf("list: %w", err)
		}
		out = append(out, f)
	}
	return out, nil
}

// Delete removes a served file.
func (c *Client) Delete(ctx context.Context, name string) error {
	_, err := c.d.Call(ctx, "delete", name)
	return err
}

// URL is the URL the device fetches name from.
func (c *Client) URL(ctx context.Context, name string) (string, error) {
	var s string
	err := c.d.CallInto(ctx, "url", &s, name)
	return s, err
}
