package drivertest

import (
	"errors"
	"io"
	"sync"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

// ErrReset is what Read and Write return on one end of a Pipe after the other end was closed
// before finishing cleanly. It matches wire.ErrUnavailable, as a reset stream does in the client.
var ErrReset = &wire.Error{Code: wire.Unavailable, Message: "stream reset by peer"}

// errWriteAfterFIN is returned by Write after CloseWrite on the same end.
var errWriteAfterFIN = errors.New("drivertest: write after CloseWrite")

// window is how many bytes one direction buffers before Write blocks, like a bus stream's credit.
const window = 256 << 10

// half is one direction of a Pipe: bytes written at one end and read at the other.
type half struct {
	mu   sync.Mutex
	cond sync.Cond // signalled on every state change; L is &mu
	buf  []byte    // unread bytes; guarded by mu
	fin  bool      // the writer half-closed; guarded by mu
	rerr error     // set when the reader must fail (writer reset, or reader closed); guarded by mu
	werr error     // set when the writer must fail (reader gone, or writer closed); guarded by mu
}

func newHalf() *half {
	h := &half{}
	h.cond.L = &h.mu
	return h
}

func (h *half) read(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for len(h.buf) == 0 && !h.fin && h.rerr == nil {
		h.cond.Wait()
	}
	if h.rerr != nil {
		return 0, h.rerr
	}
	if len(h.buf) == 0 {
		return 0, io.EOF // fin and drained
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := copy(p, h.buf)
	h.buf = h.buf[n:]
	if len(h.buf) == 0 {
		h.buf = h.buf[:0:0] // let the backing array go
	}
	h.cond.Broadcast()
	return n, nil
}

func (h *half) write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for {
		if h.werr != nil {
			return n, h.werr
		}
		if h.fin {
			return n, errWriteAfterFIN
		}
		if n == len(p) {
			return n, nil
		}
		if room := window - len(h.buf); room > 0 {
			k := min(room, len(p)-n)
			h.buf = append(h.buf, p[n:n+k]...)
			n += k
			h.cond.Broadcast()
			continue
		}
		h.cond.Wait()
	}
}

// closeWrite marks the writer's FIN. It is idempotent.
func (h *half) closeWrite() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.werr != nil {
		return h.werr
	}
	h.fin = true
	h.cond.Broadcast()
	return nil
}

// writerClosed is the writing end going away: a reset for the reader unless it sent FIN.
func (h *half) writerClosed(reason error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.werr == nil {
		h.werr = io.ErrClosedPipe
	}
	if !h.fin && h.rerr == nil {
		h.rerr = reason
		h.buf = nil
	}
	h.cond.Broadcast()
}

// readerClosed is the reading end going away: its own reads fail, the writer's writes fail.
func (h *half) readerClosed(own, peer error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rerr == nil {
		h.rerr = own
	}
	if h.werr == nil {
		h.werr = peer
	}
	h.buf = nil
	h.cond.Broadcast()
}

// End is one end of a Pipe. It implements driver.Stream (and therefore client.ByteStream).
type End struct {
	in   *half // what this end reads
	out  *half // what this end writes
	once sync.Once
}

// Pipe returns the two ends of an in-memory bidirectional byte stream, like a bus byte stream
// between the exporter (a driver's Bytes handler) and a client.
//
// Each direction buffers up to 256 KiB; a Write blocks while the buffer is full. CloseWrite sends
// FIN: the other end reads the pending bytes, then io.EOF; writing after CloseWrite fails. Close
// ends both directions: Read and Write on the closed end return io.ErrClosedPipe; on the other
// end, Write fails with ErrReset and Read fails with ErrReset unless the closed end had sent FIN
// (then it reads the pending bytes and io.EOF). Read, Write, CloseWrite and Close may be called
// concurrently. Pipe starts no goroutines.
func Pipe() (exporterSide, clientSide driver.Stream) {
	a, b := newHalf(), newHalf()
	return &End{in: a, out: b}, &End{in: b, out: a}
}

// Read reads bytes written by the other end; io.EOF after its CloseWrite.
func (e *End) Read(p []byte) (int, error) { return e.in.read(p) }

// Write writes p entirely, blocking while the other end has not read enough.
func (e *End) Write(p []byte) (int, error) { return e.out.write(p) }

// CloseWrite half-closes: the other end reads io.EOF after the pending bytes.
func (e *End) CloseWrite() error { return e.out.closeWrite() }

// Close ends the stream in both directions; see Pipe. It is idempotent.
func (e *End) Close() error {
	e.once.Do(func() {
		e.out.writerClosed(ErrReset)
		e.in.readerClosed(io.ErrClosedPipe, ErrReset)
	})
	return nil
}

var _ driver.Stream = (*End)(nil)
