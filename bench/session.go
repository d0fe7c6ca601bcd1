package main

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/nats-io/nats.go"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/client"
	"jsn.dev/jsn/exporter"
)

// transport is how the client and the exporter reach the bus.
type transport string

const (
	// local is `jsn shell`: the client dials the session's Unix socket (bridged by the server to
	// an in-process connection) and the exporter is connected in process.
	local transport = "local"
	// distributed is a lab: a NATS server listening on loopback TCP, the exporter and the client
	// each connected to it over TCP, as when a laptop forwards to an exporter in a lab.
	distributed transport = "tcp"
)

// label is how the transport is named in the result table.
func (t transport) label() string {
	if t == distributed {
		return "TCP (distributed mode)"
	}
	return "local (Unix socket + in-process)"
}

// transports returns the transports the suite measures, as selected by -transport.
func (s *suite) transports() []transport {
	switch s.transport {
	case "local":
		return []transport{local}
	case "tcp":
		return []transport{distributed}
	}
	return []transport{local, distributed}
}

// session is an exporter serving cfg on a bus reached over transport t, with a lease, and a
// connected jsn client.
type session struct {
	t        transport
	url      string // what clients dial (unix:// or nats://)
	exporter string
	lease    string
	c        *client.Client // byte streams go direct where the exporter offers it (the default)
	cBus     *client.Client // byte streams stay on the bus (JSN_DIRECT_STREAMS=off)

	l     *exporter.Local // local mode
	srv   *bus.Server     // distributed mode
	econn *bus.Conn       // distributed mode: the exporter's TCP connection
	ex    *exporter.Exporter
	dl    *bus.DirectListener // distributed mode: directStreams {listen: tcp:127.0.0.1:0}
}

func startSession(ctx context.Context, t transport, cfg *exporter.Config) (s *session, err error) {
	s = &session{t: t}
	defer func() {
		if err != nil {
			s.close()
			s = nil
		}
	}()
	switch t {
	case local:
		if s.l, err = exporter.StartLocal(ctx, cfg, exporter.LocalOptions{}); err != nil {
			return s, err
		}
		s.url, s.exporter, s.lease = s.l.URL, s.l.Exporter, s.l.Lease
	case distributed:
		if s.ex, err = exporter.New(cfg, nil); err != nil {
			return s, err
		}
		if err = s.ex.Open(ctx); err != nil {
			s.ex = nil
			return s, err
		}
		if s.srv, err = bus.StartServer(ctx, bus.ServerOptions{TCP: "127.0.0.1:0"}); err != nil {
			return s, err
		}
		s.url = s.srv.TCPURL()
		if s.econn, err = bus.Connect(ctx, s.url, "exporter-"+s.ex.Name()); err != nil {
			return s, err
		}
		// As an exporter configured with directStreams: {listen: tcp:…} offers.
		if s.dl, err = bus.ListenDirect("tcp:127.0.0.1:0", ""); err != nil {
			return s, err
		}
		s.ex.OfferDirect(s.dl)
		// As in distributed mode: replies only into the inbox of the lease a request presents.
		s.ex.GuardReplies()
		if err = s.ex.Start(ctx, s.econn); err != nil {
			return s, err
		}
		s.exporter, s.lease = s.ex.Name(), "bench-lease"
		if err = s.ex.BeginLease(ctx, s.lease); err != nil {
			return s, err
		}
	default:
		return s, fmt.Errorf("unknown transport %q", t)
	}
	// Clients use the lease's inbox, as a lease credential does.
	o := client.Options{Host: s.url, Exporter: s.exporter, Lease: s.lease, Name: "bench"}
	if s.c, err = client.ConnectWith(ctx, o); err != nil {
		return s, err
	}
	o.Name = "bench-bus"
	if s.cBus, err = client.ConnectWith(ctx, o); err != nil {
		return s, err
	}
	s.cBus.DisableDirectStreams()
	return s, nil
}

// driverBus is driver with byte streams kept on the bus.
func (s *session) driverBus(path string) *client.Driver {
	return s.cBus.Exporter(s.exporter, s.lease).Driver(path)
}

func (s *session) driver(path string) *client.Driver {
	return s.c.Exporter(s.exporter, s.lease).Driver(path)
}

func (s *session) close() {
	if s.c != nil {
		s.c.Close()
	}
	if s.cBus != nil {
		s.cBus.Close()
	}
	if s.l != nil {
		s.l.Close()
	}
	if s.ex != nil {
		if s.econn != nil {
			s.ex.Stop(context.Background())
		}
		_ = s.ex.Close()
	}
	if s.econn != nil {
		s.econn.Close()
	}
	if s.dl != nil {
		_ = s.dl.Close()
	}
	if s.srv != nil {
		s.srv.Shutdown()
	}
}

type unixDialer struct{ path string }

func (d unixDialer) Dial(_, _ string) (net.Conn, error) { return net.Dial("unix", d.path) }

// rawClient connects plain nats.go to the session's server the way jsn clients do (the Unix
// socket in local mode, TCP in distributed mode).
func (s *session) rawClient() (*nats.Conn, error) {
	if s.t == local {
		path := strings.TrimPrefix(s.url, "unix://")
		return nats.Connect("nats://localhost", nats.SetCustomDialer(unixDialer{path}))
	}
	return nats.Connect(s.url)
}

// rawServerSide connects plain nats.go the way the exporter is connected (in process in local
// mode, TCP in distributed mode).
func (s *session) rawServerSide() (*nats.Conn, error) {
	if s.t == local {
		return nats.Connect("", nats.InProcessServer(s.l))
	}
	return nats.Connect(s.url)
}
