package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
)

// Controller is a connection to the lab controller with an identity's own client config: the
// client API (request, extend, release and list leases, list and describe exporters) and, with
// an admin's config, the admin API (issue, list and revoke identities). A granted lease's
// credential then reaches the exporter through Dial, exactly like a local session.
//
// Every call goes through one request helper, so every call fails the same way: UNAVAILABLE
// with a hint to start the controller when nobody answers, PERMISSION_DENIED when the bus
// refuses the identity, the controller's own code and message otherwise.
type Controller struct {
	conn     *bus.Conn
	name     string // the identity
	role     string // RoleClient or RoleAdmin
	endpoint string
	ca       []byte // PEM CA of the endpoint's TLS certificate; nil for the system's roots

	// RetryFor bounds how long a client API call keeps trying while the controller is not
	// answering (a restart, a replica or NATS server that died, a cluster electing a leader):
	// calls that fail Unavailable or time out are repeated with backoff until then. Zero means
	// DefaultRetryFor; negative, no retries. Admin calls are not repeated.
	RetryFor time.Duration
	// OnRetry, if set, is told about each failed attempt before the next: what failed and when
	// it tries again (jsn prints it on stderr).
	OnRetry func(verb string, err error, next time.Duration)

	mu   sync.Mutex
	sync [2]uint64 // newest read-your-writes token of the replies (api.HeaderSync); guarded by mu
}

// DefaultRetryFor is how long calls keep trying a controller that does not answer.
const DefaultRetryFor = time.Minute

// attemptTimeout bounds one attempt of a call: a request the replica that got it cannot answer
// (it died) is sent again, to another replica or the restarted one.
const attemptTimeout = 5 * time.Second

// DialController connects to cfg's endpoint with its credentials (one attempt).
func DialController(ctx context.Context, cfg *Config) (*Controller, error) {
	return DialControllerWith(ctx, cfg, Retry{For: -1})
}

// Retry says how long an operation keeps trying while the bus or the controller is not
// answering, and whom to tell.
type Retry struct {
	// For bounds the retries: zero means DefaultRetryFor, negative none.
	For time.Duration
	// OnRetry, if set, is told about each failed attempt before the next: what failed and when
	// it tries again.
	OnRetry func(what string, err error, next time.Duration)
}

func (r Retry) bound() time.Duration {
	if r.For == 0 {
		return DefaultRetryFor
	}
	return r.For
}

