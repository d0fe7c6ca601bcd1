package bus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"jsn.dev/jsn/bus/wire"
)

// Msg is a received message.
type Msg struct {
	Subject string
	Reply   string
	Header  wire.Header
	Data    []byte
	conn    *Conn
}

// Conn is a connection to the bus with a private inbox prefix.
type Conn struct {
	nc     *nats.Conn
	prefix string // inbox prefix: the principal's (see InboxPrefix) plus "." and a random token
	name   string
	guardState

	muxMu sync.Mutex
	muxes map[string]*streamMux // client-side streams by exporter.lease; guarded by muxMu

	noDirect atomic.Bool // streams stay on the bus (DisableDirectStreams)
}

// ConnectOptions are optional settings for Connect.
type ConnectOptions struct {
	Name string // identity; appears in the server's connection list
	// Creds is the content of a NATS .creds file (user JWT and nkey seed); nil means none.
	Creds []byte
	// Inbox is the inbox prefix replies come to (the connection adds a random token). The
	// default is the one Creds may subscribe to (CredsInbox), else "_INBOX_<Name>".
	Inbox string
	// CA is the PEM of the certificate authority the server's TLS certificate must chain to; nil
	// means the system's roots (and plain connections to servers that require no TLS). With a CA
	// the connection requires TLS. In-process connections ignore it.
	CA []byte
	// Reconnected, if set, is called each time the connection is back after being lost (from
	// the connection's callback goroutine: it must not block): what was published to the
	// connection's subscriptions meanwhile is lost.
	Reconnected func()
}

// Connect dials the bus at url: "unix:///path/bus.sock" for a local session, or
// "nats://host:port" (comma-separated for several servers).
func Connect(ctx context.Context, url, name string) (*Conn, error) {
	if url == "" {
		return nil, errors.New("connect: no bus address")
	}
	return connect(ctx, url, name, "", nil)
}

type unixDialer struct{ path string }

func (d unixDialer) Dial(network, address string) (net.Conn, error) {
	c, err := net.DialTimeout("unix", d.path, 5*time.Second)
	if err != nil {
		return nil, err
	}
	bigSocketBuffers(c)
	return c, nil
}

// unixSocketBuffer is asked for on both ends of local-mode Unix sockets: bulk streams move
// measurably fewer CPU-seconds per GiB with it (docs/performance.md). The kernel may grant less.
const unixSocketBuffer = 1 << 20

func bigSocketBuffers(c net.Conn) {
	if uc, ok := c.(*net.UnixConn); ok {
		_ = uc.SetReadBuffer(unixSocketBuffer)
		_ = uc.SetWriteBuffer(unixSocketBuffer)
	}
}

// serverConnectTimeout bounds the connection attempt to each of several servers.
const serverConnectTimeout = 3 * time.Second

