package bus

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerOptions configure an embedded server.
type ServerOptions struct {
	// Dir is where the Unix socket "bus.sock" is created. It must be private to the user: if it
	// does not exist it is created 0700; if it exists it must not be readable or writable by group
	// or others. "" means no Unix socket.
	Dir string
	// TCP is a loopback listen address ("127.0.0.1:0" for any port); "" means no TCP listener.
	TCP string
	// Log receives the server's notices and errors; nil discards them.
	Log *slog.Logger
	// MaxPayload overrides the server's maximum message size (default 1 MiB).
	MaxPayload int32
	// MaxPending is how many bytes the server buffers for one connection that does not read
	// before dropping it as a slow consumer (default 256 MiB: bulk streams of a local session).
	MaxPending int64
	// MaxConnections bounds the server's client connections (default: nats-server's).
	MaxConnections int

	// Operator mode and JetStream (see auth.go); all empty means no auth and no JetStream.

	// Operator is the trusted operator JWT; "" means no authentication.
	Operator string
	// SystemAccount is the public key of the system account (operator mode only).
	SystemAccount string
	// Accounts preloads a memory account resolver: account public key → account JWT.
	Accounts map[string]string
	// JetStreamDir enables JetStream with its file store there; "" means no JetStream.
	JetStreamDir string
	// Name is the server's name (default "jsn"); servers of one cluster need distinct names.
	Name string
	// TLS, if set, makes the TCP listener require TLS with this configuration (its certificate).
	// In-process connections need none.
	TLS *tls.Config
	// WebSocket is a NATS-over-WebSocket listen address (browsers: the dashboard); "" means
	// none. With WebSocketTLS it serves wss://; without, plain ws:// (the caller decides where
	// that is acceptable: loopback, behind a TLS-terminating reverse proxy).
	WebSocket    string
	WebSocketTLS *tls.Config
	// WebSocketToken, without Operator, is the token a WebSocket client must present (local
	// sessions: the page's URL carries it).
	WebSocketToken string
}

// Server is an embedded NATS server.
type Server struct {
	ns      *server.Server
	log     *slog.Logger
	sock    string       // Unix socket path, "" if none
	ln      net.Listener // Unix listener; nil if none
	wg      sync.WaitGroup
	mu      sync.Mutex
	bridged map[net.Conn]struct{} // open bridged connections; guarded by mu
	closed  bool                  // guarded by mu
	ws      bool                  // a WebSocket listener
}

// StartServer starts an embedded server and waits until it accepts connections. A startup failure
// (port in use, bad directory) is returned as an error; it never exits the process.
func StartServer(ctx context.Context, o ServerOptions) (*Server, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := &server.Options{
		ServerName:            "jsn",
		DontListen:            true,
		NoSigs:                true,
		NoLog:                 false,
		MaxPayload:            o.MaxPayload,
		MaxPending:            256 << 20,
		MaxConn:               o.MaxConnections,
		WriteDeadline:         10 * time.Second,
		DisableShortFirstPing: true,
		// A client that stopped answering (its host gone without closing the connection) is
		// dropped, with its subscriptions, within about 8 s instead of 6 min.
		PingInterval: 2 * time.Second,
		MaxPingsOut:  3,
	}
	if o.MaxPending > 0 {
		opts.MaxPending = o.MaxPending
	}
	if o.TCP != "" {
		host, port, err := splitHostPort(o.TCP)
		if err != nil {
			return nil, fmt.Errorf("start bus: listen address %q: %w", o.TCP, err)
		}
		opts.DontListen = false
		opts.Host, opts.Port = host, port
		if o.TLS != nil {
			opts.TLSConfig = o.TLS.Clone()
			opts.TLSTimeout = 5 // seconds to complete the handshake
		}
	}
	if o.WebSocket != "" {
		host, port, err := splitHostPort(o.WebSocket)
		if err != nil {
			return nil, fmt.Errorf("start bus: websocket address %q: %w", o.WebSocket, err)
		}
		opts.Websocket.Host, opts.Websocket.Port = host, port
		opts.Websocket.Compression = false
		if o.WebSocketTLS != nil {
			opts.Websocket.TLSConfig = o.WebSocketTLS.Clone()
		} else {
			opts.Websocket.NoTLS = true
		}
		if o.WebSocketToken != "" {
			if o.Operator != "" {
				return nil, errors.New("start bus: a websocket token and operator mode exclude each other")
			}
			opts.Websocket.Token = o.WebSocketToken
		}
	}
	if err := o.apply(opts); err != nil {
		return nil, fmt.Errorf("start bus: %w", err)
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start bus: %w", err)
	}
	sl := &serverLogger{log: log.With("part", "nats-server")}
	ns.SetLoggerV2(sl, false, false, false)
	s := &Server{ns: ns, log: log, bridged: map[net.Conn]struct{}{}, ws: o.WebSocket != ""}
	if o.Dir != "" {
		if err := s.listenUnix(o.Dir); err != nil {
			return nil, err
		}
	}
	go ns.Start()
	deadline := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		deadline = time.Until(d)
	}
	for end := time.Now().Add(deadline); !ns.ReadyForConnections(20 * time.Millisecond); {
		err := sl.fatal()
		if err == nil && time.Now().After(end) {
			err = errors.New("server not ready in time")
		}
		if err != nil {
			ns.Shutdown()
			s.closeUnix()
			return nil, fmt.Errorf("start bus: %w", err)
		}
	}
	if s.ln != nil {
		s.wg.Add(1)
		go s.acceptUnix()
	}
	return s, nil
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := net.LookupPort("tcp", p)
	if err != nil {
		return "", 0, err
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

func (s *Server) listenUnix(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("start bus: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("start bus: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("start bus: directory %s has mode %o; it must be private (0700)", dir, fi.Mode().Perm())
	}
	s.sock = filepath.Join(dir, "bus.sock")
	_ = os.Remove(s.sock)
	ln, err := net.Listen("unix", s.sock)
	if err != nil {
		return fmt.Errorf("start bus: %w", err)
	}
	if err := os.Chmod(s.sock, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("start bus: %w", err)
	}
	s.ln = ln
	return nil
}

// acceptUnix bridges each Unix-socket connection to an in-process server connection.
func (s *Server) acceptUnix() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		bigSocketBuffers(c)
		p, err := s.ns.InProcessConn()
		if err != nil {
			c.Close()
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			p.Close()
			return
		}
		s.bridged[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(2)
		go s.pump(c, p, c)
		go s.pump(p, c, c)
	}
}

