package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"jsn.dev/jsn/client"
)

// Client is the typed client of a jsn.network.v1 driver.
type Client struct {
	d *client.Driver
	// Log receives one line per connection Forward could not tunnel or that ended with an
	// error; nil discards them.
	Log *slog.Logger
}

// NewClient returns a network client calling the driver d.
func NewClient(d *client.Driver) *Client { return &Client{d: d} }

// Dial opens a byte stream tunnelled by the driver to its service.
func (c *Client) Dial(ctx context.Context) (client.ByteStream, error) {
	return c.d.Open(ctx, "connect")
}

// Address returns the host:port the driver connects to.
func (c *Client) Address(ctx context.Context) (string, error) {
	var s string
	err := c.d.CallInto(ctx, "address", &s)
	return s, err
}

// Forward accepts connections on ln and tunnels each through its own stream (Dial), carrying
// half-close both ways. It returns nil when ctx ends, or the listener's error; either way it
// closes ln and every connection it accepted, and returns only once all of them have ended.
func (c *Client) Forward(ctx context.Context, ln net.Listener) error {
	dial := func(ctx context.Context) (duplex, error) { return c.Dial(ctx) }
	return forward(ctx, ln, dial, c.Log)
}

// forward is Forward with the dialling abstracted, so it is testable without a bus.
func forward(ctx context.Context, ln net.Listener, dial func(context.Context) (duplex, error), log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()

	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			ln.Close()
			return fmt.Errorf("forward: accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := tunnel(ctx, conn, dial); err != nil && ctx.Err() == nil {
				log.Warn("forward: connection ended with an error", "remote", conn.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// tunnel carries conn over a new stream until both directions are done or ctx ends.
func tunnel(ctx context.Context, conn net.Conn, dial func(context.Context) (duplex, error)) error {
	defer conn.Close()
	local, ok := conn.(duplex)
	if !ok {
		return fmt.Errorf("tunnel: %T cannot half-close", conn)
	}
	s, err := dial(ctx)
	if err != nil {
		return fmt.Errorf("tunnel: %w", err)
	}
	defer s.Close()
	err = splice(ctx, conn.RemoteAddr().String(), local, "stream", s)
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	return err
}
