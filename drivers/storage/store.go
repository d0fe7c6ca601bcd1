package storage

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

// bufSize is the copy buffer of every transfer; with the decoders' own state it bounds the
// memory a flash uses, whatever the image size.
const bufSize = 1 << 20

// progressEvery is the least time between two progress items of write_url and write_cached.
var progressEvery = 250 * time.Millisecond

// store is the storage engine shared by every driver of this package: one target path (a
// regular file or a block device), an image cache, and at most one operation at a time.
type store struct {
	path  string // target; absolute
	size  int64  // configured size of a file target; 0 = none
	cache cache
	urls  urlPolicy // where write_url may download from
	// inPlace makes a regular file target written in place, as a device is (for tests).
	inPlace bool
	log     *slog.Logger
	// gate, if set, says why storage access is refused now (a mux switched to the DUT) or "".
	// It is called with mu held.
	gate func(ctx context.Context) error

	mu   sync.Mutex
	busy string             // running operation, "" when idle; guarded by mu
	stop context.CancelFunc // cancels the running operation; guarded by mu
	done chan struct{}      // closed when the running operation ends; guarded by mu
}

// begin marks op as running. It fails with FAILED_PRECONDITION while another operation runs or
// the gate refuses. end must be called when op is over.
func (s *store) begin(ctx context.Context, op string) (context.Context, func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy != "" {
		return nil, nil, wire.Errorf(wire.FailedPrecondition, "%s: storage busy: %s in progress", op, s.busy)
	}
	if s.gate != nil {
		if err := s.gate(ctx); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", op, err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	s.busy, s.stop, s.done = op, cancel, make(chan struct{})
	done := s.done
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			cancel()
			s.mu.Lock()
			s.busy, s.stop, s.done = "", nil, nil
			s.mu.Unlock()
			close(done)
		})
	}, nil
}

// exclusive runs fn while no operation runs (mux switches), failing FAILED_PRECONDITION
// otherwise.
func (s *store) exclusive(op string, fn func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy != "" {
		return wire.Errorf(wire.FailedPrecondition, "%s: storage busy: %s in progress", op, s.busy)
	}
	return fn()
}

// cancel stops the running operation, if any, and waits for it until ctx ends.
func (s *store) cancel(ctx context.Context) error {
	s.mu.Lock()
	stop, done := s.stop, s.done
	s.mu.Unlock()
	if stop == nil {
		return nil
	}
	stop()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("reset: wait for running operation: %w", ctx.Err())
	}
}

// trimCache evicts cache entries down to cache_max and removes stale temporaries (of the cache,
// and the flash temporaries next to a file target that a stopped exporter left), logging what
// fails: the cache is an optimisation, never a reason to refuse service.
func (s *store) trimCache() {
	s.removeStaleTemps()
	if s.cache.dir == "" {
		return
	}
	if err := s.cache.evict(""); err != nil {
		s.log.Warn("image cache: evict", "err", err)
	}
}

// isDevice reports whether the target is a device node (written in place) rather than a file.
func (s *store) isDevice() bool {
	if s.inPlace {
		return true
	}
	st, err := os.Stat(s.path)
	return err == nil && st.Mode()&os.ModeDevice != 0
}

