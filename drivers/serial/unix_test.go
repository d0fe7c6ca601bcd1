package serial

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/drivertest"
)

func TestParseUnixURL(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{"unix:///run/qemu/console.sock", "unix:///run/qemu/console.sock", ""},
		{"unix:///run/../tmp/c.sock", "unix:///tmp/c.sock", ""},
		{"unix://relative.sock", "", "absolute"},
		{"unix://", "", "absolute"},
		{"unix:///a.sock?x=1", "", "no options"},
		{"unix:///" + strings.Repeat("a", 200), "", "longer than"},
	}
	for _, tt := range tests {
		got, err := parseURL(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseURL(%q): got %v, want error containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got.String() != tt.want || got.network() != "unix" {
			t.Errorf("parseURL(%q): got %q (%s), %v, want %q", tt.in, got, got.network(), err, tt.want)
		}
	}
}

// TestUnixSocket drives a console served on a Unix socket (as QEMU's -chardev socket does): the
// port waits for the socket to appear, echoes through it, and reports the server going away.
func TestUnixSocket(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "console.sock")
	p := NewPort(drivertest.Env("console")).(*Port)
	p.URL, p.Reconnect = "unix://"+path, 20*time.Millisecond
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := p.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if why := p.Unavailable(); !strings.Contains(why, "console.sock") {
		t.Fatalf("before the server: got unavailable %q, want the socket named", why)
	}

	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	served := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			served <- c
		}
		close(served)
	}()
	srv := <-served
	if srv == nil {
		t.Fatal("accept failed")
	}
	for p.Unavailable() != "" {
		if ctx.Err() != nil {
			t.Fatalf("port never connected: %s", p.Unavailable())
		}
		time.Sleep(10 * time.Millisecond)
	}
	s, err := drivertest.OpenStream(ctx, p, "connect")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := srv.Read(buf); err != nil || string(buf) != "ping" {
		t.Fatalf("server got %q, %v, want ping", buf, err)
	}
	if _, err := srv.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(buf); err != nil || string(buf) != "pong" {
		t.Fatalf("client got %q, %v, want pong", buf, err)
	}
	if err := p.SetBaudrate(ctx, 9600); wire.CodeOf(err) != wire.Unimplemented {
		t.Fatalf("set_baudrate on unix://: got %v, want UNIMPLEMENTED", err)
	}
	srv.Close()
	err = s.Wait()
	if err == nil || !strings.Contains(err.Error(), "disconnected") {
		t.Fatalf("after the server closed: got %v, want a disconnected error", err)
	}
}
