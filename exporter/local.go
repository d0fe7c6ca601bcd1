package exporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
)

// LocalOptions configure a local-mode session.
type LocalOptions struct {
	Log *slog.Logger // exporter and server log; nil discards
	// Dir is a private (0700) directory for the session's Unix socket; "" makes a fresh one
	// under os.TempDir() that Close removes.
	Dir string
	// WebSocket, if set, is a loopback address for a NATS WebSocket listener (browsers: the
	// dashboard of `jsn shell --web`), open to whoever presents WebSocketToken.
	WebSocket      string
	WebSocketToken string
}

// Local is a running local-mode lab session: an embedded NATS server reachable through a Unix
// socket in a private directory, an exporter serving cfg on it, and a lease held by the session.
type Local struct {
	URL      string // JSN_HOST value, "unix:///…/bus.sock"
	Exporter string // JSN_EXPORTER value
	Lease    string // JSN_LEASE value
	Dir      string // the session directory

	srv     *bus.Server
	conn    *bus.Conn
	direct  *bus.DirectListener
	ex      *Exporter
	ownsDir bool
}

// StartLocal builds the driver tree of cfg, opens it, starts the embedded server and the exporter
// on it, and starts a lease (resetting every driver).
func StartLocal(ctx context.Context, cfg *Config, opts LocalOptions) (l *Local, err error) {
	ex, err := New(cfg, opts.Log)
	if err != nil {
		return nil, err
	}
	l = &Local{Exporter: ex.Name(), Dir: opts.Dir, ex: ex}
	defer func() {
		if err != nil {
			l.Close()
			l = nil
		}
	}()
	if l.Dir == "" {
		if l.Dir, err = os.MkdirTemp("", "jsn-"); err != nil {
			return l, fmt.Errorf("local session: %w", err)
		}
		l.ownsDir = true
	}
	if err = ex.Open(ctx); err != nil {
		return l, err
	}
	if opts.WebSocket != "" && opts.WebSocketToken == "" {
		return l, errors.New("local session: a websocket listener needs a token")
	}
	if l.srv, err = bus.StartServer(ctx, bus.ServerOptions{Dir: l.Dir, Log: opts.Log,
		WebSocket: opts.WebSocket, WebSocketToken: opts.WebSocketToken}); err != nil {
		return l, err
	}
	l.URL = l.srv.URL()
	if l.conn, err = l.srv.Connect(ctx, "exporter-"+ex.Name()); err != nil {
		return l, err
	}
	// Byte streams of the session go over a Unix socket beside the bus's, with the same privacy.
	if l.direct, err = ListenDirect(cfg.DirectStreams, "unix:"+filepath.Join(l.Dir, "streams.sock")); err != nil {
		return l, err
	}
	if l.direct != nil {
		ex.OfferDirect(l.direct)
	}
	if err = ex.Start(ctx, l.conn); err != nil {
		return l, err
	}
	l.Lease = "local-" + randomID()
	if err = ex.BeginLease(ctx, l.Lease); err != nil {
		// A driver that cannot reset is reported but does not stop the session.
		if opts.Log != nil {
			opts.Log.Warn("reset at session start", "err", err)
		}
		err = nil
	}
	return l, nil
}

// Close ends the lease (closing its streams, resetting drivers), stops the exporter, closes the
// drivers, shuts the server down and removes the directory if StartLocal made it.
func (l *Local) Close() error {
	if l == nil {
		return nil
	}
	ctx := context.Background()
	var errs []error
	if l.conn != nil {
		l.ex.Stop(ctx)
	}
	if l.direct != nil {
		_ = l.direct.Close()
		l.direct = nil
	}
	if l.ex != nil {
		errs = append(errs, l.ex.Close())
	}
	if l.conn != nil {
		l.conn.Close()
		l.conn = nil
	}
	if l.srv != nil {
		l.srv.Shutdown()
		l.srv = nil
	}
	if l.ownsDir && l.Dir != "" {
		errs = append(errs, os.RemoveAll(l.Dir))
		l.ownsDir = false
	}
	return errors.Join(errs...)
}

// WebSocketURL is the session's NATS WebSocket URL ("" without LocalOptions.WebSocket).
func (l *Local) WebSocketURL() string { return l.srv.WebSocketURL() }

// Describe describes the session's exporter.
func (l *Local) Describe() *wire.Description { return l.ex.Describe() }

// InProcessConn returns a raw in-process connection to the session's server, the same kind of
// connection the exporter serves on. Benchmarks use it to run a plain NATS baseline side by side.
func (l *Local) InProcessConn() (net.Conn, error) { return l.srv.InProcessConn() }
