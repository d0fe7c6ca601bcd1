package controller

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
)

// serveAPI adds the micro service "jsn-controller" with one endpoint per verb. Replies go only
// into the requester's own inbox (apiRequester): a request naming any other reply subject is
// dropped unanswered.
func (c *Controller) serveAPI() error {
	c.conn.GuardReplies(apiRequester, c.refusedReply)
	svc, err := c.conn.AddService(bus.ServiceConfig{Name: "jsn-controller", Version: "0.1.0",
		Description: "jsn lab controller", QueueGroup: "jsn-controller"})
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	c.svc = svc
	type ep struct {
		prefix, verb string
		h            func(ctx context.Context, who string, data []byte) (any, error)
	}
	eps := []ep{
		{api.PrefixExporter, api.VerbRegister, c.register},
		{api.PrefixExporter, api.VerbHeartbeat, c.heartbeat},
		{api.PrefixExporter, api.VerbLeaseEnded, c.leaseEnded},
		{api.PrefixExporter, api.VerbLeaseDone, c.leaseDone},
		{api.PrefixClient, api.VerbLeaseRequest, c.leaseRequest},
		{api.PrefixClient, api.VerbLeaseGet, c.leaseGet},
		{api.PrefixClient, api.VerbLeaseExtend, c.leaseExtend},
		{api.PrefixClient, api.VerbLeaseRelease, c.leaseRelease},
		{api.PrefixClient, api.VerbLeaseList, c.leaseList},
		{api.PrefixClient, api.VerbLeaseKeepalive, c.leaseKeepalive},
		{api.PrefixClient, api.VerbLeaseShare, c.leaseShare},
		{api.PrefixClient, api.VerbLeaseUnshare, c.leaseUnshare},
		{api.PrefixClient, api.VerbLeaseTransfer, c.leaseTransfer},
		{api.PrefixClient, api.VerbExportersList, c.exportersList},
		{api.PrefixClient, api.VerbExportersDesc, c.exportersDescribe},
		{api.PrefixViewer, api.VerbLeaseList, asViewer(c.leaseList)},
		{api.PrefixViewer, api.VerbExportersList, asViewer(c.exportersList)},
		{api.PrefixViewer, api.VerbExportersDesc, asViewer(c.exportersDescribe)},
		{api.PrefixViewer, api.VerbDashboard, c.viewerDashboardToken},
		{api.PrefixClient, api.VerbAudit, c.auditQuery},
		{api.PrefixClient, api.VerbDashboard, c.dashboardToken},
		{api.PrefixAdmin, api.VerbCreateExporter, c.createExporter},
		{api.PrefixAdmin, api.VerbCreateClient, c.createClient},
		{api.PrefixAdmin, api.VerbListExporter, c.lister(api.KindExporter)},
		{api.PrefixAdmin, api.VerbListClient, c.lister(api.KindClient)},
		{api.PrefixAdmin, api.VerbDeleteExporter, c.deleter(api.KindExporter)},
		{api.PrefixAdmin, api.VerbDeleteClient, c.deleter(api.KindClient)},
		{api.PrefixAdmin, api.VerbExporterOff, c.exporterDisable},
		{api.PrefixAdmin, api.VerbExporterOn, c.exporterEnable},
		{api.PrefixAdmin, api.VerbPolicySet, c.policySet},
		{api.PrefixAdmin, api.VerbPolicyGet, c.policyGet},
		{api.PrefixAdmin, api.VerbPolicyList, c.policyList},
		{api.PrefixAdmin, api.VerbPolicyDelete, c.policyDelete},
		{api.PrefixAdmin, api.VerbCreateViewer, c.createViewer},
		{api.PrefixAdmin, api.VerbListViewer, c.lister(api.KindViewer)},
		{api.PrefixAdmin, api.VerbDeleteViewer, c.deleter(api.KindViewer)},
	}
	for _, e := range eps {
		name := strings.NewReplacer(".", "-").Replace(strings.TrimSuffix(strings.TrimPrefix(e.prefix, "jsn.ctl."), ".") + "-" + e.verb)
		h := e.h
		clientAPI := e.prefix != api.PrefixExporter
		err := svc.Handle(name, e.prefix+"*."+e.verb, func(m *bus.Msg) {
			// Each request in its own goroutine: one waiting for a bucket (a cluster electing a
			// stream leader) must not hold up the others of its verb.
			if !c.beginRequest() {
				return // closing
			}
			c.reqs <- struct{}{}
			go func() {
				defer func() { <-c.reqs; c.reqWG.Done() }()
				c.serve(m, h, clientAPI)
			}()
		})
		if err != nil {
			return fmt.Errorf("controller: %w", err)
		}
	}
	return nil
}

