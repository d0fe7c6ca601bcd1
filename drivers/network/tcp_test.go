package network

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/drivertest"
	"jsn.dev/jsn/internal/testkit"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// server is a loopback TCP server running handle for every connection. Cleanup closes the
// listener and every connection and waits for the handlers.
type server struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
	n     int // connections accepted; guarded by mu
}

func serve(t *testing.T, handle func(c *net.TCPConn)) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.n++
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *server) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *server) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// echo copies everything back, then half-closes.
func echo(c *net.TCPConn) {
	io.Copy(c, c)
	c.CloseWrite()
}

// replyAtEOF reads until the client half-closes, then replies "got N: " + the data upper-cased,
// and half-closes. It proves half-close works in both directions.
func replyAtEOF(c *net.TCPConn) {
	data, err := io.ReadAll(c)
	if err != nil {
		return
	}
	fmt.Fprintf(c, "got %d: %s", len(data), strings.ToUpper(string(data)))
	c.CloseWrite()
}

func newTCP(t *testing.T, port int) *TCP {
	t.Helper()
	d := NewTCP(drivertest.Env("net")).(*TCP)
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

func TestRegistered(t *testing.T) {
	for _, name := range []string{"network.TCP", "jumpstarter_driver_network.driver.TcpNetwork"} {
		info, ok := driver.Lookup(name)
		if !ok || info.Type != "network.TCP" || info.Interface != Interface {
			t.Errorf("Lookup(%q): got %+v, %v, want network.TCP/%s", name, info, ok, Interface)
		}
	}
}

func TestConnectHalfClose(t *testing.T) {
	tests := []struct {
		name   string
		handle func(*net.TCPConn)
		send   string
		want   string
	}{
		{"echo", echo, "hello, board", "hello, board"},
		{"echo empty", echo, "", ""},
		{"reply at EOF", replyAtEOF, "ping", "got 4: PING"},
		{"reply at EOF empty", replyAtEOF, "", "got 0: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, tt.handle)
			d := newTCP(t, srv.port())
			c, err := drivertest.OpenStream(context.Background(), d, "connect")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.WriteString(c, tt.send); err != nil {
				t.Fatalf("write: %v", err)
			}
			if err := c.CloseWrite(); err != nil {
				t.Fatalf("CloseWrite: %v", err)
			}
			got, err := io.ReadAll(c)
			if err != nil || string(got) != tt.want {
				t.Fatalf("read: got %q, %v, want %q, nil", got, err, tt.want)
			}
			if err := c.Wait(); err != nil {
				t.Fatalf("handler: got %v, want nil", err)
			}
			c.Close()
		})
	}
}

