package opendal

import (
	"context"
	"fmt"
	"io"

	"jsn.dev/jsn/client/remote"
)

// Client is the typed client of a jsn.opendal.v1 driver.
type Client struct{ d remote.Driver }

// NewClient returns a client calling the driver d.
func NewClient(d remote.Driver) *Client { return &Client{d: d} }

// List returns the entries of the directory p ("" the root).
func (c *Client) List(ctx context.Context, p string) ([]Entry, error) {
	var out []Entry
	err := c.d.CallInto(ctx, "list", &out, p)
	return out, err
}

// Stat describes p.
func (c *Client) Stat(ctx context.Context, p string) (Entry, error) {
	var e Entry
	err := c.d.CallInto(ctx, "stat", &e, p)
	return e, err
}

// Delete deletes the file or empty directory p; RemoveAll a whole directory.
func (c *Client) Delete(ctx context.Context, p string) error {
	return c.d.CallInto(ctx, "delete", nil, p)
}

// RemoveAll deletes p and everything under it.
func (c *Client) RemoveAll(ctx context.Context, p string) error {
	return c.d.CallInto(ctx, "remove_all", nil, p)
}

// CreateDir makes the directory p and its parents.
func (c *Client) CreateDir(ctx context.Context, p string) error {
	return c.d.CallInto(ctx, "create_dir", nil, p)
}

// Hash returns the hex digest of p with algo (md5, sha1, sha256, sha512).
func (c *Client) Hash(ctx context.Context, p, algo string) (string, error) {
	var s string
	err := c.d.CallInto(ctx, "hash", &s, p, algo)
	return s, err
}

// Read copies the file p to w.
func (c *Client) Read(ctx context.Context, p string, w io.Writer) (int64, error) {
	s, err := c.d.Open(ctx, "read_stream", p)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	n, err := io.Copy(w, s)
	if err != nil {
		return n, fmt.Errorf("read %s: %w", p, err)
	}
	return n, nil
}

// Write writes the file p from r.
func (c *Client) Write(ctx context.Context, p string, r io.Reader) (int64, error) {
	s, err := c.d.Open(ctx, "write_stream", p)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	n, err := io.Copy(s, r)
	if err != nil {
		return n, fmt.Errorf("write %s: %w", p, err)
	}
	if err := s.CloseWrite(); err != nil {
		return n, err
	}
	// The driver ends the stream once the file is closed: its end (or error) is the result.
	if _, err := io.Copy(io.Discard, s); err != nil {
		return n, fmt.Errorf("write %s: %w", p, err)
	}
	return n, nil
}