// beginRequest counts an API request in reqWG, unless the replica is closing: WaitGroup.Add
// must not race with the Wait in Close.
func (c *Controller) beginRequest() bool {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.closing {
		return false
	}
	c.reqWG.Add(1)
	return true
}

// apiRequester is the inbox prefix of whoever sent API request m: the identity named by the
// subject's fourth token, which NATS permissions let only that identity publish
// (jsn.ctl.c.<client>, jsn.ctl.a.<admin client>, jsn.ctl.e.<exporter>, jsn.ctl.v.<viewer>).
func apiRequester(m *bus.Msg) string {
	parts := strings.SplitN(m.Subject, ".", 5)
	if len(parts) < 5 || parts[0] != "jsn" || parts[1] != "ctl" || !wire.ValidName(parts[3]) {
		return ""
	}
	switch parts[2] {
	case "c", "a":
		return bus.InboxPrefix(bus.KindClient, parts[3])
	case "e":
		return bus.InboxPrefix(bus.KindExporter, parts[3])
	case "v":
		return bus.InboxPrefix(bus.KindViewer, parts[3])
	}
	return ""
}

// asViewer serves a read-only client verb to a viewer (role v): as nobody in particular, so that
// it sees what any non-admin client sees of others (leases without their ids) and nothing of a
// client of the same name. The subject's identity token is one that only the viewer's
// credentials (and browser credentials minted for that name, MintViewer) may publish; the
// verbs served are harmless reads, so the token needs no identity record behind it.
func asViewer(h func(ctx context.Context, who string, data []byte) (any, error)) func(context.Context, string, []byte) (any, error) {
	return func(ctx context.Context, _ string, data []byte) (any, error) { return h(ctx, "", data) }
}

// refusedReply logs requests dropped for naming a reply outside their requester's inbox, at most
// one line per refusalLogEvery (they are an attack or a broken client, and must not flood the log).
func (c *Controller) refusedReply(m *bus.Msg, inbox string) {
	now := time.Now()
	c.refusedMu.Lock()
	c.refusedN++
	if now.Sub(c.refusedAt) < refusalLogEvery {
		c.refusedMu.Unlock()
		return
	}
	n := c.refusedN
	c.refusedN, c.refusedAt = 0, now
	c.refusedMu.Unlock()
	c.log.Warn("controller api: request dropped: its reply subject is not the requester's inbox",
		"subject", m.Subject, "reply", m.Reply, "inbox", inbox, "dropped", n)
}

// refusalLogEvery bounds how often dropped requests are logged.
const refusalLogEvery = 10 * time.Second

// serve answers one API request. Client and admin requests carrying a sync token wait until
// this replica has seen the writes it stands for, and every reply carries the current one.
func (c *Controller) serve(m *bus.Msg, h func(ctx context.Context, who string, data []byte) (any, error), clientAPI bool) {
	c.served.Add(1)
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("controller api: panic", "subject", m.Subject, "panic", r, "stack", string(debug.Stack()))
			_ = m.RespondError(wire.Errorf(wire.Internal, "%s: the controller failed (a bug; see its log)", m.Subject))
		}
	}()
	who := strings.Split(m.Subject, ".")[3]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out any
	want, err := parseSyncToken(m.Header.Get(api.HeaderSync))
	if err == nil && clientAPI {
		err = c.waitSeen(ctx, want)
	}
	if err == nil {
		out, err = h(ctx, who, m.Data)
	}
	var hdr wire.Header
	if clientAPI {
		hdr = wire.Header{api.HeaderSync: {c.syncToken()}}
	}
	if err != nil {
		if _, ok := err.(*wire.Error); !ok {
			if be := (*wire.Error)(nil); errors.As(err, &be) && be.Code == wire.Unavailable {
				err = wire.Errorf(wire.Unavailable, "%s: %v", m.Subject, err) // a bucket not answering: try again
			} else {
				c.log.Error("controller api", "subject", m.Subject, "err", err)
				err = wire.Errorf(wire.Internal, "%s: %v", m.Subject, err)
			}
		}
		eh := wire.ErrorHeader(err)
		for k, v := range hdr {
			eh[k] = v
		}
		_ = m.Respond(eh, nil)
		return
	}
	b, err := wire.Marshal(out)
	if err != nil {
		_ = m.RespondError(wire.Errorf(wire.Internal, "%v", err))
		return
	}
	_ = m.Respond(hdr, b)
}

