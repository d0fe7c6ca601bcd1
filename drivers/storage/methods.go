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

// Write flashes the image read from r (see Device).
func (s *store) Write(ctx context.Context, r io.Reader, u Upload) (Result, error) {
	ctx, end, err := s.begin(ctx, "write")
	if err != nil {
		return Result{}, err
	}
	defer end()
	return s.flash(ctx, r, flashOptions{op: "write", want: u.SHA256, size: u.Size, cache: u.Cache})
}

// Read streams the storage's whole content to w.
func (s *store) Read(ctx context.Context, w io.Writer) error {
	ctx, end, err := s.begin(ctx, "read")
	if err != nil {
		return err
	}
	defer end()
	return s.dump(ctx, w)
}

// Size returns the size of the target in bytes.
func (s *store) Size(ctx context.Context) (int64, error) {
	_, end, err := s.begin(ctx, "size")
	if err != nil {
		return 0, err
	}
	defer end()
	return s.targetSize()
}

// HasImage reports whether the cache holds sha for the caller's lease holder, and touches it:
// the client is about to use it.
func (s *store) HasImage(ctx context.Context, sha string) (bool, error) {
	k := key(driver.Holder(ctx), sha)
	has := s.cache.has(k)
	if has {
		s.cache.touch(k) // keep it through eviction
	}
	return has, nil
}

// paced returns tick, which passes progress on at most every progressEvery, and final, which
// passes the last count on.
func paced(total int64, progress ProgressFunc) (tick, final func(n int64)) {
	var last time.Time
	tick = func(n int64) {
		if now := time.Now(); now.Sub(last) >= progressEvery {
			last = now
			progress(n, total)
		}
	}
	return tick, func(n int64) { progress(n, total) }
}

// WriteURL downloads the image at u and flashes it, from the cache when it holds sha.
func (s *store) WriteURL(ctx context.Context, u *url.URL, sha string, progress ProgressFunc) (Result, error) {
	if sha != "" && s.cache.has(key(driver.Holder(ctx), sha)) {
		s.log.Info("write_url: image in cache, not downloading", "url", u.Redacted(), "sha256", sha)
		return s.writeFromCache(ctx, "write_url", sha, progress)
	}
	ctx, end, err := s.begin(ctx, "write_url")
	if err != nil {
		return Result{}, err
	}
	defer end()

	if err := s.urls.checkHost(u.Hostname()); err != nil {
		return Result{}, wire.Errorf(wire.PermissionDenied, "write_url: %s: %v", u.Redacted(), err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Result{}, wire.Errorf(wire.InvalidArgument, "write_url: %v", err)
	}
	resp, err := s.urls.client().Do(req)
	if err != nil {
		var refused *errURLRefused
		switch {
		case ctx.Err() != nil:
			return Result{}, fmt.Errorf("write_url: %w", context.Cause(ctx))
		case errors.As(err, &refused):
			return Result{}, wire.Errorf(wire.PermissionDenied, "write_url: GET %s: %v", u.Redacted(), refused)
		}
		return Result{}, wire.Errorf(wire.Unavailable, "write_url: GET %s: %v", u.Redacted(), errors.Unwrap(err))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return Result{}, wire.Errorf(wire.NotFound, "write_url: GET %s: %s", u.Redacted(), resp.Status)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return Result{}, wire.Errorf(wire.PermissionDenied, "write_url: GET %s: %s", u.Redacted(), resp.Status)
	case resp.StatusCode/100 != 2:
		return Result{}, wire.Errorf(wire.Unavailable, "write_url: GET %s: %s", u.Redacted(), resp.Status)
	}
	tick, final := paced(resp.ContentLength, progress)
	res, err := s.flash(ctx, resp.Body, flashOptions{op: "write_url", want: sha, size: resp.ContentLength,
		cache: true, progress: tick})
	if err != nil {
		return res, err
	}
	final(res.Uploaded)
	return res, nil // the storage is free (end) before the client hears of the result
}

// WriteCached flashes the cached image sha.
func (s *store) WriteCached(ctx context.Context, sha string, progress ProgressFunc) (Result, error) {
	return s.writeFromCache(ctx, "write_cached", sha, progress)
}

// writeFromCache flashes the cached image sha, verifying its hash again on the way.
func (s *store) writeFromCache(ctx context.Context, op, sha string, progress ProgressFunc) (Result, error) {
	ctx, end, err := s.begin(ctx, op)
	if err != nil {
		return Result{}, err
	}
	defer end()
	k := key(driver.Holder(ctx), sha)
	release := s.cache.acquire(k)
	defer release()
	f, err := os.Open(s.cache.path(k))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Result{}, wire.Errorf(wire.NotFound, "%s: no cached image with sha256 %s", op, sha)
		}
		return Result{}, wire.Errorf(wire.Unavailable, "%s: %v", op, err)
	}
	defer f.Close()
	s.cache.touch(k)
	total := int64(-1)
	if st, err := f.Stat(); err == nil {
		total = st.Size()
	}
	tick, final := paced(total, progress)
	res, err := s.flash(ctx, f, flashOptions{op: op, want: sha, size: total, progress: tick})
	if err != nil {
		return res, err
	}
	res.Cached = true
	final(res.Uploaded)
	return res, nil
}

// readAllLimit reads at most n bytes of r.
func readAllLimit(r io.Reader, n int64) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r, n))
}
