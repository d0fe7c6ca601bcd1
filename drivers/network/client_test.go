package network

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"sync"
	"testing"

	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/drivertest"
)

// TestForward runs the whole tunnel without a bus: local TCP client → Forward's listener →
// stream pair → TCP driver → loopback server.
func TestForward(t *testing.T) {
	tests := []struct {
		name   string
		handle func(*net.TCPConn)
		send   []byte
		want   []byte
	}{
		{"reply at EOF", replyAtEOF, []byte("abc"), []byte("got 3: ABC")},
		{"echo 3 MiB", echo, random(3 << 20), nil}, // nil: want what was sent
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, tt.handle)
			d := newTCP(t, srv.port())
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			dial := func(ctx context.Context) (duplex, error) {
				return drivertest.OpenStream(ctx, d, "connect")
			}
			go func() { done <- forward(ctx, ln, dial, nil) }()

			var wg sync.WaitGroup
			for i := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := net.Dial("tcp", ln.Addr().String())
					if err != nil {
						t.Error(err)
						return
					}
					defer c.Close()
					go func() {
						c.Write(tt.send)
						c.(*net.TCPConn).CloseWrite()
					}()
					got, err := io.ReadAll(c)
					want := tt.want
					if want == nil {
						want = tt.send
					}
					if err != nil || !bytes.Equal(got, want) {
						t.Errorf("conn %d: got %d bytes %.20q, %v, want %d bytes %.20q", i, len(got), got, err, len(want), want)
					}
				}()
			}
			wg.Wait()
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("forward after cancel: got %v, want nil", err)
			}
			if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
				t.Fatalf("listener still accepting after forward returned")
			}
		})
	}
}

// TestForwardCancelClosesConnections: an open tunnel ends when Forward's ctx ends.
func TestForwardCancelClosesConnections(t *testing.T) {
	srv := serve(t, func(c *net.TCPConn) { io.ReadAll(c) }) // never replies
	d := newTCP(t, srv.port())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- forward(ctx, ln, func(ctx context.Context) (duplex, error) {
			return drivertest.OpenStream(ctx, d, "connect")
		}, nil)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	checkAccepted(t, srv, 1)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("forward: got %v, want nil", err)
	}
	if _, err := io.ReadAll(c); err != nil && !isConnReset(err) {
		t.Fatalf("local read after cancel: got %v, want EOF or reset", err)
	}
}

func isConnReset(err error) bool {
	return err != nil && (bytes.Contains([]byte(err.Error()), []byte("reset")) ||
		bytes.Contains([]byte(err.Error()), []byte("closed")))
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

var _ driver.Stream = (*drivertest.Conn)(nil)