func decode(data []byte, v any) error {
	if len(data) == 0 {
		return nil // an empty body is the zero request
	}
	if err := wire.Unmarshal(data, v); err != nil {
		return wire.Errorf(wire.InvalidArgument, "bad request body: %v", err)
	}
	return nil
}

func (c *Controller) identity(kind, name string) *api.Identity {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ids[kind+"."+name]
}

// --- exporters ---

func (c *Controller) register(ctx context.Context, e string, data []byte) (any, error) {
	var req api.RegisterRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	id := c.identity(api.KindExporter, e)
	if id == nil {
		return nil, wire.Errorf(wire.PermissionDenied, "register %s: no such exporter identity", e)
	}
	// Only the labels the admin gave the identity select the exporter: the lab host's own
	// (from its config file) are checked like the admin's and kept for display only, so an
	// exporter cannot steer selector leases towards itself.
	if err := checkLabels(req.Labels); err != nil {
		return nil, wire.Errorf(wire.InvalidArgument, "register %s: %v", e, err)
	}
	if !validVersion(req.Version) {
		return nil, wire.Errorf(wire.InvalidArgument, "register %s: version %q: use at most 64 printable ASCII characters, no spaces", e, req.Version)
	}
	labels := map[string]string{}
	for k, v := range id.Labels {
		labels[k] = v
	}
	if req.AfterLease < 0 {
		return nil, wire.Errorf(wire.InvalidArgument, "register %s: negative afterLease timeout", e)
	}
	now := time.Now().UTC()
	rec := &exporterRecord{Name: e, Labels: labels, Reported: req.Labels, Describe: req.Describe, Version: req.Version,
		Registered: now, LastSeen: now, AfterLease: min(req.AfterLease, maxAfterLease)}
	if err := c.putExporter(ctx, rec); err != nil {
		return nil, err
	}
	c.notBusy(ctx, e, req.Busy)
	l, rev := c.currentLease(e)
	return api.RegisterReply{Lease: l, Heartbeat: c.o.Heartbeat, Rev: rev}, nil
}

func (c *Controller) leaseDone(ctx context.Context, e string, data []byte) (any, error) {
	var req api.LeaseDoneRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	c.mu.Lock()
	le := c.active[e]
	c.mu.Unlock()
	if le != nil && le.rec.Finishing && le.rec.Lease.ID == req.Lease {
		c.finished(ctx, e, le)
	}
	if req.Lease != "" && wire.ValidName(req.Lease) {
		c.hookResult(ctx, e, req.Lease, truncate(req.HookFailed, 200))
	}
	return api.Empty{}, nil
}

func (c *Controller) putExporter(ctx context.Context, rec *exporterRecord) error {
	b, err := wire.Marshal(rec)
	if err != nil {
		return err
	}
	rev, err := c.exporters.Put(ctx, rec.Name, b)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.fresh("e/"+rec.Name, rev) {
		c.setExp(rec)
	}
	c.mu.Unlock()
	return nil
}

// currentLease returns exporter e's active lease (nil if none) and the revision of the lease
// bucket it is current at: this replica has seen every change of e's key up to there.
func (c *Controller) currentLease(e string) (*api.Lease, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rev := max(c.seen[syncLeases], c.revs["l/"+e])
	if le := c.active[e]; le.live() && le.rec.Lease.End.After(time.Now()) {
		l := le.rec.Lease
		return &l, rev
	}
	return nil, rev
}

