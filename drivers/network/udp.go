package network

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

func init() {
	driver.MustRegister(driver.Info{
		Type:      "network.UDP",
		Interface: Interface,
		Doc:       "tunnels datagrams to a UDP port",
		New:       NewUDP,
		Aliases:   []string{"jumpstarter_driver_network.driver.UdpNetwork"},
	})
}

// UDP is the network.UDP driver: every connect opens its own connected UDP socket to host:port.
// The stream carries datagrams framed as WriteDatagram writes them (a 2-byte big-endian length,
// then the bytes), at most MaxDatagram bytes each, both ways: each frame the client sends goes
// out as one datagram, each datagram that comes back from host:port is framed to the client.
//
// UDP has no half-close: when the client half-closes, the driver closes the socket and
// half-closes its side at once; replies arriving later are dropped. An ICMP port-unreachable
// (nothing listening) ends the stream with UNAVAILABLE, an oversized or truncated frame with
// INVALID_ARGUMENT.
//
// Config (the same keys as Jumpstarter's UdpNetwork):
//
//	host: 192.168.1.2       # required
//	port: 5353              # required, 1..65535
//	enable_address: true    # whether `address` tells clients host:port (default true)
type UDP struct {
	Host          string `yaml:"host" jsn:"required"`
	Port          int    `yaml:"port" jsn:"required"`
	EnableAddress bool   `yaml:"enable_address"`

	log   *slog.Logger
	conns tracker
}

// NewUDP is the network.UDP constructor: defaults only, no side effects.
func NewUDP(env driver.Env) driver.Driver {
	return &UDP{EnableAddress: true, log: env.Log}
}

// Validate checks the config.
func (u *UDP) Validate() error { return validateHostPort(u.Host, u.Port) }

// validateHostPort checks the host and port keys of the TCP and UDP drivers.
func validateHostPort(host string, port int) error {
	var errs []error
	if host == "" {
		errs = append(errs, driver.FieldErrorf("host", "must not be empty"))
	}
	if port < 1 || port > 65535 {
		errs = append(errs, driver.FieldErrorf("port", "must be 1..65535, got %d", port))
	}
	return errors.Join(errs...)
}

// Addr returns "host:port".
func (u *UDP) Addr() string { return net.JoinHostPort(u.Host, strconv.Itoa(u.Port)) }

// Open does nothing: every connect makes its own socket.
func (u *UDP) Open(ctx context.Context) error { return nil }

// Reset closes every open socket and waits (at most until ctx ends) for their handlers.
func (u *UDP) Reset(ctx context.Context) error { return u.conns.reset(ctx) }

// Close closes every open socket and waits for their handlers to return.
func (u *UDP) Close() error {
	u.conns.close()
	return nil
}

// Kind returns "udp".
func (u *UDP) Kind() string { return KindUDP }

// Methods returns the jsn.network.v1 method table.
func (u *UDP) Methods() []driver.Method {
	return Methods(u, Options{HideAddress: !u.EnableAddress})
}

// Connect carries the client stream s to a new connection to host:port.
func (u *UDP) Connect(ctx context.Context, s driver.Stream) error {
	ctx, done := u.conns.track(ctx)
	defer done()

	addr := u.Addr()
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return dialError(ctx, addr, err)
	}
	conn := c.(*net.UDPConn)
	defer conn.Close()
	u.log.Debug("connected", "addr", addr, "local", conn.LocalAddr().String())

	var (
		once  sync.Once
		first error // the first failure; written once, read after both directions ended
	)
	fail := func(err error) {
		once.Do(func() {
			first = err
			conn.Close()
			closeWith(s, err)
		})
	}
	stop := context.AfterFunc(ctx, func() {
		cause := context.Cause(ctx)
		if errors.Is(cause, errReset) {
			cause = wire.Errorf(wire.Unavailable, "connect %s: %w", addr, cause)
		}
		fail(cause)
	})
	defer stop()

	repliesDone := make(chan struct{})
	go func() {
		defer close(repliesDone)
		if err := replies(conn, s); err != nil && !errors.Is(err, net.ErrClosed) {
			fail(wire.Errorf(wire.Unavailable, "connect %s: %w", addr, err))
		}
	}()
	err = requests(s, conn)
	if err != nil {
		if errors.Is(err, ErrDatagramTooLarge) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = wire.Errorf(wire.InvalidArgument, "connect %s: %w", addr, err)
		} else {
			err = wire.Errorf(wire.Unavailable, "connect %s: %w", addr, err)
		}
		fail(err)
	}
	conn.Close() // ends replies
	<-repliesDone
	stop()
	once.Do(func() {}) // no failure from now on: first is final
	if first != nil {
		if first == context.Cause(ctx) {
			return fmt.Errorf("connect %s: %w", addr, first)
		}
		return first
	}
	// The client half-closed: so do we.
	if err := s.CloseWrite(); err != nil {
		return fmt.Errorf("connect %s: close-write: %w", addr, err)
	}
	return nil
}

// closeWith ends s, with err as the reason when s can carry one: a bus stream resets with err's
// code and message, so the client sees why (Close alone would read "closed by the other side").
func closeWith(s driver.Stream, err error) {
	if r, ok := s.(interface{ Reset(error) }); ok && err != nil {
		r.Reset(err)
		return
	}
	s.Close()
}

// requests sends each frame read from s as one datagram on conn, until s ends (nil) or fails.
func requests(s io.Reader, conn *net.UDPConn) error {
	bp := framePool.Get().(*[]byte)
	defer framePool.Put(bp)
	buf := *bp
	for {
		n, err := ReadDatagram(s, buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read frame: %w", err)
		}
		if _, err := conn.Write(buf[:n]); err != nil {
			return err
		}
	}
}

// replies frames every datagram read from conn onto s, until either fails.
func replies(conn *net.UDPConn, s io.Writer) error {
	bp := framePool.Get().(*[]byte)
	defer framePool.Put(bp)
	buf := *bp
	for {
		// Read past the header so the frame goes out in one Write without a copy.
		n, err := conn.Read(buf[frameHeader:])
		if err != nil {
			return err
		}
		buf[0], buf[1] = byte(n>>8), byte(n)
		if _, err := s.Write(buf[:frameHeader+n]); err != nil {
			return fmt.Errorf("write frame: %w", err)
		}
	}
}

var (
	_ Device           = (*UDP)(nil)
	_ driver.Driver    = (*UDP)(nil)
	_ driver.Validator = (*UDP)(nil)
	_ driver.Methoder  = (*UDP)(nil)
)
