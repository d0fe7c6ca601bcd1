package client

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
)

// TapOptions tune Watch.
type TapOptions struct {
	// History asks the exporter for the driver's recent output (a serial console's ring
	// buffer) and delivers it before the live bytes, with no gap and no duplicate.
	History bool
	// HistoryTimeout bounds the wait for the history reply (default 5 s); an exporter that does
	// not answer in time (or a driver that keeps none) gives live bytes only.
	HistoryTimeout time.Duration
}

// Watch calls fn with the output the driver at path of exporter broadcasts on its tap, until
// ctx ends; with o.History, first with its recent output. It needs no lease, only the right
// to watch the exporter's taps (a lease credential of that exporter, a client created with
// --watch, a viewer; anyone in a local session). A subscription the bus refuses is
// PERMISSION_DENIED at once. fn runs in one goroutine, in order.
func (c *Client) Watch(ctx context.Context, exporter, path string, o TapOptions, fn func(data []byte)) error {
	return watchTap(ctx, c.conn, exporter, path, o, fn)
}

// Watch is Client.Watch on the controller connection: with the identity's own watch rights
// (a viewer, or a client created with --watch).
func (c *Controller) Watch(ctx context.Context, exporter, path string, o TapOptions, fn func(data []byte)) error {
	return watchTap(ctx, c.conn, exporter, path, o, fn)
}

// TapHistory returns the recent output the driver at path of exporter keeps (at most the
// exporter's history limit) and the offset just past its last byte in the driver's output.
func (c *Client) TapHistory(ctx context.Context, exporter, path string) ([]byte, int64, error) {
	if err := checkTap(exporter, path); err != nil {
		return nil, 0, err
	}
	return tapHistory(ctx, c.conn, exporter, path)
}

func checkTap(exporter, path string) error {
	if err := wire.CheckName("exporter", exporter); err != nil {
		return wire.Errorf(wire.InvalidArgument, "tap: %v", err)
	}
	if !wire.ValidPath(path) {
		return wire.Errorf(wire.InvalidArgument, "tap: driver path %q is not valid", path)
	}
	return nil
}

// tapHistory asks exporter for the history of path's tap: the reply comes on a subject of the
// exporter's tap namespace (wire.HistoryReplySubject), which only those who may watch it receive.
func tapHistory(ctx context.Context, conn *bus.Conn, exporter, path string) ([]byte, int64, error) {
	reply := wire.HistoryReplySubject(exporter, randomToken())
	ch := make(chan *bus.Msg, 1)
	sub, err := conn.SubscribeAllowed(ctx, reply, func(m *bus.Msg) {
		select {
		case ch <- m:
		default:
		}
	})
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := conn.PublishRequest(wire.HistorySubject(exporter, path), reply, nil); err != nil {
		return nil, 0, err
	}
	select {
	case m := <-ch:
		if err := wire.ReplyError(m.Header); err != nil {
			return nil, 0, err
		}
		end, err := strconv.ParseInt(m.Header.Get(wire.HeaderTapOffset), 10, 64)
		if err != nil || end < int64(len(m.Data)) {
			return nil, 0, wire.Errorf(wire.Internal, "tap history of %s/%s: bad %s %q", exporter, path, wire.HeaderTapOffset, m.Header.Get(wire.HeaderTapOffset))
		}
		return m.Data, end, nil
	case <-ctx.Done():
		return nil, 0, wire.Errorf(wire.DeadlineExceeded, "tap history of %s/%s: no answer (an exporter too old to keep history, or not running): %v", exporter, path, ctx.Err())
	}
}

// tapOffset is the Jsn-Tap-Offset of a tap message, -1 if it has none.
func tapOffset(m *bus.Msg) int64 {
	v := m.Header.Get(wire.HeaderTapOffset)
	if v == "" {
		return -1
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

func watchTap(ctx context.Context, conn *bus.Conn, exporter, path string, o TapOptions, fn func([]byte)) error {
	if err := checkTap(exporter, path); err != nil {
		return err
	}
	var (
		mu      sync.Mutex
		ready   = !o.History // history delivered (or not wanted): live bytes go straight to fn
		end     = int64(-1)  // live bytes below this offset were in the history
		pending []*bus.Msg   // live messages received before the history
	)
	deliver := func(m *bus.Msg) { // with mu held
		data := m.Data
		if off := tapOffset(m); off >= 0 && end >= 0 {
			switch {
			case off+int64(len(data)) <= end:
				return // all of it was in the history
			case off < end:
				data = data[end-off:]
			}
		}
		if len(data) > 0 {
			fn(data)
		}
	}
	sub, err := conn.SubscribeAllowed(ctx, wire.TapSubject(exporter, path), func(m *bus.Msg) {
		mu.Lock()
		defer mu.Unlock()
		if !ready {
			pending = append(pending, m)
			return
		}
		deliver(m)
	})
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if o.History {
		d := o.HistoryTimeout
		if d <= 0 {
			d = 5 * time.Second
		}
		hctx, cancel := context.WithTimeout(ctx, d)
		data, hend, err := tapHistory(hctx, conn, exporter, path)
		cancel()
		var we *wire.Error
		switch {
		case err == nil:
		case errors.As(err, &we) && we.Code == wire.PermissionDenied:
			return err
		case ctx.Err() != nil:
			return nil
		default:
			// No history to be had (a driver that keeps none, an older exporter): live only.
			hend, data = -1, nil
		}
		mu.Lock()
		if len(data) > 0 {
			fn(data)
		}
		end = hend
		for _, m := range pending {
			deliver(m)
		}
		pending, ready = nil, true
		mu.Unlock()
	}
	<-ctx.Done()
	return nil
}