func (c *Controller) heartbeat(ctx context.Context, e string, data []byte) (any, error) {
	var req api.HeartbeatRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if c.identity(api.KindExporter, e) == nil {
		return nil, wire.Errorf(wire.PermissionDenied, "heartbeat %s: no such exporter identity", e)
	}
	c.mu.Lock()
	old := c.exps[e]
	c.mu.Unlock()
	if old == nil {
		return nil, wire.Errorf(wire.FailedPrecondition, "heartbeat %s: not registered (register first)", e)
	}
	rec := *old
	rec.LastSeen = time.Now().UTC()
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := c.putExporter(pctx, &rec); err != nil {
		// The exporter must still hear what it should serve: that is what a heartbeat is for.
		c.log.Warn("heartbeat: record last seen", "exporter", e, "err", err)
	}
	c.notBusy(ctx, e, req.Busy)
	l, rev := c.currentLease(e)
	return api.HeartbeatReply{Lease: l, Rev: rev}, nil
}

func (c *Controller) leaseEnded(ctx context.Context, e string, data []byte) (any, error) {
	var req api.LeaseEndedRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	c.mu.Lock()
	le := c.active[e]
	c.mu.Unlock()
	if !le.live() || le.rec.Lease.ID != req.Lease {
		return api.Empty{}, nil // already over
	}
	reason := "ended by the exporter"
	if req.Reason != "" {
		reason += ": " + req.Reason
	}
	return api.Empty{}, c.endLease(ctx, e, le, reason)
}

// --- clients ---

