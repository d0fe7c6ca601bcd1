package network

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// benchMiB is how much each iteration of BenchmarkForwardThroughput moves.
const benchMiB = 32

// sinkServer is a loopback TCP server that reads a connection to its end, then answers with the
// byte count (8 bytes, big-endian) and closes.
func sinkServer(b testing.TB) (port int) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				n, _ := io.Copy(io.Discard, c)
				binary.Write(c, binary.BigEndian, uint64(n))
			}()
		}
	}()
	b.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// push sends size bytes to addr, half-closes and checks the sink's count.
func push(addr string, chunk []byte, size int) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	for sent := 0; sent < size; sent += len(chunk) {
		if _, err := c.Write(chunk); err != nil {
			return err
		}
	}
	c.(*net.TCPConn).CloseWrite()
	var n uint64
	if err := binary.Read(c, binary.BigEndian, &n); err != nil {
		return fmt.Errorf("read count: %w", err)
	}
	if n != uint64(size) {
		return fmt.Errorf("sink got %d bytes, want %d", n, size)
	}
	return nil
}

// BenchmarkForwardThroughput moves benchMiB MiB per iteration into a TCP sink, either directly
// over loopback ("direct") or through Client.Forward, the bus and network.TCP in a local
// exporter ("forward"), and reports MB/s.
func BenchmarkForwardThroughput(b *testing.B) {
	port := sinkServer(b)
	direct := fmt.Sprintf("127.0.0.1:%d", port)
	chunk := random(64 << 10)
	size := benchMiB << 20
	measure := func(b *testing.B, addr string) {
		b.SetBytes(int64(size))
		b.ResetTimer()
		start := time.Now()
		for range b.N {
			if err := push(addr, chunk, size); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(size)*float64(b.N)/time.Since(start).Seconds()/1e6, "MB/s")
	}
	b.Run("direct", func(b *testing.B) { measure(b, direct) })
	b.Run("forward", func(b *testing.B) {
		ex := startLocal(b, fmt.Sprintf("  network: {type: network.TCP, config: {host: 127.0.0.1, port: %d}}\n", port))
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- NewClient(ex.Driver("network")).Forward(ctx, ln) }()
		defer func() {
			cancel()
			<-done
		}()
		measure(b, ln.Addr().String())
	})
}
