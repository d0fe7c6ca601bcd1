package exporter

import (
	"sync"
	"time"
)

// workers runs each submitted function at once on its own goroutine, reusing goroutines that
// are idle: a call never waits for another (a slow driver holds up nobody), and a warm
// goroutine's already-grown stack saves the stack copying a fresh goroutine pays on every call.
type workers struct {
	work chan func() // unbuffered: a send succeeds only if a worker is idle
	stop chan struct{}
	idle time.Duration // how long an idle worker waits for more work
	wg   sync.WaitGroup

	mu     sync.Mutex
	closed bool // guarded by mu; after close, run starts plain goroutines
}

func newWorkers(idle time.Duration) *workers {
	return &workers{work: make(chan func()), stop: make(chan struct{}), idle: idle}
}

// run runs fn now: on an idle worker, or on a new one.
func (w *workers) run(fn func()) {
	select {
	case w.work <- fn:
		return
	default:
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		go fn()
		return
	}
	w.wg.Add(1)
	go w.loop(fn)
}

func (w *workers) loop(fn func()) {
	defer w.wg.Done()
	fn()
	t := time.NewTimer(w.idle)
	defer t.Stop()
	for {
		select {
		case fn := <-w.work:
			fn()
			t.Reset(w.idle)
		case <-t.C:
			return
		case <-w.stop:
			return
		}
	}
}

// close ends the idle workers and waits for every worker to finish its work.
func (w *workers) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.stop)
	}
	w.mu.Unlock()
	w.wg.Wait()
}
