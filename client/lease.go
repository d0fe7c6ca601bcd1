package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/controller/api"
	"jsn.dev/jsn/drivers/driver"
)

// Controller is a connection to the lab controller with a client's own identity: request,
// extend, release and list leases, list exporters. A granted lease's credential then reaches the
// exporter through Dial, exactly like a local session.
type Controller struct {
	conn     *bus.Conn
	name     string // the client identity
	endpoint string

	// RetryFor bounds how long a call keeps trying while the controller is not answering (a
	// restart, a replica or NATS server that died, a cluster electing a leader): calls that
	// fail Unavailable or time out are repeated with backoff until then. Zero means
	// DefaultRetryFor; negative, no retries.
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
// once. The Controller's calls retry the same way (RetryFor, OnRetry).
func DialControllerWith(ctx context.Context, cfg *Config, r Retry) (*Controller, error) {
	if err := CheckCredentials(cfg); err != nil {
		return nil, err
	}
	var conn *bus.Conn
	err := r.retry(ctx, "connect to the controller", unreachable, func() (err error) {
		conn, err = bus.ConnectWith(ctx, cfg.Endpoint, bus.ConnectOptions{Name: cfg.Metadata.Name, Creds: []byte(cfg.Credentials)})
		if err != nil {
			err = authError(fmt.Errorf("connect to controller: %w", err))
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	c := &Controller{conn: conn, name: cfg.Metadata.Name, endpoint: cfg.Endpoint, RetryFor: r.For, OnRetry: r.OnRetry}
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

// CheckCredentials checks that cfg's credentials are a client identity's of the current
// scheme: they receive on the client's own inbox prefix (_INBOX_c.<name>), where the controller
// answers. Credentials issued by an older controller are refused with a hint to re-issue them.
func CheckCredentials(cfg *Config) error {
	in, err := bus.CredsInbox([]byte(cfg.Credentials))
	if err != nil {
		return fmt.Errorf("client config %s: %w", cfg.File, err)
	}
	if want := bus.InboxPrefix(bus.KindClient, cfg.Metadata.Name); in != want {
		return bus.Errorf(bus.PermissionDenied, "client config %s: its credentials receive on %s.>, not %s.> as credentials of client %s do now "+
			"(issued by an older jsn?): ask an admin to issue them again (jsn admin delete client %s; jsn admin create client %s)",
			cfg.File, in, want, cfg.Metadata.Name, cfg.Metadata.Name, cfg.Metadata.Name)
	}
	return nil
}

// authError gives a refused connection the PermissionDenied code.
func authError(err error) error {
	s := strings.ToLower(err.Error())
	for _, w := range []string{"authorization violation", "authentication expired", "authentication revoked", "permissions violation", "user authentication"} {
		if strings.Contains(s, w) {
			return &bus.Error{Code: bus.PermissionDenied, Message: err.Error()}
		}
	}
	return err
}

// Name returns the client identity's name.
func (c *Controller) Name() string { return c.name }

// Endpoint returns the controller's address.
func (c *Controller) Endpoint() string { return c.endpoint }

// Close closes the connection.
func (c *Controller) Close() error {
	c.conn.Close()
	return nil
}

// call calls verb, repeating it while the controller is not answering (see RetryFor). Every
// verb is safe to repeat: lease requests carry their id, releases of an ended lease do nothing.
func (c *Controller) call(ctx context.Context, verb string, req, out any) error {
	b, err := bus.Marshal(req)
	if err != nil {
		return fmt.Errorf("%s: %w", verb, err)
	}
	var m *bus.Msg
	r := Retry{For: c.RetryFor, OnRetry: c.OnRetry}
	err = r.retry(ctx, verb, retryable, func() (err error) {
		m, err = c.request(ctx, verb, b)
		return err
	})
	if err != nil {
		return err
	}
	if out == nil || len(m.Data) == 0 {
		return nil
	}
	if err := bus.Unmarshal(m.Data, out); err != nil {
		return fmt.Errorf("%s: reply: %w", verb, err)
	}
	return nil
}

// retryable reports whether err says the controller could not answer now.
func retryable(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, ErrDeadlineExceeded)
}

// request makes one attempt of verb, with the sync token.
func (c *Controller) request(ctx context.Context, verb string, body []byte) (*bus.Msg, error) {
	actx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	c.mu.Lock()
	hdr := bus.Header{api.HeaderSync: {fmt.Sprintf("%d.%d", c.sync[0], c.sync[1])}}
	c.mu.Unlock()
	m, err := c.conn.Request(actx, api.ClientSubject(c.name, verb), hdr, body)
	if err != nil {
		var be *bus.Error
		if errors.As(err, &be) && be.Code == bus.Unavailable && strings.Contains(be.Message, "nobody is serving") {
			return nil, bus.Errorf(bus.Unavailable, "%s: the controller is not answering (is `jsn controller run` up?)", verb)
		}
		if ctx.Err() == nil && actx.Err() != nil {
			return nil, bus.Errorf(bus.DeadlineExceeded, "%s: the controller did not answer within %v", verb, attemptTimeout)
		}
		return nil, err
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

// RequestLease asks for a lease. The reply's lease is active (with a credential) or queued (its
// Reason says why); see WaitLease. Without req.ID it gets a random one, so that repeating the
// request after a lost reply returns the same lease.
func (c *Controller) RequestLease(ctx context.Context, req api.LeaseRequest) (*api.LeaseReply, error) {
	if req.ID == "" {
		req.ID = randomToken()
	}
	var r api.LeaseReply
	if err := c.call(ctx, api.VerbLeaseRequest, req, &r); err != nil {
		return nil, err
	}
	if r.Lease == nil {
		return nil, bus.Errorf(bus.Internal, "lease request: the controller replied without a lease")
	}
	return &r, nil
}

// GetLease returns lease id as the controller has it now (with its credential when active).
func (c *Controller) GetLease(ctx context.Context, id string) (*api.LeaseReply, error) {
	var r api.LeaseReply
	if err := c.call(ctx, api.VerbLeaseGet, api.LeaseID{ID: id}, &r); err != nil {
		return nil, err
	}
	if r.Lease == nil {
		return nil, bus.Errorf(bus.NotFound, "lease %s: not found", id)
	}
	return &r, nil
}

// PollInterval is how often WaitLease asks about a queued lease.
const PollInterval = 500 * time.Millisecond

// ErrLeaseEnded is returned by WaitLease when the lease ended before it was granted.
var ErrLeaseEnded = errors.New("lease ended")

// WaitLease polls queued lease id until it is active, calling progress (if not nil) with the
// lease after every poll. It returns the active lease and its credential, an error wrapping
// ErrLeaseEnded if it ended first, or the context's error.
func (c *Controller) WaitLease(ctx context.Context, id string, progress func(api.Lease)) (*api.LeaseReply, error) {
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	for {
		r, err := c.GetLease(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("wait for lease %s: %w", id, context.Cause(ctx))
			}
			return nil, err
		}
		if progress != nil {
			progress(*r.Lease)
		}
		switch r.Lease.Status {
		case api.StatusActive:
			if r.Credential != nil {
				return r, nil
			}
		case api.StatusEnded:
			return nil, fmt.Errorf("wait for lease %s: %w: %s", id, ErrLeaseEnded, r.Lease.Reason)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for lease %s: %w", id, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// Extend makes lease id end d from now and returns it with its renewed credential.
func (c *Controller) Extend(ctx context.Context, id string, d time.Duration) (*api.LeaseReply, error) {
	var r api.LeaseReply
	if err := c.call(ctx, api.VerbLeaseExtend, api.ExtendRequest{ID: id, Duration: d}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Release ends lease id (or withdraws a queued request); its credential is revoked.
func (c *Controller) Release(ctx context.Context, id string) error {
	return c.call(ctx, api.VerbLeaseRelease, api.LeaseID{ID: id}, nil)
}

// ListLeases lists the client's own leases, or everybody's with all.
func (c *Controller) ListLeases(ctx context.Context, all bool) ([]api.Lease, error) {
	var r api.ListLeasesReply
	if err := c.call(ctx, api.VerbLeaseList, api.ListLeasesRequest{All: all}, &r); err != nil {
		return nil, err
	}
	return r.Leases, nil
}

// ListExporters lists the registered exporters matching selector ("" for all).
func (c *Controller) ListExporters(ctx context.Context, selector string) ([]api.ExporterInfo, error) {
	var r api.ListExportersReply
	if err := c.call(ctx, api.VerbExportersList, api.ListExportersRequest{Selector: selector}, &r); err != nil {
		return nil, err
	}
	return r.Exporters, nil
}

// DescribeExporter returns the driver tree exporter name registered with.
func (c *Controller) DescribeExporter(ctx context.Context, name string) (*driver.Description, error) {
	var d driver.Description
	if err := c.call(ctx, api.VerbExportersDesc, api.ExporterName{Name: name}, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// LeaseOptions returns the Options that reach the exporter of an active lease with its lease
// credential: Dial(ctx, c.LeaseOptions(r)) works like a local session.
func (c *Controller) LeaseOptions(r *api.LeaseReply) (Options, error) {
	if r != nil && r.Lease != nil && r.Lease.Status == api.StatusEnded {
		why := r.Lease.Reason
		if why == "" {
			why = "its credential is no longer valid"
		}
		return Options{}, bus.Errorf(bus.PermissionDenied, "%s", why)
	}
	if r == nil || r.Lease == nil || r.Credential == nil || r.Lease.Status != api.StatusActive {
		return Options{}, bus.Errorf(bus.FailedPrecondition, "lease is not active")
	}
	host := r.Credential.URL
	if host == "" {
		host = c.endpoint
	}
	return Options{Host: host, Exporter: r.Lease.Exporter, Lease: r.Lease.ID, Name: c.name, CredsData: r.Credential.Creds()}, nil
}

// Hooks calls fn with each chunk of lease hook output exporter publishes for lease (its
// beforeLease and afterLease output; only that lease's credential may receive it), until ctx
// ends.
func (c *Client) Hooks(ctx context.Context, exporter, lease string, fn func(api.HookOutput)) error {
	if err := bus.CheckName("exporter", exporter); err != nil {
		return bus.Errorf(bus.InvalidArgument, "hooks: %v", err)
	}
	if err := bus.CheckName("lease", lease); err != nil {
		return bus.Errorf(bus.InvalidArgument, "hooks: %v", err)
	}
	sub, err := c.conn.Subscribe(api.HookSubject(exporter, lease), "", func(m *bus.Msg) {
		var h api.HookOutput
		if bus.Unmarshal(m.Data, &h) == nil {
			fn(h)
		}
	})
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := c.conn.Flush(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// The "lease ready" barrier of a remote exporter (see exporter.RunRemote); the values match the
// exporter's.
const (
	headerHookReplay = "Jsn-Hook-Replay"
	hookReplayEnd    = "replay"
	notReady         = "not ready yet"
)

// WaitReady waits until the exporter serves the handle's lease: in distributed mode a lease is
// served once the exporter's beforeLease hook has run. replay, if not nil, gets that hook's
// output first. It returns PermissionDenied if the lease ended (a failed hook ended it) or is
// not the exporter's. A local exporter answers at once.
func (e *Exporter) WaitReady(ctx context.Context, replay func(api.HookOutput)) error {
	if e.lease == "" {
		return bus.Errorf(bus.FailedPrecondition, "wait for lease: no lease")
	}
	hdr := bus.Header{}
	hdr.Set(bus.HeaderLease, e.lease)
	var got chan api.HookOutput
	if replay != nil {
		token := randomToken()
		got = make(chan api.HookOutput, 1024)
		sub, err := e.c.conn.Subscribe(api.ReplaySubject(e.name, e.lease, token), "", func(m *bus.Msg) {
			var h api.HookOutput
			if bus.Unmarshal(m.Data, &h) == nil {
				select {
				case got <- h:
				default:
				}
			}
		})
		if err != nil {
			return err
		}
		defer func() { _ = sub.Unsubscribe() }()
		if err := e.c.conn.Flush(ctx); err != nil {
			return err
		}
		hdr.Set(headerHookReplay, token)
	}
	var err error
	for {
		rctx, cancel := context.WithTimeout(ctx, 45*time.Second)
		_, err = e.request(rctx, bus.DescribeSubject(e.name), hdr, nil)
		cancel()
		var be *bus.Error
		if err != nil && errors.As(err, &be) && be.Code == bus.Unavailable && strings.Contains(be.Message, notReady) && ctx.Err() == nil {
			continue
		}
		break
	}
	if replay != nil && (err == nil || errors.Is(err, ErrPermissionDenied)) {
		// The replay was published before the reply; its end marker says it is complete.
		end := time.NewTimer(2 * time.Second)
		defer end.Stop()
	loop:
		for {
			select {
			case h := <-got:
				if h.Hook == hookReplayEnd {
					break loop
				}
				replay(h)
			case <-end.C:
				break loop
			case <-ctx.Done():
				break loop
			}
		}
	}
	if err != nil {
		return fmt.Errorf("wait for lease %s on %s: %w", e.lease, e.name, err)
	}
	return nil
}

func randomToken() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Hooks calls fn with each chunk of hook output the exporter publishes for the handle's lease,
// until ctx ends.
func (e *Exporter) Hooks(ctx context.Context, fn func(api.HookOutput)) error {
	return e.c.Hooks(ctx, e.name, e.lease, fn)
}

// IsNotFoundOrEnded reports whether err says a lease is unknown or already over: nothing to
// release.
func IsNotFoundOrEnded(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrLeaseEnded) || errors.Is(err, ErrFailedPrecondition)
}
