package serial

import (
	"io"
	"sync"
)

// loopback is the device of a loop:// url (pyserial's loop://): every byte written is read
// back. Writes never block on the reader: they queue (the reader goroutine drains the queue
// into the ring all the time).
type loopback struct {
	mu     sync.Mutex
	cond   *sync.Cond
	buf    []byte
	closed bool
}

func newLoopback() *loopback {
	l := &loopback{}
	l.cond = sync.NewCond(&l.mu)
	return l
}

func (l *loopback) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.buf) == 0 && !l.closed {
		l.cond.Wait()
	}
	if len(l.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, l.buf)
	l.buf = l.buf[n:]
	return n, nil
}

func (l *loopback) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, io.ErrClosedPipe
	}
	l.buf = append(l.buf, p...)
	l.cond.Broadcast()
	return len(p), nil
}

func (l *loopback) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.cond.Broadcast()
	return nil
}
