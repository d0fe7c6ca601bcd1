package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/client/remote"
)

// Client is the typed client of a jsn.storage.v1 or jsn.storagemux.v1 driver.
type Client struct {
	d remote.Driver
}

// NewClient returns a storage client calling the driver d.
func NewClient(d remote.Driver) *Client { return &Client{d: d} }

// WriteOptions tune Write.
type WriteOptions struct {
	SHA256   string           // expected SHA-256 of the bytes uploaded; "" = not checked
	Size     int64            // bytes r yields, checked by the exporter; 0 = unknown
	Cache    bool             // ask the exporter to keep the upload in its image cache
	Progress func(sent int64) // called after each chunk sent; may be nil
}

// Write uploads the image r yields (raw or compressed: the exporter decompresses by magic
// number) and returns once the exporter has written and synced it. If ctx ends first, the
// stream is reset and the exporter discards the write.
func (c *Client) Write(ctx context.Context, r io.Reader, o WriteOptions) (Result, error) {
	args := []any{nil, nil, nil}
	if o.SHA256 != "" {
		args[0] = o.SHA256
	}
	if o.Size > 0 {
		args[1] = o.Size
	}
	if o.Cache {
		args[2] = true
	}
	s, err := c.d.Open(ctx, "write", args...)
	if err != nil {
		return Result{}, err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()

	buf := make([]byte, bufSize)
	var sent int64
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			if _, err := s.Write(buf[:n]); err != nil {
				return Result{}, c.streamErr(ctx, "write", err)
			}
			sent += int64(n)
			if o.Progress != nil {
				o.Progress(sent)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return Result{}, fmt.Errorf("write: read image: %w", rerr)
		}
	}
	if err := s.CloseWrite(); err != nil {
		return Result{}, c.streamErr(ctx, "write", err)
	}
	b, err := io.ReadAll(io.LimitReader(s, 64<<10))
	if err != nil {
		return Result{}, c.streamErr(ctx, "write", err)
	}
	var m map[string]any
	if err := wire.Unmarshal(b, &m); err != nil {
		return Result{}, fmt.Errorf("write: bad reply from the exporter: %w", err)
	}
	return ParseResult(m)
}

// streamErr prefers ctx's error when ctx ending caused err.
func (c *Client) streamErr(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", op, context.Cause(ctx))
	}
	return err
}

// WriteURL makes the exporter download the image at url and write it. With sha256 the download is
// verified, and skipped when the exporter's cache already holds that image.
func (c *Client) WriteURL(ctx context.Context, url, sha256 string, progress ProgressFunc) (Result, error) {
	args := []any{url}
	if sha256 != "" {
		args = append(args, sha256)
	}
	return c.serverWrite(ctx, "write_url", args, progress)
}

// WriteCached writes the image with this SHA-256 from the exporter's cache.
func (c *Client) WriteCached(ctx context.Context, sha256 string, progress ProgressFunc) (Result, error) {
	return c.serverWrite(ctx, "write_cached", []any{sha256}, progress)
}

func (c *Client) serverWrite(ctx context.Context, method string, args []any, progress ProgressFunc) (Result, error) {
	items, err := c.d.Stream(ctx, method, args...)
	if err != nil {
		return Result{}, err
	}
	defer items.Close()
	for {
		var m map[string]any
		if err := items.Next(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return Result{}, fmt.Errorf("%s: the exporter ended without a result", method)
			}
			return Result{}, c.streamErr(ctx, method, err)
		}
		if _, done := m["written"]; done {
			res, err := ParseResult(m)
			if err != nil {
				return res, err
			}
			// The stream ends right after the result; an error instead means it did not count.
			var extra any
			if err := items.Next(&extra); !errors.Is(err, io.EOF) {
				if err == nil {
					err = fmt.Errorf("%s: unexpected item after the result", method)
				}
				return Result{}, c.streamErr(ctx, method, err)
			}
			return res, nil
		}
		if progress != nil {
			n, _ := toInt(m["bytes"])
			t, ok := toInt(m["total"])
			if !ok {
				t = -1
			}
			progress(n, t)
		}
	}
}

// HasImage reports whether the exporter's cache holds the image with this SHA-256.
func (c *Client) HasImage(ctx context.Context, sha256 string) (bool, error) {
	var ok bool
	err := c.d.CallInto(ctx, "has_image", &ok, sha256)
	return ok, err
}

