package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
)

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
		return nil, wire.Errorf(wire.Internal, "lease request: the controller replied without a lease")
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
		return nil, wire.Errorf(wire.NotFound, "lease %s: not found", id)
	}
	return &r, nil
}

// PollInterval is how often WaitLease asks about a queued lease.
const PollInterval = 500 * time.Millisecond

// ErrLeaseEnded is returned by WaitLease when the lease ended before it was granted.
var ErrLeaseEnded = errors.New("lease ended")

// WaitLease polls queued lease id until it is active, calling progress (if not nil) with the
// lease after every poll. It returns the active lease and its credential, an error wrapping
// ErrLeaseEnded if it ended first, or the context's error. A queued keepalive request
// (api.LeaseRequest.Keepalive) is renewed while it waits, as KeepAlive renews the lease: if the
// waiting process dies, the controller drops the request within a keepalive window instead of
// granting it to nobody.
func (c *Controller) WaitLease(ctx context.Context, id string, progress func(api.Lease)) (*api.LeaseReply, error) {
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	var renewed time.Time
	for {
		r, err := c.GetLease(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("wait for lease %s: %w", id, context.Cause(ctx))
			}
			return nil, err
		}
		if l := r.Lease; l.Status == api.StatusQueued && l.Keepalive > 0 && time.Since(renewed) >= l.Keepalive/3 {
			rctx, cancel := context.WithTimeout(ctx, l.Keepalive/3)
			if _, err := c.Renew(rctx, id); err == nil {
				renewed = time.Now()
			}
			cancel()
		}
		if progress != nil {
			progress(*r.Lease)
		}
		switch r.Lease.Status {
		case api.StatusActive:
			if r.Credential != nil || len(r.Parts) > 0 {
				return r, nil // a lease, or a group with its parts (group.go)
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

// Extend makes lease id end d from now and returns it with its renewed credential. It never
// makes the lease end earlier (FAILED_PRECONDITION); SetEnd does.
func (c *Controller) Extend(ctx context.Context, id string, d time.Duration) (*api.LeaseReply, error) {
	var r api.LeaseReply
	if err := c.call(ctx, api.VerbLeaseExtend, api.ExtendRequest{ID: id, Duration: d}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// SetEnd makes lease id end d from now, earlier than now if so, and returns it with its renewed
// credential.
func (c *Controller) SetEnd(ctx context.Context, id string, d time.Duration) (*api.LeaseReply, error) {
	var r api.LeaseReply
	if err := c.call(ctx, api.VerbLeaseExtend, api.ExtendRequest{ID: id, Duration: d, Set: true}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Renew renews keepalive lease id once and returns it as renewed (queued or ended leases as
// they are).
func (c *Controller) Renew(ctx context.Context, id string) (*api.Lease, error) {
	var r api.KeepaliveReply
	if err := c.call(ctx, api.VerbLeaseKeepalive, api.LeaseID{ID: id}, &r); err != nil {
		return nil, err
	}
	if r.Lease == nil {
		return nil, wire.Errorf(wire.NotFound, "lease %s: not found", id)
	}
	return r.Lease, nil
}

// KeepAlive renews keepalive lease l (api.LeaseRequest.Keepalive) until ctx ends (it returns
// nil) or the lease ends (it returns an error wrapping ErrLeaseEnded with the reason). It renews
// every third of the lease's keepalive window and retries failed renewals until the window is
// nearly over, so a controller replica failing over does not end the lease. Run it in its own
// goroutine for as long as the lease is needed: when the process dies the lease ends within the
// window.
func (c *Controller) KeepAlive(ctx context.Context, l *api.Lease) error {
	every := l.Keepalive / 3
	if every <= 0 {
		return fmt.Errorf("keepalive %s: not a keepalive lease", l.ID)
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, every)
		got, err := c.Renew(rctx, l.ID)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && errors.Is(err, ErrNotFound):
			return fmt.Errorf("keepalive %s: %w: gone", l.ID, ErrLeaseEnded)
		case err != nil:
			t.Reset(every / 4) // a replica failing over: try again soon
			continue
		case got.Status == api.StatusEnded:
			return fmt.Errorf("keepalive %s: %w: %s", l.ID, ErrLeaseEnded, got.Reason)
		}
		t.Reset(every)
	}
}

// Release ends lease id (or withdraws a queued request); its credential is revoked.
func (c *Controller) Release(ctx context.Context, id string) error {
	return c.call(ctx, api.VerbLeaseRelease, api.LeaseID{ID: id}, nil)
}

// ListLeases lists the client's own leases, or everybody's with all (without the ids of other
// clients' leases, unless the client is an admin).
func (c *Controller) ListLeases(ctx context.Context, all bool) ([]api.Lease, error) {
	var out []api.Lease
	err := Pages(func(p api.Page) (string, error) {
		var r api.ListLeasesReply
		if err := c.call(ctx, api.VerbLeaseList, api.ListLeasesRequest{All: all, Page: p}, &r); err != nil {
			return "", err
		}
		out = append(out, r.Leases...)
		return r.Next, nil
	})
	return out, err
}

// ListExporters lists the registered exporters matching selector ("" for all).
func (c *Controller) ListExporters(ctx context.Context, selector string) ([]api.ExporterInfo, error) {
	var out []api.ExporterInfo
	err := Pages(func(p api.Page) (string, error) {
		var r api.ListExportersReply
		if err := c.call(ctx, api.VerbExportersList, api.ListExportersRequest{Selector: selector, Page: p}, &r); err != nil {
			return "", err
		}
		out = append(out, r.Exporters...)
		return r.Next, nil
	})
	return out, err
}

// Pages calls get for each page of a paginated list (api.Page), the first with no cursor and
// each next one with the cursor the previous returned, until a page returns none.
func Pages(get func(api.Page) (next string, err error)) error {
	var p api.Page
	for {
		next, err := get(p)
		if err != nil || next == "" {
			return err
		}
		if next <= p.After {
			return wire.Errorf(wire.Internal, "list: the cursor went back from %q to %q", p.After, next)
		}
		p.After = next
	}
}

// DescribeExporter returns the driver tree exporter name registered with.
func (c *Controller) DescribeExporter(ctx context.Context, name string) (*wire.Description, error) {
	var d wire.Description
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
		return Options{}, wire.Errorf(wire.PermissionDenied, "%s", why)
	}
	if r == nil || r.Lease == nil || r.Credential == nil || r.Lease.Status != api.StatusActive {
		return Options{}, wire.Errorf(wire.FailedPrecondition, "lease is not active")
	}
	host := r.Credential.URL
	if host == "" {
		host = c.endpoint
	}
	return Options{Host: host, Exporter: r.Lease.Exporter, Lease: r.Lease.ID, Name: c.name, CredsData: r.Credential.Creds(), CA: c.ca}, nil
}

// Hooks calls fn with each chunk of lease hook output exporter publishes for lease (its
// beforeLease and afterLease output; only that lease's credential may receive it), until ctx
// ends.
func (c *Client) Hooks(ctx context.Context, exporter, lease string, fn func(api.HookOutput)) error {
	if err := wire.CheckName("exporter", exporter); err != nil {
		return wire.Errorf(wire.InvalidArgument, "hooks: %v", err)
	}
	if err := wire.CheckName("lease", lease); err != nil {
		return wire.Errorf(wire.InvalidArgument, "hooks: %v", err)
	}
	sub, err := c.conn.Subscribe(api.HookSubject(exporter, lease), "", func(m *bus.Msg) {
		var h api.HookOutput
		if wire.Unmarshal(m.Data, &h) == nil {
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
		return wire.Errorf(wire.FailedPrecondition, "wait for lease: no lease")
	}
	hdr := wire.Header{}
	hdr.Set(wire.HeaderLease, e.lease)
	var got chan api.HookOutput
	if replay != nil {
		token := randomToken()
		got = make(chan api.HookOutput, 1024)
		sub, err := e.c.conn.Subscribe(api.ReplaySubject(e.name, e.lease, token), "", func(m *bus.Msg) {
			var h api.HookOutput
			if wire.Unmarshal(m.Data, &h) == nil {
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
		_, err = e.request(rctx, wire.DescribeSubject(e.name), hdr, nil)
		cancel()
		var be *wire.Error
		if err != nil && errors.As(err, &be) && be.Code == wire.Unavailable && strings.Contains(be.Message, notReady) && ctx.Err() == nil {
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

// Share shares active lease id with client with: with gets a credential of its own for it
// (lease.get), bounded by its own allow list, until the lease ends or Unshare.
func (c *Controller) Share(ctx context.Context, id, with string) (*api.Lease, error) {
	var r api.LeaseReply
	if err := c.call(ctx, api.VerbLeaseShare, api.ShareRequest{ID: id, With: with}, &r); err != nil {
		return nil, err
	}
	return r.Lease, nil
}

// Unshare withdraws lease id from client with: its credential for it is revoked.
func (c *Controller) Unshare(ctx context.Context, id, with string) (*api.Lease, error) {
	var r api.LeaseReply
	if err := c.call(ctx, api.VerbLeaseUnshare, api.ShareRequest{ID: id, With: with}, &r); err != nil {
		return nil, err
	}
	return r.Lease, nil
}

// Transfer hands lease id over to client to: the lease is to's from now on, and the caller's
// credentials for it are revoked.
func (c *Controller) Transfer(ctx context.Context, id, to string) (*api.Lease, error) {
	var r api.LeaseReply
	if err := c.call(ctx, api.VerbLeaseTransfer, api.ShareRequest{ID: id, With: to}, &r); err != nil {
		return nil, err
	}
	return r.Lease, nil
}
