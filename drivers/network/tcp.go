package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/drivers/driver"
)

// Interface is the name of the interface the network drivers implement.
const Interface = "jsn.network.v1"

func init() {
	driver.MustRegister(driver.Info{
		Type:      "network.TCP",
		Interface: Interface,
		Doc:       "tunnels byte streams to a TCP port",
		New:       NewTCP,
		Aliases:   []string{"jumpstarter_driver_network.driver.TcpNetwork"},
	})
}

// errReset is the cause given to the connections Reset and Close end.
var errReset = errors.New("connection closed by driver reset")

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

	log *slog.Logger

	mu    sync.Mutex
	conns map[*tracked]struct{} // running connect handlers; guarded by mu
}

// tracked is one running connect handler.
type tracked struct {
	cancel context.CancelCauseFunc // ends the connection
	done   chan struct{}           // closed when the handler returns
}

// NewTCP is the network.TCP constructor: defaults only, no side effects.
func NewTCP(env driver.Env) driver.Driver {
	log := env.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &TCP{EnableAddress: true, log: log, conns: map[*tracked]struct{}{}}
}

// Validate checks the config.
func (t *TCP) Validate() error {
	var errs []error
	if t.Host == "" {
		errs = append(errs, driver.FieldErrorf("host", "must not be empty"))
	}
	if t.Port < 1 || t.Port > 65535 {
		errs = append(errs, driver.FieldErrorf("port", "must be 1..65535, got %d", t.Port))
	}
	return errors.Join(errs...)
}

// Addr returns "host:port".
func (t *TCP) Addr() string { return net.JoinHostPort(t.Host, strconv.Itoa(t.Port)) }

// Open does nothing: the port may come up later; every connect dials anew.
func (t *TCP) Open(ctx context.Context) error { return nil }

// Reset closes every open connection and waits (at most until ctx ends) for their handlers to
// return.
func (t *TCP) Reset(ctx context.Context) error {
	for _, c := range t.closeAll() {
		select {
		case <-c.done:
		case <-ctx.Done():
			return fmt.Errorf("reset: wait for connections: %w", ctx.Err())
		}
	}
	return nil
}

// Close closes every open connection and waits for their handlers to return.
func (t *TCP) Close() error {
	for _, c := range t.closeAll() {
		<-c.done
	}
	return nil
}

// closeAll ends every running connection and returns them.
func (t *TCP) closeAll() []*tracked {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*tracked
	for c := range t.conns {
		c.cancel(errReset)
		out = append(out, c)
	}
	return out
}

// Methods returns the jsn.network.v1 method table:
//
//	connect() <=> bytes    a byte stream tunnelled to a new TCP connection to host:port
//	address() -> string    "host:port"
func (t *TCP) Methods() []driver.Method {
	return []driver.Method{
		{
			Name: "connect", Doc: "open a byte stream to " + t.Addr(), Kind: driver.KindByteStream,
			Bytes: t.connect,
		},
		{
			Name: "address", Doc: "the address the driver connects to, host:port", Kind: driver.KindCall,
			Returns: driver.TypeString,
			Call: func(ctx context.Context, _ driver.Args) (any, error) {
				if !t.EnableAddress {
					return nil, bus.Errorf(bus.FailedPrecondition, "address: disabled by enable_address: false")
				}
				return t.Addr(), nil
			},
		},
	}
}

func (t *TCP) connect(ctx context.Context, _ driver.Args, s driver.Stream) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	tr := &tracked{cancel: cancel, done: make(chan struct{})}
	t.mu.Lock()
	t.conns[tr] = struct{}{}
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.conns, tr)
		t.mu.Unlock()
		close(tr.done)
	}()

	addr := t.Addr()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			return fmt.Errorf("connect %s: %w", addr, cause)
		}
		return bus.Errorf(bus.Unavailable, "connect %s: %w", addr, err)
	}
	conn := c.(*net.TCPConn)
	defer conn.Close()
	t.log.Debug("connected", "addr", addr, "local", conn.LocalAddr().String())
	if err := splice(ctx, "stream", s, addr, conn); err != nil {
		if errors.Is(err, errReset) {
			return bus.Errorf(bus.Unavailable, "connect %s: %w", addr, err)
		}
		return fmt.Errorf("connect %s: %w", addr, err)
	}
	return nil
}

var (
	_ driver.Driver    = (*TCP)(nil)
	_ driver.Validator = (*TCP)(nil)
	_ driver.Methoder  = (*TCP)(nil)
)