type inProcess interface {
	InProcessConn() (net.Conn, error)
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// connect dials url (or ip, in process) as name; inbox "" means "_INBOX_<name>".
func connect(ctx context.Context, url, name, inbox string, ip inProcess, extra ...nats.Option) (*Conn, error) {
	if name == "" {
		name = "client"
	}
	if !wire.ValidName(name) {
		return nil, fmt.Errorf("connect: name %q must be a single subject token (letters, digits, - and _)", name)
	}
	if inbox == "" {
		inbox = "_INBOX_" + name
	}
	if !wire.ValidPath(inbox) {
		return nil, fmt.Errorf("connect: inbox prefix %q is not a dotted list of subject tokens", inbox)
	}
	prefix := inbox + "." + randomToken(8)
	opts := []nats.Option{
		nats.Name(name),
		nats.CustomInboxPrefix(prefix),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		// A server that stopped answering (frozen, or its host gone without closing the
		// connection) is left for another within PingInterval × (MaxPingsOut+1).
		nats.PingInterval(2 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.ReconnectBufSize(8 << 20),
	}
	opts = append(opts, extra...)
	dialURL := url
	switch {
	case ip != nil:
		opts = append(opts, nats.InProcessServer(ip))
		dialURL = ""
	case strings.HasPrefix(url, "unix://"):
		path := strings.TrimPrefix(url, "unix://")
		opts = append(opts, nats.SetCustomDialer(unixDialer{path: path}))
		dialURL = "nats://localhost:4222" // host ignored by the dialer
	}
	if d, ok := ctx.Deadline(); ok {
		timeout := time.Until(d)
		if strings.Contains(url, ",") {
			// Several servers are tried in turn: one that accepts the connection but does not
			// answer (frozen) must not use up the whole deadline.
			timeout = min(timeout, serverConnectTimeout)
		}
		opts = append(opts, nats.Timeout(timeout))
	}
	nc, err := nats.Connect(dialURL, opts...)
	if err != nil {
		if url == "" {
			url = "in-process server"
		}
		return nil, fmt.Errorf("connect %s: %w", url, err)
	}
	return &Conn{nc: nc, prefix: prefix, name: name}, nil
}

// Close resets every stream opened on the connection and closes it.
func (c *Conn) Close() {
	c.muxMu.Lock()
	muxes := c.muxes
	c.muxes = nil
	c.muxMu.Unlock()
	for _, m := range muxes {
		m.close(&wire.Error{Code: wire.Unavailable, Message: "connection closed"})
	}
	c.nc.Close()
}

// InboxPrefix returns the connection's private inbox prefix.
func (c *Conn) InboxPrefix() string { return c.prefix }

// MaxPayload is the largest message the server accepts.
func (c *Conn) MaxPayload() int64 { return c.nc.MaxPayload() }

// Flush waits until the server has processed everything sent so far.
func (c *Conn) Flush(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	return c.nc.FlushWithContext(ctx)
}

// Publish sends a message.
func (c *Conn) Publish(subject string, hdr wire.Header, data []byte) error {
	if hdr == nil {
		return c.nc.Publish(subject, data)
	}
	return c.nc.PublishMsg(&nats.Msg{Subject: subject, Header: nats.Header(hdr), Data: data})
}

// PublishRequest sends a request whose reply goes to reply, without waiting for it.
func (c *Conn) PublishRequest(subject, reply string, data []byte) error {
	return c.nc.PublishRequest(subject, reply, data)
}

// Request sends a request and waits for its reply. A reply carrying an error code is returned as
// an *Error with that code. No responders → an *Error with code Unavailable.
func (c *Conn) Request(ctx context.Context, subject string, hdr wire.Header, data []byte) (*Msg, error) {
	m := &nats.Msg{Subject: subject, Data: data}
	if hdr != nil {
		m.Header = nats.Header(hdr)
	}
	var r *nats.Msg
	var err error
	if _, ok := ctx.Deadline(); !ok && ctx.Done() == nil {
		// A context that can never end: the plain timeout form saves a context and its timer.
		r, err = c.nc.RequestMsg(m, 30*time.Second)
	} else {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
		}
		r, err = c.nc.RequestMsgWithContext(ctx, m)
	}
	if err != nil {
		if errors.Is(err, nats.ErrConnectionClosed) && c.credentialRefused() {
			return nil, &wire.Error{Code: wire.PermissionDenied, Message: fmt.Sprintf("%s: the server closed the connection because its credential was revoked or expired (a lease credential ends with its lease)", subject)}
		}
		return nil, requestError(subject, err)
	}
	if err := wire.ReplyError(wire.Header(r.Header)); err != nil {
		return nil, err
	}
	return &Msg{Subject: r.Subject, Header: wire.Header(r.Header), Data: r.Data, conn: c}, nil
}

// credentialRefused reports whether the server's last word to the connection was that its
// credential is no longer valid: a lease credential revoked at the lease's end closes the
// connection, which can reach the client before the reply that says why.
func (c *Conn) credentialRefused() bool {
	le := c.nc.LastError()
	return le != nil && (errors.Is(le, nats.ErrAuthRevoked) || errors.Is(le, nats.ErrAuthExpired) || errors.Is(le, nats.ErrAuthorization))
}

func requestError(subject string, err error) error {
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return wire.NewError(wire.Unavailable, fmt.Sprintf("%s: nobody is serving it (is the exporter running?)", subject), nats.ErrNoResponders)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return wire.NewError(wire.DeadlineExceeded, fmt.Sprintf("%s: no reply in time", subject), context.DeadlineExceeded)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%s: %w", subject, err)
	case errors.Is(err, nats.ErrMaxPayload):
		return &wire.Error{Code: wire.InvalidArgument, Message: fmt.Sprintf("%s: request larger than the server's maximum message size", subject)}
	case errors.Is(err, nats.ErrConnectionClosed):
		return &wire.Error{Code: wire.Unavailable, Message: fmt.Sprintf("%s: connection closed", subject)}
	}
	return &wire.Error{Code: wire.Unavailable, Message: fmt.Sprintf("%s: %v", subject, err)}
}