// TestConnectServerClosesFirst: the server speaks first and half-closes; the client keeps
// sending afterwards, and the server still reads it.
func TestConnectServerClosesFirst(t *testing.T) {
	got := make(chan string, 1)
	srv := serve(t, func(c *net.TCPConn) {
		io.WriteString(c, "banner\n")
		c.CloseWrite()
		b, _ := io.ReadAll(c)
		got <- string(b)
	})
	d := newTCP(t, srv.port())
	c, err := drivertest.OpenStream(context.Background(), d, "connect")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	banner, err := io.ReadAll(c)
	if err != nil || string(banner) != "banner\n" {
		t.Fatalf("banner: got %q, %v, want %q, nil", banner, err, "banner\n")
	}
	io.WriteString(c, "late words")
	c.CloseWrite()
	if g := <-got; g != "late words" {
		t.Fatalf("server read: got %q, want %q", g, "late words")
	}
	if err := c.Wait(); err != nil {
		t.Fatalf("handler: got %v, want nil", err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

func TestConnectRefused(t *testing.T) {
	d := newTCP(t, freePort(t))
	c, err := drivertest.OpenStream(context.Background(), d, "connect")
	if err != nil {
		t.Fatal(err)
	}
	err = c.Wait()
	if !errors.Is(err, wire.ErrUnavailable) || !strings.Contains(err.Error(), "connect 127.0.0.1:") {
		t.Fatalf("handler: got %v, want UNAVAILABLE naming the address", err)
	}
	if _, err := io.ReadAll(c); !errors.Is(err, wire.ErrUnavailable) {
		t.Fatalf("client read: got %v, want a reset", err)
	}
	c.Close()
}

func TestConnectMany(t *testing.T) {
	const n, size = 16, 1 << 20
	srv := serve(t, echo)
	d := newTCP(t, srv.port())
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := make([]byte, size)
			rand.Read(data)
			c, err := drivertest.OpenStream(context.Background(), d, "connect")
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			werr := make(chan error, 1)
			go func() {
				_, err := c.Write(data)
				if err == nil {
					err = c.CloseWrite()
				}
				werr <- err
			}()
			got, err := io.ReadAll(c)
			if err := <-werr; err != nil {
				t.Errorf("conn %d: write: %v", i, err)
			}
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("conn %d: got %d bytes, %v, want the %d bytes sent", i, len(got), err, size)
			}
			if err := c.Wait(); err != nil {
				t.Errorf("conn %d: handler: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if got := srv.accepted(); got != n {
		t.Fatalf("server connections: got %d, want %d", got, n)
	}
}

// checkAccepted waits until srv has accepted n connections.
func checkAccepted(t *testing.T, srv *server, n int) {
	t.Helper()
	testkit.CheckFor(t, 30*time.Second, func() error {
		if got := srv.accepted(); got != n {
			return fmt.Errorf("the server accepted %d connections, want %d", got, n)
		}
		return nil
	})
}

func TestResetClosesConnections(t *testing.T) {
	serverEOF := make(chan error, 2)
	srv := serve(t, func(c *net.TCPConn) {
		_, err := io.ReadAll(c) // blocks until the driver's side goes away
		serverEOF <- err
	})
	d := newTCP(t, srv.port())
	var conns []*drivertest.Conn
	for range 2 {
		c, err := drivertest.OpenStream(context.Background(), d, "connect")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	checkAccepted(t, srv, 2)
	// The handlers register before dialling; they are connected once the server accepted.
	if err := d.Reset(context.Background()); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	for i, c := range conns {
		// Reset returns once the driver's handlers have returned; the test harness closes Done
		// just after that, so allow it a moment.
		select {
		case <-c.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("conn %d: handler still running after Reset returned", i)
		}
		if err := c.Wait(); !errors.Is(err, wire.ErrUnavailable) {
			t.Fatalf("conn %d: handler: got %v, want UNAVAILABLE", i, err)
		}
		if _, err := io.ReadAll(c); err == nil {
			t.Fatalf("conn %d: client read: got clean EOF, want a reset", i)
		}
	}
	for range conns {
		if err := <-serverEOF; err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("server side: got %v, want EOF or reset", err)
		}
	}
	// The driver still works after a reset.
	c, err := drivertest.OpenStream(context.Background(), d, "connect")
	if err != nil {
		t.Fatal(err)
	}
	checkAccepted(t, srv, 3)
	c.Close()
}

func TestConnectCancel(t *testing.T) {
	srv := serve(t, func(c *net.TCPConn) { io.ReadAll(c) })
	d := newTCP(t, srv.port())
	ctx, cancel := context.WithCancel(context.Background())
	c, err := drivertest.OpenStream(ctx, d, "connect")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	checkAccepted(t, srv, 1)
	cancel()
	if err := c.Wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("handler after cancel: got %v, want context.Canceled", err)
	}
}

func TestAddress(t *testing.T) {
	d := newTCP(t, 2222)
	got, err := drivertest.CallMethod(context.Background(), d, "address")
	if err != nil || got != "127.0.0.1:2222" {
		t.Fatalf("address: got %v, %v, want %q, nil", got, err, "127.0.0.1:2222")
	}
	d.EnableAddress = false
	if _, err := drivertest.CallMethod(context.Background(), d, "address"); !errors.Is(err, wire.ErrFailedPrecondition) {
		t.Fatalf("address disabled: got %v, want FAILED_PRECONDITION", err)
	}
	d6 := NewTCP(drivertest.Env("")).(*TCP)
	d6.Host, d6.Port = "::1", 80
	if got := d6.Addr(); got != "[::1]:80" {
		t.Fatalf("IPv6 Addr: got %q, want %q", got, "[::1]:80")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		host    string
		port    int
		wantErr string
	}{
		{"127.0.0.1", 22, ""},
		{"board.lab", 1, ""},
		{"board.lab", 65535, ""},
		{"board.lab", 0, "port: must be 1..65535, got 0"},
		{"board.lab", 70000, "port: must be 1..65535, got 70000"},
		{"board.lab", -1, "port"},
		{"", 22, "host"},
	}
	for _, tt := range tests {
		t.Run(tt.host+":"+strconv.Itoa(tt.port), func(t *testing.T) {
			d := NewTCP(drivertest.Env("")).(*TCP)
			d.Host, d.Port = tt.host, tt.port
			err := d.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// waitOrDone waits a little, or until done is closed.
func waitOrDone(done <-chan struct{}) {
	select {
	case <-done:
	case <-time.After(20 * time.Millisecond):
	}
}
