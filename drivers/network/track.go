package network

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"jsn.dev/jsn/bus/wire"
)

// errReset is the cause given to the connections Reset and Close end.
var errReset = errors.New("connection closed by driver reset")

// tracker keeps the running connect handlers of a driver so Reset and Close can end them. The
// zero value is ready to use.
type tracker struct {
	mu    sync.Mutex
	conns map[*tracked]struct{} // running connect handlers; guarded by mu
}

// tracked is one running connect handler.
type tracked struct {
	cancel context.CancelCauseFunc // ends the connection
	done   chan struct{}           // closed when the handler returns
}

// track registers a handler: the returned ctx ends with errReset when the driver is reset or
// closed; the handler calls done when it returns.
func (t *tracker) track(ctx context.Context) (_ context.Context, done func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	tr := &tracked{cancel: cancel, done: make(chan struct{})}
	t.mu.Lock()
	if t.conns == nil {
		t.conns = map[*tracked]struct{}{}
	}
	t.conns[tr] = struct{}{}
	t.mu.Unlock()
	return ctx, func() {
		cancel(nil)
		t.mu.Lock()
		delete(t.conns, tr)
		t.mu.Unlock()
		close(tr.done)
	}
}

// reset ends every running connection and waits (at most until ctx ends) for their handlers.
func (t *tracker) reset(ctx context.Context) error {
	for _, c := range t.closeAll() {
		select {
		case <-c.done:
		case <-ctx.Done():
			return fmt.Errorf("reset: wait for connections: %w", ctx.Err())
		}
	}
	return nil
}

// close ends every running connection and waits for their handlers.
func (t *tracker) close() {
	for _, c := range t.closeAll() {
		<-c.done
	}
}

// closeAll ends every running connection and returns them.
func (t *tracker) closeAll() []*tracked {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*tracked
	for c := range t.conns {
		c.cancel(errReset)
		out = append(out, c)
	}
	return out
}

// dialError is the error of a connect whose dial failed: UNAVAILABLE, unless ctx ended first
// (then its cause, UNAVAILABLE too for a driver reset).
func dialError(ctx context.Context, addr string, err error) error {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errReset):
		return wire.Errorf(wire.Unavailable, "connect %s: %w", addr, cause)
	case cause != nil:
		return fmt.Errorf("connect %s: %w", addr, cause)
	}
	return wire.Errorf(wire.Unavailable, "connect %s: %w", addr, err)
}