// Respond replies to m. On a connection that guards its replies (GuardReplies), a reply subject
// outside the requester's inbox is refused with ErrReplyRefused.
func (m *Msg) Respond(hdr wire.Header, data []byte) error {
	if m.Reply == "" {
		return nil
	}
	if !m.conn.replyAllowed(m) {
		return ErrReplyRefused
	}
	return m.conn.Publish(m.Reply, hdr, data)
}

// RespondError replies to m with err's code and message.
func (m *Msg) RespondError(err error) error {
	return m.Respond(wire.ErrorHeader(err), nil)
}

// Subscription is an active subscription.
type Subscription struct{ sub *nats.Subscription }

// Unsubscribe stops delivery.
func (s *Subscription) Unsubscribe() error { return s.sub.Unsubscribe() }

// Drain stops delivery after the messages already received have been handled.
func (s *Subscription) Drain() error { return s.sub.Drain() }

// Subscribe calls h for each message on subject (wildcards allowed), one at a time in a goroutine
// of the subscription. queue, if not "", makes it a queue subscription. On a connection that
// guards its replies (GuardReplies), requests whose reply subject is outside their requester's
// inbox never reach h.
func (c *Conn) Subscribe(subject, queue string, h func(*Msg)) (*Subscription, error) {
	cb := func(m *nats.Msg) {
		msg := &Msg{Subject: m.Subject, Reply: m.Reply, Header: wire.Header(m.Header), Data: m.Data, conn: c}
		if c.replyAllowed(msg) {
			h(msg)
		}
	}
	var sub *nats.Subscription
	var err error
	if queue != "" {
		sub, err = c.nc.QueueSubscribe(subject, queue, cb)
	} else {
		sub, err = c.nc.Subscribe(subject, cb)
	}
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", subject, err)
	}
	_ = sub.SetPendingLimits(-1, 512<<20)
	return &Subscription{sub: sub}, nil
}

// SubscribeAllowed is Subscribe followed by a round trip to the server that tells whether NATS
// permissions allow the subscription: a refused one (the server only logs it to the client
// asynchronously) is unsubscribed and returned as PERMISSION_DENIED, naming the subject.
func (c *Conn) SubscribeAllowed(ctx context.Context, subject string, h func(*Msg)) (*Subscription, error) {
	sub, err := c.Subscribe(subject, "", h)
	if err != nil {
		return nil, err
	}
	if err := c.Flush(ctx); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	// The server answers a refused SUB with -ERR before the PONG of the flush.
	if le := c.nc.LastError(); le != nil && errors.Is(le, nats.ErrPermissionViolation) &&
		strings.Contains(le.Error(), `Subscription to "`+subject+`"`) {
		_ = sub.Unsubscribe()
		return nil, &wire.Error{Code: wire.PermissionDenied, Message: fmt.Sprintf("not allowed to subscribe to %s: %v", subject, le)}
	}
	return sub, nil
}

// Unreachable reports whether a Connect failed because no server answered (refused, timed
// out, no route), so that trying again later may work; not for refused credentials or bad
// addresses.
func Unreachable(err error) bool {
	var op *net.OpError
	return errors.Is(err, nats.ErrNoServers) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, context.DeadlineExceeded) || errors.As(err, &op)
}

// NoResponders reports whether a Request failed because nobody subscribes to its subject: the
// request reached no one, so sending it again later cannot do anything twice.
func NoResponders(err error) bool { return errors.Is(err, nats.ErrNoResponders) }