func (s *Server) pump(dst, src net.Conn, key net.Conn) {
	defer s.wg.Done()
	buf := make([]byte, 64<<10)
	_, _ = io.CopyBuffer(dst, src, buf)
	dst.Close()
	src.Close()
	s.mu.Lock()
	delete(s.bridged, key)
	s.mu.Unlock()
}

func (s *Server) closeUnix() {
	s.mu.Lock()
	s.closed = true
	conns := make([]net.Conn, 0, len(s.bridged))
	for c := range s.bridged {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	if s.ln != nil {
		s.ln.Close()
		_ = os.Remove(s.sock)
	}
	for _, c := range conns {
		c.Close()
	}
}

// URL is the address other processes use (the JSN_HOST value): "unix:///dir/bus.sock" when the
// server has a Unix socket, else its nats:// TCP URL, else "".
func (s *Server) URL() string {
	if s.sock != "" {
		return "unix://" + s.sock
	}
	return s.TCPURL()
}

// TCPURL is the server's nats:// TCP URL, or "" if it has no TCP listener.
func (s *Server) TCPURL() string {
	if addr := s.ns.Addr(); addr != nil {
		return "nats://" + addr.String()
	}
	return ""
}

// WebSocketURL is the NATS WebSocket URL (ws:// or wss://) of the listener, "" without one.
func (s *Server) WebSocketURL() string {
	if !s.ws {
		return ""
	}
	return s.ns.WebsocketURL()
}

// Connect opens an in-process connection (no socket) named name.
func (s *Server) Connect(ctx context.Context, name string) (*Conn, error) {
	return connect(ctx, "", name, "", s.ns)
}

// Shutdown closes the Unix socket and every bridged connection, then stops the server.
func (s *Server) Shutdown() {
	s.closeUnix()
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
	s.wg.Wait()
}

// serverLogger adapts nats-server's logger to slog and remembers the first fatal error so that
// StartServer can return it instead of the process exiting.
type serverLogger struct {
	log *slog.Logger
	mu  sync.Mutex
	err error
}

func (l *serverLogger) fatal() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *serverLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Warnf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.HasPrefix(msg, "Websocket not configured with TLS") {
		// jsn serves plain WebSocket only on loopback (its callers refuse other addresses).
		l.log.Debug(msg)
		return
	}
	l.log.Warn(msg)
}
func (l *serverLogger) Errorf(format string, v ...any) { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Debugf(format string, v ...any) {}
func (l *serverLogger) Tracef(format string, v ...any) {}
func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg)
	l.mu.Lock()
	if l.err == nil {
		l.err = errors.New(msg)
	}
	l.mu.Unlock()
}

// SlowConsumers counts the client connections the server dropped for not reading fast enough.
func (s *Server) SlowConsumers() uint64 { return s.ns.NumSlowConsumersClients() }

// InProcessConn returns a raw in-process connection to the server (what Connect uses), for
// benchmarks that measure a plain NATS client on the same server as a baseline.
func (s *Server) InProcessConn() (net.Conn, error) { return s.ns.InProcessConn() }
