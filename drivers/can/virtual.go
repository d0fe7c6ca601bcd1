package can

import (
	"context"
	"sync"
	"time"

	"jsn.dev/jsn/bus/wire"
)

// The virtual interface (python-can's "virtual"): an in-process bus per channel name. A frame
// sent by any driver on the channel reaches every listener on it, the sender's own included
// (as SocketCAN's loopback does for other sockets).

var vbuses struct {
	sync.Mutex
	m map[string]*vbus
}

type vbus struct {
	mu   sync.Mutex
	subs map[*vrecv]struct{}
}

func virtualBus(name string) *vbus {
	vbuses.Lock()
	defer vbuses.Unlock()
	if vbuses.m == nil {
		vbuses.m = map[string]*vbus{}
	}
	b := vbuses.m[name]
	if b == nil {
		b = &vbus{subs: map[*vrecv]struct{}{}}
		vbuses.m[name] = b
	}
	return b
}

func (b *vbus) send(f Frame) {
	f.Data = append([]byte(nil), f.Data...)
	f.Time = time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	for r := range b.subs {
		if !passes(r.filters, f) {
			continue
		}
		select {
		case r.ch <- f:
		default: // a listener that does not keep up loses frames, as a socket's queue would
		}
	}
}

func passes(fs []Filter, f Frame) bool {
	if len(fs) == 0 {
		return true
	}
	for _, fl := range fs {
		if fl.Match(f) {
			return true
		}
	}
	return false
}

type vrecv struct {
	b       *vbus
	filters []Filter
	ch      chan Frame
	once    sync.Once
	done    chan struct{}
}

func (b *vbus) listen(fs []Filter) *vrecv {
	r := &vrecv{b: b, filters: fs, ch: make(chan Frame, 1024), done: make(chan struct{})}
	b.mu.Lock()
	b.subs[r] = struct{}{}
	b.mu.Unlock()
	return r
}

func (r *vrecv) Recv(ctx context.Context) (Frame, error) {
	select {
	case <-ctx.Done():
		return Frame{}, ctx.Err()
	case <-r.done:
		return Frame{}, wire.Errorf(wire.Unavailable, "virtual CAN: listener closed")
	case f := <-r.ch:
		return f, nil
	}
}

func (r *vrecv) Close() error {
	r.once.Do(func() {
		r.b.mu.Lock()
		delete(r.b.subs, r)
		r.b.mu.Unlock()
		close(r.done)
	})
	return nil
}