func (c *Controller) leaseRequest(ctx context.Context, who string, data []byte) (any, error) {
	var req api.LeaseRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	id := c.identity(api.KindClient, who)
	if id == nil {
		return nil, wire.Errorf(wire.PermissionDenied, "lease request: no such client %s", who)
	}
	limit, limitBy := c.leaseLimit(id)
	if req.Keepalive && req.Duration == 0 {
		req.Duration = limit // a keepalive lease's hard end: the longest allowed
	}
	switch {
	case req.Duration <= 0:
		return nil, wire.Errorf(wire.InvalidArgument, "lease request: duration must be positive")
	case req.Duration > c.o.MaxDuration:
		return nil, wire.Errorf(wire.InvalidArgument, "lease request: duration %v exceeds the controller's maximum of %v", req.Duration, c.o.MaxDuration)
	case id.MaxDuration > 0 && req.Duration > id.MaxDuration:
		return nil, wire.Errorf(wire.InvalidArgument, "lease request: duration %v exceeds client %s's cap of %v", req.Duration, who, id.MaxDuration)
	case len(req.Parts) > 0 && (req.Selector != "" || req.Exporter != ""):
		return nil, wire.Errorf(wire.InvalidArgument, "lease request: give either parts or a selector or an exporter name")
	case len(req.Parts) == 0 && (req.Selector == "") == (req.Exporter == ""):
		return nil, wire.Errorf(wire.InvalidArgument, "lease request: give either a selector or an exporter name")
	case req.Exporter != "" && !wire.ValidName(req.Exporter):
		return nil, wire.Errorf(wire.InvalidArgument, "lease request: bad exporter name %q", req.Exporter)
	case !id.Admin && req.Priority > id.MaxPriority:
		return nil, wire.Errorf(wire.InvalidArgument, "lease request: priority %d exceeds client %s's maximum of %d (jsn admin create client --max-priority)",
			req.Priority, who, id.MaxPriority)
	case req.Priority < MinPriority:
		return nil, wire.Errorf(wire.InvalidArgument, "lease request: priority %d is below the minimum of %d", req.Priority, MinPriority)
	case !req.Begin.IsZero() && req.Begin.After(time.Now().Add(maxAhead)):
		return nil, wire.Errorf(wire.InvalidArgument, "lease request: begin %s is more than %v ahead", req.Begin.Format(time.RFC3339), maxAhead)
	}
	if len(req.Parts) > 0 {
		return c.groupRequest(ctx, who, id, limit, &req) // a multi-exporter lease (group.go)
	}
	if _, err := ParseSelector(req.Selector); err != nil {
		return nil, wire.Errorf(wire.InvalidArgument, "lease request: %v", err)
	}
	sel, err := c.applyPolicies(id, &req)
	if err != nil {
		return nil, err
	}
	if req.ID != "" {
		if len(req.ID) > 64 || !wire.ValidName(req.ID) {
			return nil, wire.Errorf(wire.InvalidArgument, "lease request: id %q: want a subject token of at most 64 letters, digits, - and _", req.ID)
		}
		// A repeated request (its reply was lost): the lease it made, as it is now.
		if rep, err := c.existing(ctx, who, req.ID); rep != nil || err != nil {
			return rep, err
		}
	} else {
		req.ID = randomID()
	}
	rec := &leaseRecord{Lease: api.Lease{ID: req.ID, Client: who, Selector: sel, Exporter: req.Exporter,
		Priority: req.Priority, Status: api.StatusQueued, Created: time.Now().UTC(), Duration: req.Duration, Allow: id.Allow}}
	if req.Keepalive {
		rec.Lease.Keepalive = c.o.KeepaliveWindow
	}
	if req.Begin.After(time.Now()) {
		rec.Lease.NotBefore = req.Begin.UTC()
	}
	if m, _ := c.maintenanceOf(req.Exporter); req.Exporter != "" && m != nil {
		return nil, wire.Errorf(wire.FailedPrecondition, "lease request: exporter %s is in maintenance since %s (%s): %s",
			req.Exporter, m.Since.Local().Format("2006-01-02 15:04"), m.By, m.Reason)
	}
	c.auditLease(api.AuditRequest, &rec.Lease, "")
	cands, _ := c.candidates(&rec.Lease)
	if len(cands) == 0 {
		what := "selector " + req.Selector
		if req.Exporter != "" {
			what = "exporter " + req.Exporter
		}
		if sel != req.Selector {
			what += " within the policies of client " + who + " (" + strings.TrimPrefix(sel[len(req.Selector):], ",") + ")"
		}
		return nil, wire.Errorf(wire.NotFound, "lease request: no registered exporter matches %s", what)
	}
	if rec.Lease.NotBefore.IsZero() && !c.queuedAhead(rec, cands) {
		for _, e := range cands {
			if m, _ := c.maintenanceOf(e); m != nil || !c.fits(e, &rec.Lease) {
				continue
			}
			granted, dup, err := c.grant(ctx, e, rec)
			if err != nil {
				return nil, err
			}
			if dup {
				return c.granted(ctx, who, req.ID)
			}
			if granted {
				return api.LeaseReply{Lease: &rec.Lease, Credential: rec.Credential}, nil
			}
		}
	}
	if n := c.queuedBy(who); n >= c.o.MaxQueued {
		return nil, wire.Errorf(wire.FailedPrecondition, "lease request: client %s already has %d queued requests, the most the controller queues per client "+
			"(--max-queued); withdraw one (jsn lease release ID) or wait for a grant", who, n)
	}
	rec.Lease.Exporter = req.Exporter
	if rec.Lease.NotBefore.IsZero() {
		rec.Lease.FreeAt, rec.Lease.LongestNow = c.freeSlot(&rec.Lease, limit)
	}
	rec.Lease.Reason = c.waitReason(&rec.Lease)
	_ = limitBy
	if err := c.putPending(ctx, rec, 0, 0); err != nil {
		if errors.Is(err, bus.ErrKeyExists) {
			return c.granted(ctx, who, req.ID) // the same request, repeated meanwhile
		}
		return nil, err
	}
	c.auditLease(api.AuditQueued, &rec.Lease, rec.Lease.Reason)
	c.kickScheduler()
	return api.LeaseReply{Lease: &rec.Lease}, nil
}

// maxAhead bounds how far ahead a lease may be scheduled.
const maxAhead = 30 * 24 * time.Hour

