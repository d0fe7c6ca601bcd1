package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/exporter/exportertest"
	"jsn.dev/jsn/internal/testkit"
)

// These tests run the drivers in a real exporter on a real embedded bus (exporter.StartLocal)
// and reach them through the client, as jsn forward does.

// startLocal starts a local session exporting the drivers of export (YAML lines under export:)
// and returns the session's exporter handle.
func startLocal(t testing.TB, export string) *client.Exporter {
	t.Helper()
	return exportertest.Start(t, "apiVersion: jsn.dev/v1alpha1\nkind: ExporterConfig\nmetadata: {name: netlab}\nexport:\n"+export).Exporter
}

// background runs fn (Forward or ForwardPacket) in the background; cleanup stops it and checks
// it returned nil.
func background(t *testing.T, fn func(ctx context.Context) error) (running func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("forward after cancel: got %v, want nil", err)
		}
	})
	return func() bool { return len(done) == 0 }
}

// recorder is a slog handler keeping the messages a forwarder logs.
type recorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	s := rec.Message
	rec.Attrs(func(a slog.Attr) bool { s += " " + a.Key + "=" + a.Value.String(); return true })
	r.mu.Lock()
	r.msgs = append(r.msgs, s)
	r.mu.Unlock()
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }
func (r *recorder) all() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.msgs, "\n")
}

// exchange connects to addr over network, sends data, half-closes and returns all it reads.
func exchange(network, addr string, data []byte) ([]byte, error) {
	c, err := net.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.(interface{ CloseWrite() error }).CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		return got, err
	}
	return got, <-werr
}

func TestE2ETCPForward(t *testing.T) {
	srv := serve(t, echo)
	ex := startLocal(t, fmt.Sprintf("  network: {type: network.TCP, config: {host: 127.0.0.1, port: %d}}\n  closed: {type: network.TCP, config: {host: 127.0.0.1, port: %d}}\n", srv.port(), freePort(t)))
	ctx := context.Background()

	c := NewClient(ex.Driver("network"))
	if kind, err := c.Kind(ctx); err != nil || kind != KindTCP {
		t.Fatalf("kind: got %q, %v, want tcp", kind, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	background(t, func(ctx context.Context) error { return c.Forward(ctx, ln) })

	const conns, size = 8, 1 << 20
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := random(size)
			got, err := exchange("tcp", ln.Addr().String(), data)
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("conn %d: got %d bytes, %v, want the %d bytes sent back", i, len(got), err, size)
			}
		}()
	}
	wg.Wait()

	// A closed port: each connection fails on its own, with a clear log line; Forward goes on.
	rec := &recorder{}
	closed := NewClient(ex.Driver("closed"))
	closed.Log = slog.New(rec)
	cln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	running := background(t, func(ctx context.Context) error { return closed.Forward(ctx, cln) })
	for i := range 2 {
		got, _ := exchange("tcp", cln.Addr().String(), []byte("hello?"))
		if len(got) != 0 {
			t.Fatalf("closed port, conn %d: got %q, want nothing", i, got)
		}
	}
	testkit.CheckFor(t, 30*time.Second, func() error {
		if !strings.Contains(rec.all(), "\n") {
			return fmt.Errorf("nothing logged yet")
		}
		return nil
	})
	if log := rec.all(); !strings.Contains(log, "UNAVAILABLE") && !strings.Contains(log, "refused") {
		t.Fatalf("log: got %q, want the connection refused", log)
	}
	if !running() {
		t.Fatalf("Forward returned after a failed connection")
	}
}

func TestE2EUDPForward(t *testing.T) {
	srv := udpEcho(t)
	ex := startLocal(t, fmt.Sprintf("  dns: {type: jumpstarter_driver_network.driver.UdpNetwork, config: {host: 127.0.0.1, port: %d}}\n", srv.port()))
	ctx := context.Background()
	c := NewClient(ex.Driver("dns"))
	if kind, err := c.Kind(ctx); err != nil || kind != KindUDP {
		t.Fatalf("kind: got %q, %v, want udp", kind, err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	background(t, func(ctx context.Context) error { return c.ForwardPacket(ctx, pc) })
	a, b := dialUDP(t, pc.LocalAddr().String()), dialUDP(t, pc.LocalAddr().String())
	for _, size := range []int{1, 1000, 65000} {
		roundTrip(t, a, random(size))
		roundTrip(t, b, random(size))
	}
	if got := srv.peerCount(); got != 2 {
		t.Fatalf("server peers: got %d, want 2 (a stream per local peer)", got)
	}

	// The typed datagram stream, and a frame announcing too large a datagram.
	dg, err := c.DialDatagrams(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer dg.Close()
	buf := make([]byte, MaxDatagram)
	if err := dg.Send([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if n, err := dg.Receive(buf); err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("Receive: got %q, %v, want ping", buf[:n], err)
	}
	if err := dg.Send(make([]byte, MaxDatagram+1)); !errors.Is(err, ErrDatagramTooLarge) {
		t.Fatalf("Send too large: got %v, want ErrDatagramTooLarge", err)
	}
	raw, err := c.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.Write([]byte{0xff, 0xff})
	if _, err := io.ReadAll(raw); !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("oversized frame: got %v, want INVALID_ARGUMENT", err)
	}
}

func TestE2EUnixForward(t *testing.T) {
	dir := t.TempDir()
	serveUnix(t, filepath.Join(dir, "qmp.sock"), unixReplyAtEOF)
	ex := startLocal(t, fmt.Sprintf("  qmp: {type: network.Unix, config: {path: %s}}\n", filepath.Join(dir, "qmp.sock")))
	c := NewClient(ex.Driver("qmp"))
	if kind, err := c.Kind(context.Background()); err != nil || kind != KindUnix {
		t.Fatalf("kind: got %q, %v, want unix", kind, err)
	}
	local := filepath.Join(t.TempDir(), "local.sock")
	ln, err := net.Listen("unix", local)
	if err != nil {
		t.Fatal(err)
	}
	background(t, func(ctx context.Context) error { return c.Forward(ctx, ln) })
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := fmt.Sprintf("hello %d", i)
			got, err := exchange("unix", local, []byte(msg))
			if want := "got " + strings.ToUpper(msg); err != nil || string(got) != want {
				t.Errorf("conn %d: got %q, %v, want %q", i, got, err, want)
			}
		}()
	}
	wg.Wait()
}
