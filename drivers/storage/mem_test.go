package storage

import (
	"context"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"
)

// patternReader yields n bytes of a repeating pattern without holding them in memory.
type patternReader struct{ left int64 }

func (r *patternReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	for i := range p {
		p[i] = byte(i*7 + int(r.left>>20))
	}
	r.left -= int64(len(p))
	return len(p), nil
}

// TestFlashMemoryBounded writes 256 MiB through the bus and the exporter (both in this process)
// and checks the heap stays far below the image size.
func TestFlashMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 256 MiB")
	}
	const size = 256 << 20
	const bound = 64 << 20
	s := startLocal(t, fileConfig)
	c := s.storage("disk")
	runtime.GC()

	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	res, err := c.Write(context.Background(), &patternReader{left: size}, WriteOptions{Size: size})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if res.Written != size {
		t.Fatalf("written: got %d, want %d", res.Written, size)
	}
	t.Logf("peak heap in use while writing %d MiB: %.1f MiB", size>>20, float64(peak)/(1<<20))
	if peak > bound {
		t.Fatalf("peak heap in use: got %d MiB, want under %d MiB", peak>>20, bound>>20)
	}
}