// truncate shortens s to at most n bytes.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// existing returns lease id as lease.get would, or nil if there is no such lease; a lease of
// another client with that id is an error.
func (c *Controller) existing(ctx context.Context, who, id string) (any, error) {
	a, _, p := c.findLease(id)
	if a == nil && p == nil {
		if err := c.catchUp(ctx); err != nil {
			return nil, err
		}
		if a, _, p = c.findLease(id); a == nil && p == nil {
			return nil, nil
		}
	}
	var l *api.Lease
	if a != nil {
		l = &a.rec.Lease
	} else {
		l = &p.rec.Lease
	}
	if l.Client != who {
		return nil, wire.Errorf(wire.InvalidArgument, "lease request: id %s is another client's lease; choose a random id", id)
	}
	if a != nil {
		l := a.rec.Lease
		return api.LeaseReply{Lease: &l, Credential: a.rec.Credential}, nil
	}
	lc := *l
	return api.LeaseReply{Lease: &lc}, nil
}

// granted answers a request whose id turned out to be granted or queued already (the same
// request, repeated while the first one was being served).
func (c *Controller) granted(ctx context.Context, who, id string) (any, error) {
	rep, err := c.existing(ctx, who, id)
	if err == nil && rep == nil {
		err = wire.Errorf(wire.Unavailable, "lease request %s: granted meanwhile, but not visible yet; try again", id)
	}
	return rep, err
}

// MinPriority is the lowest lease request priority; the highest is each client's MaxPriority
// (admins are not bounded).
const MinPriority = -1000

// queuedBy counts the queued requests of client who.
func (c *Controller) queuedBy(who string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, p := range c.pending {
		if p.rec.Lease.Status == api.StatusQueued && p.rec.Lease.Client == who {
			n++
		}
	}
	return n
}

func (c *Controller) leaseGet(ctx context.Context, who string, data []byte) (any, error) {
	var req api.LeaseID
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if g, err := c.ownGroup(ctx, who, req.ID); g != nil || err != nil {
		if err != nil {
			return nil, err
		}
		return c.groupReply(g), nil
	}
	a, _, p, err := c.ownLease(ctx, who, req.ID)
	if errors.Is(err, wire.ErrNotFound) {
		// Shared with who: the lease, with who's own credential for it.
		if l, cred := c.sharedLease(ctx, who, req.ID); l != nil {
			return api.LeaseReply{Lease: l, Credential: cred}, nil
		}
	}
	if err != nil {
		return nil, err
	}
	if a != nil {
		l := a.rec.Lease
		return api.LeaseReply{Lease: &l, Credential: a.rec.Credential}, nil
	}
	l := p.rec.Lease
	return api.LeaseReply{Lease: &l}, nil
}