// ensure creates the target file with the configured size if it does not exist.
func (s *store) ensure() error {
	if _, err := os.Stat(s.path); err == nil || !errors.Is(err, os.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if err := f.Truncate(s.size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// targetSize returns the size of the target: a file's length or a device's capacity.
func (s *store) targetSize() (int64, error) {
	f, err := os.Open(s.path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, wire.Errorf(wire.NotFound, "size: %s does not exist", s.path)
		}
		return 0, wire.Errorf(wire.Unavailable, "size: %v", err)
	}
	defer f.Close()
	n, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, wire.Errorf(wire.Internal, "size: %v", err)
	}
	return n, nil
}

// source is the received side of a flash: it hashes and counts every byte read, copies them to
// tee (the cache) when set, and records read errors so they can be told from decoding errors.
//
// Receiving, hashing (and caching) and decompressing/writing each run on their own goroutine,
// connected by a few buffers, so a flash uses more than one core: SHA-256 alone costs about as
// much CPU as moving the bytes (docs/performance.md). start must be called before Read, and
// stop once the flash is over.
type source struct {
	r        io.Reader
	h        hash
	tee      io.Writer
	n        int64
	err      error         // first error of r other than io.EOF
	teeErr   error         // written by the hashing goroutine; read after the end
	progress func(n int64) // called after each read; may be nil

	free   chan []byte // empty buffers
	hashed chan chunk  // received and hashed, in order
	done   chan struct{}
	cur    chunk // being read by Read
	off    int
}

// chunk is a buffer of received bytes, or the end of the input (err set).
type chunk struct {
	b   []byte
	err error
}

const (
	sourceBufs    = 6
	sourceBufSize = 256 << 10
)

type hash interface {
	io.Writer
	Sum([]byte) []byte
}

func (s *source) start() {
	s.free = make(chan []byte, sourceBufs)
	for range sourceBufs {
		s.free <- make([]byte, sourceBufSize)
	}
	received := make(chan chunk, sourceBufs)
	s.hashed = make(chan chunk, sourceBufs)
	s.done = make(chan struct{})
	go s.receive(received)
	go s.hash(received)
}

// stop releases the goroutines; a receive blocked in r ends when r does (the stream is closed
// when the method returns).
func (s *source) stop() {
	if s.done == nil {
		return // never started (the target could not be opened)
	}
	select {
	case <-s.done:
	default:
		close(s.done)
	}
}

// receive reads r into free buffers until it ends.
func (s *source) receive(out chan<- chunk) {
	for {
		var b []byte
		select {
		case b = <-s.free:
		case <-s.done:
			return
		}
		n, err := io.ReadFull(s.r, b)
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		if n > 0 {
			select {
			case out <- chunk{b: b[:n]}:
			case <-s.done:
				return
			}
		}
		if err != nil {
			select {
			case out <- chunk{err: err}:
			case <-s.done:
			}
			return
		}
	}
}

// hash hashes (and caches) each received buffer and passes it on.
func (s *source) hash(in <-chan chunk) {
	for {
		var c chunk
		select {
		case c = <-in:
		case <-s.done:
			return
		}
		if c.err == nil {
			s.h.Write(c.b)
			if s.tee != nil && s.teeErr == nil {
				if _, werr := s.tee.Write(c.b); werr != nil {
					s.teeErr = werr
				}
			}
		}
		select {
		case s.hashed <- c:
		case <-s.done:
			return
		}
		if c.err != nil {
			return
		}
	}
}

func (s *source) Read(p []byte) (int, error) {
	for s.cur.b == nil || s.off == len(s.cur.b) {
		if s.cur.err != nil {
			return 0, s.cur.err
		}
		if s.cur.b != nil {
			s.free <- s.cur.b[:cap(s.cur.b)]
		}
		s.cur, s.off = <-s.hashed, 0
		if s.cur.err != nil {
			if s.cur.err != io.EOF && s.err == nil {
				s.err = s.cur.err
			}
			return 0, s.cur.err
		}
	}
	n := copy(p, s.cur.b[s.off:])
	s.off += n
	s.n += int64(n)
	if s.progress != nil {
		s.progress(s.n)
	}
	return n, nil
}

// sink records write errors of the target, and tells progress (if set) every journalEvery bytes.
type sink struct {
	w        io.Writer
	n        int64
	err      error
	progress func(n int64)
}

func (s *sink) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if s.progress != nil && (s.n+int64(n))/journalEvery > s.n/journalEvery {
		s.progress(s.n + int64(n))
	}
	s.n += int64(n)
	if err != nil && s.err == nil {
		s.err = err
	}
	return n, err
}

// ctxReader fails reads once ctx is done, so a long copy stops promptly.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, context.Cause(c.ctx)
	}
	return c.r.Read(p)
}

