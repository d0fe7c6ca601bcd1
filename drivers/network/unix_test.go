package network

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/drivertest"
)

// serveUnix is a Unix stream socket server at dir/name running handle for every connection.
func serveUnix(t *testing.T, path string, handle func(c *net.UnixConn)) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	drivertest.Serve(t, ln, func(c net.Conn) { handle(c.(*net.UnixConn)) })
}

// unixReplyAtEOF is replyAtEOF for a Unix socket: it answers only after the client half-closed.
func unixReplyAtEOF(c *net.UnixConn) {
	data, err := io.ReadAll(c)
	if err != nil {
		return
	}
	io.WriteString(c, "got "+strings.ToUpper(string(data)))
	c.CloseWrite()
}

func newUnix(t *testing.T, dir, path string) *Unix {
	t.Helper()
	env := drivertest.Env("qmp")
	env.Dir = dir
	d := NewUnix(env).(*Unix)
	d.Path = path
	if err := d.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if err := d.Open(context.Background()); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestUnixHalfClose(t *testing.T) {
	dir := t.TempDir()
	serveUnix(t, filepath.Join(dir, "dut.sock"), unixReplyAtEOF)
	// A relative path is relative to the config file's directory.
	d := newUnix(t, dir, "dut.sock")
	for _, send := range []string{"ping", ""} {
		c, err := drivertest.OpenStream(context.Background(), d, "connect")
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, send)
		c.CloseWrite()
		got, err := io.ReadAll(c)
		if want := "got " + strings.ToUpper(send); err != nil || string(got) != want {
			t.Fatalf("got %q, %v, want %q, nil", got, err, want)
		}
		if err := c.Wait(); err != nil {
			t.Fatalf("handler: got %v, want nil", err)
		}
		c.Close()
	}
	for _, tt := range []struct{ method, want string }{{"kind", "unix"}, {"address", filepath.Join(dir, "dut.sock")}} {
		got, err := drivertest.CallMethod(context.Background(), d, tt.method)
		if err != nil || got != tt.want {
			t.Errorf("%s: got %v, %v, want %q", tt.method, got, err, tt.want)
		}
	}
}

func TestUnixNoSocket(t *testing.T) {
	d := newUnix(t, "", filepath.Join(t.TempDir(), "absent.sock"))
	c, err := drivertest.OpenStream(context.Background(), d, "connect")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Wait(); !errors.Is(err, wire.ErrUnavailable) || !strings.Contains(err.Error(), "absent.sock") {
		t.Fatalf("handler: got %v, want UNAVAILABLE naming the socket", err)
	}
}

func TestUnixReset(t *testing.T) {
	dir := t.TempDir()
	accepted := make(chan struct{}, 1)
	serveUnix(t, filepath.Join(dir, "s"), func(c *net.UnixConn) {
		accepted <- struct{}{}
		io.ReadAll(c)
	})
	d := newUnix(t, dir, "s")
	c, err := drivertest.OpenStream(context.Background(), d, "connect")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-accepted
	if err := d.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(); !errors.Is(err, wire.ErrUnavailable) {
		t.Fatalf("after reset: got %v, want UNAVAILABLE", err)
	}
}

func TestUnixValidate(t *testing.T) {
	tests := []struct {
		dir, path string
		wantErr   string
	}{
		{"", "/run/qmp.sock", ""},
		{"/etc/jsn", "qmp.sock", ""},
		{"", "@abstract", ""},
		{"", "", "path: must not be empty"},
		{"", "/" + strings.Repeat("x", 120), "longer than the 107"},
		{"/" + strings.Repeat("d", 100), "qmp.sock", "longer than the 107"},
	}
	for _, tt := range tests {
		env := drivertest.Env("")
		env.Dir = tt.dir
		d := NewUnix(env).(*Unix)
		d.Path = tt.path
		err := d.Validate()
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("%q in %q: got %v, want nil", tt.path, tt.dir, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%q in %q: got %v, want an error containing %q", tt.path, tt.dir, err, tt.wantErr)
		}
	}
}
