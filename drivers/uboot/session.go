package uboot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/serial"
)

// MaxOutput bounds the output a session keeps (a command's output, the boot log before a
// prompt); more fails the operation.
const MaxOutput = 16 << 20

// pipeStream is the exporter's side of a console stream held by this package: the serial driver
// writes the device's output into it and reads the input to send from it.
type pipeStream struct {
	outR *io.PipeReader // what the session reads (device output)
	outW *io.PipeWriter // where the serial driver writes
	inR  *io.PipeReader // what the serial driver reads (input to the device)
	inW  *io.PipeWriter // where the session writes
}

func (p *pipeStream) Read(b []byte) (int, error)  { return p.inR.Read(b) }
func (p *pipeStream) Write(b []byte) (int, error) { return p.outW.Write(b) }
func (p *pipeStream) CloseWrite() error           { return p.outW.Close() }
func (p *pipeStream) Close() error {
	p.outW.CloseWithError(io.ErrClosedPipe)
	p.inR.CloseWithError(io.ErrClosedPipe)
	return nil
}

// session is one connection to the console: everything the device printed since it opened, and
// a way to type.
type session struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when the serial driver's Connect returned
	in     *io.PipeWriter
	out    *io.PipeReader
	tap    func([]byte) // sees every byte of output; may be nil

	mu      sync.Mutex
	buf     []byte        // output since the session opened; guarded by mu
	changed chan struct{} // closed and replaced when buf grows or err is set; guarded by mu
	err     error         // why output ended; guarded by mu
}

// open connects to the serial driver.
func open(ctx context.Context, dev serial.Device, tap func([]byte)) *session {
	outR, outW := io.Pipe()
	inR, inW := io.Pipe()
	ps := &pipeStream{outR: outR, outW: outW, inR: inR, inW: inW}
	cctx, cancel := context.WithCancel(ctx)
	s := &session{cancel: cancel, done: make(chan struct{}), in: inW, out: outR, tap: tap, changed: make(chan struct{})}
	connErr := make(chan error, 1)
	go func() {
		defer close(s.done)
		err := dev.Connect(cctx, ps)
		if err == nil {
			err = io.EOF
		}
		connErr <- err
		ps.Close()
	}()
	go func() {
		b := make([]byte, 32<<10)
		for {
			n, err := outR.Read(b)
			if n > 0 {
				if s.tap != nil {
					s.tap(b[:n])
				}
				s.mu.Lock()
				if len(s.buf)+n > MaxOutput {
					s.err = wire.Errorf(wire.FailedPrecondition, "console printed more than %d MiB", MaxOutput>>20)
				} else {
					s.buf = append(s.buf, b[:n]...)
				}
				close(s.changed)
				s.changed = make(chan struct{})
				s.mu.Unlock()
			}
			if err != nil {
				var cerr error
				select {
				case cerr = <-connErr:
				default:
					cerr = err
				}
				s.mu.Lock()
				if s.err == nil {
					s.err = cerr
				}
				close(s.changed)
				s.changed = make(chan struct{})
				s.mu.Unlock()
				return
			}
		}
	}()
	return s
}

// close ends the session and waits for the serial driver to let go.
func (s *session) close() {
	s.cancel()
	s.in.Close()
	s.out.CloseWithError(io.ErrClosedPipe)
	<-s.done
}

// send types b.
func (s *session) send(ctx context.Context, b []byte) error {
	errc := make(chan error, 1)
	go func() {
		_, err := s.in.Write(b)
		errc <- err
	}()
	select {
	case err := <-errc:
		if err != nil {
			return s.failure("type on the console", err)
		}
		return nil
	case <-ctx.Done():
		// The write goes on (or ends when the session closes); the input stays usable.
		return ctx.Err()
	}
}

// failure explains why the console stopped.
func (s *session) failure(op string, err error) error {
	s.mu.Lock()
	if s.err != nil {
		err = s.err
	}
	s.mu.Unlock()
	if c := wire.CodeOf(err); c != wire.Internal {
		return err
	}
	return wire.Errorf(wire.Unavailable, "%s: console: %v", op, err)
}

// len is how much output the session holds.
func (s *session) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.buf)
}

// since returns a copy of the output from offset on.
func (s *session) since(from int) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if from > len(s.buf) {
		from = len(s.buf)
	}
	return append([]byte(nil), s.buf[from:]...)
}

// wait waits until match finds what it looks for in the output from offset from on, and returns
// the offset (in the whole output) match returned. match gets the output from from on and returns
// the end of what it found, or -1.
func (s *session) wait(ctx context.Context, from int, what string, match func(b []byte) int) (int, error) {
	for {
		s.mu.Lock()
		b, ch, err := s.buf, s.changed, s.err
		s.mu.Unlock()
		if from > len(b) {
			from = len(b)
		}
		if i := match(b[from:]); i >= 0 {
			return from + i, nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = wire.Errorf(wire.Unavailable, "the console closed")
			}
			return 0, s.failure("wait for "+what, err)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, waitErr(ctx, what, tail(b[from:], 300))
		}
	}
}

func waitErr(ctx context.Context, what, seen string) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		if seen == "" {
			return wire.Errorf(wire.DeadlineExceeded, "no %s in time; the console printed nothing", what)
		}
		return wire.Errorf(wire.DeadlineExceeded, "no %s in time; the console's last output: %q", what, seen)
	}
	return fmt.Errorf("wait for %s: %w", what, context.Cause(ctx))
}

// tail is the last n bytes of b, as text.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(bytes.ToValidUTF8(b, []byte("?")))
}

// index is a match function finding sub.
func index(sub []byte) func(b []byte) int {
	return func(b []byte) int {
		if i := bytes.Index(b, sub); i >= 0 {
			return i + len(sub)
		}
		return -1
	}
}