// retry runs op until it succeeds, fails with an error retryable does not accept, ctx ends or
// r's bound passes, waiting with backoff between attempts.
func (r Retry) retry(ctx context.Context, what string, retryable func(error) bool, op func() error) error {
	bound := r.bound()
	end := time.Now().Add(bound)
	wait := 100 * time.Millisecond
	for {
		err := op()
		if err == nil || ctx.Err() != nil || !retryable(err) || bound < 0 || time.Now().Add(wait).After(end) {
			return err
		}
		if r.OnRetry != nil {
			r.OnRetry(what, err, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(wait*2, 2*time.Second)
	}
}

// DialControllerWith connects to cfg's endpoint with its credentials, trying again as r says
// while the endpoint cannot be reached (a restarting controller); a refused credential fails at
// once. The Controller's client API calls retry the same way (RetryFor, OnRetry).
func DialControllerWith(ctx context.Context, cfg *Config, r Retry) (*Controller, error) {
	if err := CheckCredentials(cfg); err != nil {
		return nil, err
	}
	var ca []byte
	if cfg.CA != "" {
		ca = []byte(cfg.CA)
	}
	var conn *bus.Conn
	err := r.retry(ctx, "connect to the controller", unreachable, func() (err error) {
		conn, err = bus.ConnectWith(ctx, cfg.Endpoint, bus.ConnectOptions{Name: cfg.Metadata.Name, Creds: []byte(cfg.Credentials), CA: ca})
		if err != nil {
			err = authError(fmt.Errorf("connect to controller: %w", err))
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	role := cfg.Role
	if role == "" {
		role = RoleClient
	}
	c := &Controller{conn: conn, name: cfg.Metadata.Name, role: role, endpoint: cfg.Endpoint, ca: ca,
		RetryFor: r.For, OnRetry: r.OnRetry}
	if r.For < 0 {
		c.RetryFor = 0 // calls still retry by default
	}
	return c, nil
}

// unreachable reports whether a connection attempt failed because nothing answered (worth
// trying again), rather than being refused.
func unreachable(err error) bool {
	return !errors.Is(err, ErrPermissionDenied) && bus.Unreachable(err)
}

// retryable reports whether err says the controller could not answer now.
func retryable(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, ErrDeadlineExceeded)
}

// CheckCredentials checks that cfg's credentials are a client identity's of the current
// scheme: they receive on the client's own inbox prefix (_INBOX_c.<name>), where the controller
// answers. Credentials issued by an older controller are refused with a hint to re-issue them.
func CheckCredentials(cfg *Config) error {
	in, err := bus.CredsInbox([]byte(cfg.Credentials))
	if err != nil {
		return fmt.Errorf("client config %s: %w", cfg.File, err)
	}
	kind := bus.KindClient
	if cfg.Role == RoleViewer {
		kind = bus.KindViewer
	}
	if want := bus.InboxPrefix(kind, cfg.Metadata.Name); in != want {
		return wire.Errorf(wire.PermissionDenied, "client config %s: its credentials receive on %s.>, not %s.> as credentials of client %s do now "+
			"(issued by an older jsn?): ask an admin to issue them again (jsn admin delete client %s; jsn admin create client %s)",
			cfg.File, in, want, cfg.Metadata.Name, cfg.Metadata.Name, cfg.Metadata.Name)
	}
	return nil
}

// authError gives an error of the bus refusing the identity the PermissionDenied code.
func authError(err error) error {
	s := strings.ToLower(err.Error())
	for _, w := range []string{"authorization violation", "authentication expired", "authentication revoked", "permissions violation", "user authentication"} {
		if strings.Contains(s, w) {
			return wire.NewError(wire.PermissionDenied, err.Error(), nil)
		}
	}
	return err
}

// Name returns the identity's name.
func (c *Controller) Name() string { return c.name }

// Endpoint returns the controller's address.
func (c *Controller) Endpoint() string { return c.endpoint }

// CA returns the PEM of the CA the controller's TLS certificate chains to, nil if the client
// config names none.
func (c *Controller) CA() []byte { return c.ca }

// Close closes the connection.
func (c *Controller) Close() error {
	c.conn.Close()
	return nil
}

// request sends req as verb of the controller API on subject and decodes the reply into out
// (nil to discard it): the one way this package calls the controller. With retry, attempts that
// find the controller not answering are repeated (see RetryFor).
func (c *Controller) request(ctx context.Context, subject, verb string, req, out any, retry bool) error {
	b, err := wire.Marshal(req)
	if err != nil {
		return fmt.Errorf("%s: %w", verb, err)
	}
	var m *bus.Msg
	r := Retry{For: c.RetryFor, OnRetry: c.OnRetry}
	if !retry {
		r.For = -1
	}
	err = r.retry(ctx, verb, retryable, func() (err error) {
		m, err = c.attempt(ctx, subject, verb, b)
		return err
	})
	if err != nil {
		return err
	}
	if out == nil || len(m.Data) == 0 {
		return nil
	}
	if err := wire.Unmarshal(m.Data, out); err != nil {
		return fmt.Errorf("%s: reply: %w", verb, err)
	}
	return nil
}

// attempt makes one attempt of verb, with the read-your-writes sync token.
func (c *Controller) attempt(ctx context.Context, subject, verb string, body []byte) (*bus.Msg, error) {
	actx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	c.mu.Lock()
	hdr := wire.Header{api.HeaderSync: {fmt.Sprintf("%d.%d", c.sync[0], c.sync[1])}}
	c.mu.Unlock()
	m, err := c.conn.Request(actx, subject, hdr, body)
	if err != nil {
		var we *wire.Error
		if errors.As(err, &we) && we.Code == wire.Unavailable && strings.Contains(we.Message, "nobody is serving") {
			return nil, wire.Errorf(wire.Unavailable, "%s: the controller is not answering (is `jsn controller run` up?)", verb)
		}
		if ctx.Err() == nil && actx.Err() != nil {
			return nil, wire.Errorf(wire.DeadlineExceeded, "%s: the controller did not answer within %v", verb, attemptTimeout)
		}
		return nil, authError(err)
	}
	if a, b, ok := strings.Cut(m.Header.Get(api.HeaderSync), "."); ok {
		l, err1 := strconv.ParseUint(a, 10, 64)
		q, err2 := strconv.ParseUint(b, 10, 64)
		if err1 == nil && err2 == nil {
			c.mu.Lock()
			c.sync[0], c.sync[1] = max(c.sync[0], l), max(c.sync[1], q)
			c.mu.Unlock()
		}
	}
	return m, nil
}

// call calls verb of the client API (jsn.ctl.c.<identity>.<verb>), repeating it while the
// controller is not answering (see RetryFor). Every client verb is safe to repeat: lease
// requests carry their id, releases of an ended lease do nothing.
func (c *Controller) call(ctx context.Context, verb string, req, out any) error {
	if c.role == RoleViewer {
		// A viewer's API is its own (jsn.ctl.v.<name>.…): list and describe only.
		switch verb {
		case api.VerbExportersList, api.VerbExportersDesc, api.VerbLeaseList, api.VerbDashboard:
			return c.request(ctx, api.ViewerSubject(c.name, verb), verb, req, out, true)
		}
		return wire.Errorf(wire.PermissionDenied, "%s: %s is a viewer: it may list exporters and leases, describe exporters and watch taps, nothing else", verb, c.name)
	}
	return c.request(ctx, api.ClientSubject(c.name, verb), verb, req, out, true)
}

// Role returns the identity's role: RoleClient, RoleAdmin or RoleViewer.
func (c *Controller) Role() string { return c.role }

// admin calls verb of the admin API (jsn.ctl.a.<identity>.<verb>), which only an admin's
// identity may publish to.
func (c *Controller) admin(ctx context.Context, verb string, req, out any) error {
	if c.role != RoleAdmin {
		return wire.Errorf(wire.PermissionDenied, "%s: %s is a %s identity; the admin API needs an admin's client config "+
			"(jsn controller init makes the first one; jsn admin create client NAME --admin more)", verb, c.name, c.role)
	}
	return c.request(ctx, api.AdminSubject(c.name, verb), verb, req, out, false)
}

// CreateExporter issues an exporter identity and returns its config file (admin API).
func (c *Controller) CreateExporter(ctx context.Context, name string, labels map[string]string) ([]byte, error) {
	var r api.ConfigReply
	err := c.admin(ctx, api.VerbCreateExporter, api.CreateExporterRequest{Name: name, Labels: labels}, &r)
	return r.Config, err
}

// CreateClient issues a client identity (an admin one with admin) and returns its client config
// file (admin API).
func (c *Controller) CreateClient(ctx context.Context, name string, allow []string, maxDuration time.Duration, admin bool) ([]byte, error) {
	return c.CreateClientWith(ctx, api.CreateClientRequest{Name: name, Allow: allow, MaxDuration: maxDuration, Admin: admin})
}

// CreateClientWith issues the client identity req describes and returns its client config file
// (admin API).
func (c *Controller) CreateClientWith(ctx context.Context, req api.CreateClientRequest) ([]byte, error) {
	var r api.ConfigReply
	err := c.admin(ctx, api.VerbCreateClient, req, &r)
	return r.Config, err
}

// CreateViewer issues a viewer identity (read-only: list, describe, watch the taps of watch,
// every exporter when empty) and returns its client config file (admin API).
func (c *Controller) CreateViewer(ctx context.Context, name string, watch []string) ([]byte, error) {
	var r api.ConfigReply
	err := c.admin(ctx, api.VerbCreateViewer, api.CreateViewerRequest{Name: name, Watch: watch}, &r)
	return r.Config, err
}

// ListIdentities lists the identities of kind, api.KindExporter, api.KindClient or
// api.KindViewer (admin API).
func (c *Controller) ListIdentities(ctx context.Context, kind string) ([]api.Identity, error) {
	verb := api.VerbListClient
	switch kind {
	case api.KindExporter:
		verb = api.VerbListExporter
	case api.KindViewer:
		verb = api.VerbListViewer
	}
	var out []api.Identity
	err := Pages(func(p api.Page) (string, error) {
		var r api.ListIdentitiesReply
		if err := c.admin(ctx, verb, api.ListIdentitiesRequest{Page: p}, &r); err != nil {
			return "", err
		}
		out = append(out, r.Identities...)
		return r.Next, nil
	})
	return out, err
}

// DeleteIdentity deletes identity name of kind and revokes its credentials (admin API).
func (c *Controller) DeleteIdentity(ctx context.Context, kind, name string) error {
	verb := api.VerbDeleteClient
	switch kind {
	case api.KindExporter:
		verb = api.VerbDeleteExporter
	case api.KindViewer:
		verb = api.VerbDeleteViewer
	}
	return c.admin(ctx, verb, api.ExporterName{Name: name}, nil)
}

// DashboardToken asks the controller for a one-time dashboard login: a token its HTTP
// listener exchanges, within api.DashboardToken.Expires and once, for a short-lived browser
// credential with this identity's watch rights; URL carries it ("" when the controller serves
// no dashboard: jsn controller run --http ADDR --websocket ADDR).
func (c *Controller) DashboardToken(ctx context.Context) (*api.DashboardToken, error) {
	return c.DashboardTokenFor(ctx, "")
}

// DashboardTokenFor is DashboardToken for a login that may also type into the consoles of lease
// (which this client holds or has shared with it): its browser credential may open their
// streams, and ends with the lease. lease "" is DashboardToken.
func (c *Controller) DashboardTokenFor(ctx context.Context, lease string) (*api.DashboardToken, error) {
	var out api.DashboardToken
	if err := c.call(ctx, api.VerbDashboard, api.DashboardRequest{Lease: lease}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Audit queries the audit log: events oldest first, at most q.Limit (api.AuditMaxLimit), More
// set when the range holds more. A client sees its own events, an admin everybody's.
func (c *Controller) Audit(ctx context.Context, q api.AuditQuery) (*api.AuditReply, error) {
	var r api.AuditReply
	if err := c.call(ctx, api.VerbAudit, q, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