// Read copies the storage's content to w and returns the bytes copied.
func (c *Client) Read(ctx context.Context, w io.Writer, progress func(n int64)) (int64, error) {
	s, err := c.d.Open(ctx, "read")
	if err != nil {
		return 0, err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	_ = s.CloseWrite() // nothing to send
	buf := make([]byte, bufSize)
	var n int64
	for {
		k, rerr := s.Read(buf)
		if k > 0 {
			if _, err := w.Write(buf[:k]); err != nil {
				return n, fmt.Errorf("read: %w", err)
			}
			n += int64(k)
			if progress != nil {
				progress(n)
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, c.streamErr(ctx, "read", rerr)
		}
	}
}

// Size returns the size of the storage in bytes.
func (c *Client) Size(ctx context.Context) (int64, error) {
	var n int64
	err := c.d.CallInto(ctx, "size", &n)
	return n, err
}

// State says whether the storage's content is complete ("complete"), or what an interrupted
// flash left ("incomplete: …").
func (c *Client) State(ctx context.Context) (string, error) {
	var s string
	err := c.d.CallInto(ctx, "state", &s)
	return s, err
}

// Host switches a mux's storage to the exporter.
func (c *Client) Host(ctx context.Context) error { _, err := c.d.Call(ctx, "host"); return err }

// DUT switches a mux's storage to the device under test.
func (c *Client) DUT(ctx context.Context) error { _, err := c.d.Call(ctx, "dut"); return err }

// Off disconnects a mux's storage from the DUT.
func (c *Client) Off(ctx context.Context) error { _, err := c.d.Call(ctx, "off"); return err }

// Status returns where a mux's storage is connected.
func (c *Client) Status(ctx context.Context) (Side, error) {
	var s string
	err := c.d.CallInto(ctx, "status", &s)
	return Side(s), err
}

// Phase is a step of FlashFile, for progress reports.
type Phase string

// FlashFile phases.
const (
	PhaseHash   Phase = "hash"   // hashing the local file
	PhaseUpload Phase = "upload" // uploading it
	PhaseCached Phase = "cached" // the exporter writes its cached copy
)

// FlashOptions tune FlashFile.
type FlashOptions struct {
	SHA256   string // the file's known SHA-256: skips hashing it (and is verified by the exporter)
	Cache    bool   // keep the upload in the exporter's cache
	Progress func(p Phase, done, total int64)
}

// FlashFile writes the image file at path: it hashes the file (unless o.SHA256 is given), and
// when the exporter's cache holds that image it writes the cached copy instead of uploading.
func (c *Client) FlashFile(ctx context.Context, path string, o FlashOptions) (Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return Result{}, fmt.Errorf("flash: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Result{}, fmt.Errorf("flash: %w", err)
	}
	size := st.Size()
	report := func(p Phase) func(done, total int64) {
		return func(done, total int64) {
			if o.Progress != nil {
				o.Progress(p, done, total)
			}
		}
	}
	sha := o.SHA256
	if sha == "" {
		if sha, err = HashFile(ctx, f, size, report(PhaseHash)); err != nil {
			return Result{}, fmt.Errorf("flash: hash %s: %w", path, err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return Result{}, fmt.Errorf("flash: %w", err)
		}
	}
	if has, err := c.HasImage(ctx, sha); err == nil && has {
		return c.WriteCached(ctx, sha, ProgressFunc(report(PhaseCached)))
	} else if err != nil && !errors.Is(err, wire.ErrInvalidArgument) {
		return Result{}, err
	}
	up := report(PhaseUpload)
	return c.Write(ctx, f, WriteOptions{SHA256: sha, Size: size, Cache: o.Cache,
		Progress: func(n int64) { up(n, size) }})
}

// HashFile returns the hex SHA-256 of what r yields, reporting progress against size.
func HashFile(ctx context.Context, r io.Reader, size int64, progress func(done, total int64)) (string, error) {
	h := sha256.New()
	buf := make([]byte, bufSize)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		k, err := r.Read(buf)
		h.Write(buf[:k])
		n += int64(k)
		if k > 0 && progress != nil {
			progress(n, size)
		}
		if err == io.EOF {
			return hex.EncodeToString(h.Sum(nil)), nil
		}
		if err != nil {
			return "", err
		}
	}
}

// ParseResult converts a decoded result map (write's reply, the last item of write_url and
// write_cached) into a Result.
func ParseResult(m map[string]any) (Result, error) {
	var r Result
	var ok bool
	if r.Written, ok = toInt(m["written"]); !ok {
		return r, fmt.Errorf("parse result: missing or non-integer %q in %v", "written", m)
	}
	r.Uploaded, _ = toInt(m["uploaded"])
	r.SHA256, _ = m["sha256"].(string)
	f, _ := m["format"].(string)
	r.Format = Format(f)
	r.Cached, _ = m["cached"].(bool)
	r.Note, _ = m["note"].(string)
	return r, nil
}

func toInt(v any) (int64, bool) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if rv.Uint() > 1<<63-1 {
			return 0, false
		}
		return int64(rv.Uint()), true
	}
	return 0, false
}
