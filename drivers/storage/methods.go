package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

// httpClient fetches write_url images. Keep-alives are off so no idle connection (and its
// goroutines) outlives a download.
var httpClient = &http.Client{Transport: &http.Transport{
	Proxy:                 http.ProxyFromEnvironment,
	DisableKeepAlives:     true,
	TLSHandshakeTimeout:   30 * time.Second,
	ResponseHeaderTimeout: time.Minute,
}}

// methods returns the jsn.storage.v1 method table served by s:
//
//	write([sha256 string], [size int], [cache bool]) <=> bytes
//	                                 upload an image; the reply is one msgpack Result map
//	write_url(url string, [sha256 string]) => progress…, result
//	write_cached(sha256 string) => progress…, result
//	has_image(sha256 string) -> bool
//	read() <=> bytes                 the storage's content
//	size() -> int                    bytes
func (s *store) methods() []driver.Method {
	return []driver.Method{
		{
			Name: "write", Kind: driver.KindByteStream,
			Doc: "upload an image (raw, gzip, xz, zstd or bzip2, by magic number) and write it; " +
				"after the client half-closes, the reply is one msgpack map {written, uploaded, sha256, format, cached}",
			Args: []driver.Arg{
				{Name: "sha256", Type: driver.TypeString, Optional: true, Doc: "expected SHA-256 of the uploaded (compressed) bytes"},
				{Name: "size", Type: driver.TypeInt, Optional: true, Doc: "number of bytes the client will upload"},
				{Name: "cache", Type: driver.TypeBool, Optional: true, Doc: "also keep the upload in the exporter's image cache"},
			},
			Bytes: s.write,
		},
		{
			Name: "write_url", Kind: driver.KindServerStream, Returns: driver.TypeAny,
			Doc: "download an image over HTTP(S) and write it, using the image cache when sha256 is given; " +
				"items {bytes, total} then {written, uploaded, sha256, format, cached}",
			Args: []driver.Arg{
				{Name: "url", Type: driver.TypeString, Doc: "http:// or https:// URL of the image"},
				{Name: "sha256", Type: driver.TypeString, Optional: true, Doc: "expected SHA-256 of the downloaded bytes"},
			},
			Stream: s.writeURL,
		},
		{
			Name: "write_cached", Kind: driver.KindServerStream, Returns: driver.TypeAny,
			Doc: "write an image from the exporter's cache; items {bytes, total} then {written, uploaded, sha256, format, cached}",
			Args: []driver.Arg{
				{Name: "sha256", Type: driver.TypeString, Doc: "SHA-256 of the cached image"},
			},
			Stream: s.writeCached,
		},
		{
			Name: "has_image", Kind: driver.KindCall, Returns: driver.TypeBool,
			Doc:  "whether the exporter's cache holds the image with this SHA-256",
			Args: []driver.Arg{{Name: "sha256", Type: driver.TypeString, Doc: "SHA-256 of the image as uploaded"}},
			Call: func(ctx context.Context, args driver.Args) (any, error) {
				sha, err := normSHA("has_image", args.String(0))
				if err != nil {
					return nil, err
				}
				has := s.cache.has(sha)
				if has {
					s.cache.touch(sha) // the client is about to use it: keep it through eviction
				}
				return has, nil
			},
		},
		{
			Name: "read", Kind: driver.KindByteStream,
			Doc:   "stream the storage's whole content to the client",
			Bytes: s.read,
		},
		{
			Name: "size", Kind: driver.KindCall, Returns: driver.TypeInt,
			Doc: "size of the storage in bytes",
			Call: func(ctx context.Context, _ driver.Args) (any, error) {
				ctx, end, err := s.begin(ctx, "size")
				if err != nil {
					return nil, err
				}
				defer end()
				_ = ctx
				return s.targetSize()
			},
		},
	}
}

func (s *store) write(ctx context.Context, args driver.Args, st driver.Stream) error {
	o := flashOptions{op: "write", size: -1, cache: args.Bool(2)}
	if args.Has(0) && args.String(0) != "" {
		sha, err := normSHA("write", args.String(0))
		if err != nil {
			return err
		}
		o.want = sha
	}
	if args.Has(1) {
		if o.size = args.Int(1); o.size < 0 {
			return wire.Errorf(wire.InvalidArgument, "write: size must not be negative, got %d", o.size)
		}
	}
	ctx, end, err := s.begin(ctx, "write")
	if err != nil {
		return err
	}
	defer end()
	res, err := s.flash(ctx, st, o)
	if err != nil {
		return err
	}
	b, err := wire.Marshal(res.Map())
	if err != nil {
		return wire.Errorf(wire.Internal, "write: %v", err)
	}
	_, err = st.Write(b)
	return err
}

