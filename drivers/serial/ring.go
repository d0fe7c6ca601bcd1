package serial

import (
	"sync"
	"time"
)

// Chunks written within mergeWindow of a chunk's start are merged into it, up to mergeMax bytes:
// the ring then holds about one chunk per second of output, so its bookkeeping stays small
// next to the bytes, and `log --since` has a granularity of mergeWindow.
const (
	mergeWindow = time.Second
	mergeMax    = 64 << 10
)

// chunk is output received between start and end.
type chunk struct {
	start, end time.Time
	b          []byte
}

// ring is a bounded, timestamped record of a device's output: the newest max bytes.
type ring struct {
	mu     sync.Mutex
	max    int     // capacity in bytes; fixed
	size   int     // bytes held; guarded by mu
	total  int64   // bytes ever written; guarded by mu
	chunks []chunk // oldest first; guarded by mu
}

func newRing(max int) *ring { return &ring{max: max} }

// clear drops everything recorded (the count of bytes ever written stays).
func (r *ring) clear() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.chunks, r.size = nil, 0
}

// write records b, received at t, dropping the oldest bytes beyond capacity.
func (r *ring) write(t time.Time, b []byte) {
	if len(b) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total += int64(len(b))
	if len(b) >= r.max {
		b = b[len(b)-r.max:]
		clear(r.chunks)
		r.chunks, r.size = r.chunks[:0], 0
	}
	if n := len(r.chunks); n > 0 && t.Sub(r.chunks[n-1].start) < mergeWindow && len(r.chunks[n-1].b)+len(b) <= mergeMax {
		last := &r.chunks[n-1]
		last.b = append(last.b, b...)
		last.end = t
	} else {
		r.chunks = append(r.chunks, chunk{start: t, end: t, b: append(make([]byte, 0, max(len(b), 4096)), b...)})
	}
	r.size += len(b)
	for r.size > r.max {
		first := &r.chunks[0]
		if excess := r.size - r.max; excess < len(first.b) {
			first.b = first.b[excess:]
			r.size -= excess
			break
		}
		r.size -= len(first.b)
		r.chunks[0] = chunk{}
		r.chunks = r.chunks[1:]
	}
}

// read returns the bytes received at or after since (all of them for the zero time), at most
// the newest limit bytes of them.
func (r *ring) read(since time.Time, limit int) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := len(r.chunks)
	n := 0
	for i > 0 && !r.chunks[i-1].end.Before(since) && n < limit {
		i--
		n += len(r.chunks[i].b)
	}
	out := make([]byte, 0, n)
	for _, c := range r.chunks[i:] {
		out = append(out, c.b...)
	}
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out
}

// stats returns the bytes held and the bytes ever written.
func (r *ring) stats() (held int, total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.size, r.total
}

// tail returns the newest limit bytes held and the count of bytes ever written, together.
func (r *ring) tail(limit int) ([]byte, int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := min(r.size, limit)
	out := make([]byte, n)
	i := n
	for k := len(r.chunks) - 1; k >= 0 && i > 0; k-- {
		b := r.chunks[k].b
		if len(b) > i {
			b = b[len(b)-i:]
		}
		i -= copy(out[i-len(b):i], b)
	}
	return out, r.total
}