func (c *Controller) leaseExtend(ctx context.Context, who string, data []byte) (any, error) {
	var req api.ExtendRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	id := c.identity(api.KindClient, who)
	if id == nil {
		return nil, wire.Errorf(wire.PermissionDenied, "extend: no such client %s", who)
	}
	switch {
	case req.Duration <= 0:
		return nil, wire.Errorf(wire.InvalidArgument, "extend: duration must be positive")
	case req.Duration > c.o.MaxDuration:
		return nil, wire.Errorf(wire.InvalidArgument, "extend: duration %v exceeds the controller's maximum of %v", req.Duration, c.o.MaxDuration)
	case id.MaxDuration > 0 && req.Duration > id.MaxDuration:
		return nil, wire.Errorf(wire.InvalidArgument, "extend: duration %v exceeds client %s's cap of %v", req.Duration, who, id.MaxDuration)
	}
	if p := c.policyFor(id); p != nil && req.Duration > p.MaxDuration {
		return nil, wire.Errorf(wire.PermissionDenied, "extend: duration %v exceeds the maximum of %v of policy %s", req.Duration, p.MaxDuration, p.Name)
	}
	if g, err := c.ownGroup(ctx, who, req.ID); g != nil || err != nil {
		if err != nil {
			return nil, err
		}
		return c.groupExtend(ctx, who, g, &req)
	}
	a, e, p, err := c.ownLease(ctx, who, req.ID)
	if err != nil {
		return nil, err
	}
	if a == nil {
		return nil, wire.Errorf(wire.FailedPrecondition, "extend %s: lease is %s, not active", req.ID, p.rec.Lease.Status)
	}
	if a.rec.Lease.Keepalive > 0 {
		return nil, wire.Errorf(wire.FailedPrecondition, "extend %s: a keepalive lease lives while its holder runs, until %s at most; it cannot be extended",
			req.ID, a.rec.Lease.Until.Local().Format("2006-01-02 15:04:05"))
	}
	end := time.Now().UTC().Add(req.Duration)
	if end.Before(a.rec.Lease.End) && !req.Set {
		return nil, wire.Errorf(wire.FailedPrecondition, "extend %s: %v from now (%s) is earlier than its end (%s), and an extension never shortens a lease; "+
			"to end it earlier say so: jsn lease extend --set %s %v", req.ID, req.Duration, end.Local().Format("15:04:05"),
			a.rec.Lease.End.Local().Format("15:04:05"), req.ID, req.Duration)
	}
	if r := c.reservedFrom(e, req.ID); !r.IsZero() && end.After(r) {
		return nil, wire.Errorf(wire.FailedPrecondition, "extend %s: exporter %s is reserved from %s by a scheduled lease; the longest extension now is until then",
			req.ID, e, r.Local().Format("15:04:05"))
	}
	nr := *a.rec
	nr.Lease.End = end
	nr.Lease.Duration = nr.Lease.End.Sub(nr.Lease.Begin)
	cred, pub, err := c.auth.MintLease(nr.Lease.Client, e, nr.Lease.ID, nr.Lease.Allow, nr.Lease.End)
	if err != nil {
		return nil, err
	}
	cred.URL = c.endpoint
	nr.Credential = cred
	nr.Keys = map[string]time.Time{pub: nr.Lease.End}
	for k, v := range a.rec.Keys {
		nr.Keys[k] = v
	}
	if len(a.rec.Shares) > 0 {
		// The clients it is shared with get renewed credentials too (lease.get gives them).
		nr.Shares = map[string]*shareCred{}
		for name := range a.rec.Shares {
			id := c.identity(api.KindClient, name)
			if id == nil {
				continue // deleted meanwhile: its credential is revoked with its identity
			}
			allow := id.Allow
			scred, spub, err := c.auth.MintLease(name, e, nr.Lease.ID, allow, nr.Lease.End)
			if err != nil {
				return nil, err
			}
			scred.URL = c.endpoint
			nr.Shares[name] = &shareCred{Credential: scred, Pub: spub, Allow: allow}
			nr.Keys[spub] = nr.Lease.End
		}
		nr.Lease.SharedWith, nr.Lease.SharedAllow = sharedOf(nr.Shares)
	}
	b, err := wire.Marshal(&nr)
	if err != nil {
		return nil, err
	}
	rev, err := c.leases.Update(ctx, e, b, a.rev, ttlUntil(nr.Lease.End)+c.finishAllowance(e))
	if err != nil {
		if errors.Is(err, bus.ErrKeyChanged) || errors.Is(err, bus.ErrKeyNotFound) {
			return nil, wire.Errorf(wire.FailedPrecondition, "extend %s: the lease changed meanwhile (ended?); try again", req.ID)
		}
		return nil, err
	}
	c.mu.Lock()
	if c.fresh("l/"+e, rev) {
		c.active[e] = &leaseEntry{rec: &nr, rev: rev}
	}
	c.mu.Unlock()
	c.push(e, &nr.Lease, rev)
	c.auditLease(api.AuditExtend, &nr.Lease, "")
	return api.LeaseReply{Lease: &nr.Lease, Credential: cred}, nil
}

