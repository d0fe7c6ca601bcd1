package network

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/drivertest"
)

// udpServer is a loopback UDP echo server that remembers which peers it heard from.
type udpServer struct {
	pc    net.PacketConn
	mu    sync.Mutex
	peers map[string]int // datagrams per peer address; guarded by mu
}

func udpEcho(t *testing.T) *udpServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &udpServer{pc: pc, peers: map[string]int{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1<<16)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.peers[from.String()]++
			s.mu.Unlock()
			pc.WriteTo(buf[:n], from)
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return s
}

func (s *udpServer) port() int { return s.pc.LocalAddr().(*net.UDPAddr).Port }

func (s *udpServer) peerCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.peers)
}

func newUDP(t *testing.T, port int) *UDP {
	t.Helper()
	d := NewUDP(drivertest.Env("dns")).(*UDP)
	d.Host, d.Port = "127.0.0.1", port
	if err := d.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if err := d.Open(context.Background()); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestUDPRoundTrip(t *testing.T) {
	srv := udpEcho(t)
	d := newUDP(t, srv.port())
	c, err := drivertest.OpenStream(context.Background(), d, "connect")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, MaxDatagram)
	for _, size := range []int{1, 1000, 65000, 0, MaxDatagram} {
		p := random(size)
		if err := WriteDatagram(c, p); err != nil {
			t.Fatalf("%d bytes: send: %v", size, err)
		}
		n, err := ReadDatagram(c, buf)
		if err != nil || !bytes.Equal(buf[:n], p) {
			t.Fatalf("%d bytes: got %d bytes, %v, want the datagram back", size, n, err)
		}
	}
	// Several datagrams in flight keep their boundaries.
	var want [][]byte
	for i := range 8 {
		p := bytes.Repeat([]byte{byte('a' + i)}, 100*(i+1))
		want = append(want, p)
		if err := WriteDatagram(c, p); err != nil {
			t.Fatal(err)
		}
	}
	for i, p := range want {
		n, err := ReadDatagram(c, buf)
		if err != nil || !bytes.Equal(buf[:n], p) {
			t.Fatalf("burst %d: got %q (%d bytes), %v, want %d bytes of %c", i, buf[:min(n, 10)], n, err, len(p), p[0])
		}
	}
	// Half-close ends the stream cleanly.
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadDatagram(c, buf); err != io.EOF {
		t.Fatalf("after half-close: got %v, want io.EOF", err)
	}
	if err := c.Wait(); err != nil {
		t.Fatalf("handler: got %v, want nil", err)
	}
}

func TestUDPBadFrames(t *testing.T) {
	srv := udpEcho(t)
	d := newUDP(t, srv.port())
	tests := []struct {
		name string
		send []byte
		want error
	}{
		{"too large", []byte{0xff, 0xe4}, wire.ErrInvalidArgument}, // announces 65508 bytes
		{"largest length", []byte{0xff, 0xff, 1, 2, 3}, wire.ErrInvalidArgument},
		{"truncated", []byte{0, 10, 'a'}, wire.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := drivertest.OpenStream(context.Background(), d, "connect")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write(tt.send)
			c.CloseWrite()
			if err := c.Wait(); !errors.Is(err, tt.want) {
				t.Fatalf("handler: got %v, want %v", err, tt.want)
			}
			if _, err := io.ReadAll(c); err == nil {
				t.Fatalf("client read: got a clean end, want a reset")
			}
		})
	}
}

func TestUDPClosedPort(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close() // nothing listens: the kernel answers port unreachable
	d := newUDP(t, port)
	c, err := drivertest.OpenStream(context.Background(), d, "connect")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Keep sending until the ICMP error comes back and ends the stream.
	go func() {
		for {
			select {
			case <-c.Done():
				return
			default:
			}
			if WriteDatagram(c, []byte("anyone?")) != nil {
				return
			}
			waitOrDone(c.Done())
		}
	}()
	if err := c.Wait(); !errors.Is(err, wire.ErrUnavailable) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("handler: got %v, want UNAVAILABLE connection refused", err)
	}
}

func TestUDPResetAndCancel(t *testing.T) {
	srv := udpEcho(t)
	d := newUDP(t, srv.port())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := drivertest.OpenStream(context.Background(), d, "connect")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := drivertest.OpenStream(ctx, d, "connect")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// Both handlers are running once an echo came back on each.
	buf := make([]byte, 16)
	for _, c := range []*drivertest.Conn{a, b} {
		WriteDatagram(c, []byte("hi"))
		if _, err := ReadDatagram(c, buf); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if err := b.Wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("after cancel: got %v, want context.Canceled", err)
	}
	if err := d.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Reset returns once the driver's handler has returned; the test harness closes Done just
	// after that, so allow it a moment.
	select {
	case <-a.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("handler still running after Reset returned")
	}
	if err := a.Wait(); !errors.Is(err, wire.ErrUnavailable) {
		t.Fatalf("after reset: got %v, want UNAVAILABLE", err)
	}
}

func TestUDPValidateAndMethods(t *testing.T) {
	d := NewUDP(drivertest.Env("")).(*UDP)
	d.Host, d.Port = "", 0
	err := d.Validate()
	if err == nil || !strings.Contains(err.Error(), "host") || !strings.Contains(err.Error(), "port") {
		t.Fatalf("Validate: got %v, want errors for host and port", err)
	}
	d.Host, d.Port = "10.0.0.2", 53
	for _, tt := range []struct{ method, want string }{{"kind", "udp"}, {"address", "10.0.0.2:53"}} {
		got, err := drivertest.CallMethod(context.Background(), d, tt.method)
		if err != nil || got != tt.want {
			t.Errorf("%s: got %v, %v, want %q", tt.method, got, err, tt.want)
		}
	}
}
