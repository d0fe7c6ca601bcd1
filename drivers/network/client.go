package network

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/client/remote"
)

// Client is the typed client of a jsn.network.v1 driver.
type Client struct {
	d remote.Driver
	// Log receives one line per connection Forward could not tunnel or that ended with an
	// error; nil discards them.
	Log *slog.Logger
	// PacketIdle is how long ForwardPacket keeps an idle local peer's stream; 0 means
	// DefaultPacketIdle.
	PacketIdle time.Duration
}

// NewClient returns a network client calling the driver d.
func NewClient(d remote.Driver) *Client { return &Client{d: d} }

// Dial opens a byte stream tunnelled by the driver to its service.
func (c *Client) Dial(ctx context.Context) (remote.ByteStream, error) {
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

// Kind returns the driver's transport, KindTCP, KindUDP or KindUnix. A driver without a kind
// method (an older exporter) is taken to be TCP.
func (c *Client) Kind(ctx context.Context) (string, error) {
	var s string
	err := c.d.CallInto(ctx, "kind", &s)
	if errors.Is(err, wire.ErrNotFound) || errors.Is(err, wire.ErrUnimplemented) {
		return KindTCP, nil
	}
	return s, err
}

// Datagrams is the client's end of a udp driver's connect stream: each Send goes out as one
// datagram, each Receive returns one datagram that came back.
type Datagrams struct {
	s    remote.ByteStream
	rbuf []byte // frame being read; only Receive uses it
	wmu  sync.Mutex
}

// DialDatagrams opens a datagram stream through a udp driver (see UDP).
func (c *Client) DialDatagrams(ctx context.Context) (*Datagrams, error) {
	s, err := c.Dial(ctx)
	if err != nil {
		return nil, err
	}
	return &Datagrams{s: s}, nil
}

// Send sends p as one datagram; p may be at most MaxDatagram bytes. It is safe to call
// concurrently with Receive and with other Sends.
func (d *Datagrams) Send(p []byte) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	return WriteDatagram(d.s, p)
}

// Receive reads the next datagram into buf and returns its length (see ReadDatagram for its
// errors: io.EOF once the driver half-closed). Only one goroutine may call Receive at a time.
func (d *Datagrams) Receive(buf []byte) (int, error) { return ReadDatagram(d.s, buf) }

// CloseWrite says no more datagrams follow; the driver then closes its socket and ends the
// stream.
func (d *Datagrams) CloseWrite() error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	return d.s.CloseWrite()
}

// Close ends the stream.
func (d *Datagrams) Close() error { return d.s.Close() }

// DefaultPacketIdle is how long ForwardPacket keeps the stream of a local peer that neither sent
// nor received a datagram.
const DefaultPacketIdle = 60 * time.Second

// ForwardPacket serves a local UDP socket through a udp driver: each distinct local peer
// address gets its own stream (so replies go back to the peer that asked), opened at its first
// datagram and closed once it has been idle for c.PacketIdle (DefaultPacketIdle when 0).
// Datagram boundaries are kept; datagrams arriving faster than a stream carries them are
// dropped, as UDP would. It returns nil when ctx ends, or pc's error; either way it closes pc
// and every stream and returns only once all of them have ended.
func (c *Client) ForwardPacket(ctx context.Context, pc net.PacketConn) error {
	dial := func(ctx context.Context) (duplex, error) { return c.Dial(ctx) }
	return forwardPacket(ctx, pc, dial, c.PacketIdle, c.Log)
}

// peerQueue is how many datagrams of one local peer may wait for its stream.
const peerQueue = 64

// peer is one local peer of forwardPacket.
type peer struct {
	addr net.Addr
	in   chan []byte // datagrams from the peer; sent to under forwardPacket's mu
}

// forwardPacket is ForwardPacket with the dialling abstracted, so it is testable without a bus.
func forwardPacket(ctx context.Context, pc net.PacketConn, dial func(context.Context) (duplex, error), idle time.Duration, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if idle <= 0 {
		idle = DefaultPacketIdle
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()

	var (
		mu    sync.Mutex
		peers = map[string]*peer{} // guarded by mu
		wg    sync.WaitGroup
	)
	defer wg.Wait()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			pc.Close()
			return fmt.Errorf("forward: read: %w", err)
		}
		if n > MaxDatagram {
			log.Warn("forward: datagram dropped", "remote", from.String(), "err", fmt.Errorf("%d bytes: %w", n, ErrDatagramTooLarge))
			continue
		}
		key := from.String()
		dgram := append([]byte(nil), buf[:n]...)
		mu.Lock()
		p := peers[key]
		if p == nil {
			p = &peer{addr: from, in: make(chan []byte, peerQueue)}
			peers[key] = p
			// expire removes p if nothing waits for it: the check and the removal happen under
			// mu, like the sends, so no datagram is queued to a peer that is gone.
			expire := func() bool {
				mu.Lock()
				defer mu.Unlock()
				if len(p.in) > 0 {
					return false
				}
				delete(peers, key)
				return true
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := p.run(ctx, pc, dial, idle, expire)
				mu.Lock()
				if peers[key] == p {
					delete(peers, key)
				}
				mu.Unlock()
				if err != nil && ctx.Err() == nil {
					log.Warn("forward: peer ended with an error", "remote", key, "err", err)
				}
			}()
		}
		select {
		case p.in <- dgram:
		default:
			log.Debug("forward: datagram dropped: queue full", "remote", key)
		}
		mu.Unlock()
	}
}

// run carries the peer's datagrams over a new stream and the stream's back to the peer, until
// the stream ends, ctx ends or the peer has been idle for idle and expire agrees.
func (p *peer) run(ctx context.Context, pc net.PacketConn, dial func(context.Context) (duplex, error), idle time.Duration, expire func() bool) error {
	s, err := dial(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	var last atomic.Int64 // time of the last datagram either way, UnixNano
	touch := func() { last.Store(time.Now().UnixNano()) }
	touch()

	readErr := make(chan error, 1)
	readDone := make(chan struct{})
	defer func() {
		s.Close() // ends the reader
		<-readDone
	}()
	go func() {
		defer close(readDone)
		buf := make([]byte, MaxDatagram)
		for {
			n, err := ReadDatagram(s, buf)
			if err != nil {
				readErr <- err
				return
			}
			touch()
			if _, err := pc.WriteTo(buf[:n], p.addr); err != nil {
				readErr <- fmt.Errorf("write to %s: %w", p.addr, err)
				return
			}
		}
	}()

	timer := time.NewTimer(idle)
	defer timer.Stop()
	frame := make([]byte, 0, frameHeader+MaxDatagram)
	for {
		select {
		case d := <-p.in:
			touch()
			if _, err := s.Write(appendFrame(frame[:0], d)); err != nil {
				return fmt.Errorf("send: %w", err)
			}
		case err := <-readErr:
			if err == io.EOF {
				return nil // the driver ended the stream
			}
			return err
		case <-timer.C:
			if rest := idle - time.Since(time.Unix(0, last.Load())); rest > 0 {
				timer.Reset(rest)
				continue
			}
			if expire() {
				return nil
			}
			timer.Reset(idle)
		case <-ctx.Done():
			return nil
		}
	}
}
