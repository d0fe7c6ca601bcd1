package network

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"jsn.dev/jsn/drivers/drivertest"
	"jsn.dev/jsn/internal/testkit"
)

// packetForward runs forwardPacket on a loopback UDP socket in front of the UDP driver d,
// counting the streams it opens. Cleanup stops it and checks it returned nil.
func packetForward(t *testing.T, d *UDP, idle time.Duration) (addr string, streams func() []*drivertest.Conn) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var opened []*drivertest.Conn
	dial := func(ctx context.Context) (duplex, error) {
		c, err := drivertest.OpenStream(ctx, d, "connect")
		if err == nil {
			mu.Lock()
			opened = append(opened, c)
			mu.Unlock()
		}
		return c, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- forwardPacket(ctx, pc, dial, idle, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("forwardPacket after cancel: got %v, want nil", err)
		}
	})
	return pc.LocalAddr().String(), func() []*drivertest.Conn {
		mu.Lock()
		defer mu.Unlock()
		return append([]*drivertest.Conn(nil), opened...)
	}
}

// dialUDP is a local peer of the forwarder.
func dialUDP(t *testing.T, addr string) *net.UDPConn {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.UDPConn)
}

// roundTrip sends p from c and checks the same datagram comes back.
func roundTrip(t *testing.T, c *net.UDPConn, p []byte) {
	t.Helper()
	if _, err := c.Write(p); err != nil {
		t.Fatalf("send %d bytes: %v", len(p), err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1<<16)
	n, err := c.Read(buf)
	if err != nil || !bytes.Equal(buf[:n], p) {
		t.Fatalf("send %d bytes: got %d bytes back, %v", len(p), n, err)
	}
}

func TestForwardPacket(t *testing.T) {
	srv := udpEcho(t)
	d := newUDP(t, srv.port())
	addr, streams := packetForward(t, d, time.Minute)

	a, b := dialUDP(t, addr), dialUDP(t, addr)
	for _, size := range []int{1, 1000, 65000} {
		roundTrip(t, a, random(size))
		roundTrip(t, b, random(size))
	}
	if got := len(streams()); got != 2 {
		t.Fatalf("streams: got %d, want 2 (one per local peer)", got)
	}
	if got := srv.peerCount(); got != 2 {
		t.Fatalf("server peers: got %d, want 2 (one socket per stream)", got)
	}
}

func TestForwardPacketIdle(t *testing.T) {
	srv := udpEcho(t)
	d := newUDP(t, srv.port())
	addr, streams := packetForward(t, d, 50*time.Millisecond)
	a := dialUDP(t, addr)
	roundTrip(t, a, []byte("first"))
	first := streams()[0]
	testkit.CheckFor(t, 30*time.Second, func() error {
		select {
		case <-first.Done():
			return nil
		default:
			return fmt.Errorf("the idle peer's stream has not ended")
		}
	})
	// The peer's next datagram opens a new stream (a new server-side socket).
	roundTrip(t, a, []byte("again"))
	if got := len(streams()); got != 2 {
		t.Fatalf("streams: got %d, want 2", got)
	}
	if got := srv.peerCount(); got != 2 {
		t.Fatalf("server peers: got %d, want a new socket after expiry", got)
	}
}

func TestForwardPacketClosedPort(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	d := newUDP(t, port)
	addr, streams := packetForward(t, d, time.Minute)
	a := dialUDP(t, addr)
	// Each failed stream is dropped; the forwarder keeps running and tries again.
	testkit.CheckFor(t, 30*time.Second, func() error {
		a.Write([]byte("anyone?"))
		time.Sleep(5 * time.Millisecond)
		if n := len(streams()); n < 2 {
			return fmt.Errorf("got %d streams, want a second one after the first failed", n)
		}
		return nil
	})
}
