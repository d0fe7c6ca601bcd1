package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

func init() {
	driver.MustRegister(driver.Info{
		Type:      "network.TCP",
		Interface: Interface,
		Doc:       "tunnels byte streams to a TCP port",
		New:       NewTCP,
		Aliases:   []string{"jumpstarter_driver_network.driver.TcpNetwork"},
	})
}

// TCP is the network.TCP driver: every connect opens its own TCP connection to host:port and
// copies bytes both ways until both directions are done.
//
// Config (the same keys as Jumpstarter's TcpNetwork):
//
//	host: 192.168.1.2       # required
//	port: 22                # required, 1..65535
//	enable_address: true    # whether `address` tells clients host:port (default true)
type TCP struct {
	Host          string `yaml:"host" jsn:"required"`
	Port          int    `yaml:"port" jsn:"required"`
	EnableAddress bool   `yaml:"enable_address"`

	log   *slog.Logger
	conns tracker
}

// NewTCP is the network.TCP constructor: defaults only, no side effects.
func NewTCP(env driver.Env) driver.Driver {
	return &TCP{EnableAddress: true, log: env.Log}
}

// Validate checks the config.
func (t *TCP) Validate() error { return validateHostPort(t.Host, t.Port) }

// Addr returns "host:port".
func (t *TCP) Addr() string { return net.JoinHostPort(t.Host, strconv.Itoa(t.Port)) }

// Open does nothing: the port may come up later; every connect dials anew.
func (t *TCP) Open(ctx context.Context) error { return nil }

// Reset closes every open connection and waits (at most until ctx ends) for their handlers to
// return.
func (t *TCP) Reset(ctx context.Context) error { return t.conns.reset(ctx) }

// Close closes every open connection and waits for their handlers to return.
func (t *TCP) Close() error {
	t.conns.close()
	return nil
}

// Kind returns "tcp".
func (t *TCP) Kind() string { return KindTCP }

// Methods returns the jsn.network.v1 method table.
func (t *TCP) Methods() []driver.Method {
	return Methods(t, Options{HideAddress: !t.EnableAddress})
}

// Connect carries the client stream s to a new connection to host:port.
func (t *TCP) Connect(ctx context.Context, s driver.Stream) error {
	ctx, done := t.conns.track(ctx)
	defer done()

	addr := t.Addr()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return dialError(ctx, addr, err)
	}
	conn := c.(*net.TCPConn)
	defer conn.Close()
	t.log.Debug("connected", "addr", addr, "local", conn.LocalAddr().String())
	if err := splice(ctx, "stream", s, addr, conn); err != nil {
		if errors.Is(err, errReset) {
			return wire.Errorf(wire.Unavailable, "connect %s: %w", addr, err)
		}
		return fmt.Errorf("connect %s: %w", addr, err)
	}
	return nil
}

var (
	_ Device           = (*TCP)(nil)
	_ driver.Driver    = (*TCP)(nil)
	_ driver.Validator = (*TCP)(nil)
	_ driver.Methoder  = (*TCP)(nil)
)