// flashOptions are the inputs of one flash besides the bytes.
type flashOptions struct {
	op       string        // method name, for errors
	want     string        // expected sha256 of the received bytes (normalised), "" = any
	size     int64         // expected count of received bytes, -1 = unknown
	cache    bool          // store the received bytes in the cache
	progress func(n int64) // received bytes so far; may be nil
}

// flash writes the image read from r (compressed or not) to the target. Nothing reports
// success before the data is on stable storage; on failure a file target is unchanged.
func (s *store) flash(ctx context.Context, r io.Reader, o flashOptions) (res Result, err error) {
	op := o.op
	src := &source{r: ctxReader{ctx, r}, h: sha256.New(), progress: o.progress}
	defer src.stop()
	var cacheTmp *os.File
	var capped *capWriter // the cache's side of the tee
	if o.cache {
		if cacheTmp, err = s.cache.create(); err != nil {
			return res, wire.Errorf(wire.Unavailable, "%s: %v", op, err)
		}
		defer func() {
			if cacheTmp != nil {
				discard(cacheTmp)
			}
		}()
		capped = &capWriter{w: cacheTmp, max: s.cache.max}
		src.tee = capped
	}

	out, commit, abort, err := s.openTarget(op)
	if err != nil {
		return res, err
	}
	var j *journal // written in place: what the target holds is recorded while it changes
	if s.isDevice() {
		j = s.startJournal(o.size)
		if prev := j.previous; prev != nil {
			res.Note = "replaced the incomplete content " + prev.what()
		}
	}
	defer func() {
		if err != nil {
			abort()
			if j != nil {
				j.failed(err)
				err = fmt.Errorf("%w; the content of %s is now incomplete (state() says so until a flash completes)", err, s.path)
			}
		}
	}()

	src.start()
	br := bufio.NewReaderSize(src, 64<<10)
	buf := make([]byte, bufSize)
	dec, format, release, err := Decompress(br)
	res.Format = format
	if err == nil {
		defer release()
		w := &sink{w: out}
		if j != nil {
			w.progress = j.progress
		}
		_, err = io.CopyBuffer(w, readerOnly{dec}, buf)
		res.Written = w.n
		if err == nil {
			// Hash what follows the compressed stream (padding) too: it was uploaded.
			_, err = io.CopyBuffer(io.Discard, br, buf)
		}
		if err != nil && w.err != nil {
			return res, writeError(op, s.path, w.err)
		}
	}
	if err != nil {
		switch {
		case src.err != nil:
			return res, fmt.Errorf("%s: receive image: %w", op, src.err)
		case ctx.Err() != nil:
			return res, fmt.Errorf("%s: %w", op, context.Cause(ctx))
		case errors.Is(err, io.EOF):
			err = io.ErrUnexpectedEOF
		}
		return res, wire.Errorf(wire.InvalidArgument, "%s: image is not valid %s (truncated or corrupt): %v", op, format, err)
	}
	res.Uploaded = src.n
	res.SHA256 = hex.EncodeToString(src.h.Sum(nil))
	if o.size >= 0 && src.n != o.size {
		return res, wire.Errorf(wire.InvalidArgument, "%s: received %d bytes, want %d (upload truncated)", op, src.n, o.size)
	}
	if o.want != "" && res.SHA256 != o.want {
		return res, wire.Errorf(wire.InvalidArgument, "%s: sha256 mismatch: got %s, want %s", op, res.SHA256, o.want)
	}
	if src.teeErr != nil {
		return res, wire.Errorf(wire.Unavailable, "%s: cache: %v", op, src.teeErr)
	}
	if err := commit(res.Written); err != nil {
		return res, writeError(op, s.path, err)
	}
	if j != nil {
		j.complete()
	}
	switch {
	case cacheTmp != nil && capped.over:
		s.log.Info("image not cached: larger than cache_max", "sha256", res.SHA256,
			"bytes", res.Uploaded, "cache_max", s.cache.max)
	case cacheTmp != nil:
		tmp := cacheTmp
		cacheTmp = nil
		if cerr := s.cache.commit(tmp, key(driver.Holder(ctx), res.SHA256)); cerr != nil {
			// The image is flashed; only the cache failed. Say so in the log, not as a failure.
			s.log.Warn("image flashed but not cached", "err", cerr)
		} else {
			res.Cached = true
		}
	}
	s.log.Info("image written", "op", op, "bytes", res.Written, "uploaded", res.Uploaded,
		"format", string(res.Format), "sha256", res.SHA256)
	if o.cache && res.Cached {
		if eerr := s.cache.evict(key(driver.Holder(ctx), res.SHA256)); eerr != nil {
			s.log.Warn("image cache: evict", "err", eerr)
		}
	}
	return res, nil
}