func (s *store) read(ctx context.Context, _ driver.Args, st driver.Stream) error {
	ctx, end, err := s.begin(ctx, "read")
	if err != nil {
		return err
	}
	defer end()
	return s.dump(ctx, st)
}

// progressFunc returns a progress callback sending {bytes, total} at most every progressEvery,
// and the function sending the last one. Send errors end the transfer through ctx.
func progressFunc(total int64, send func(any) error, cancel context.CancelCauseFunc) (func(int64), func(int64)) {
	var last time.Time
	emit := func(n int64) {
		if err := send(map[string]any{"bytes": n, "total": total}); err != nil {
			cancel(err)
		}
	}
	return func(n int64) {
			if now := time.Now(); now.Sub(last) >= progressEvery {
				last = now
				emit(n)
			}
		}, func(n int64) {
			emit(n)
		}
}

func (s *store) writeURL(ctx context.Context, args driver.Args, send func(any) error) error {
	raw := args.String(0)
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return wire.Errorf(wire.InvalidArgument, "write_url: %q is not an http:// or https:// URL", raw)
	}
	var want string
	if args.Has(1) && args.String(1) != "" {
		if want, err = normSHA("write_url", args.String(1)); err != nil {
			return err
		}
	}
	if want != "" && s.cache.has(want) {
		s.log.Info("write_url: image in cache, not downloading", "url", u.Redacted(), "sha256", want)
		return s.writeFromCache(ctx, "write_url", want, send)
	}
	ctx, end, err := s.begin(ctx, "write_url")
	if err != nil {
		return err
	}
	defer end()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return wire.Errorf(wire.InvalidArgument, "write_url: %v", err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("write_url: %w", context.Cause(ctx))
		}
		return wire.Errorf(wire.Unavailable, "write_url: GET %s: %v", u.Redacted(), errors.Unwrap(err))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return wire.Errorf(wire.NotFound, "write_url: GET %s: %s", u.Redacted(), resp.Status)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return wire.Errorf(wire.PermissionDenied, "write_url: GET %s: %s", u.Redacted(), resp.Status)
	case resp.StatusCode/100 != 2:
		return wire.Errorf(wire.Unavailable, "write_url: GET %s: %s", u.Redacted(), resp.Status)
	}
	tick, final := progressFunc(resp.ContentLength, send, cancel)
	res, err := s.flash(ctx, resp.Body, flashOptions{op: "write_url", want: want, size: resp.ContentLength,
		cache: true, progress: tick})
	if err != nil {
		if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
			return c // the progress send failed: the client is gone
		}
		return err
	}
	final(res.Uploaded)
	end() // the storage is free before the client hears of the result
	return send(res.Map())
}

func (s *store) writeCached(ctx context.Context, args driver.Args, send func(any) error) error {
	sha, err := normSHA("write_cached", args.String(0))
	if err != nil {
		return err
	}
	return s.writeFromCache(ctx, "write_cached", sha, send)
}

// writeFromCache flashes the cached image sha, verifying its hash again on the way.
func (s *store) writeFromCache(ctx context.Context, op, sha string, send func(any) error) error {
	ctx, end, err := s.begin(ctx, op)
	if err != nil {
		return err
	}
	defer end()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	release := s.cache.acquire(sha)
	defer release()
	f, err := os.Open(s.cache.path(sha))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return wire.Errorf(wire.NotFound, "%s: no cached image with sha256 %s", op, sha)
		}
		return wire.Errorf(wire.Unavailable, "%s: %v", op, err)
	}
	defer f.Close()
	s.cache.touch(sha)
	total := int64(-1)
	if st, err := f.Stat(); err == nil {
		total = st.Size()
	}
	tick, final := progressFunc(total, send, cancel)
	res, err := s.flash(ctx, f, flashOptions{op: op, want: sha, size: total, progress: tick})
	if err != nil {
		if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
			return c
		}
		return err
	}
	res.Cached = true
	final(res.Uploaded)
	end() // the storage is free before the client hears of the result
	return send(res.Map())
}

// readAllLimit reads at most n bytes of r.
func readAllLimit(r io.Reader, n int64) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r, n))
}
