package mcp

import (
	"context"
	"errors"
	"fmt"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/client"
	"jsn.dev/jsn/client/remote"
	"jsn.dev/jsn/controller/api"
)

// Lab is what the server drives: a local session (Session) or a controller (Controller).
type Lab interface {
	// Exporters lists the exporters matching selector ("" for all).
	Exporters(ctx context.Context, selector string) ([]Exporter, error)
	// Lease requests a lease (exporter or selector) for d, waiting up to wait in the queue.
	Lease(ctx context.Context, exporter, selector string, d, wait time.Duration) (*Lease, error)
	// Release ends lease id.
	Release(ctx context.Context, id string) error
	// Dial connects to the exporter of lease l.
	Dial(ctx context.Context, l *Lease) (remote.Exporter, error)
	// Held lists the leases the lab holds already when the server starts (a local session's).
	Held() []*Lease
}

// Exporter is one exporter as list_exporters shows it.
type Exporter struct {
	Name     string            `json:"name"`
	Labels   map[string]string `json:"labels,omitempty"`
	Online   bool              `json:"online"`
	LeasedBy string            `json:"leased_by,omitempty" jsonschema:"the client holding it; empty when free"`
}

// Lease is a lease the server holds.
type Lease struct {
	ID       string    `json:"lease"`
	Exporter string    `json:"exporter,omitempty"`
	Status   string    `json:"status" jsonschema:"active, or queued (with reason)"`
	Reason   string    `json:"reason,omitempty"`
	End      time.Time `json:"end,omitzero"`

	reply *api.LeaseReply
}

// Session is a local session (jsn shell -c lab.yaml, or one jsn mcp -c starts): one exporter,
// leased for as long as the session lasts.
type Session struct {
	Options client.Options // where the session is (client.OptionsFromEnv inside jsn shell)
}

func (s *Session) lease() *Lease {
	return &Lease{ID: s.Options.Lease, Exporter: s.Options.Exporter, Status: api.StatusActive}
}

// Exporters lists the session's exporter.
func (s *Session) Exporters(ctx context.Context, selector string) ([]Exporter, error) {
	return []Exporter{{Name: s.Options.Exporter, Online: true, LeasedBy: "this session"}}, nil
}

// Lease returns the session's lease: a local session has one exporter, leased all along.
func (s *Session) Lease(ctx context.Context, exporter, selector string, d, wait time.Duration) (*Lease, error) {
	if exporter != "" && exporter != s.Options.Exporter {
		return nil, wire.Errorf(wire.NotFound, "no exporter %q in this local session; it has only %s", exporter, s.Options.Exporter)
	}
	return s.lease(), nil
}

// Release refuses: the session's lease ends with the session.
func (s *Session) Release(ctx context.Context, id string) error {
	return wire.Errorf(wire.FailedPrecondition, "lease %s is a local session's: it ends when the session (jsn shell, jsn mcp -c) ends", id)
}

// Dial connects to the session's exporter.
func (s *Session) Dial(ctx context.Context, l *Lease) (remote.Exporter, error) {
	ex, err := client.Dial(ctx, s.Options)
	if err != nil {
		return nil, err
	}
	return dialed{ex}, nil
}

// dialed is a *client.Exporter as a remote.Exporter.
type dialed struct{ *client.Exporter }

func (d dialed) Driver(path string) remote.Driver { return d.Exporter.Driver(path) }

// Held is the session's lease.
func (s *Session) Held() []*Lease { return []*Lease{s.lease()} }

// Controller is a lab run by a controller, reached with a client config.
type Controller struct {
	Ctl *client.Controller
}

// Exporters lists the controller's exporters.
func (c *Controller) Exporters(ctx context.Context, selector string) ([]Exporter, error) {
	xs, err := c.Ctl.ListExporters(ctx, selector)
	if err != nil {
		return nil, err
	}
	out := make([]Exporter, 0, len(xs))
	for _, x := range xs {
		e := Exporter{Name: x.Name, Labels: x.Labels, Online: x.Online}
		if x.Lease != nil {
			e.LeasedBy = x.Lease.Client
		}
		out = append(out, e)
	}
	return out, nil
}

// Lease requests a lease and waits up to wait for it to be granted.
func (c *Controller) Lease(ctx context.Context, exporter, selector string, d, wait time.Duration) (*Lease, error) {
	r, err := c.Ctl.RequestLease(ctx, api.LeaseRequest{Exporter: exporter, Selector: selector, Duration: d})
	if err != nil {
		return nil, err
	}
	if r.Lease.Status == api.StatusQueued && wait > 0 {
		wctx, cancel := context.WithTimeout(ctx, wait)
		w, werr := c.Ctl.WaitLease(wctx, r.Lease.ID, nil)
		cancel()
		switch {
		case werr == nil:
			r = w
		case errors.Is(werr, context.DeadlineExceeded) && ctx.Err() == nil:
			_ = c.Ctl.Release(context.WithoutCancel(ctx), r.Lease.ID)
			return nil, wire.Errorf(wire.DeadlineExceeded, "lease request: not granted within %v (%s); request withdrawn", wait, r.Lease.Reason)
		default:
			return nil, werr
		}
	}
	return &Lease{ID: r.Lease.ID, Exporter: r.Lease.Exporter, Status: r.Lease.Status, Reason: r.Lease.Reason, End: r.Lease.End, reply: r}, nil
}

// Release releases lease id.
func (c *Controller) Release(ctx context.Context, id string) error { return c.Ctl.Release(ctx, id) }

// Dial connects to the exporter of lease l with its credential, once its exporter serves it.
func (c *Controller) Dial(ctx context.Context, l *Lease) (remote.Exporter, error) {
	if l.Status != api.StatusActive || l.reply == nil {
		r, err := c.Ctl.GetLease(ctx, l.ID)
		if err != nil {
			return nil, err
		}
		if r.Lease.Status != api.StatusActive {
			return nil, wire.Errorf(wire.FailedPrecondition, "lease %s is %s (%s), not active", l.ID, r.Lease.Status, r.Lease.Reason)
		}
		l.reply, l.Status, l.Exporter, l.End = r, r.Lease.Status, r.Lease.Exporter, r.Lease.End
	}
	o, err := c.Ctl.LeaseOptions(l.reply)
	if err != nil {
		return nil, err
	}
	ex, err := client.Dial(ctx, o)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := ex.WaitReady(wctx, nil); err != nil {
		_ = ex.Close()
		return nil, fmt.Errorf("lease %s: exporter %s: %w", l.ID, l.Exporter, err)
	}
	return dialed{ex}, nil
}

// Held is nothing: leases are requested through the server.
func (c *Controller) Held() []*Lease { return nil }