// writeError turns a target write error into a wire error with a useful code.
func writeError(op, path string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return wire.Errorf(wire.FailedPrecondition, "%s: %s: no space left (image larger than the storage?): %v", op, path, err)
	case errors.Is(err, os.ErrPermission):
		return wire.Errorf(wire.PermissionDenied, "%s: %v", op, err)
	}
	return wire.Errorf(wire.Unavailable, "%s: write %s: %v", op, path, err)
}

// openTarget opens the target for a flash. A device (or an existing device path) is written in
// place; a file target gets a temporary file next to it that commit syncs and renames over it,
// padded to the configured size. abort discards what was written.
func (s *store) openTarget(op string) (w io.Writer, commit func(written int64) error, abort func(), err error) {
	if s.isDevice() {
		f, err := os.OpenFile(s.path, os.O_WRONLY, 0)
		if err != nil {
			return nil, nil, nil, openError(op, err)
		}
		return &writeback{f: f}, func(int64) error {
				err := f.Sync()
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				return err
			}, func() {
				f.Close()
			}, nil
	}
	dir, base := filepath.Split(s.path)
	mode := os.FileMode(0o644)
	if st, err := os.Stat(s.path); err == nil {
		mode = st.Mode().Perm()
	}
	tmp, err := os.CreateTemp(dir, "."+base+flashTemp+"*")
	if err != nil {
		return nil, nil, nil, openError(op, err)
	}
	// Locked while it is being written: removeStaleTemps takes only those of writers gone.
	_ = syscall.Flock(int(tmp.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	abort = func() { discard(tmp) }
	commit = func(written int64) error {
		err := func() error {
			if s.size > written {
				if err := tmp.Truncate(s.size); err != nil {
					return err
				}
			}
			if err := tmp.Chmod(mode); err != nil {
				return err
			}
			if err := tmp.Sync(); err != nil {
				return err
			}
			if err := tmp.Close(); err != nil {
				return err
			}
			if err := os.Rename(tmp.Name(), s.path); err != nil {
				return err
			}
			return syncDir(dir)
		}()
		if err != nil {
			discard(tmp)
		}
		return err
	}
	return &writeback{f: tmp}, commit, abort, nil
}

func openError(op string, err error) error {
	if errors.Is(err, os.ErrPermission) {
		return wire.Errorf(wire.PermissionDenied, "%s: %v", op, err)
	}
	return wire.Errorf(wire.Unavailable, "%s: %v", op, err)
}

// syncDir fsyncs a directory so a rename in it is durable.
func syncDir(dir string) error {
	if dir == "" {
		dir = "."
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}

// dump copies the target's content to w.
func (s *store) dump(ctx context.Context, w io.Writer) error {
	f, err := os.Open(s.path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return wire.Errorf(wire.NotFound, "read: %s does not exist", s.path)
		}
		return openError("read", err)
	}
	defer f.Close()
	buf := make([]byte, bufSize)
	if _, err := io.CopyBuffer(writerOnly{w}, readerOnly{ctxReader{ctx, f}}, buf); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("read: %w", context.Cause(ctx))
		}
		return fmt.Errorf("read: %w", err)
	}
	return nil
}

// Hiding ReadFrom/WriteTo makes io.CopyBuffer use our fixed buffer.
type readerOnly struct{ io.Reader }
type writerOnly struct{ io.Writer }
