package network

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// duplex is a bidirectional byte stream with half-close: a *net.TCPConn, a driver.Stream, a
// client.ByteStream.
type duplex interface {
	io.Reader
	io.Writer
	CloseWrite() error
	Close() error
}

// bufSize is the copy buffer size of each direction of a tunnel. System calls are the largest
// cost of a tunnel (see docs/performance.md): 256 KiB reads and writes cut the CPU time jsn
// forward spends per GiB by 3-10% against 64 KiB ones (three A/B series; the throughput gain
// was lost in the noise), for 512 KiB of buffers per connection.
const bufSize = 256 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// Hiding ReadFrom/WriteTo makes io.CopyBuffer use our pooled buffer: *net.TCPConn's fallbacks
// allocate a fresh buffer on every call.
type readerOnly struct{ io.Reader }
type writerOnly struct{ io.Writer }

// splice copies a→b and b→a until both directions are done, carrying half-close: when one side's
// Read returns io.EOF, the other side gets CloseWrite. It returns nil when both directions ended
// cleanly. When ctx is done, or a direction fails, both sides are closed, which ends the other
// direction too; splice then returns context.Cause(ctx) or the first failure. It does not close a
// or b after a clean end: that is the caller's job.
func splice(ctx context.Context, aName string, a duplex, bName string, b duplex) error {
	var (
		mu    sync.Mutex
		first error // first failure; guarded by mu
		once  sync.Once
	)
	abort := func() {
		once.Do(func() {
			a.Close()
			b.Close()
		})
	}
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
		abort()
	}
	stopped := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(stopped)
		fail(context.Cause(ctx))
	})
	defer func() {
		if !stop() {
			<-stopped // the callback ran or is running: let it finish before we return
		}
	}()

	copyHalf := func(dst duplex, dstName string, src duplex, srcName string) {
		bp := bufPool.Get().(*[]byte)
		defer bufPool.Put(bp)
		_, err := io.CopyBuffer(writerOnly{dst}, readerOnly{src}, *bp)
		if err != nil {
			fail(fmt.Errorf("copy %s to %s: %w", srcName, dstName, err))
			return
		}
		if err := dst.CloseWrite(); err != nil {
			fail(fmt.Errorf("close-write %s: %w", dstName, err))
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		copyHalf(b, bName, a, aName)
	}()
	copyHalf(a, aName, b, bName)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	if ctx.Err() != nil && first != nil && !errors.Is(first, context.Cause(ctx)) {
		// The failure was a consequence of ctx ending (a closed socket): report the cause.
		return context.Cause(ctx)
	}
	return first
}