func (c *Controller) leaseRelease(ctx context.Context, who string, data []byte) (any, error) {
	var req api.LeaseID
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if g, err := c.ownGroup(ctx, who, req.ID); g != nil || err != nil {
		if err != nil {
			return nil, err
		}
		return api.Empty{}, c.groupRelease(ctx, who, g)
	}
	for attempt := 0; attempt < 5; attempt++ {
		a, e, p, err := c.ownLease(ctx, who, req.ID)
		if err != nil {
			return nil, err
		}
		if a != nil {
			return api.Empty{}, c.endLease(ctx, e, a, "released by "+who)
		}
		if p.rec.Lease.Status == api.StatusQueued {
			err := c.endPending(ctx, p, "cancelled by "+who)
			if errors.Is(err, bus.ErrKeyChanged) || errors.Is(err, bus.ErrKeyNotFound) {
				// Granted meanwhile: look again once this replica has seen it.
				if err := c.catchUp(ctx); err != nil {
					return nil, err
				}
				continue
			}
			return api.Empty{}, err
		}
		// Ended already (a repeated release whose first reply was lost): make sure its
		// credentials are revoked, as a replica that died inside the release may not have.
		return api.Empty{}, c.revoke(ctx, p.rec.Keys)
	}
	return nil, wire.Errorf(wire.Unavailable, "release %s: the lease keeps changing; try again", req.ID)
}

func (c *Controller) leaseList(ctx context.Context, who string, data []byte) (any, error) {
	var req api.ListLeasesRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if who == "" {
		req.All = true // a viewer (asViewer) has no leases of its own
	}
	admin := c.isAdmin(who) == nil
	c.mu.Lock()
	leases := []api.Lease{}
	for _, a := range c.active {
		if a.live() && (req.All || a.rec.Lease.Client == who || a.rec.Shares[who] != nil) {
			leases = append(leases, a.rec.Lease)
		}
	}
	for _, p := range c.pending {
		if p.rec.Lease.Status == api.StatusQueued && (req.All || p.rec.Lease.Client == who) {
			leases = append(leases, p.rec.Lease)
		}
	}
	c.mu.Unlock()
	out := api.ListLeasesReply{}
	out.Leases, out.Next = page(leases, leaseKey, req.Page)
	for i := range out.Leases {
		hideID(&out.Leases[i], who, admin)
	}
	return out, nil
}

// hideID blanks the id of a lease that is not who's own, unless who is an admin: ids are the
// handles of the lease API, and nobody else needs them.
func hideID(l *api.Lease, who string, admin bool) {
	if l.Client != who && !admin && !slices.Contains(l.SharedWith, who) {
		l.ID = ""
		l.Group = "" // a group's id is a handle too
	}
}

func (c *Controller) exportersList(ctx context.Context, who string, data []byte) (any, error) {
	var req api.ListExportersRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	sel, err := ParseSelector(req.Selector)
	if err != nil {
		return nil, wire.Errorf(wire.InvalidArgument, "list exporters: %v", err)
	}
	admin := c.isAdmin(who) == nil
	c.mu.Lock()
	now := time.Now()
	exps := []api.ExporterInfo{}
	for name, e := range c.exps {
		if !sel.Matches(e.Labels) {
			continue
		}
		info := api.ExporterInfo{Name: name, Labels: e.Labels, ReportedLabels: e.Reported, LastSeen: e.LastSeen, Version: e.Version,
			Online: now.Sub(e.LastSeen) < c.o.OfflineAfter}
		if a := c.active[name]; a.live() {
			l := a.rec.Lease
			hideID(&l, who, admin)
			info.Lease = &l
		}
		if m := c.maint[name]; m != nil {
			info.Maintenance, info.HookFailures = m.Maintenance, m.Failures
		}
		exps = append(exps, info)
	}
	c.mu.Unlock()
	out := api.ListExportersReply{}
	out.Exporters, out.Next = page(exps, func(e *api.ExporterInfo) string { return e.Name }, req.Page)
	return out, nil
}

func (c *Controller) exportersDescribe(ctx context.Context, who string, data []byte) (any, error) {
	var req api.ExporterName
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	c.mu.Lock()
	e := c.exps[req.Name]
	c.mu.Unlock()
	if e == nil {
		return nil, wire.Errorf(wire.NotFound, "exporter %q: not registered", req.Name)
	}
	return e.Describe, nil
}

// validVersion reports whether s is an acceptable exporter version: "" or up to 64 printable
// ASCII characters without spaces.
func validVersion(s string) bool {
	if len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
