package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

func init() {
	driver.MustRegister(driver.Info{
		Type:      "network.Unix",
		Interface: Interface,
		Doc:       "tunnels byte streams to a Unix stream socket",
		New:       NewUnix,
		Aliases:   []string{"jumpstarter_driver_network.driver.UnixNetwork"},
	})
}

// maxSocketPath is the longest Unix socket path Linux accepts (sun_path holds 108 bytes with
// the terminating NUL).
const maxSocketPath = 107

// Unix is the network.Unix driver: every connect opens its own connection to a Unix stream
// socket (a QEMU monitor, a debug server) and copies bytes both ways, with half-close carried
// like TCP's.
//
// Config (the same key as Jumpstarter's UnixNetwork):
//
//	path: /run/board/qmp.sock   # required; relative to the config file's directory;
//	                            # "@name" is a Linux abstract socket
//	enable_address: true        # whether `address` tells clients the path (default true)
type Unix struct {
	Path          string `yaml:"path" jsn:"required"`
	EnableAddress bool   `yaml:"enable_address"`

	dir   string // the config file's directory, for a relative Path
	log   *slog.Logger
	conns tracker
}

// NewUnix is the network.Unix constructor: defaults only, no side effects.
func NewUnix(env driver.Env) driver.Driver {
	return &Unix{EnableAddress: true, dir: env.Dir, log: env.Log}
}

// SocketPath returns the socket path, made absolute against the config file's directory.
func (u *Unix) SocketPath() string {
	if u.Path == "" || strings.HasPrefix(u.Path, "@") || filepath.IsAbs(u.Path) || u.dir == "" {
		return u.Path
	}
	return filepath.Join(u.dir, u.Path)
}

// Validate checks the config.
func (u *Unix) Validate() error {
	switch p := u.SocketPath(); {
	case u.Path == "":
		return driver.FieldErrorf("path", "must not be empty")
	case len(p) > maxSocketPath:
		return driver.FieldErrorf("path", "%q is %d bytes long, longer than the %d a socket path may have", p, len(p), maxSocketPath)
	case strings.ContainsRune(p, 0):
		return driver.FieldErrorf("path", "must not contain a NUL byte")
	}
	return nil
}

// Open does nothing: the socket may appear later; every connect dials anew.
func (u *Unix) Open(ctx context.Context) error { return nil }

// Reset closes every open connection and waits (at most until ctx ends) for their handlers.
func (u *Unix) Reset(ctx context.Context) error { return u.conns.reset(ctx) }

// Close closes every open connection and waits for their handlers to return.
func (u *Unix) Close() error {
	u.conns.close()
	return nil
}

// Addr returns the socket path (SocketPath).
func (u *Unix) Addr() string { return u.SocketPath() }

// Kind returns "unix".
func (u *Unix) Kind() string { return KindUnix }

// Methods returns the jsn.network.v1 method table.
func (u *Unix) Methods() []driver.Method {
	return Methods(u, Options{HideAddress: !u.EnableAddress})
}

// Connect carries the client stream s to a new connection to the socket.
func (u *Unix) Connect(ctx context.Context, s driver.Stream) error {
	ctx, done := u.conns.track(ctx)
	defer done()

	path := u.SocketPath()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return dialError(ctx, path, err)
	}
	conn := c.(*net.UnixConn)
	defer conn.Close()
	u.log.Debug("connected", "path", path)
	if err := splice(ctx, "stream", s, path, conn); err != nil {
		if errors.Is(err, errReset) {
			return wire.Errorf(wire.Unavailable, "connect %s: %w", path, err)
		}
		return fmt.Errorf("connect %s: %w", path, err)
	}
	return nil
}

var (
	_ Device           = (*Unix)(nil)
	_ driver.Driver    = (*Unix)(nil)
	_ driver.Validator = (*Unix)(nil)
	_ driver.Methoder  = (*Unix)(nil)
)
