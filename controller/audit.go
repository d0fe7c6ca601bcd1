package controller

import (
	"context"
	"fmt"
	"strings"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
)

// AuditOptions configure the audit log (api.AuditStream): every lease event, appended by the
// controller, and every driver call, appended by the exporter that served it.
type AuditOptions struct {
	Off      bool          // no audit log: lease events are not written (exporters' call events go nowhere)
	MaxAge   time.Duration // oldest event kept (default DefaultAuditMaxAge)
	MaxBytes int64         // most bytes kept, oldest dropped first (default DefaultAuditMaxBytes)
}

// Audit log limits by default.
const (
	DefaultAuditMaxAge   = 30 * 24 * time.Hour
	DefaultAuditMaxBytes = 1 << 30
)

// openAudit creates the audit stream or updates its limits.
func (c *Controller) openAudit(ctx context.Context) error {
	a := &c.o.Audit
	if a.Off {
		return nil
	}
	if a.MaxAge == 0 {
		a.MaxAge = DefaultAuditMaxAge
	}
	if a.MaxBytes == 0 {
		a.MaxBytes = DefaultAuditMaxBytes
	}
	if a.MaxAge < 0 || a.MaxBytes < 0 {
		return fmt.Errorf("controller: audit log limits: max age %v and max bytes %d must not be negative", a.MaxAge, a.MaxBytes)
	}
	err := c.state.EnsureLog(ctx, bus.LogConfig{Name: api.AuditStream, Subjects: []string{api.AuditPrefix + ">"},
		MaxAge: a.MaxAge, MaxBytes: a.MaxBytes, Replicas: c.o.Replicas})
	if err != nil {
		return fmt.Errorf("controller: audit: %w", err)
	}
	return nil
}

// auditLease appends lease event ev of l to the audit log. It only queues the message on the
// state connection (no round trip): a grant never waits for its audit entry. The message id
// makes the stream drop the repeats of replicas and retries that do the same step.
func (c *Controller) auditLease(ev string, l *api.Lease, reason string) {
	if c.o.Audit.Off || c.state == nil {
		return
	}
	e := api.AuditEvent{Time: time.Now().UTC(), Kind: api.AuditKindLease, Event: ev, Client: l.Client,
		Exporter: l.Exporter, Lease: l.ID, Reason: reason, Group: l.Group}
	id := ev + "-" + l.ID
	switch ev {
	case api.AuditGrant, api.AuditExtend:
		e.End = l.End
		id += "-" + l.End.Format(time.RFC3339Nano)
	case api.AuditRequest, api.AuditQueued:
	case api.AuditShare, api.AuditUnshare, api.AuditTransfer:
		id += "-" + e.Time.Format(time.RFC3339Nano)
	default:
		id = "end-" + l.ID // one end per lease, whatever the replicas call it
	}
	b, err := wire.Marshal(&e)
	if err != nil {
		return
	}
	if err := c.state.Publish(api.AuditLeaseSubject(l.Exporter, l.Client), wire.Header{"Nats-Msg-Id": {id}}, b); err != nil {
		c.log.Warn("audit", "event", ev, "lease", l.ID, "err", err)
	}
}

// auditEnd appends the end of lease l, ended for reason, classified by that reason.
func (c *Controller) auditEnd(l *api.Lease, reason string) {
	ev := api.AuditEnd
	switch {
	case reason == "expired", strings.Contains(reason, "(keepalive"):
		ev = api.AuditExpire
	case strings.HasPrefix(reason, "released by"):
		ev = api.AuditRelease
	case strings.HasPrefix(reason, "identity "), strings.HasPrefix(reason, "revoked"), strings.Contains(reason, "deleted"):
		ev = api.AuditRevoke
	}
	if l.Status == api.StatusQueued || l.Exporter == "" && l.Begin.IsZero() {
		ev = api.AuditCancel
	}
	c.auditLease(ev, l, reason)
}

// auditQuery answers the client API's audit.query: a client sees its own events (the lease
// events of its leases and the calls made with them), an admin everybody's.
func (c *Controller) auditQuery(ctx context.Context, who string, data []byte) (any, error) {
	var q api.AuditQuery
	if err := decode(data, &q); err != nil {
		return nil, err
	}
	if c.o.Audit.Off {
		return nil, wire.Errorf(wire.FailedPrecondition, "audit: the controller keeps no audit log (started with --audit=false)")
	}
	if c.isAdmin(who) != nil {
		if q.Client != "" && q.Client != who {
			return nil, wire.Errorf(wire.PermissionDenied, "audit: %s may see only its own events, not client %s's (an admin sees everybody's)", who, q.Client)
		}
		q.Client = who
	}
	filter, err := auditFilter(&q)
	if err != nil {
		return nil, err
	}
	out := api.AuditReply{Events: []api.AuditEvent{}}
	var bad int
	err = c.state.ReadLog(ctx, api.AuditStream, []string{filter}, q.Since, func(m bus.LogEntry) bool {
		if !q.Until.IsZero() && m.Time.After(q.Until) {
			return false
		}
		var ev api.AuditEvent
		if wire.Unmarshal(m.Data, &ev) != nil {
			bad++
			return true
		}
		if q.Lease != "" && ev.Lease != q.Lease {
			return true
		}
		// The subject, which NATS lets only the controller or that exporter publish, is what
		// the entry is about; the body cannot claim otherwise.
		parts := strings.Split(m.Subject, ".")
		if len(parts) != 5 {
			bad++
			return true
		}
		ev.Kind, ev.Exporter, ev.Client = parts[2], noneIsEmpty(parts[3]), noneIsEmpty(parts[4])
		ev.Seq, ev.Time = m.Seq, m.Time.UTC()
		if len(out.Events) == q.Limit {
			out.More = true
			return false
		}
		out.Events = append(out.Events, ev)
		return true
	})
	if bad > 0 {
		c.log.Warn("audit: entries that are not audit events", "count", bad)
	}
	return out, err
}

func noneIsEmpty(tok string) string {
	if tok == api.AuditNone {
		return ""
	}
	return tok
}

// auditFilter checks query q (and bounds its limit) and returns the subject filter it reads.
func auditFilter(q *api.AuditQuery) (string, error) {
	for _, f := range []struct{ name, v string }{{"exporter", q.Exporter}, {"client", q.Client}, {"lease", q.Lease}} {
		if f.v != "" && !wire.ValidName(f.v) {
			return "", wire.Errorf(wire.InvalidArgument, "audit: %s %q: not a name", f.name, f.v)
		}
	}
	kind := "*"
	switch q.Kind {
	case "":
	case api.AuditKindLease, api.AuditKindCall:
		kind = q.Kind
	default:
		return "", wire.Errorf(wire.InvalidArgument, "audit: kind %q: want %s, %s or nothing for both", q.Kind, api.AuditKindLease, api.AuditKindCall)
	}
	if !q.Until.IsZero() && q.Until.Before(q.Since) {
		return "", wire.Errorf(wire.InvalidArgument, "audit: until %s is before since %s", q.Until.Format(time.RFC3339), q.Since.Format(time.RFC3339))
	}
	if q.Limit <= 0 || q.Limit > api.AuditMaxLimit {
		q.Limit = api.AuditMaxLimit
	}
	return strings.Replace(api.AuditFilter(q.Exporter, q.Client), api.AuditPrefix+"*.", api.AuditPrefix+kind+".", 1), nil
}
