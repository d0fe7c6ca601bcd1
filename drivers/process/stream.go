package process

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/vmihailenco/msgpack/v5"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

// Stream windows: how many bytes of items or data each side may have in flight unacknowledged.
const (
	window   = 8 << 20   // the exporter grants the process this much at the start of a stream
	maxChunk = 512 << 10 // the largest DATA frame the exporter sends
)

// stream is the exporter's side of one server stream or byte stream with the process.
type stream struct {
	c  *conn
	id uint32

	mu       sync.Mutex
	q        []frame // ITEM, DATA, FIN, then RESULT or ERROR, in order
	queued   int64   // bytes of ITEM and DATA the process sent and we have not re-granted
	granted  int64   // credit we gave the process, minus what it used
	credit   int64   // bytes we may still send the process
	notify   chan struct{}
	creditCh chan struct{}
	ended    bool

	wantShm bool // a byte stream: ask for a shared memory slot
	slot    int  // 1 + its shared memory slot, 0 for none (set by register)
	shmPos  int  // the slot's cursor: where the program's next write lands (reader only)
	done    bool // cancel has run; guarded by c.mu
}

func newStream(c *conn) *stream {
	return &stream{c: c, notify: make(chan struct{}, 1), creditCh: make(chan struct{}, 1), granted: window}
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// receive queues an ITEM, DATA or FIN from the reader. It never blocks: the process may have
// at most the credit we granted in flight.
func (s *stream) receive(f frame) error {
	s.mu.Lock()
	if f.typ != frameFin {
		n := int64(len(f.body))
		if n > s.granted {
			s.mu.Unlock()
			return fmt.Errorf("%s frame of %d bytes on stream %d exceeds the %d bytes of credit granted", f.typ, n, s.id, s.granted)
		}
		s.granted -= n
	}
	s.q = append(s.q, f)
	s.mu.Unlock()
	poke(s.notify)
	return nil
}

// push queues the end of the stream (RESULT or ERROR).
func (s *stream) push(f frame) {
	s.mu.Lock()
	if !s.ended {
		s.ended = true
		s.q = append(s.q, f)
	}
	s.mu.Unlock()
	poke(s.notify)
	poke(s.creditCh)
}

func (s *stream) addCredit(n uint64) {
	s.mu.Lock()
	s.credit += int64(min(n, 1<<40))
	s.mu.Unlock()
	poke(s.creditCh)
}

// next waits for the next queued frame.
func (s *stream) next(ctx context.Context) (frame, error) {
	for {
		s.mu.Lock()
		if len(s.q) > 0 {
			f := s.q[0]
			s.q[0] = frame{}
			s.q = s.q[1:]
			s.mu.Unlock()
			return f, nil
		}
		s.mu.Unlock()
		select {
		case <-s.notify:
		case <-ctx.Done():
			return frame{}, ctx.Err()
		}
	}
}

// consumed re-grants credit for n bytes delivered, in batches.
func (s *stream) consumed(n int) {
	s.mu.Lock()
	s.queued += int64(n)
	give := int64(0)
	if s.queued >= window/4 {
		give, s.queued = s.queued, 0
		s.granted += give
	}
	s.mu.Unlock()
	if give > 0 {
		_ = s.c.send(frameCredit, s.id, encodeUint(uint64(give)))
	}
}

// openStream starts a STREAM call and grants the process its initial window; a byte stream
// asks for a shared memory slot first. The caller calls cancel when done with the stream.
func (c *conn) openStream(method string, args []byte, byteStream bool) (*stream, error) {
	s := newStream(c)
	s.wantShm = byteStream
	id, _, err := c.register(nil, s)
	if err != nil {
		return nil, err
	}
	s.id = id
	err = c.sendCall(frameStream, id, method, args)
	if err == nil && s.slot != 0 {
		err = c.send(frameShm, id, encodeUint(uint64(s.slot-1)))
	}
	if err == nil {
		err = c.send(frameCredit, id, encodeUint(window))
	}
	if err != nil {
		s.cancel()
		return nil, err
	}
	return s, nil
}

// cancel tells the process to stop the stream and forgets it; the exporter reads nothing more
// of its shared memory slot.
func (s *stream) cancel() {
	s.c.mu.Lock()
	_, live := s.c.streams[s.id]
	delete(s.c.streams, s.id)
	if s.slot != 0 && !s.done {
		s.done = true
		s.c.releaseSlot(s.id)
		s.c.shmUsers.Done()
	}
	s.c.mu.Unlock()
	if live {
		_ = s.c.send(frameCancel, s.id, nil)
	}
}

// serveItems runs a server stream: every ITEM goes to send as it came, msgpack untouched.
func (p *Process) serveItems(ctx context.Context, method string, args []byte, send func(any) error) error {
	c, err := p.current(method)
	if err != nil {
		return err
	}
	s, err := c.openStream(method, args, false)
	if err != nil {
		return p.callErr(method, err)
	}
	defer s.cancel()
	for {
		f, err := s.next(ctx)
		if err != nil {
			return err
		}
		switch f.typ {
		case frameItem:
			if err := send(msgpack.RawMessage(f.body)); err != nil {
				return err
			}
			s.consumed(len(f.body))
		case frameResult:
			return nil
		case frameError:
			return p.callErr(method, decodeErr(f.body))
		default:
			return p.callErr(method, wire.Errorf(wire.Internal, "driver process sent %s on a server stream", f.typ))
		}
	}
}

// serveBytes runs a byte stream: client bytes go to the process as DATA within its credit,
// DATA from the process goes to the client.
func (p *Process) serveBytes(ctx context.Context, method string, args []byte, bs driver.Stream) error {
	c, err := p.current(method)
	if err != nil {
		return err
	}
	s, err := c.openStream(method, args, true)
	if err != nil {
		return p.callErr(method, err)
	}
	defer s.cancel()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	upErr := make(chan error, 1)
	go func() { upErr <- s.upload(ctx, bs) }()
	for {
		f, err := s.next(ctx)
		if err != nil {
			return err
		}
		switch f.typ {
		case frameData:
			_, err := bs.Write(f.body)
			s.consumed(len(f.body))
			if !f.shm {
				putData(f.body)
			}
			if err != nil {
				return err
			}
		case frameFin:
			if err := bs.CloseWrite(); err != nil {
				return err
			}
		case frameResult:
			return nil
		case frameError:
			return p.callErr(method, decodeErr(f.body))
		default:
			return p.callErr(method, wire.Errorf(wire.Internal, "driver process sent %s on a byte stream", f.typ))
		}
		select {
		case err := <-upErr:
			if err != nil {
				return err
			}
		default:
		}
	}
}

// upload copies the client's bytes to the process as DATA frames, never more than its credit,
// then FIN at the client's end of stream.
func (s *stream) upload(ctx context.Context, r io.Reader) error {
	buf := make([]byte, maxChunk)
	for {
		n, err := r.Read(buf)
		data := buf[:n]
		for len(data) > 0 {
			s.mu.Lock()
			avail, ended := s.credit, s.ended
			s.mu.Unlock()
			if ended {
				return nil
			}
			if avail <= 0 {
				select {
				case <-s.creditCh:
					continue
				case <-ctx.Done():
					return nil
				}
			}
			chunk := data[:min(int64(len(data)), avail)]
			s.mu.Lock()
			s.credit -= int64(len(chunk))
			s.mu.Unlock()
			if werr := s.c.send(frameData, s.id, chunk); werr != nil {
				return nil // the connection failed: the stream ends with its error
			}
			data = data[len(chunk):]
		}
		if errors.Is(err, io.EOF) {
			_ = s.c.send(frameFin, s.id, nil)
			return nil
		}
		if err != nil {
			return nil // reset or lease end: the handler's context says why
		}
	}
}

func encodeUint(n uint64) []byte {
	b := make([]byte, 9)
	b[0] = 0xcf
	binary.BigEndian.PutUint64(b[1:], n)
	return b
}

// decodeUint decodes a msgpack non-negative integer.
func decodeUint(b []byte) (uint64, error) {
	var v any
	if err := wire.Unmarshal(b, &v); err != nil {
		return 0, err
	}
	switch n := v.(type) {
	case int64:
		if n >= 0 {
			return uint64(n), nil
		}
	case uint64:
		return n, nil
	}
	return 0, fmt.Errorf("want a non-negative integer, got %v", v)
}

// appendStr appends s as a msgpack string.
func appendStr(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n < 256:
		b = append(b, 0xd9, byte(n))
	case n < 65536:
		b = append(b, 0xda, byte(n>>8), byte(n))
	default:
		b = append(b, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, s...)
}
